// conq/durable/queue.hpp
//
// conq::durable_queue: a FIFO of byte messages that survives restarts, with
// acknowledgements. A message popped and not acked is delivered again after
// a restart (at-least-once); an acked one never comes back.
//
//   conq::durable_queue q("/var/lib/app/jobs", {.sync = conq::sync::always});
//   q.push("resize image 42");
//   if (auto m = q.pop_for(std::chrono::seconds(1))) {
//       handle(m->text());
//       q.ack(m->id);            // or q.release(m->id): deliver it again
//   }
//
// Two logs in the directory hold the state: data/ keeps the messages (a
// message's id is its offset there) and acks/ keeps the acknowledgements,
// with a checkpoint (the lowest unacked id and the acks above it) now and
// then, after which older ack segments and fully acked data segments are
// deleted. Any number of threads may push, pop and ack. The sync policy of
// the options applies to both logs: with sync::always, push and ack return
// once durable.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "conq/detail/platform.hpp"
#include "conq/detail/wait.hpp"
#include "conq/durable/log.hpp"
#include "conq/durable/options.hpp"

namespace conq {

/// A message as pop returns it. The payload is read in place from the
/// mapped file, which stays mapped while the message (or a copy) lives.
struct durable_message {
    std::uint64_t id = 0;
    std::span<const std::byte> payload;
    [[nodiscard]] std::string_view text() const noexcept {
        return {reinterpret_cast<const char*>(payload.data()), payload.size()};
    }

private:
    friend class durable_queue;
    std::shared_ptr<const void> keep_;
};

class durable_queue {
public:
    /// Acks between two checkpoints of the ack log (each checkpoint lets the
    /// older ack segments go).
    static constexpr std::uint64_t checkpoint_every = 4096;

    /// Creates the queue in `dir`, or reopens it: every message pushed and
    /// not acked is ready again, in id order. Throws durable_error.
    explicit durable_queue(const std::filesystem::path& dir, durable_options opts = {})
        : dir_(dir), data_(dir / "data", checked(opts)), acks_(dir / "acks", ack_options(opts)) {
        replay_acks();
        while (acked_.erase(floor_)) ++floor_;
        if (floor_ < data_.begin_offset()) floor_ = data_.begin_offset();
        reader_.emplace(data_.reader(std::min(floor_, data_.end_offset())));
    }

    durable_queue(const durable_queue&) = delete;
    durable_queue& operator=(const durable_queue&) = delete;
    ~durable_queue() { close(); }

    /// Appends a message and returns its id (ids grow by one per push).
    /// Throws durable_error (record_too_large, a full disk, failed).
    std::uint64_t push(std::span<const std::byte> payload) {
        const std::uint64_t id = data_.append(payload);
        // A pop that found nothing counts itself in waiters_ before it looks
        // again and sleeps; the fence pairs with that count (Dekker), so
        // either the pop sees this message or this push sees the pop.
        detail::full_fence();
        if (waiters_.load(std::memory_order_relaxed) != 0) {
            std::lock_guard<std::mutex> g(mu_);  // the pop is asleep, or about to be
            cv_.notify_all();
        }
        return id;
    }
    std::uint64_t push(std::string_view payload) {
        return push(std::span<const std::byte>(reinterpret_cast<const std::byte*>(payload.data()), payload.size()));
    }

    /// The oldest ready message, or nullopt when there is none. The message
    /// stays in flight until ack(id) or release(id).
    std::optional<durable_message> try_pop() {
        std::lock_guard<std::mutex> g(mu_);
        return take_locked();
    }

    /// Waits for a message; nullopt only after close().
    std::optional<durable_message> pop() { return pop_until(detail::no_deadline); }

    /// Waits at most `timeout` for a message.
    template <class Rep, class Period>
    std::optional<durable_message> pop_for(std::chrono::duration<Rep, Period> timeout) {
        return pop_until(detail::deadline_after(timeout));
    }

    /// Acknowledges message `id`: it is never delivered again, also after a
    /// restart. Returns false when it was acked already. Acking a message
    /// not yet delivered removes it. Throws durable_error
    /// (offset_out_of_range) for an id that was never pushed.
    bool ack(std::uint64_t id) {
        std::lock_guard<std::mutex> g(mu_);
        if (id >= data_.end_offset())
            throw durable_error("ack of id " + std::to_string(id) + ", never pushed", dir_,
                                durable_errc::offset_out_of_range);
        if (id < floor_ || acked_.count(id)) return false;
        std::byte rec[9];
        rec[0] = std::byte{kind_ack};
        std::memcpy(rec + 1, &id, 8);
        acks_.append(std::span<const std::byte>(rec, 9));  // durable per the sync policy
        in_flight_.erase(id);
        returned_.erase(id);
        acked_.insert(id);
        while (acked_.erase(floor_)) ++floor_;
        if (++acks_since_checkpoint_ >= checkpoint_every) checkpoint_locked();
        return true;
    }

    /// Puts an in-flight message back: it is delivered again before any
    /// newer one. Returns false when `id` is not in flight.
    bool release(std::uint64_t id) {
        std::lock_guard<std::mutex> g(mu_);
        auto it = in_flight_.find(id);
        if (it == in_flight_.end()) return false;
        returned_.emplace(id, std::move(it->second));
        in_flight_.erase(it);
        cv_.notify_one();
        return true;
    }

    /// Every push and ack that returned before the call is on disk.
    void sync() {
        data_.sync();
        acks_.sync();
    }

    /// Wakes every waiting pop; pops then return what is ready and after
    /// that nullopt. Pushes still work (the queue is a file, not a pipe).
    void close() {
        {
            std::lock_guard<std::mutex> g(mu_);
            closed_ = true;
        }
        cv_.notify_all();
    }
    [[nodiscard]] bool closed() const {
        std::lock_guard<std::mutex> g(mu_);
        return closed_;
    }

    /// Messages ready to pop (approximate while others push and pop).
    [[nodiscard]] std::size_t size_approx() const {
        std::lock_guard<std::mutex> g(mu_);
        return static_cast<std::size_t>(data_.end_offset() - reader_->position()) + returned_.size();
    }
    /// Messages popped and neither acked nor released.
    [[nodiscard]] std::size_t in_flight() const {
        std::lock_guard<std::mutex> g(mu_);
        return in_flight_.size();
    }
    /// Every id below this is acked.
    [[nodiscard]] std::uint64_t acked_below() const {
        std::lock_guard<std::mutex> g(mu_);
        return floor_;
    }
    /// The message log (to read or replay it, not to append to it).
    [[nodiscard]] const durable_log& messages() const noexcept { return data_; }

private:
    std::optional<durable_message> pop_until(detail::deadline_t deadline) {
        std::unique_lock<std::mutex> lk(mu_);
        for (;;) {
            if (auto m = take_locked()) return m;
            if (closed_) return std::nullopt;
            waiting w(waiters_);
            if (auto m = take_locked()) return m;
            if (deadline == detail::no_deadline) cv_.wait(lk);
            else if (cv_.wait_until(lk, deadline) == std::cv_status::timeout) return take_locked();
        }
    }

    /// Counts a pop as waiting for its scope (see push()).
    struct waiting {
        explicit waiting(std::atomic<std::uint32_t>& n) : n_(n) {
            n_.fetch_add(1, std::memory_order_seq_cst);
            detail::full_fence();
        }
        ~waiting() { n_.fetch_sub(1, std::memory_order_relaxed); }
        waiting(const waiting&) = delete;
        waiting& operator=(const waiting&) = delete;
        std::atomic<std::uint32_t>& n_;
    };

    static constexpr unsigned char kind_ack = 1;
    static constexpr unsigned char kind_checkpoint = 2;

    static durable_options checked(durable_options o) {
        if (o.read_only) throw durable_error("durable_queue: read_only", {}, durable_errc::bad_options);
        if (o.retention_bytes != 0 || o.retention_age.count() != 0)
            throw durable_error("durable_queue: retention would delete unacked messages; the queue "
                                "deletes acked segments itself",
                                {}, durable_errc::bad_options);
        return o;
    }
    /// Ack records take 32 bytes with their frame; a checkpoint holds 8 bytes
    /// per ack above the floor (out-of-order acks), up to max_checkpoint.
    static constexpr std::uint32_t max_checkpoint = 4u << 20;
    static durable_options ack_options(durable_options o) {
        o = checked(std::move(o));
        o.max_record_size = max_checkpoint;
        o.segment_size = std::uint64_t{8} << 20;
        return o;
    }

    /// Rebuilds floor_ and acked_ from the ack log.
    void replay_acks() {
        auto r = acks_.reader(acks_.begin_offset());
        while (auto rec = r.next()) {
            const auto p = rec->payload;
            if (p.size() == 9 && p[0] == std::byte{kind_ack}) {
                std::uint64_t id;
                std::memcpy(&id, p.data() + 1, 8);
                if (id >= floor_) acked_.insert(id);
            } else if (p.size() >= 17 && p[0] == std::byte{kind_checkpoint} && (p.size() - 17) % 8 == 0) {
                std::uint64_t floor, n;
                std::memcpy(&floor, p.data() + 1, 8);
                std::memcpy(&n, p.data() + 9, 8);
                if (n * 8 != p.size() - 17) throw bad_ack_record(rec->offset);
                acked_.clear();
                floor_ = floor;
                for (std::uint64_t k = 0; k < n; ++k) {
                    std::uint64_t id;
                    std::memcpy(&id, p.data() + 17 + 8 * k, 8);
                    acked_.insert(id);
                }
            } else {
                throw bad_ack_record(rec->offset);
            }
            while (acked_.erase(floor_)) ++floor_;
        }
    }

    durable_error bad_ack_record(std::uint64_t at) const {
        return durable_error("ack log record " + std::to_string(at) + " has an unknown layout", dir_ / "acks",
                             durable_errc::corrupt);
    }

    /// Writes {floor, acks above it}, then drops what it makes redundant.
    void checkpoint_locked() {
        if (17 + 8 * acked_.size() > max_checkpoint) return;  // too many acks out of order: later
        std::vector<std::byte> rec(17 + 8 * acked_.size());
        rec[0] = std::byte{kind_checkpoint};
        const std::uint64_t n = acked_.size();
        std::memcpy(rec.data() + 1, &floor_, 8);
        std::memcpy(rec.data() + 9, &n, 8);
        std::size_t k = 0;
        for (const std::uint64_t id : acked_) std::memcpy(rec.data() + 17 + 8 * k++, &id, 8);
        const std::uint64_t at = acks_.append(std::span<const std::byte>(rec));
        // Older segments may go once the checkpoint is durable.
        acks_.sync();
        acks_.remove_before(at);
        data_.remove_before(floor_);
        acks_since_checkpoint_ = 0;
    }

    /// The next message to deliver: a released one first, else the next
    /// unacked one from the log.
    std::optional<durable_message> take_locked() {
        // Acks of messages not yet delivered can move the floor past the
        // reader (and a checkpoint may have deleted what lies between).
        if (reader_->position() < floor_) reader_.emplace(data_.reader(floor_));
        if (!returned_.empty()) {
            auto it = returned_.begin();
            durable_message m = std::move(it->second);
            returned_.erase(it);
            in_flight_.emplace(m.id, m);
            return m;
        }
        while (auto rec = reader_->next()) {
            if (rec->offset < floor_ || acked_.count(rec->offset)) continue;  // acked before delivery
            durable_message m;
            m.id = rec->offset;
            m.payload = rec->payload;
            m.keep_ = reader_->pin();
            in_flight_.emplace(m.id, m);
            return m;
        }
        return std::nullopt;
    }

    std::filesystem::path dir_;
    durable_log data_;
    durable_log acks_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::optional<log_reader> reader_;
    std::uint64_t floor_ = 0;             // every id below is acked
    std::set<std::uint64_t> acked_;       // acked ids above floor_
    std::map<std::uint64_t, durable_message> in_flight_;
    std::map<std::uint64_t, durable_message> returned_;
    std::uint64_t acks_since_checkpoint_ = 0;
    bool closed_ = false;
    std::atomic<std::uint32_t> waiters_{0};  // pops about to sleep or asleep
};

}  // namespace conq

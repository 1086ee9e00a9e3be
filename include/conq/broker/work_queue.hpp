// conq/broker/work_queue.hpp
//
// conq::work_queues: named job queues with priorities, delays, time-to-run,
// bury/kick and dead letters, as beanstalkd tubes or SQS queues, in process.
//
//   conq::work_queues<Email> jobs;
//   jobs.put("emails", mail, {.priority = 10, .ttr = std::chrono::seconds(30)});
//
//   auto worker = jobs.consumer({"emails", "sms"});   // watches two queues
//   if (auto j = worker.reserve_for(std::chrono::seconds(5))) {
//       send(j->payload());
//       j->remove();                   // done; or release(), bury(), touch()
//   }                                  // a handle dropped undecided releases its job
//
// Rules, as beanstalkd's:
// - A job is in one state: ready, delayed (until its delay runs out),
//   reserved (by one handle, for at most its time-to-run) or buried (parked
//   until kicked). Ids are unique, increasing, and never reused.
// - Ready order is priority (0 is the most urgent), then age (id). A
//   reserve over several queues takes the best job of all of them; paused
//   queues give nothing until their pause ends.
// - A reserved job whose time-to-run runs out becomes ready again (counted as
//   a timeout). A consumer that holds a job within `deadline_margin` of its
//   end, and finds nothing to reserve, is told so (reserve_status::deadline_soon)
//   instead of waiting: the holder learns in time to touch() or finish.
// - A queue with max_deliveries = N moves a job that comes back undecided
//   (time-out, release, handle dropped) after its N-th delivery to its
//   dead-letter queue (ready there), or buries it when no dead-letter queue
//   is named.
// - Time is read from the clock object: with conq::manual_clock every timed
//   rule (delays, time-to-run, pauses, reserve time-outs) is tested by
//   advancing the clock, never by sleeping.
//
// Durable mode (a directory and a codec for T): every change is journaled
// to a conq::durable_log before the call returns; after a restart ready,
// delayed and buried jobs are back in their states with their priorities,
// remaining delays and counters, reserved ones are ready again, removed ones
// are gone. Delays are kept in wall-clock time across the restart
// (durable_options::wall_clock, system_clock by default). The journal is
// compacted as it goes: live jobs are rewritten and whole segments dropped.
//
// Thread safety: every call may be made from any thread. One mutex guards a
// work_queues object: calls are short (O(log n) heap steps), and waiting
// reserves sleep on their own condition variable, woken first come first
// served (as beanstalkd serves its waiting connections).
#pragma once

#include <conq/broker/common.hpp>
#include <conq/durable/log.hpp>
#include <conq/durable/options.hpp>
#include <conq/policy.hpp>

#include <algorithm>
#include <bit>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace conq {

using job_id = std::uint64_t;

enum class job_state : std::uint8_t { ready, delayed, reserved, buried };

[[nodiscard]] constexpr std::string_view to_string(job_state s) noexcept {
    switch (s) {
    case job_state::ready: return "ready";
    case job_state::delayed: return "delayed";
    case job_state::reserved: return "reserved";
    case job_state::buried: return "buried";
    }
    return "?";
}

/// Priorities below this are "urgent" in the statistics (beanstalkd's rule).
inline constexpr std::uint32_t urgent_priority = 1024;

struct put_options {
    std::uint32_t priority = urgent_priority;  ///< 0 is the most urgent
    std::chrono::nanoseconds delay{0};        ///< ready after this long (>= 0)
    std::chrono::nanoseconds ttr = std::chrono::seconds(60);  ///< time-to-run once reserved (> 0)
};

/// Per-queue settings (work_queues::configure).
struct queue_options {
    /// After this many deliveries a job that comes back undecided leaves the
    /// queue: 0 never.
    std::uint32_t max_deliveries = 0;
    /// Where such a job goes (ready there); empty: it is buried instead.
    std::string dead_letter{};
};

struct work_queue_options {
    std::size_t max_payload = std::size_t{1} << 20;  ///< payload_size() limit (encoded size when durable)
    /// A consumer holding a job this close to its time-to-run's end gets
    /// reserve_status::deadline_soon from a reserve that finds nothing.
    std::chrono::nanoseconds deadline_margin = std::chrono::seconds(1);
    /// Settings of queues never passed to configure().
    queue_options defaults{};
};

enum class reserve_status : std::uint8_t {
    reserved,       ///< the result holds a job
    timed_out,      ///< nothing became ready in time
    deadline_soon,  ///< a job this consumer holds is about to run out of time
    closed,         ///< the work queues were closed
};

/// A queue's counters (beanstalkd's stats-tube, plus the dead-letter count).
struct queue_stats {
    std::string name;
    std::size_t urgent = 0, ready = 0, reserved = 0, delayed = 0, buried = 0;
    std::uint64_t total_jobs = 0;  ///< jobs ever put into this queue
    std::uint64_t reserves = 0, timeouts = 0, releases = 0, buries = 0, kicks = 0, deletes = 0;
    std::uint64_t dead_lettered = 0;  ///< jobs that left after max_deliveries
    std::uint64_t pauses = 0;
    std::size_t waiting = 0;   ///< reserves blocked on this queue now
    std::size_t watchers = 0;  ///< consumers watching it
    std::chrono::nanoseconds pause{0}, pause_left{0};
};

/// Totals over all queues (the counters include those of queues since dropped).
struct work_stats {
    std::size_t urgent = 0, ready = 0, reserved = 0, delayed = 0, buried = 0;
    std::uint64_t total_jobs = 0, reserves = 0, timeouts = 0, releases = 0, buries = 0, kicks = 0,
                  deletes = 0, dead_lettered = 0;
    std::size_t queues = 0;
    std::size_t waiting = 0;  ///< reserves blocked now (one that watches two queues counts once)
    job_id next_id = 1;
};

/// A job as peek() sees it (beanstalkd's stats-job, plus the payload).
template <class T>
struct job_info {
    job_id id = 0;
    std::string queue;
    job_state state = job_state::ready;
    std::uint32_t priority = 0;
    std::chrono::nanoseconds age{0}, delay{0}, ttr{0};
    std::chrono::nanoseconds time_left{0};  ///< delayed: until ready; reserved: until its TTR ends
    std::uint32_t reserves = 0, timeouts = 0, releases = 0, buries = 0, kicks = 0;
    std::shared_ptr<const T> payload;
};

namespace detail::wq {

inline constexpr std::uint32_t nil = std::numeric_limits<std::uint32_t>::max();
inline constexpr std::int64_t forever = INT64_MAX;

/// job id -> record index: open addressing, linear probing, backward-shift
/// deletion. Ids are never 0.
class id_table {
public:
    id_table() { rehash(64); }

    [[nodiscard]] std::uint32_t find(job_id id) const noexcept {
        for (std::size_t i = slot(id);; i = (i + 1) & mask_) {
            if (keys_[i] == id) return vals_[i];
            if (keys_[i] == 0) return nil;
        }
    }
    void insert(job_id id, std::uint32_t v) {
        if ((size_ + 1) * 2 > keys_.size()) rehash(keys_.size() * 2);
        std::size_t i = slot(id);
        while (keys_[i] != 0) i = (i + 1) & mask_;
        keys_[i] = id;
        vals_[i] = v;
        ++size_;
    }
    void erase(job_id id) noexcept {
        std::size_t i = slot(id);
        while (keys_[i] != id) {
            if (keys_[i] == 0) return;
            i = (i + 1) & mask_;
        }
        // Shift later members of the probe run back so lookups never stop early.
        for (std::size_t j = (i + 1) & mask_; keys_[j] != 0; j = (j + 1) & mask_) {
            const std::size_t home = slot(keys_[j]);
            if (((j - home) & mask_) >= ((j - i) & mask_)) {
                keys_[i] = keys_[j];
                vals_[i] = vals_[j];
                i = j;
            }
        }
        keys_[i] = 0;
        --size_;
    }

    [[nodiscard]] std::size_t size() const noexcept { return size_; }

private:
    [[nodiscard]] std::size_t slot(job_id id) const noexcept {
        return static_cast<std::size_t>((id * 0x9E3779B97F4A7C15ull) >> shift_);
    }
    void rehash(std::size_t n) {
        std::vector<job_id> k(n, 0);
        std::vector<std::uint32_t> v(n, nil);
        keys_.swap(k);
        vals_.swap(v);
        mask_ = n - 1;
        shift_ = 64 - static_cast<unsigned>(std::countr_zero(n));
        size_ = 0;
        for (std::size_t i = 0; i < k.size(); ++i)
            if (k[i] != 0) insert(k[i], v[i]);
    }
    std::vector<job_id> keys_;
    std::vector<std::uint32_t> vals_;
    std::size_t mask_ = 0, size_ = 0;
    unsigned shift_ = 0;
};

template <class T>
struct job_rec {
    job_id id = 0;
    std::shared_ptr<const T> payload;
    std::int64_t created = 0;  // clock ns
    std::int64_t due = 0;      // delayed: ready at; reserved: TTR ends at (clock ns)
    std::int64_t ttr = 0;
    std::int64_t delay = 0;    // the last delay asked for
    std::uint64_t token = 0;   // bumped by every reserve: handles of older reservations go stale
    std::uint64_t journal_at = 0;  // offset of its latest full journal record
    std::uint32_t queue = nil;
    std::uint32_t priority = 0;
    std::uint32_t pos = nil;   // index in the heap that holds it
    std::uint32_t next = nil;  // buried list / free list
    std::uint32_t prev = nil;
    std::uint32_t jnext = nil, jprev = nil;  // journal order (durable mode)
    std::uint32_t reserves = 0, timeouts = 0, releases = 0, buries = 0, kicks = 0;
    std::uint32_t attempts = 0;  // deliveries since it entered its queue
    std::uint64_t buried_seq = 0;  // burial order, kept across restarts
    std::size_t bytes = 0;
    job_state state = job_state::ready;
    bool live = false;
};

}  // namespace detail::wq

/// Named work queues; see the top of this header. Neither copyable nor
/// movable. Job handles and consumers must not outlive it.
template <class T, class Clock = steady_clock>
class work_queues {
    static_assert(clock_type<Clock>,
                  "conq::work_queues: the clock must be steady and have now(); use "
                  "conq::steady_clock or conq::manual_clock.");
    static_assert(std::is_move_constructible_v<T>, "conq::work_queues: T must be movable.");

    using rec = detail::wq::job_rec<T>;
    static constexpr std::uint32_t nil = detail::wq::nil;
    static constexpr std::int64_t forever = detail::wq::forever;

public:
    using clock_type = Clock;
    class job;
    class consumer;
    struct reserve_result;

    /// In memory, on a clock of its own.
    explicit work_queues(work_queue_options opts = {}) requires std::is_default_constructible_v<Clock>
        : opts_(std::move(opts)), link_(*this) {
        check_options();
    }
    /// In memory, on `clock` (which must outlive this object).
    explicit work_queues(Clock& clock, work_queue_options opts = {})
        : opts_(std::move(opts)), clock_(clock), link_(*this) {
        check_options();
    }
    /// Durable in `dir`: opens (and recovers) the journal there, or creates
    /// it. `log` configures the journal (its sync policy decides when put
    /// and the other calls return: sync::always waits for the disk).
    /// Throws durable_error.
    work_queues(std::filesystem::path dir, durable_options log, work_queue_options opts = {})
        requires(std::is_default_constructible_v<Clock> && has_codec<T>)
        : opts_(std::move(opts)), link_(*this) {
        check_options();
        open_journal(std::move(dir), std::move(log));
    }
    work_queues(std::filesystem::path dir, durable_options log, Clock& clock, work_queue_options opts = {})
        requires has_codec<T>
        : opts_(std::move(opts)), clock_(clock), link_(*this) {
        check_options();
        open_journal(std::move(dir), std::move(log));
    }

    work_queues(const work_queues&) = delete;
    work_queues& operator=(const work_queues&) = delete;
    ~work_queues() { close(); }

    // ------------------------------------------------------------- put

    /// Adds a job to `queue` (created on first use) and returns its id.
    /// \throws broker_error: invalid_name, invalid_argument (negative delay,
    /// ttr <= 0), payload_too_large, closed, draining; durable_error from the
    /// journal. Nothing is added when it throws.
    job_id put(std::string_view queue, T payload, const put_options& o = {}) {
        detail::check_queue_name(queue, "put");
        check_put(o);
        const std::size_t bytes = payload_size(payload);
        if (bytes > opts_.max_payload) throw broker_error(broker_errc::payload_too_large, "put", queue);
        std::string encoded;
        if constexpr (has_codec<T>) {
            if (journal_) {
                codec<T>::encode(payload, encoded);
                if (encoded.size() > opts_.max_payload)
                    throw broker_error(broker_errc::payload_too_large, "put", queue);
            }
        }
        auto p = std::make_shared<const T>(std::move(payload));
        std::uint64_t synced_to = 0;
        job_id id;
        {
            std::unique_lock lk(mu_);
            check_open("put", true);
            const std::int64_t now = clock_.now_ns();
            tick(now);
            const std::uint32_t q = queue_index(queue);
            id = insert_locked(q, std::move(p), bytes, o, now, synced_to, &encoded);
        }
        sync_journal(synced_to);
        return id;
    }

    // ---------------------------------------------------------- reserve

    /// A consumer watching `queues` (at least one name).
    [[nodiscard]] consumer make_consumer(std::initializer_list<std::string_view> queues) {
        return consumer(*this, std::span<const std::string_view>(queues.begin(), queues.size()));
    }
    [[nodiscard]] consumer make_consumer(std::span<const std::string_view> queues) {
        return consumer(*this, queues);
    }

    /// Reserves the best ready job of `queues` without waiting.
    [[nodiscard]] std::optional<job> try_reserve(std::initializer_list<std::string_view> queues) {
        consumer c = make_consumer(queues);
        return c.try_reserve();
    }
    /// Waits at most `timeout` (on the clock) for a job of `queues`.
    [[nodiscard]] std::optional<job> reserve_for(std::initializer_list<std::string_view> queues,
                                                 std::chrono::nanoseconds timeout) {
        consumer c = make_consumer(queues);
        return c.reserve_for(timeout).take();
    }

    // --------------------------------------------------------- by id

    /// Deletes a ready, delayed or buried job (a reserved one is deleted
    /// through its handle). \throws broker_error(unknown_job).
    void remove(job_id id) {
        std::uint64_t synced_to = 0;
        {
            std::lock_guard lk(mu_);
            tick(clock_.now_ns());
            const std::uint32_t i = ids_.find(id);
            if (i == nil || at(i).state == job_state::reserved)
                throw broker_error(broker_errc::unknown_job, "remove", std::to_string(id));
            unlink_state(i);
            ++queues_[at(i).queue]->stats.deletes;
            free_job(i, synced_to);
        }
        sync_journal(synced_to);
    }

    /// Makes a buried or delayed job ready. \throws broker_error(unknown_job).
    void kick_job(job_id id) {
        std::uint64_t synced_to = 0;
        {
            std::lock_guard lk(mu_);
            tick(clock_.now_ns());
            const std::uint32_t i = ids_.find(id);
            if (i == nil || (at(i).state != job_state::buried && at(i).state != job_state::delayed))
                throw broker_error(broker_errc::unknown_job, "kick_job", std::to_string(id));
            kick_locked(i, synced_to);
        }
        sync_journal(synced_to);
    }

    /// Makes up to `n` jobs of `queue` ready: buried ones (oldest buried
    /// first) if it has any, else delayed ones (soonest first), as
    /// beanstalkd's kick. \returns how many. An unknown queue kicks nothing.
    std::size_t kick(std::string_view queue, std::size_t n) {
        detail::check_queue_name(queue, "kick");
        std::uint64_t synced_to = 0;
        std::size_t done = 0;
        {
            std::lock_guard lk(mu_);
            tick(clock_.now_ns());
            const std::uint32_t q = find_queue(queue);
            if (q == nil) return 0;
            queue_rec& qr = *queues_[q];
            if (qr.buried_head != nil) {
                while (done < n && qr.buried_head != nil) {
                    kick_locked(qr.buried_head, synced_to);
                    ++done;
                }
            } else {
                while (done < n && !qr.delayed.empty()) {
                    kick_locked(qr.delayed.front(), synced_to);
                    ++done;
                }
            }
        }
        sync_journal(synced_to);
        return done;
    }

    /// Removes every ready, delayed and buried job of `queue` (reserved ones
    /// stay with their holders). \returns how many.
    std::size_t purge(std::string_view queue) {
        detail::check_queue_name(queue, "purge");
        std::uint64_t synced_to = 0;
        std::size_t done = 0;
        {
            std::lock_guard lk(mu_);
            const std::uint32_t q = find_queue(queue);
            if (q == nil) return 0;
            queue_rec& qr = *queues_[q];
            // Two heap types (by priority, by due time): one loop each.
            while (!qr.ready.empty()) {
                const std::uint32_t i = qr.ready.front();
                unlink_state(i);
                free_job(i, synced_to);
                ++done;
            }
            while (!qr.delayed.empty()) {
                const std::uint32_t i = qr.delayed.front();
                unlink_state(i);
                free_job(i, synced_to);
                ++done;
            }
            while (qr.buried_head != nil) {
                const std::uint32_t i = qr.buried_head;
                unlink_state(i);
                free_job(i, synced_to);
                ++done;
            }
            qr.stats.deletes += done;
        }
        sync_journal(synced_to);
        return done;
    }

    /// Reserves from `queue` give nothing for `d` (0 resumes it now).
    /// \throws broker_error: invalid_name, unknown_queue, invalid_argument (d < 0).
    void pause(std::string_view queue, std::chrono::nanoseconds d) {
        detail::check_queue_name(queue, "pause");
        if (d.count() < 0) throw broker_error(broker_errc::invalid_argument, "pause", "negative duration");
        std::lock_guard lk(mu_);
        const std::uint32_t q = find_queue(queue);
        if (q == nil) throw broker_error(broker_errc::unknown_queue, "pause", queue);
        queue_rec& qr = *queues_[q];
        const std::int64_t now = clock_.now_ns();
        qr.pause_len = d.count();
        qr.pause_until = d.count() == 0 ? 0 : detail::add_sat(now, d.count());
        ++qr.stats.pauses;
        if (qr.pause_until != 0) plan_event(qr.pause_until);
        else wake_for(q);
    }

    /// Creates `queue` if it does not exist (beanstalkd's `use` makes the
    /// tube it names); an existing queue is left as it is.
    /// \throws broker_error(invalid_name).
    void open_queue(std::string_view queue) {
        detail::check_queue_name(queue, "open_queue");
        std::lock_guard lk(mu_);
        queue_index(queue);
    }

    /// Sets the dead-letter rules of `queue` (created if new). Not journaled:
    /// a durable program configures its queues at start-up, before or after
    /// recovery (work_queue_options::defaults covers every queue).
    void configure(std::string_view queue, queue_options o) {
        detail::check_queue_name(queue, "configure");
        if (!o.dead_letter.empty()) detail::check_queue_name(o.dead_letter, "configure");
        std::lock_guard lk(mu_);
        queues_[queue_index(queue)]->opts = std::move(o);
    }

    /// Forgets `queue` if it holds no job in any state and no consumer
    /// watches it. \returns whether it was dropped.
    bool drop_queue(std::string_view queue) {
        std::lock_guard lk(mu_);
        const std::uint32_t q = find_queue(queue);
        if (q == nil) return false;
        queue_rec& qr = *queues_[q];
        if (!qr.ready.empty() || !qr.delayed.empty() || qr.buried_head != nil || qr.reserved != 0 ||
            qr.watchers != 0)
            return false;
        const queue_stats& c = qr.stats;
        dropped_.total_jobs += c.total_jobs, dropped_.reserves += c.reserves, dropped_.timeouts += c.timeouts;
        dropped_.releases += c.releases, dropped_.buries += c.buries, dropped_.kicks += c.kicks;
        dropped_.deletes += c.deletes, dropped_.dead_lettered += c.dead_lettered;
        by_name_.erase(qr.name);
        if (last_queue_ == q) last_queue_ = nil;
        free_queues_.push_back(q);
        queues_[q]->reset();
        return true;
    }

    // ------------------------------------------------------------ peek

    /// The job `id` in any state. \throws broker_error(unknown_job).
    [[nodiscard]] job_info<T> peek(job_id id) const {
        std::lock_guard lk(mu_);
        const_cast<work_queues*>(this)->tick(clock_.now_ns());  // due delays, ended TTRs
        const std::uint32_t i = ids_.find(id);
        if (i == nil) throw broker_error(broker_errc::unknown_job, "peek", std::to_string(id));
        return info(i);
    }
    /// The next job a reserve of `queue` would take (ignoring a pause).
    [[nodiscard]] std::optional<job_info<T>> peek_ready(std::string_view queue) const {
        return peek_where(queue, [](const queue_rec& q) { return q.ready.empty() ? nil : q.ready.front(); });
    }
    /// The delayed job of `queue` that becomes ready first.
    [[nodiscard]] std::optional<job_info<T>> peek_delayed(std::string_view queue) const {
        return peek_where(queue, [](const queue_rec& q) { return q.delayed.empty() ? nil : q.delayed.front(); });
    }
    /// The job of `queue` buried longest ago (the next kick takes it).
    [[nodiscard]] std::optional<job_info<T>> peek_buried(std::string_view queue) const {
        return peek_where(queue, [](const queue_rec& q) { return q.buried_head; });
    }

    // ----------------------------------------------------------- stats

    [[nodiscard]] std::optional<queue_stats> stats(std::string_view queue) const {
        std::lock_guard lk(mu_);
        const_cast<work_queues*>(this)->tick(clock_.now_ns());
        const std::uint32_t q = find_queue(queue);
        if (q == nil) return std::nullopt;
        return stats_of(q);
    }
    [[nodiscard]] work_stats stats() const {
        std::lock_guard lk(mu_);
        const_cast<work_queues*>(this)->tick(clock_.now_ns());
        work_stats s;
        s.total_jobs = dropped_.total_jobs, s.reserves = dropped_.reserves, s.timeouts = dropped_.timeouts;
        s.releases = dropped_.releases, s.buries = dropped_.buries, s.kicks = dropped_.kicks;
        s.deletes = dropped_.deletes, s.dead_lettered = dropped_.dead_lettered;
        for (std::uint32_t q = 0; q < queues_.size(); ++q) {
            if (queues_[q]->name.empty()) continue;
            const queue_stats t = stats_of(q);
            s.urgent += t.urgent, s.ready += t.ready, s.reserved += t.reserved;
            s.delayed += t.delayed, s.buried += t.buried, s.total_jobs += t.total_jobs;
            s.reserves += t.reserves, s.timeouts += t.timeouts, s.releases += t.releases;
            s.buries += t.buries, s.kicks += t.kicks, s.deletes += t.deletes;
            s.dead_lettered += t.dead_lettered;
            ++s.queues;
        }
        for (const waiter* w = waiters_; w; w = w->next) ++s.waiting;
        s.next_id = next_id_;
        return s;
    }
    /// The names of the queues, sorted.
    [[nodiscard]] std::vector<std::string> queue_names() const {
        std::lock_guard lk(mu_);
        std::vector<std::string> v;
        for (const auto& q : queues_)
            if (!q->name.empty()) v.push_back(q->name);
        std::sort(v.begin(), v.end());
        return v;
    }

    // ------------------------------------------------------- lifecycle

    /// Puts throw broker_error(draining) from now on; everything else works
    /// (beanstalkd's drain mode).
    void drain() {
        std::lock_guard lk(mu_);
        draining_ = true;
    }
    /// Wakes every waiting reserve (they return reserve_status::closed) and
    /// refuses new puts and reserves. Decisions on jobs already reserved
    /// still work.
    void close() {
        std::lock_guard lk(mu_);
        if (closed_) return;
        closed_ = true;
        if (listener_) listener_();
        for (waiter* w = waiters_; w; w = w->next) w->cv.notify_one();
        idle_cv_.notify_all();
    }
    [[nodiscard]] bool closed() const {
        std::lock_guard lk(mu_);
        return closed_;
    }
    /// No job ready or reserved (delayed and buried ones wait for time or a
    /// kick, and do not count).
    [[nodiscard]] bool idle() const {
        std::lock_guard lk(mu_);
        const_cast<work_queues*>(this)->tick(clock_.now_ns());
        return ready_total_ == 0 && reserved_total_ == 0;
    }
    /// Waits at most `timeout` (on the clock) for idle(). \returns idle().
    bool await_idle(std::chrono::nanoseconds timeout) {
        std::unique_lock lk(mu_);
        const std::int64_t deadline = detail::add_sat(clock_.now_ns(), timeout.count());
        for (;;) {
            const std::int64_t now = clock_.now_ns();
            tick(now);
            if (ready_total_ == 0 && reserved_total_ == 0) return true;
            if (closed_ || now >= deadline) return false;
            idle_cv_.wait_until(lk, std::min(deadline, next_event_));
        }
    }

    [[nodiscard]] Clock& clock() const noexcept { return clock_.get(); }
    [[nodiscard]] const work_queue_options& options() const noexcept { return opts_; }
    /// Durable mode: the journal, for its recovery report and offsets.
    [[nodiscard]] const durable_log* journal() const noexcept { return journal_ ? &*journal_ : nullptr; }

    // ------------------------------------------------- event-loop hooks
    //
    // For a front end that serves waiting reserves from its own event loop
    // (examples/beanstalkd-server does): it polls with consumer::poll_reserve
    // instead of blocking a thread, and needs to know when to poll again.

    /// Calls `f` whenever something may let a waiting reserve succeed or end:
    /// a job became ready, a pause ended, the next timed event (a delay or a
    /// time-to-run ending, see next_event_in) moved earlier, or close(). `f`
    /// runs with the internal lock held, on whichever thread made the change:
    /// it must be quick, must not throw, and must not call this object (set
    /// a flag, write to an eventfd). An empty `f` removes the listener.
    void set_listener(std::function<void()> f) {
        std::lock_guard lk(mu_);
        listener_ = std::move(f);
    }
    /// How long until the next timed event (a delayed job due, a pause or a
    /// time-to-run ending): zero if one is due now, nullopt if none is
    /// planned. Any call that looks at the jobs then applies it.
    [[nodiscard]] std::optional<std::chrono::nanoseconds> next_event_in() const {
        std::lock_guard lk(mu_);
        if (next_event_ == forever) return std::nullopt;
        return std::chrono::nanoseconds(std::max<std::int64_t>(0, next_event_ - clock_.now_ns()));
    }
    /// Uses up the next job id without a job, as beanstalkd does for a put
    /// whose body it rejects after reading (EXPECTED_CRLF, DRAINING). Ids
    /// stay unique; a restart may hand out a skipped id that no job has.
    job_id skip_id() {
        std::lock_guard lk(mu_);
        return next_id_++;
    }

    // ================================================================ job

    /// A reserved job. Move-only. Deciding (remove, release, bury) ends the
    /// reservation; a handle destroyed undecided releases the job with its
    /// priority unchanged. A decision after the job's time-to-run ran out
    /// throws broker_error(not_reserved): the job may be someone else's now.
    class job {
    public:
        job(job&& o) noexcept : wq_(std::exchange(o.wq_, nullptr)), idx_(o.idx_), id_(o.id_),
                                token_(o.token_), deliveries_(o.deliveries_), payload_(std::move(o.payload_)) {}
        job& operator=(job&& o) noexcept {
            if (this != &o) {
                drop(true);
                wq_ = std::exchange(o.wq_, nullptr);
                idx_ = o.idx_, id_ = o.id_, token_ = o.token_, deliveries_ = o.deliveries_;
                payload_ = std::move(o.payload_);
            }
            return *this;
        }
        ~job() { drop(true); }

        [[nodiscard]] job_id id() const noexcept { return id_; }
        [[nodiscard]] const T& payload() const noexcept { return *payload_; }
        [[nodiscard]] const std::shared_ptr<const T>& shared_payload() const noexcept { return payload_; }
        /// How many times it has been reserved, this time included.
        [[nodiscard]] std::uint32_t deliveries() const noexcept { return deliveries_; }
        /// Whether this handle still holds the reservation.
        [[nodiscard]] bool held() const {
            if (!wq_) return false;
            std::lock_guard lk(wq_->mu_);
            wq_->tick(wq_->clock_.now_ns());
            return wq_->holds(idx_, id_, token_);
        }
        /// Time until its time-to-run ends (0 once it has, or if decided).
        [[nodiscard]] std::chrono::nanoseconds time_left() const {
            if (!wq_) return {};
            std::lock_guard lk(wq_->mu_);
            const std::int64_t now = wq_->clock_.now_ns();
            wq_->tick(now);
            if (!wq_->holds(idx_, id_, token_)) return {};
            return std::chrono::nanoseconds(std::max<std::int64_t>(0, wq_->at(idx_).due - now));
        }
        /// Within deadline_margin of the end of its time-to-run.
        [[nodiscard]] bool deadline_soon() const {
            return held() && time_left() <= wq_->opts_.deadline_margin;
        }
        [[nodiscard]] std::string queue() const {
            if (!wq_) return {};
            std::lock_guard lk(wq_->mu_);
            return wq_->at(idx_).id == id_ ? wq_->queues_[wq_->at(idx_).queue]->name : std::string{};
        }

        /// Deletes the job. \throws broker_error(not_reserved).
        void remove() { decide("remove", [](work_queues& w, std::uint32_t i, std::uint64_t& s) {
            ++w.queues_[w.at(i).queue]->stats.deletes;
            w.unlink_state(i);
            w.free_job(i, s);
        }); }
        /// Puts it back: ready, or delayed by `delay`, with `priority` if
        /// given. \throws broker_error(not_reserved, invalid_argument).
        void release(std::optional<std::uint32_t> priority = std::nullopt,
                     std::chrono::nanoseconds delay = std::chrono::nanoseconds(0)) {
            if (delay.count() < 0) throw broker_error(broker_errc::invalid_argument, "release", "negative delay");
            decide("release", [&](work_queues& w, std::uint32_t i, std::uint64_t& s) {
                w.give_back(i, priority, delay.count(), true, s);
            });
        }
        /// Parks it until kicked, with `priority` if given.
        void bury(std::optional<std::uint32_t> priority = std::nullopt) {
            decide("bury", [&](work_queues& w, std::uint32_t i, std::uint64_t& s) {
                w.unlink_state(i);
                rec& r = w.at(i);
                if (priority) r.priority = *priority;
                w.bury_locked(i);
                w.journal_update(i, s);
            });
        }
        /// Gives the job back undecided, as a time-to-run running out does:
        /// ready again, priority unchanged, not counted as a release
        /// (beanstalkd's closed connection). Does nothing if no longer held.
        void abandon() noexcept { drop(false); }
        /// Restarts its time-to-run from now. \throws broker_error(not_reserved).
        void touch() {
            if (!wq_) throw broker_error(broker_errc::not_reserved, "touch", std::to_string(id_));
            std::lock_guard lk(wq_->mu_);
            const std::int64_t now = wq_->clock_.now_ns();
            wq_->tick(now);
            if (!wq_->holds(idx_, id_, token_))
                throw broker_error(broker_errc::not_reserved, "touch", std::to_string(id_));
            rec& r = wq_->at(idx_);
            r.due = detail::add_sat(now, r.ttr);
            wq_->reserved_.update(idx_);
            wq_->plan_event(r.due);
        }

    private:
        friend class work_queues;
        job(work_queues* w, std::uint32_t i, const rec& r)
            : wq_(w), idx_(i), id_(r.id), token_(r.token), deliveries_(r.reserves), payload_(r.payload) {}

        template <class F>
        void decide(const char* what, F&& f) {
            if (!wq_) throw broker_error(broker_errc::not_reserved, what, std::to_string(id_));
            std::uint64_t synced_to = 0;
            {
                std::lock_guard lk(wq_->mu_);
                wq_->tick(wq_->clock_.now_ns());
                if (!wq_->holds(idx_, id_, token_))
                    throw broker_error(broker_errc::not_reserved, what, std::to_string(id_));
                f(*wq_, idx_, synced_to);
            }
            work_queues* w = std::exchange(wq_, nullptr);
            w->sync_journal(synced_to);
        }
        void drop(bool released) noexcept {
            if (!wq_) return;
            work_queues* w = std::exchange(wq_, nullptr);
            try {
                std::uint64_t synced_to = 0;
                {
                    std::lock_guard lk(w->mu_);
                    w->tick(w->clock_.now_ns());
                    if (w->holds(idx_, id_, token_)) w->give_back(idx_, std::nullopt, 0, released, synced_to);
                }
                w->sync_journal(synced_to);
            } catch (...) {
                // A journal failure leaves the durable log failed; the job is
                // ready in memory and reserved-equals-ready after a restart.
            }
        }

        work_queues* wq_ = nullptr;
        std::uint32_t idx_ = nil;
        job_id id_ = 0;
        std::uint64_t token_ = 0;
        std::uint32_t deliveries_ = 0;
        std::shared_ptr<const T> payload_;
    };

    /// What consumer::reserve_for returns: a job, or why there is none.
    struct reserve_result {
        reserve_status status = reserve_status::timed_out;
        std::optional<job> value;

        explicit operator bool() const noexcept { return value.has_value(); }
        job* operator->() noexcept { return &*value; }
        job& operator*() noexcept { return *value; }
        /// The job, moved out (nullopt if none).
        std::optional<job> take() noexcept { return std::move(value); }
    };

    // =========================================================== consumer

    /// A worker's view: the queues it watches (as a beanstalkd connection's
    /// watch list) and the jobs it reserved, for deadline_soon. Move-only;
    /// one thread at a time. Its jobs' handles are independent of it.
    class consumer {
    public:
        consumer(consumer&& o) noexcept
            : wq_(std::exchange(o.wq_, nullptr)), watch_(std::move(o.watch_)), held_(std::move(o.held_)) {}
        consumer& operator=(consumer&&) = delete;
        consumer(const consumer&) = delete;
        ~consumer() {
            if (!wq_) return;
            std::lock_guard lk(wq_->mu_);
            for (const std::uint32_t q : watch_) --wq_->queues_[q]->watchers;
        }

        /// Adds `queue` to the watch list (created if new).
        void watch(std::string_view queue) {
            detail::check_queue_name(queue, "watch");
            std::lock_guard lk(wq_->mu_);
            const std::uint32_t q = wq_->queue_index(queue);
            if (std::find(watch_.begin(), watch_.end(), q) != watch_.end()) return;
            watch_.push_back(q);
            ++wq_->queues_[q]->watchers;
        }
        /// Removes `queue`; the last one cannot be removed. \returns false then.
        bool ignore(std::string_view queue) {
            std::lock_guard lk(wq_->mu_);
            const std::uint32_t q = wq_->find_queue(queue);
            auto it = std::find(watch_.begin(), watch_.end(), q);
            if (q == nil || it == watch_.end()) return true;
            if (watch_.size() == 1) return false;
            watch_.erase(it);
            --wq_->queues_[q]->watchers;
            return true;
        }
        [[nodiscard]] std::vector<std::string> watching() const {
            std::lock_guard lk(wq_->mu_);
            std::vector<std::string> v;
            for (const std::uint32_t q : watch_) v.push_back(wq_->queues_[q]->name);
            return v;
        }

        /// The best ready job of the watched queues, without waiting.
        [[nodiscard]] std::optional<job> try_reserve() { return poll_reserve().take(); }
        /// Waits at most `timeout` on the clock. Returns deadline_soon rather
        /// than wait while it holds a job close to its time-to-run's end.
        [[nodiscard]] reserve_result reserve_for(std::chrono::nanoseconds timeout) {
            std::int64_t deadline;
            {
                std::lock_guard lk(wq_->mu_);
                deadline = detail::add_sat(wq_->clock_.now_ns(), std::max<std::int64_t>(0, timeout.count()));
            }
            return reserve_until(deadline, true);
        }
        /// Waits until a job comes, deadline_soon, or close().
        [[nodiscard]] reserve_result reserve() { return reserve_until(forever, true); }
        /// Never waits: reserved, deadline_soon (nothing ready while a job
        /// it holds is inside the deadline margin), closed, or timed_out.
        /// An event loop's reserve (see set_listener).
        [[nodiscard]] reserve_result poll_reserve() { return reserve_until(0, false); }
        /// How long until a job it holds enters the deadline margin (zero if
        /// one is inside it), nullopt if it holds none.
        [[nodiscard]] std::optional<std::chrono::nanoseconds> deadline_soon_in() const {
            std::lock_guard lk(wq_->mu_);
            const std::int64_t t = soonest_deadline();
            if (t == forever) return std::nullopt;
            return std::chrono::nanoseconds(std::max<std::int64_t>(0, t - wq_->clock_.now_ns()));
        }

        /// Reserves job `id` if it is ready, delayed or buried (beanstalkd's
        /// reserve-job). \throws broker_error(unknown_job).
        [[nodiscard]] job reserve_job(job_id id) {
            std::optional<job> out;  // outlives the lock: a handle dropped on a throw locks mu_
            {
                std::lock_guard lk(wq_->mu_);
                const std::int64_t now = wq_->clock_.now_ns();
                wq_->tick(now);
                wq_->check_open("reserve_job");
                const std::uint32_t i = wq_->ids_.find(id);
                if (i == nil || wq_->at(i).state == job_state::reserved)
                    throw broker_error(broker_errc::unknown_job, "reserve_job", std::to_string(id));
                wq_->unlink_state(i);
                out.emplace(grant(i, now));
                wq_->journal_reserve(i);  // as reserve_until: ready, reserve counted, after a restart
            }
            return std::move(*out);
        }

    private:
        friend class work_queues;
        struct held_job {
            std::uint32_t idx;
            job_id id;
            std::uint64_t token;
        };

        consumer(work_queues& w, std::span<const std::string_view> queues) : wq_(&w) {
            if (queues.empty()) throw broker_error(broker_errc::invalid_argument, "consumer", "no queue to watch");
            for (const auto q : queues) detail::check_queue_name(q, "consumer");
            std::lock_guard lk(w.mu_);
            for (const auto name : queues) {
                const std::uint32_t q = w.queue_index(name);
                if (std::find(watch_.begin(), watch_.end(), q) != watch_.end()) continue;
                watch_.push_back(q);
                ++w.queues_[q]->watchers;
            }
        }
        job grant(std::uint32_t i, std::int64_t now) {
            wq_->reserve_locked(i, now);
            const rec& r = wq_->at(i);
            std::erase_if(held_, [&](const held_job& h) { return !wq_->holds(h.idx, h.id, h.token); });
            held_.push_back({i, r.id, r.token});
            return job(wq_, i, r);
        }

        // The earliest time one of its jobs enters the deadline margin
        // (forever if none); now or earlier means deadline soon.
        std::int64_t soonest_deadline() const {
            std::int64_t t = forever;
            for (const auto& h : held_)
                if (wq_->holds(h.idx, h.id, h.token))
                    t = std::min(t, wq_->at(h.idx).due - wq_->opts_.deadline_margin.count());
            return t;
        }

        reserve_result reserve_until(std::int64_t deadline, bool may_wait) {
            reserve_result out;
            {
                std::unique_lock lk(wq_->mu_);
                waiter w{this};
                bool queued = false;
                for (;;) {
                    const std::int64_t now = wq_->clock_.now_ns();
                    wq_->tick(now);
                    if (wq_->closed_) {
                        out.status = reserve_status::closed;
                        break;
                    }
                    const std::uint32_t i = wq_->best_ready(watch_, now);
                    if (i != nil) {
                        wq_->unlink_state(i);
                        out.value.emplace(grant(i, now));
                        out.status = reserve_status::reserved;
                        wq_->journal_reserve(i);
                        break;
                    }
                    const std::int64_t soon = soonest_deadline();
                    if (soon <= now) {
                        out.status = reserve_status::deadline_soon;
                        break;
                    }
                    if (!may_wait || now >= deadline) {
                        out.status = reserve_status::timed_out;
                        break;
                    }
                    if (!queued) {
                        wq_->enqueue_waiter(w);
                        queued = true;
                    }
                    w.notified = false;
                    wq_->sleep(lk, w, std::min({deadline, soon, wq_->next_event_}));
                }
                if (queued) {
                    wq_->dequeue_waiter(w);
                    // It may have taken another job than the one it was woken
                    // for: make sure every job still ready has a waker.
                    if (w.notified) wq_->rewake(wq_->clock_.now_ns());
                }
            }
            return out;
        }

        work_queues* wq_;
        std::vector<std::uint32_t> watch_;
        std::vector<held_job> held_;
    };

    /// A consumer of one queue; the same as make_consumer({queue}).
    [[nodiscard]] consumer make_consumer(std::string_view queue) {
        const std::string_view one[1] = {queue};
        return consumer(*this, std::span<const std::string_view>(one));
    }

private:
    // ------------------------------------------------------------ storage

    template <class Less>
    class heap {
    public:
        explicit heap(work_queues* w = nullptr) : w_(w) {}
        [[nodiscard]] bool empty() const noexcept { return v_.empty(); }
        [[nodiscard]] std::size_t size() const noexcept { return v_.size(); }
        [[nodiscard]] std::uint32_t front() const noexcept { return v_.front(); }
        void push(std::uint32_t i) {
            v_.push_back(i);
            up(v_.size() - 1);
        }
        void erase(std::uint32_t i) noexcept {
            const std::size_t p = w_->at(i).pos;
            const std::uint32_t last = v_.back();
            v_.pop_back();
            w_->at(i).pos = nil;
            if (p == v_.size()) return;
            place(p, last);
            update(last);
        }
        void update(std::uint32_t i) noexcept {
            const std::size_t p = w_->at(i).pos;
            if (p > 0 && less(i, v_[(p - 1) / 2])) up(p);
            else down(p);
        }
        void clear() noexcept { v_.clear(); }
        [[nodiscard]] const std::vector<std::uint32_t>& items() const noexcept { return v_; }

    private:
        bool less(std::uint32_t a, std::uint32_t b) const noexcept { return Less{}(w_->at(a), w_->at(b)); }
        void place(std::size_t p, std::uint32_t i) noexcept {
            v_[p] = i;
            w_->at(i).pos = static_cast<std::uint32_t>(p);
        }
        void up(std::size_t p) noexcept {
            const std::uint32_t i = v_[p];
            while (p > 0) {
                const std::size_t parent = (p - 1) / 2;
                if (!less(i, v_[parent])) break;
                place(p, v_[parent]);
                p = parent;
            }
            place(p, i);
        }
        void down(std::size_t p) noexcept {
            const std::uint32_t i = v_[p];
            const std::size_t n = v_.size();
            for (;;) {
                std::size_t c = 2 * p + 1;
                if (c >= n) break;
                if (c + 1 < n && less(v_[c + 1], v_[c])) ++c;
                if (!less(v_[c], i)) break;
                place(p, v_[c]);
                p = c;
            }
            place(p, i);
        }
        work_queues* w_;
        std::vector<std::uint32_t> v_;
    };
    struct by_priority {
        bool operator()(const rec& a, const rec& b) const noexcept {
            return a.priority != b.priority ? a.priority < b.priority : a.id < b.id;
        }
    };
    struct by_due {
        bool operator()(const rec& a, const rec& b) const noexcept {
            return a.due != b.due ? a.due < b.due : a.id < b.id;
        }
    };

    struct queue_rec {
        explicit queue_rec(work_queues* w) : ready(w), delayed(w) {}
        void reset() {
            name.clear();
            opts = {};
            ready.clear();
            delayed.clear();
            buried_head = buried_tail = nil;
            buried = reserved = urgent = watchers = waiting = 0;
            pause_until = pause_len = 0;
            stats = {};
        }
        std::string name;
        queue_options opts;
        heap<by_priority> ready;
        heap<by_due> delayed;
        std::uint32_t buried_head = nil, buried_tail = nil;
        std::size_t buried = 0, reserved = 0, urgent = 0, watchers = 0, waiting = 0;
        std::int64_t pause_until = 0, pause_len = 0;
        queue_stats stats;
    };

    struct waiter {
        consumer* c;
        std::condition_variable cv;
        bool notified = false;
        std::int64_t wake_at = forever;
        waiter* next = nullptr;
        waiter* prev = nullptr;
        explicit waiter(consumer* cc) : c(cc) {}
    };

    struct string_hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
    };

    /// Wakes every waiter when a manual_clock advances.
    struct no_link {
        explicit no_link(work_queues&) noexcept {}
    };
    struct manual_link final : detail::clock_listener {
        explicit manual_link(work_queues& w) : wq(&w) { w.clock_.get().subscribe(*this); }
        ~manual_link() { wq->clock_.get().unsubscribe(*this); }
        manual_link(const manual_link&) = delete;
        manual_link& operator=(const manual_link&) = delete;
        void clock_advanced() noexcept override {
            std::lock_guard lk(wq->mu_);
            for (waiter* w = wq->waiters_; w; w = w->next) w->cv.notify_one();
        }
        work_queues* wq;
    };
    static constexpr bool manual = requires(Clock& c, detail::clock_listener& l) {
        c.subscribe(l);
        c.unsubscribe(l);
    };

    // ----------------------------------------------------------- helpers

    void check_options() const {
        if (opts_.deadline_margin.count() < 0)
            throw broker_error(broker_errc::invalid_argument, "work_queues", "negative deadline_margin");
        if (!opts_.defaults.dead_letter.empty())
            detail::check_queue_name(opts_.defaults.dead_letter, "work_queues");
    }
    static void check_put(const put_options& o) {
        if (o.delay.count() < 0) throw broker_error(broker_errc::invalid_argument, "put", "negative delay");
        if (o.ttr.count() <= 0) throw broker_error(broker_errc::invalid_argument, "put", "ttr must be positive");
    }
    void check_open(const char* what, bool adds = false) const {
        if (closed_) throw broker_error(broker_errc::closed, what);
        if (adds && draining_) throw broker_error(broker_errc::draining, what);
    }

    rec& at(std::uint32_t i) noexcept { return chunks_[i >> chunk_bits][i & (chunk_size - 1)]; }
    const rec& at(std::uint32_t i) const noexcept { return chunks_[i >> chunk_bits][i & (chunk_size - 1)]; }

    bool holds(std::uint32_t i, job_id id, std::uint64_t token) const noexcept {
        if (i == nil || i >= chunks_.size() * chunk_size) return false;
        const rec& r = at(i);
        return r.live && r.id == id && r.token == token && r.state == job_state::reserved;
    }

    std::uint32_t find_queue(std::string_view name) const {
        auto it = by_name_.find(name);
        return it == by_name_.end() ? nil : it->second;
    }
    std::uint32_t queue_index(std::string_view name) {
        if (name == last_name_ && last_queue_ != nil) return last_queue_;
        std::uint32_t q = find_queue(name);
        if (q == nil) {
            if (!free_queues_.empty()) {
                q = free_queues_.back();
                free_queues_.pop_back();
            } else {
                q = static_cast<std::uint32_t>(queues_.size());
                queues_.push_back(std::make_unique<queue_rec>(this));
            }
            queue_rec& qr = *queues_[q];
            qr.name.assign(name);
            qr.opts = opts_.defaults;
            qr.stats.name = qr.name;
            by_name_.emplace(qr.name, q);
        }
        last_name_.assign(name);
        last_queue_ = q;
        return q;
    }

    std::uint32_t alloc_rec() {
        if (free_ == nil) {
            const auto base = static_cast<std::uint32_t>(chunks_.size() * chunk_size);
            chunks_.push_back(std::make_unique<rec[]>(chunk_size));
            for (std::uint32_t k = chunk_size; k-- > 0;) {
                chunks_.back()[k].next = free_;
                free_ = base + k;
            }
        }
        const std::uint32_t i = free_;
        free_ = at(i).next;
        at(i).next = nil;
        return i;
    }

    job_id insert_locked(std::uint32_t q, std::shared_ptr<const T> p, std::size_t bytes, const put_options& o,
                         std::int64_t now, std::uint64_t& synced_to, const std::string* encoded) {
        const std::uint32_t i = alloc_rec();
        rec& r = at(i);
        r.id = next_id_;
        r.payload = std::move(p);
        r.bytes = bytes;
        r.created = now;
        r.ttr = o.ttr.count();
        r.delay = o.delay.count();
        r.queue = q;
        r.priority = o.priority;
        r.reserves = r.timeouts = r.releases = r.buries = r.kicks = r.attempts = 0;
        r.live = true;
        try {
            ids_.insert(r.id, i);
        } catch (...) {
            r.payload.reset();
            r.live = false;
            r.next = free_;
            free_ = i;
            throw;
        }
        if (o.delay.count() > 0) delay_locked(i, detail::add_sat(now, o.delay.count()));
        else make_ready(i);
        if (journal_) {
            try {
                journal_full(i, synced_to, encoded);
            } catch (...) {
                // Not journaled: not accepted. Undo, so memory matches disk.
                unlink_state(i);
                jlist_unlink(i);
                ids_.erase(r.id);
                r.payload.reset();
                r.live = false;
                r.id = 0;
                r.next = free_;
                free_ = i;
                throw;
            }
        }
        ++next_id_;
        ++queues_[q]->stats.total_jobs;
        return r.id;
    }

    void make_ready(std::uint32_t i) {
        rec& r = at(i);
        queue_rec& q = *queues_[r.queue];
        r.state = job_state::ready;
        q.ready.push(i);
        if (r.priority < urgent_priority) ++q.urgent;
        ++ready_total_;
        wake_for(r.queue);
    }
    void delay_locked(std::uint32_t i, std::int64_t due) {
        rec& r = at(i);
        r.state = job_state::delayed;
        r.due = due;
        queues_[r.queue]->delayed.push(i);
        plan_event(due);
    }
    void bury_locked(std::uint32_t i) {
        rec& r = at(i);
        queue_rec& q = *queues_[r.queue];
        r.state = job_state::buried;
        r.buried_seq = ++bury_seq_;
        ++r.buries;
        ++q.stats.buries;
        r.next = nil;
        r.prev = q.buried_tail;
        if (q.buried_tail != nil) at(q.buried_tail).next = i;
        else q.buried_head = i;
        q.buried_tail = i;
        ++q.buried;
    }
    void kick_locked(std::uint32_t i, std::uint64_t& synced_to) {
        unlink_state(i);
        rec& r = at(i);
        ++r.kicks;
        ++queues_[r.queue]->stats.kicks;
        make_ready(i);
        journal_update(i, synced_to);
    }
    void reserve_locked(std::uint32_t i, std::int64_t now) {
        rec& r = at(i);
        queue_rec& q = *queues_[r.queue];
        r.state = job_state::reserved;
        r.due = detail::add_sat(now, r.ttr);
        ++r.token;
        ++r.reserves;
        ++r.attempts;
        ++q.reserved;
        ++q.stats.reserves;
        ++reserved_total_;
        reserved_.push(i);
        plan_event(r.due);
    }

    /// Takes job i out of whatever holds it (heap, list, reserved set).
    void unlink_state(std::uint32_t i) {
        rec& r = at(i);
        queue_rec& q = *queues_[r.queue];
        switch (r.state) {
        case job_state::ready:
            q.ready.erase(i);
            if (r.priority < urgent_priority) --q.urgent;
            --ready_total_;
            break;
        case job_state::delayed: q.delayed.erase(i); break;
        case job_state::reserved:
            reserved_.erase(i);
            --q.reserved;
            --reserved_total_;
            break;
        case job_state::buried:
            if (r.prev != nil) at(r.prev).next = r.next;
            else q.buried_head = r.next;
            if (r.next != nil) at(r.next).prev = r.prev;
            else q.buried_tail = r.prev;
            r.next = r.prev = nil;
            --q.buried;
            break;
        }
        if (ready_total_ == 0 && reserved_total_ == 0) idle_cv_.notify_all();
    }

    void free_job(std::uint32_t i, std::uint64_t& synced_to) {
        rec& r = at(i);
        if (journal_) journal_delete(i, synced_to);
        ids_.erase(r.id);
        r.payload.reset();
        r.live = false;
        r.id = 0;
        ++r.token;
        r.next = free_;
        free_ = i;
    }

    /// A reserved job comes back undecided (release, TTR, dropped handle):
    /// ready or delayed, or dead-lettered after max_deliveries.
    void give_back(std::uint32_t i, std::optional<std::uint32_t> priority, std::int64_t delay, bool released,
                   std::uint64_t& synced_to) {
        unlink_state(i);
        rec& r = at(i);
        queue_rec& q = *queues_[r.queue];
        if (priority) r.priority = *priority;
        if (released) {
            ++r.releases;
            ++q.stats.releases;
        }
        if (q.opts.max_deliveries != 0 && r.attempts >= q.opts.max_deliveries) {
            ++q.stats.dead_lettered;
            r.attempts = 0;
            if (q.opts.dead_letter.empty() || q.opts.dead_letter == q.name) {
                bury_locked(i);
                journal_update(i, synced_to);
            } else {
                const std::string dl = q.opts.dead_letter;  // queue_index may grow queues_
                r.queue = queue_index(dl);
                ++queues_[r.queue]->stats.total_jobs;
                make_ready(i);
                if (journal_) journal_full(i, synced_to);
            }
            return;
        }
        // An update record carries no delay: a new one goes in a full record,
        // else a restart would clamp the remaining delay to the old one.
        const bool new_delay = r.delay != delay;
        r.delay = delay;
        if (delay > 0) delay_locked(i, detail::add_sat(clock_.now_ns(), delay));
        else make_ready(i);
        if (new_delay && journal_) journal_full(i, synced_to);
        else journal_update(i, synced_to);
    }

    std::uint32_t best_ready(const std::vector<std::uint32_t>& watch, std::int64_t now) const {
        std::uint32_t best = nil;
        for (const std::uint32_t q : watch) {
            const queue_rec& qr = *queues_[q];
            if (qr.ready.empty() || qr.pause_until > now) continue;
            const std::uint32_t c = qr.ready.front();
            if (best == nil || by_priority{}(at(c), at(best))) best = c;
        }
        return best;
    }

    // --------------------------------------------------------------- time

    void plan_event(std::int64_t t) {
        if (t >= next_event_) return;
        next_event_ = t;
        if (listener_) listener_();
        // Sleepers planned their wake-up before this event existed.
        if constexpr (!manual) {
            for (waiter* w = waiters_; w; w = w->next)
                if (w->wake_at > t) w->cv.notify_one();
            idle_cv_.notify_all();
        }
    }

    /// Moves due delayed jobs to ready, ends pauses and expired
    /// reservations. Cheap unless an event is due.
    void tick(std::int64_t now) {
        if (now < next_event_) return;
        std::int64_t next = forever;
        std::uint64_t synced_to = 0;  // TTR records are not synced on their own
        for (std::uint32_t qi = 0; qi < queues_.size(); ++qi) {
            queue_rec& q = *queues_[qi];
            while (!q.delayed.empty() && at(q.delayed.front()).due <= now) {
                const std::uint32_t i = q.delayed.front();
                q.delayed.erase(i);
                make_ready(i);
                if (journal_) journal_update(i, synced_to);
            }
            if (!q.delayed.empty()) next = std::min(next, at(q.delayed.front()).due);
            if (q.pause_until != 0) {
                if (q.pause_until <= now) {
                    q.pause_until = 0;
                    wake_for(qi);
                } else {
                    next = std::min(next, q.pause_until);
                }
            }
        }
        while (!reserved_.empty() && at(reserved_.front()).due <= now) {
            const std::uint32_t i = reserved_.front();
            rec& r = at(i);
            ++r.timeouts;
            ++queues_[r.queue]->stats.timeouts;
            give_back(i, std::nullopt, 0, false, synced_to);
        }
        if (!reserved_.empty()) next = std::min(next, at(reserved_.front()).due);
        next_event_ = next;
    }

    // ------------------------------------------------------------ waiting

    void enqueue_waiter(waiter& w) {
        w.prev = waiters_tail_;
        w.next = nullptr;
        if (waiters_tail_) waiters_tail_->next = &w;
        else waiters_ = &w;
        waiters_tail_ = &w;
        for (const std::uint32_t q : w.c->watch_) ++queues_[q]->waiting;
    }
    void dequeue_waiter(waiter& w) {
        if (w.prev) w.prev->next = w.next;
        else waiters_ = w.next;
        if (w.next) w.next->prev = w.prev;
        else waiters_tail_ = w.prev;
        w.next = w.prev = nullptr;
        for (const std::uint32_t q : w.c->watch_) --queues_[q]->waiting;
    }
    /// A job became ready in queue q: wake the longest-waiting reserve that
    /// watches q and was not woken already.
    void wake_for(std::uint32_t q) {
        if (listener_) listener_();
        if (!waiters_) return;
        for (waiter* w = waiters_; w; w = w->next) {
            if (w->notified) continue;
            if (std::find(w->c->watch_.begin(), w->c->watch_.end(), q) == w->c->watch_.end()) continue;
            w->notified = true;
            w->cv.notify_one();
            return;
        }
    }
    void rewake(std::int64_t now) {
        for (waiter* w = waiters_; w; w = w->next)
            if (!w->notified && best_ready(w->c->watch_, now) != nil) {
                w->notified = true;
                w->cv.notify_one();
            }
    }
    void sleep(std::unique_lock<std::mutex>& lk, waiter& w, std::int64_t until) {
        if constexpr (manual) {
            w.wake_at = until;
            w.cv.wait(lk);
        } else {
            w.wake_at = until;
            if (until == forever) {
                w.cv.wait(lk);
            } else {
                const std::int64_t left = until - clock_.now_ns();
                if (left > 0) w.cv.wait_for(lk, std::chrono::nanoseconds(left));
            }
        }
    }

    // -------------------------------------------------------------- views

    template <class Pick>
    std::optional<job_info<T>> peek_where(std::string_view queue, Pick pick) const {
        detail::check_queue_name(queue, "peek");
        std::lock_guard lk(mu_);
        const_cast<work_queues*>(this)->tick(clock_.now_ns());
        const std::uint32_t q = find_queue(queue);
        if (q == nil) return std::nullopt;
        const std::uint32_t i = pick(*queues_[q]);
        if (i == nil) return std::nullopt;
        return info(i);
    }
    job_info<T> info(std::uint32_t i) const {
        const rec& r = at(i);
        const std::int64_t now = clock_.now_ns();
        job_info<T> j;
        j.id = r.id;
        j.queue = queues_[r.queue]->name;
        j.state = r.state;
        j.priority = r.priority;
        j.age = std::chrono::nanoseconds(now - r.created);
        j.delay = std::chrono::nanoseconds(r.delay);
        j.ttr = std::chrono::nanoseconds(r.ttr);
        if (r.state == job_state::delayed || r.state == job_state::reserved)
            j.time_left = std::chrono::nanoseconds(std::max<std::int64_t>(0, r.due - now));
        j.reserves = r.reserves, j.timeouts = r.timeouts, j.releases = r.releases;
        j.buries = r.buries, j.kicks = r.kicks;
        j.payload = r.payload;
        return j;
    }
    queue_stats stats_of(std::uint32_t q) const {
        const queue_rec& qr = *queues_[q];
        queue_stats s = qr.stats;
        s.urgent = qr.urgent;
        s.ready = qr.ready.size();
        s.reserved = qr.reserved;
        s.delayed = qr.delayed.size();
        s.buried = qr.buried;
        s.waiting = qr.waiting;
        s.watchers = qr.watchers;
        if (qr.pause_until != 0) {
            s.pause = std::chrono::nanoseconds(qr.pause_len);
            s.pause_left = std::chrono::nanoseconds(std::max<std::int64_t>(0, qr.pause_until - clock_.now_ns()));
        }
        return s;
    }

    // ------------------------------------------------------------ journal
    //
    // Records (little-endian), one per change, appended under mu_ so the
    // journal's order is the order of the changes:
    //   1 full    id u64, state u8, priority u32, due_wall i64, ttr i64,
    //             delay i64, created_wall i64, 5 x u32 counters, name_len u16,
    //             queue name, payload (codec<T>)
    //   2 update  id u64, state u8, priority u32, due_wall i64, 5 x u32 counters
    //   3 delete  id u64
    //   4 next-id u64 (written before old segments are dropped)
    // A reserved job is journaled as ready (its reserve count goes up).

    enum : std::uint8_t { rec_full = 1, rec_update = 2, rec_delete = 3, rec_next_id = 4 };

    void open_journal(std::filesystem::path dir, durable_options log) {
        if constexpr (has_codec<T>) {
            user_sync_ = log.sync;
            if (log.sync.kind == sync_policy::mode::always || log.sync.kind == sync_policy::mode::every)
                log.sync = sync::none;  // synced here, after mu_ is released
            if (log.segment_size == durable_options{}.segment_size) log.segment_size = std::uint64_t{16} << 20;
            wall_ = log.wall_clock;
            journal_.emplace(std::move(dir), std::move(log));
            recover();
        }
    }

    std::int64_t wall_ns() const {
        const auto t = wall_ ? wall_() : std::chrono::system_clock::now();
        return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
    }

    template <class V>
    static void put_le(std::string& b, V v) {
        char tmp[sizeof(V)];
        std::memcpy(tmp, &v, sizeof(V));  // x86-64 and aarch64 Linux: little-endian
        b.append(tmp, sizeof(V));
    }
    template <class V>
    static V get_le(std::span<const std::byte>& in) {
        if (in.size() < sizeof(V))
            throw durable_error("read a work-queue journal record", {}, durable_errc::bad_format);
        V v;
        std::memcpy(&v, in.data(), sizeof(V));
        in = in.subspan(sizeof(V));
        return v;
    }

    void put_state(std::string& b, const rec& r) const {
        const job_state s = r.state == job_state::reserved ? job_state::ready : r.state;
        put_le<std::uint8_t>(b, static_cast<std::uint8_t>(s));
        put_le<std::uint32_t>(b, r.priority);
        // Delayed: when it is due, in wall-clock time; buried: its place in
        // the burial order.
        std::int64_t when = 0;
        if (s == job_state::delayed) when = wall_ns() + (r.due - clock_.now_ns());
        else if (s == job_state::buried) when = static_cast<std::int64_t>(r.buried_seq);
        put_le<std::int64_t>(b, when);
    }
    static void put_counters(std::string& b, const rec& r) {
        for (const std::uint32_t c : {r.reserves, r.timeouts, r.releases, r.buries, r.kicks, r.attempts})
            put_le(b, c);
    }

    std::uint64_t append_journal(std::uint64_t& synced_to) {
        const std::uint64_t off = journal_->append(std::string_view(jbuf_));
        ++unsynced_;
        if (!compacting_ && compact_credit_ < compact_credit_cap) ++compact_credit_;
        if (user_sync_.kind == sync_policy::mode::always ||
            (user_sync_.kind == sync_policy::mode::every && unsynced_ >= user_sync_.records)) {
            synced_to = off + 1;
            unsynced_ = 0;
        }
        return off;
    }

    void journal_full(std::uint32_t i, std::uint64_t& synced_to, const std::string* encoded = nullptr) {
        if constexpr (has_codec<T>) {
            rec& r = at(i);
            jbuf_.clear();
            put_le<std::uint8_t>(jbuf_, rec_full);
            put_le<std::uint64_t>(jbuf_, r.id);
            put_state(jbuf_, r);
            put_le<std::int64_t>(jbuf_, r.ttr);
            put_le<std::int64_t>(jbuf_, r.delay);
            put_le<std::int64_t>(jbuf_, wall_ns() - (clock_.now_ns() - r.created));
            put_counters(jbuf_, r);
            const std::string& name = queues_[r.queue]->name;
            put_le<std::uint16_t>(jbuf_, static_cast<std::uint16_t>(name.size()));
            jbuf_.append(name);
            if (encoded) jbuf_.append(*encoded);
            else codec<T>::encode(*r.payload, jbuf_);
            r.journal_at = append_journal(synced_to);
            // Journal order: it is now the newest full record.
            if (r.jprev != nil || jhead_ == i) jlist_unlink(i);
            r.jprev = jtail_;
            r.jnext = nil;
            if (jtail_ != nil) at(jtail_).jnext = i;
            else jhead_ = i;
            jtail_ = i;
            compact(synced_to);
        }
    }
    void journal_update(std::uint32_t i, std::uint64_t& synced_to) {
        if (!journal_) return;
        const rec& r = at(i);
        jbuf_.clear();
        put_le<std::uint8_t>(jbuf_, rec_update);
        put_le<std::uint64_t>(jbuf_, r.id);
        put_state(jbuf_, r);
        put_counters(jbuf_, r);
        (void)append_journal(synced_to);
        compact(synced_to);
    }
    // Reserve counts are journaled but not synced on their own: the next
    // synced record carries them.
    void journal_reserve(std::uint32_t i) {
        std::uint64_t ignored = 0;
        if (journal_) journal_update(i, ignored);
    }
    void journal_delete(std::uint32_t i, std::uint64_t& synced_to) {
        jbuf_.clear();
        put_le<std::uint8_t>(jbuf_, rec_delete);
        put_le<std::uint64_t>(jbuf_, at(i).id);
        jlist_unlink(i);
        (void)append_journal(synced_to);
        compact(synced_to);
    }
    void jlist_unlink(std::uint32_t i) {
        rec& r = at(i);
        if (r.jprev != nil) at(r.jprev).jnext = r.jnext;
        else if (jhead_ == i) jhead_ = r.jnext;
        if (r.jnext != nil) at(r.jnext).jprev = r.jprev;
        else if (jtail_ == i) jtail_ = r.jprev;
        r.jnext = r.jprev = nil;
    }

    /// Keeps the journal within about twice the live jobs plus a segment's
    /// worth: rewrites the jobs whose full record is oldest, then drops
    /// the segments that hold nothing live.
    void compact(std::uint64_t& synced_to) {
        if (compacting_ || !journal_) return;
        const std::uint64_t begin = journal_->begin_offset(), end = journal_->end_offset();
        if (end - begin < 2 * ids_.size() + compact_slack) return;
        // Rewrite a few of the jobs whose full record lies in the older half,
        // paid for by credit: one rewrite per four other records at most, so
        // compaction adds at most a quarter to the journal's writes, and the
        // journal settles at a few times the live jobs' records.
        const std::uint64_t older = begin + (end - begin) / 2;
        compacting_ = true;
        while (compact_credit_ >= 4 && jhead_ != nil && at(jhead_).journal_at < older) {
            compact_credit_ -= 4;
            try {
                journal_full(jhead_, synced_to);  // moves it to the tail
            } catch (...) {
                compacting_ = false;
                throw;
            }
        }
        const std::uint64_t keep = jhead_ == nil ? journal_->end_offset() : at(jhead_).journal_at;
        const std::vector<std::uint64_t> bases = keep > begin ? journal_->segment_bases() : std::vector<std::uint64_t>{};
        if (bases.size() >= 2 && bases[1] <= keep) {  // the oldest segment holds nothing live
            try {
                jbuf_.clear();
                put_le<std::uint8_t>(jbuf_, rec_next_id);
                put_le<std::uint64_t>(jbuf_, next_id_);
                (void)append_journal(synced_to);
                // The rewritten records reach the disk before the segments
                // that held the old ones go (once per dropped segment).
                if (user_sync_.kind != sync_policy::mode::none) {
                    journal_->sync();
                    unsynced_ = 0;
                }
                journal_->remove_before(keep);
            } catch (...) {
                compacting_ = false;
                throw;
            }
        }
        compacting_ = false;
    }

    void recover() {
        if constexpr (has_codec<T>) {
            struct state {
                std::uint64_t at;        // its latest full record
                job_state s;
                std::uint32_t pri;
                std::int64_t due_wall, ttr, delay, created_wall;
                std::uint32_t c[6];
                std::string queue;
                std::shared_ptr<const T> payload;
                std::size_t bytes;
            };
            std::unordered_map<job_id, state> live;
            job_id max_id = 0;
            auto r = journal_->reader(journal_->begin_offset());
            while (auto v = r.next()) {
                std::span<const std::byte> in(v->payload);
                const auto type = get_le<std::uint8_t>(in);
                const auto id = get_le<std::uint64_t>(in);
                if (type == rec_next_id) {
                    max_id = std::max(max_id, id - 1);
                    continue;
                }
                max_id = std::max(max_id, id);
                if (type == rec_delete) {
                    live.erase(id);
                    continue;
                }
                if (type != rec_full && type != rec_update)
                    throw durable_error("read a work-queue journal record", journal_->directory(),
                                        durable_errc::bad_format);
                state* st;
                if (type == rec_full) {
                    st = &live[id];
                    st->at = v->offset;
                } else {
                    auto it = live.find(id);
                    if (it == live.end()) continue;  // superseded by a later full record
                    st = &it->second;
                }
                st->s = static_cast<job_state>(get_le<std::uint8_t>(in));
                st->pri = get_le<std::uint32_t>(in);
                st->due_wall = get_le<std::int64_t>(in);
                if (type == rec_full) {
                    st->ttr = get_le<std::int64_t>(in);
                    st->delay = get_le<std::int64_t>(in);
                    st->created_wall = get_le<std::int64_t>(in);
                }
                for (auto& c : st->c) c = get_le<std::uint32_t>(in);
                if (type == rec_full) {
                    const auto n = get_le<std::uint16_t>(in);
                    if (in.size() < n)
                        throw durable_error("read a work-queue journal record", journal_->directory(),
                                            durable_errc::bad_format);
                    st->queue.assign(reinterpret_cast<const char*>(in.data()), n);
                    in = in.subspan(n);
                    st->bytes = in.size();
                    st->payload = std::make_shared<const T>(codec<T>::decode(in));
                }
            }
            next_id_ = max_id + 1;
            std::vector<std::pair<std::uint64_t, job_id>> order;
            for (const auto& [id, st] : live) order.emplace_back(st.at, id);
            std::sort(order.begin(), order.end());
            const std::int64_t now = clock_.now_ns(), wall = wall_ns();
            std::vector<std::pair<std::uint64_t, std::uint32_t>> buried;  // burial order, not put order
            for (const auto& [off, id] : order) {
                state& st = live[id];
                const std::uint32_t q = queue_index(st.queue);
                const std::uint32_t i = alloc_rec();
                rec& j = at(i);
                j.id = id;
                j.payload = std::move(st.payload);
                j.bytes = st.bytes;
                j.created = now - std::max<std::int64_t>(0, wall - st.created_wall);
                j.ttr = st.ttr;
                j.delay = st.delay;
                j.queue = q;
                j.priority = st.pri;
                j.reserves = st.c[0], j.timeouts = st.c[1], j.releases = st.c[2];
                j.buries = st.c[3], j.kicks = st.c[4];
                j.attempts = st.c[5];
                j.live = true;
                j.journal_at = off;
                ids_.insert(id, i);
                ++queues_[q]->stats.total_jobs;
                if (st.s == job_state::buried) {
                    j.state = job_state::buried;
                    buried.emplace_back(static_cast<std::uint64_t>(st.due_wall), i);
                } else if (st.s == job_state::delayed) {
                    const std::int64_t left = std::clamp<std::int64_t>(st.due_wall - wall, 0, st.delay);
                    if (left > 0) delay_locked(i, now + left);
                    else make_ready(i);
                } else {
                    make_ready(i);
                }
                j.jprev = jtail_;
                j.jnext = nil;
                if (jtail_ != nil) at(jtail_).jnext = i;
                else jhead_ = i;
                jtail_ = i;
            }
            std::sort(buried.begin(), buried.end());
            for (const auto& [seq, i] : buried) {
                bury_seq_ = std::max(bury_seq_, seq);
            }
            for (const auto& [ignored, i] : buried) {
                const std::uint32_t attempts = at(i).attempts;
                bury_locked(i);  // new sequence numbers, in the old order
                at(i).attempts = attempts;
                --at(i).buries;  // bury_locked counts a new bury; this one is not
                --queues_[at(i).queue]->stats.buries;
            }
        }
    }

    void sync_journal(std::uint64_t synced_to) {
        if (synced_to != 0) journal_->sync_through(synced_to - 1);
    }

    // --------------------------------------------------------------- data

    static constexpr std::uint32_t chunk_bits = 10;
    static constexpr std::uint32_t chunk_size = 1u << chunk_bits;
    static constexpr std::uint64_t compact_slack = 4096;

    work_queue_options opts_;
    detail::clock_ref<Clock> clock_;
    mutable std::mutex mu_;
    std::vector<std::unique_ptr<rec[]>> chunks_;
    std::uint32_t free_ = nil;
    detail::wq::id_table ids_;
    job_id next_id_ = 1;
    std::vector<std::unique_ptr<queue_rec>> queues_;
    std::vector<std::uint32_t> free_queues_;
    std::unordered_map<std::string, std::uint32_t, string_hash, std::equal_to<>> by_name_;
    std::string last_name_;
    std::uint32_t last_queue_ = nil;
    heap<by_due> reserved_{this};
    std::size_t ready_total_ = 0, reserved_total_ = 0;
    std::int64_t next_event_ = forever;
    waiter* waiters_ = nullptr;
    waiter* waiters_tail_ = nullptr;
    detail::clock_cv<Clock> idle_cv_{clock_, mu_};
    bool closed_ = false, draining_ = false;
    std::function<void()> listener_;
    queue_stats dropped_;  // the counters of dropped queues, for stats()

    std::optional<durable_log> journal_;
    sync_policy user_sync_{};
    std::uint64_t unsynced_ = 0;
    std::function<std::chrono::system_clock::time_point()> wall_;
    std::string jbuf_;
    std::uint32_t jhead_ = nil, jtail_ = nil;
    bool compacting_ = false;
    std::uint64_t bury_seq_ = 0;
    std::uint32_t compact_credit_ = 0;
    static constexpr std::uint32_t compact_credit_cap = 4096;

    [[no_unique_address]] std::conditional_t<manual, manual_link, no_link> link_;
};

}  // namespace conq

// conq/broker/broker.hpp
//
// conq::broker: a message broker inside your process, with three semantics
// over one payload type T and one clock:
//
//   work queues (beanstalkd, SQS)   put / reserve / remove, release, bury, kick,
//                                   priorities, delays, time-to-run, dead letters
//   pub/sub (RabbitMQ topics,       publish on dotted subjects, subscribe with
//            ZeroMQ PUB/SUB)        `*` and `#` patterns, per-subscriber bounded
//                                   queues, request/reply
//   logs (Kafka)                    streams of partitions, keyed appends,
//                                   consumer groups, offsets, replay, retention
//
//   conq::broker<std::string> b;                              // in memory
//   b.put("emails", "to: ada@example.com", {.priority = 10});
//   auto w = b.make_consumer({"emails"});
//   if (auto j = w.reserve_for(std::chrono::seconds(1))) j->remove();
//
//   auto sub = b.subscribe("orders.*.created");
//   b.publish("orders.eu.created", "#1042");
//   auto m = sub.next();                                      // m->payload() == "#1042"
//
//   auto& s = b.create_stream("clicks", {.partitions = 4});
//   s.append("user-7", "page /pricing");
//   auto c = s.join("analytics");                             // a consumer group member
//
//   conq::broker<std::string> d("/var/lib/app/broker");       // durable: jobs and streams
//
// In memory by default: payloads are moved in, never serialised, and a
// message fanned out to many subscribers is one shared immutable copy.
// Given a directory, work queues and streams are durable (built on
// conq::durable_log; T needs a conq::codec, provided for std::string, byte
// vectors and trivially copyable types); pub/sub stays in memory, as
// RabbitMQ's transient messages and ZeroMQ.
//
// Errors: a rejected call throws conq::broker_error (code() is a
// conq::broker_errc) and changes nothing; file failures are
// conq::durable_error. See conq/broker/common.hpp.
//
// Each part is usable alone (conq::work_queues, conq::topics,
// conq::streams); the broker owns one of each, shares the clock, and adds
// drain()/await_idle() across them (work(), pubsub() and logs() reach
// each part's whole interface). Every call may be made from any thread.
#pragma once

#include <conq/broker/common.hpp>
#include <conq/broker/stream.hpp>
#include <conq/broker/topic.hpp>
#include <conq/broker/work_queue.hpp>
#include <conq/durable/options.hpp>
#include <conq/policy.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <span>
#include <string_view>
#include <thread>
#include <utility>

namespace conq {

struct broker_options {
    work_queue_options work{};   ///< limits, deadline margin, default dead-letter rules
    topic_options topics{};      ///< pub/sub limits
    /// Durable mode only: the journal of the work queues and the logs of the
    /// streams (sync policy, segment size, wall clock...).
    durable_options durable{};
};

/// What the broker holds, as plain numbers.
struct broker_stats {
    work_stats work;
    topic_stats pubsub;
    std::size_t streams = 0;
};

/// The facade; see the top of this header. Neither copyable nor movable.
/// Handles (jobs, consumers, subscriptions, stream consumers and records)
/// must not outlive it.
template <class T, class Clock = steady_clock>
class broker {
public:
    using clock_type = Clock;
    using work_queues_type = conq::work_queues<T, Clock>;
    using topics_type = conq::topics<T, Clock>;
    using streams_type = conq::streams<T, Clock>;
    using job = typename work_queues_type::job;
    using consumer = typename work_queues_type::consumer;
    using subscription = typename topics_type::subscription;
    using stream = typename streams_type::stream;

    /// In memory, on a clock of its own.
    explicit broker(broker_options o = {}) requires std::is_default_constructible_v<Clock>
        : clock_(), work_(clock_.get(), o.work), topics_(o.topics, clock_.get()), streams_(clock_.get()) {}
    /// In memory, on `clock` (which must outlive the broker).
    explicit broker(Clock& clock, broker_options o = {})
        : clock_(clock), work_(clock, o.work), topics_(o.topics, clock), streams_(clock) {}
    /// Durable in `dir`: dir/jobs holds the work queues' journal and
    /// dir/streams the streams. Throws durable_error.
    explicit broker(const std::filesystem::path& dir, broker_options o = {})
        requires(std::is_default_constructible_v<Clock> && has_codec<T>)
        : clock_(), work_(dir / "jobs", o.durable, clock_.get(), o.work), topics_(o.topics, clock_.get()),
          streams_(dir / "streams", o.durable, clock_.get()) {}
    broker(const std::filesystem::path& dir, Clock& clock, broker_options o = {}) requires has_codec<T>
        : clock_(clock), work_(dir / "jobs", o.durable, clock, o.work), topics_(o.topics, clock),
          streams_(dir / "streams", o.durable, clock) {}

    broker(const broker&) = delete;
    broker& operator=(const broker&) = delete;
    ~broker() { close(); }

    // -------------------------------------------------------- work queues

    /// Adds a job to `queue`; see work_queues::put. Throws
    /// broker_error(draining) after drain().
    job_id put(std::string_view queue, T payload, const put_options& o = {}) {
        return work_.put(queue, std::move(payload), o);
    }
    /// A worker watching `queues`; reserve with reserve_for / try_reserve.
    [[nodiscard]] consumer make_consumer(std::initializer_list<std::string_view> queues) {
        return work_.make_consumer(queues);
    }
    [[nodiscard]] std::optional<job> try_reserve(std::initializer_list<std::string_view> queues) {
        return work_.try_reserve(queues);
    }
    /// Waits at most `timeout` (on the broker's clock) for a job of `queues`.
    [[nodiscard]] std::optional<job> reserve_for(std::initializer_list<std::string_view> queues,
                                                 std::chrono::nanoseconds timeout) {
        return work_.reserve_for(queues, timeout);
    }
    void remove(job_id id) { work_.remove(id); }
    void kick_job(job_id id) { work_.kick_job(id); }
    std::size_t kick(std::string_view queue, std::size_t n) { return work_.kick(queue, n); }
    void pause(std::string_view queue, std::chrono::nanoseconds d) { work_.pause(queue, d); }
    std::size_t purge(std::string_view queue) { return work_.purge(queue); }
    void configure(std::string_view queue, queue_options o) { work_.configure(queue, std::move(o)); }
    [[nodiscard]] job_info<T> peek(job_id id) const { return work_.peek(id); }
    [[nodiscard]] std::optional<job_info<T>> peek_ready(std::string_view q) const { return work_.peek_ready(q); }
    [[nodiscard]] std::optional<job_info<T>> peek_delayed(std::string_view q) const { return work_.peek_delayed(q); }
    [[nodiscard]] std::optional<job_info<T>> peek_buried(std::string_view q) const { return work_.peek_buried(q); }
    [[nodiscard]] std::optional<queue_stats> queue_stats_of(std::string_view q) const { return work_.stats(q); }
    /// Everything else about work queues.
    [[nodiscard]] work_queues_type& work() noexcept { return work_; }

    // ------------------------------------------------------------ pub/sub

    /// Delivers to every matching subscription. \returns how many queued it.
    /// Throws broker_error(draining) after drain().
    std::size_t publish(std::string_view subject, T payload) {
        if (draining_.load(std::memory_order_acquire)) throw broker_error(broker_errc::draining, "publish", subject);
        return topics_.publish(subject, std::move(payload));
    }
    /// A subscription to `pattern` (`*` one word, `#` zero or more).
    [[nodiscard]] subscription subscribe(std::string_view pattern, subscription_options o = {}) {
        return topics_.subscribe(pattern, o);
    }
    /// Publishes with a reply subject and waits at most `timeout` for the
    /// first reply.
    [[nodiscard]] std::optional<message<T>> request(std::string_view subject, T payload,
                                                    typename Clock::duration timeout) {
        if (draining_.load(std::memory_order_acquire)) throw broker_error(broker_errc::draining, "request", subject);
        return topics_.request(subject, std::move(payload), timeout);
    }
    std::size_t reply(const message<T>& to, T payload) { return topics_.reply(to, std::move(payload)); }
    [[nodiscard]] topics_type& pubsub() noexcept { return topics_; }

    // ------------------------------------------------------------ streams

    /// Creates (or finds, with equal options) the stream `name`.
    stream& create_stream(std::string_view name, stream_options o = {}) {
        if (draining_.load(std::memory_order_acquire))
            throw broker_error(broker_errc::draining, "create_stream", name);
        return streams_.create(name, o);
    }
    /// The stream `name`. \throws broker_error(unknown_stream).
    [[nodiscard]] stream& get_stream(std::string_view name) { return streams_.get(name); }
    [[nodiscard]] streams_type& logs() noexcept { return streams_; }

    // ---------------------------------------------------------- lifecycle

    /// Stops accepting new work: put, publish, request and create_stream
    /// throw broker_error(draining); consumers go on taking what is there
    /// (beanstalkd's drain mode). Stream appends are still accepted: stop
    /// your appenders first.
    void drain() {
        draining_.store(true, std::memory_order_release);
        work_.drain();
    }
    /// Waits at most `timeout` (on the broker's clock) until everything
    /// published has been delivered: no job ready or reserved, every
    /// subscription queue empty, every consumer group committed to the end
    /// of its partitions. Streams are checked every millisecond of real time.
    /// \returns whether it got there.
    bool await_idle(typename Clock::duration timeout) {
        const auto deadline = clock_.get().now() + timeout;
        for (;;) {
            const auto now = clock_.get().now();
            const auto left = now < deadline ? deadline - now : Clock::duration::zero();
            if (!work_.await_idle(std::chrono::duration_cast<std::chrono::nanoseconds>(left))) return false;
            if (!topics_.await_idle(left)) return false;
            if (streams_.idle() && work_.idle() && topics_.idle()) return true;
            if (clock_.get().now() >= deadline || closed()) return false;
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    }
    /// Closes the three parts: waiting reserves, polls and next() calls
    /// return, and every new call throws broker_error(closed).
    void close() {
        closed_.store(true, std::memory_order_release);
        work_.close();
        topics_.close();
        streams_.close();
    }
    [[nodiscard]] bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }

    [[nodiscard]] broker_stats stats() const {
        broker_stats s;
        s.work = work_.stats();
        s.pubsub = topics_.stats();
        s.streams = streams_.names().size();
        return s;
    }
    [[nodiscard]] Clock& clock() const noexcept { return clock_.get(); }

private:
    detail::clock_ref<Clock> clock_;
    work_queues_type work_;
    topics_type topics_;
    streams_type streams_;
    std::atomic<bool> draining_{false};
    std::atomic<bool> closed_{false};
};

}  // namespace conq

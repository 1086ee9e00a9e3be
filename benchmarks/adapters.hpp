// benchmarks/adapters.hpp
//
// One small adapter per queue under test, so that a single harness drives
// conqueue and its peers the same way. Every adapter owns one queue of
// std::uint64_t with room for 65536 items (Boost's node-based queue: 65534,
// its maximum) and offers:
//
//   name, api          what the reports call it and which calls it makes
//   multi              whether several producers and consumers may share it
//   blocking           whether an idle thread sleeps in the kernel
//   round_trip         whether it takes part in the ping-pong scenario
//   rate               expected speed class; scales the item count so a slow
//                      queue does not take minutes (items/s stay comparable)
//   producer(adapter&) a per-thread handle with push(v), which waits until
//                      the item is in (spinning adapters retry a non-blocking
//                      call with a pause; blocking ones call the blocking API)
//   consumer(adapter&) a per-thread handle with pop(), which waits for an item,
//                      and, where the queue can tell, fill(): how many items
//                      it holds now (a snapshot; sampled now and then)
//
// Batch adapters add producer::push_range(first, last) and
// consumer::pop_into(count, checksum&).
//
// Peers are compiled only when CMake found them (CONQ_BENCH_HAVE_BOOST,
// CONQ_BENCH_HAVE_TBB, CONQ_BENCH_HAVE_CONCURRENTQUEUE,
// CONQ_BENCH_HAVE_READERWRITERQUEUE), or, for atomic_queue and rigtorp's
// queues, which Debian does not package, when the user named a checkout
// (CONQ_BENCH_HAVE_ATOMIC_QUEUE, CONQ_BENCH_HAVE_RIGTORP; see
// benchmarks/CMakeLists.txt).
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "conq/queue.hpp"

#if defined(CONQ_BENCH_HAVE_BOOST)
#include <boost/lockfree/queue.hpp>
#include <boost/lockfree/spsc_queue.hpp>
#include <boost/version.hpp>
#endif
#if defined(CONQ_BENCH_HAVE_TBB)
#include <tbb/concurrent_queue.h>
#include <tbb/version.h>
#endif
#if defined(CONQ_BENCH_HAVE_CONCURRENTQUEUE)
#include <concurrentqueue/blockingconcurrentqueue.h>
#include <concurrentqueue/concurrentqueue.h>
#endif
#if defined(CONQ_BENCH_HAVE_READERWRITERQUEUE)
#include <readerwriterqueue/readerwritercircularbuffer.h>
#include <readerwriterqueue/readerwriterqueue.h>
#endif
#if defined(CONQ_BENCH_HAVE_ATOMIC_QUEUE)
#include <atomic_queue/atomic_queue.h>
#endif
#if defined(CONQ_BENCH_HAVE_RIGTORP)
#include <rigtorp/MPMCQueue.h>
#include <rigtorp/SPSCQueue.h>
#endif

namespace conq_bench {

using item_t = std::uint64_t;

/// The capacity every queue gets (Boost's node-based queue takes at most 65535).
inline constexpr std::size_t ring_capacity = 65536;

/// Speed class: the harness runs fast queues on the full item count, medium
/// ones on a quarter and slow ones on a tenth.
enum class speed { fast, medium, slow };

/// The pause every spinning retry loop uses between attempts.
inline void cpu_pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#endif
}

template <class F>
inline void spin_until(F&& attempt) {
    while (!attempt()) cpu_pause();
}

/// What consumers accumulate: the sum and the sum of squares (mod 2^64) of
/// the values they popped. Both must match 1..N for "every item exactly once".
struct checksum {
    item_t sum = 0;
    item_t squares = 0;
    void add(item_t v) noexcept {
        sum += v;
        squares += v * v;
    }
    checksum& operator+=(const checksum& o) noexcept {
        sum += o.sum;
        squares += o.squares;
        return *this;
    }
    friend bool operator==(const checksum&, const checksum&) = default;
};

// ------------------------------------------------------------------- conq

/// A conq queue driven through its non-blocking calls in a retry loop.
template <class Queue, bool Multi>
struct conq_spinning {
    static constexpr bool multi = Multi;
    static constexpr bool blocking = false;
    static constexpr bool round_trip = true;

    std::unique_ptr<Queue> q = std::make_unique<Queue>();  // ~1 MiB of inline storage

    struct producer {
        Queue& q;
        explicit producer(conq_spinning& a) : q(*a.q) {}
        void push(item_t v) {
            spin_until([&] { return q.try_push(v); });
        }
    };
    struct consumer {
        Queue& q;
        explicit consumer(conq_spinning& a) : q(*a.q) {}
        item_t pop() {
            item_t v = 0;
            spin_until([&] { return q.try_pop(v); });
            return v;
        }
        std::size_t fill() const { return q.size_approx(); }
    };
};

/// A conq queue driven through push() and pop(), which wait per its policy.
template <class Queue, bool Multi, bool Blocking>
struct conq_waiting {
    static constexpr bool multi = Multi;
    static constexpr bool blocking = Blocking;
    static constexpr bool round_trip = true;

    std::unique_ptr<Queue> q = std::make_unique<Queue>();

    struct producer {
        Queue& q;
        explicit producer(conq_waiting& a) : q(*a.q) {}
        void push(item_t v) { (void)q.push(v); }  // false only once closed; never closed here
    };
    struct consumer {
        Queue& q;
        explicit consumer(conq_waiting& a) : q(*a.q) {}
        item_t pop() { return q.pop().value_or(0); }
        std::size_t fill() const { return q.size_approx(); }
    };
};

using conq_spsc_spin_queue = conq::spsc_queue<item_t, conq::capacity<ring_capacity>, conq::spin>;
using conq_spsc_blocking_queue =
    conq::spsc_queue<item_t, conq::capacity<ring_capacity>, conq::blocking>;
using conq_mpmc_spin_queue = conq::mpmc_queue<item_t, conq::capacity<ring_capacity>, conq::spin>;
using conq_mpmc_backoff_queue = conq::mpmc_queue<item_t, conq::capacity<ring_capacity>>;
using conq_mpmc_blocking_queue =
    conq::mpmc_queue<item_t, conq::capacity<ring_capacity>, conq::blocking>;

struct conq_spsc : conq_spinning<conq_spsc_spin_queue, false> {
    static constexpr const char* name = "conq_spsc";
    static constexpr const char* api = "spsc_queue<spin>: try_push/try_pop + pause";
    static constexpr speed rate = speed::fast;
};

/// conq spsc moving items in batches of B with try_push_n / try_pop_n.
template <std::size_t B>
struct conq_spsc_batch {
    static constexpr bool multi = false;
    static constexpr bool blocking = false;
    static constexpr bool round_trip = false;  // a batch of one is conq_spsc
    static constexpr speed rate = speed::fast;

    std::unique_ptr<conq_spsc_spin_queue> q = std::make_unique<conq_spsc_spin_queue>();

    struct producer {
        conq_spsc_spin_queue& q;
        explicit producer(conq_spsc_batch& a) : q(*a.q) {}
        void push(item_t v) {
            spin_until([&] { return q.try_push(v); });
        }
        void push_range(item_t first, item_t last) {
            item_t buf[B];
            while (first < last) {
                const std::size_t n = static_cast<std::size_t>(std::min<item_t>(B, last - first));
                for (std::size_t i = 0; i < n; ++i) buf[i] = first + i;
                std::size_t done = 0;
                while (done < n) {
                    const std::size_t k = q.try_push_n(buf + done, buf + n);
                    if (k == 0) cpu_pause();
                    done += k;
                }
                first += n;
            }
        }
    };
    struct consumer {
        conq_spsc_spin_queue& q;
        explicit consumer(conq_spsc_batch& a) : q(*a.q) {}
        item_t pop() {
            item_t v = 0;
            spin_until([&] { return q.try_pop(v); });
            return v;
        }
        void pop_into(item_t count, checksum& cs) {
            item_t buf[B];
            while (count > 0) {
                const std::size_t k =
                    q.try_pop_n(buf, static_cast<std::size_t>(std::min<item_t>(B, count)));
                if (k == 0) {
                    cpu_pause();
                    continue;
                }
                for (std::size_t i = 0; i < k; ++i) cs.add(buf[i]);
                count -= k;
            }
        }
    };
};

struct conq_spsc_batch64 : conq_spsc_batch<64> {
    static constexpr const char* name = "conq_spsc_batch64";
    static constexpr const char* api = "spsc_queue<spin>: try_push_n/try_pop_n, 64 at a time";
};
struct conq_spsc_batch256 : conq_spsc_batch<256> {
    static constexpr const char* name = "conq_spsc_batch256";
    static constexpr const char* api = "spsc_queue<spin>: try_push_n/try_pop_n, 256 at a time";
};

struct conq_spsc_blocking : conq_waiting<conq_spsc_blocking_queue, false, true> {
    static constexpr const char* name = "conq_spsc_blocking";
    static constexpr const char* api = "spsc_queue<blocking>: push/pop";
    static constexpr speed rate = speed::medium;
};

struct conq_mpmc : conq_spinning<conq_mpmc_spin_queue, true> {
    static constexpr const char* name = "conq_mpmc";
    static constexpr const char* api = "mpmc_queue<spin>: try_push/try_pop + pause";
    static constexpr speed rate = speed::fast;
};

struct conq_mpmc_backoff : conq_waiting<conq_mpmc_backoff_queue, true, false> {
    static constexpr const char* name = "conq_mpmc_backoff";
    static constexpr const char* api = "mpmc_queue (default backoff): push/pop";
    static constexpr speed rate = speed::fast;
};

struct conq_mpmc_blocking : conq_waiting<conq_mpmc_blocking_queue, true, true> {
    static constexpr const char* name = "conq_mpmc_blocking";
    static constexpr const char* api = "mpmc_queue<blocking>: push/pop";
    static constexpr speed rate = speed::medium;
};

/// The same blocking ring driven by try_push/try_pop: what the wake-up check
/// (is anybody asleep?) costs calls that never wait.
struct conq_mpmc_blocking_try : conq_spinning<conq_mpmc_blocking_queue, true> {
    static constexpr const char* name = "conq_mpmc_blocking_try";
    static constexpr const char* api = "mpmc_queue<blocking>: try_push/try_pop + pause";
    static constexpr speed rate = speed::fast;
};

/// The spinning ring driven by its waiting push/pop (spin inside the call).
struct conq_mpmc_spin_wait : conq_waiting<conq_mpmc_spin_queue, true, false> {
    static constexpr const char* name = "conq_mpmc_spin_wait";
    static constexpr const char* api = "mpmc_queue<spin>: push/pop";
    static constexpr speed rate = speed::fast;
};

// ----------------------------------------------------------------- baseline

/// The textbook bounded queue: a ring in a std::vector guarded by one
/// std::mutex, with "not full" and "not empty" condition variables.
class mutex_cv_ring {
public:
    explicit mutex_cv_ring(std::size_t capacity) : slots_(capacity) {}

    void push(item_t v) {
        {
            std::unique_lock lock(mutex_);
            not_full_.wait(lock, [&] { return size_ < slots_.size(); });
            slots_[(head_ + size_) % slots_.size()] = v;
            ++size_;
        }
        not_empty_.notify_one();
    }

    item_t pop() {
        item_t v;
        {
            std::unique_lock lock(mutex_);
            not_empty_.wait(lock, [&] { return size_ > 0; });
            v = slots_[head_];
            head_ = (head_ + 1) % slots_.size();
            --size_;
        }
        not_full_.notify_one();
        return v;
    }

private:
    std::mutex mutex_;
    std::condition_variable not_full_;
    std::condition_variable not_empty_;
    std::vector<item_t> slots_;
    std::size_t head_ = 0;
    std::size_t size_ = 0;
};

struct mutex_ring {
    static constexpr const char* name = "mutex_cv_ring";
    static constexpr const char* api = "std::mutex + 2 std::condition_variable ring";
    static constexpr bool multi = true;
    static constexpr bool blocking = true;
    static constexpr bool round_trip = true;
    static constexpr speed rate = speed::slow;

    std::unique_ptr<mutex_cv_ring> q = std::make_unique<mutex_cv_ring>(ring_capacity);

    struct producer {
        mutex_cv_ring& q;
        explicit producer(mutex_ring& a) : q(*a.q) {}
        void push(item_t v) { q.push(v); }
    };
    struct consumer {
        mutex_cv_ring& q;
        explicit consumer(mutex_ring& a) : q(*a.q) {}
        item_t pop() { return q.pop(); }
    };
};

// -------------------------------------------------------------------- Boost

#if defined(CONQ_BENCH_HAVE_BOOST)
struct boost_spsc {
    static constexpr const char* name = "boost_spsc";
    static constexpr const char* api =
        "boost::lockfree::spsc_queue<capacity<65536>>: push/pop + pause";
    static constexpr bool multi = false;
    static constexpr bool blocking = false;
    static constexpr bool round_trip = true;
    static constexpr speed rate = speed::fast;

    using queue = boost::lockfree::spsc_queue<item_t, boost::lockfree::capacity<ring_capacity>>;
    std::unique_ptr<queue> q = std::make_unique<queue>();

    struct producer {
        queue& q;
        explicit producer(boost_spsc& a) : q(*a.q) {}
        void push(item_t v) {
            spin_until([&] { return q.push(v); });
        }
    };
    struct consumer {
        queue& q;
        explicit consumer(boost_spsc& a) : q(*a.q) {}
        item_t pop() {
            item_t v = 0;
            spin_until([&] { return q.pop(v); });
            return v;
        }
        std::size_t fill() const { return q.read_available(); }
    };
};

struct boost_queue {
    static constexpr const char* name = "boost_queue";
    static constexpr const char* api =
        "boost::lockfree::queue<capacity<65534>>: bounded_push/pop + pause";
    static constexpr bool multi = true;
    static constexpr bool blocking = false;
    static constexpr bool round_trip = true;
    static constexpr speed rate = speed::slow;

    // Its node pool is indexed by 16-bit tagged indices: at most 65535 nodes.
    using queue = boost::lockfree::queue<item_t, boost::lockfree::capacity<65534>>;
    std::unique_ptr<queue> q = std::make_unique<queue>();

    struct producer {
        queue& q;
        explicit producer(boost_queue& a) : q(*a.q) {}
        void push(item_t v) {
            spin_until([&] { return q.bounded_push(v); });
        }
    };
    struct consumer {
        queue& q;
        explicit consumer(boost_queue& a) : q(*a.q) {}
        item_t pop() {
            item_t v = 0;
            spin_until([&] { return q.pop(v); });
            return v;
        }
    };
};
#endif

// -------------------------------------------------------------- moodycamel

#if defined(CONQ_BENCH_HAVE_READERWRITERQUEUE)
struct moodycamel_rwq {
    static constexpr const char* name = "moodycamel_rwq";
    static constexpr const char* api =
        "moodycamel::ReaderWriterQueue(65536): try_enqueue/try_dequeue + pause";
    static constexpr bool multi = false;
    static constexpr bool blocking = false;
    static constexpr bool round_trip = true;
    static constexpr speed rate = speed::fast;

    using queue = moodycamel::ReaderWriterQueue<item_t>;
    std::unique_ptr<queue> q = std::make_unique<queue>(ring_capacity);

    struct producer {
        queue& q;
        explicit producer(moodycamel_rwq& a) : q(*a.q) {}
        void push(item_t v) {
            spin_until([&] { return q.try_enqueue(v); });
        }
    };
    struct consumer {
        queue& q;
        explicit consumer(moodycamel_rwq& a) : q(*a.q) {}
        item_t pop() {
            item_t v = 0;
            spin_until([&] { return q.try_dequeue(v); });
            return v;
        }
        std::size_t fill() const { return q.size_approx(); }
    };
};

struct moodycamel_brwcb {
    static constexpr const char* name = "moodycamel_brwcb_blocking";
    static constexpr const char* api =
        "moodycamel::BlockingReaderWriterCircularBuffer(65536): wait_enqueue/wait_dequeue";
    static constexpr bool multi = false;
    static constexpr bool blocking = true;
    static constexpr bool round_trip = true;
    static constexpr speed rate = speed::medium;

    using queue = moodycamel::BlockingReaderWriterCircularBuffer<item_t>;
    std::unique_ptr<queue> q = std::make_unique<queue>(ring_capacity);

    struct producer {
        queue& q;
        explicit producer(moodycamel_brwcb& a) : q(*a.q) {}
        void push(item_t v) { q.wait_enqueue(v); }
    };
    struct consumer {
        queue& q;
        explicit consumer(moodycamel_brwcb& a) : q(*a.q) {}
        item_t pop() {
            item_t v = 0;
            q.wait_dequeue(v);
            return v;
        }
    };
};
#endif

#if defined(CONQ_BENCH_HAVE_CONCURRENTQUEUE)
/// ConcurrentQueue with explicit tokens. Producers call enqueue(), which may
/// allocate new blocks past the initial 65536 (so this queue is not bounded
/// the way the others are); try_enqueue() can starve a second explicit
/// producer forever when the first one holds every preallocated block.
struct moodycamel_cq {
    static constexpr const char* name = "moodycamel_cq";
    static constexpr const char* api =
        "moodycamel::ConcurrentQueue(65536) + tokens: enqueue (may allocate)/try_dequeue + pause";
    static constexpr bool multi = true;
    static constexpr bool blocking = false;
    static constexpr bool round_trip = true;
    static constexpr speed rate = speed::medium;

    using queue = moodycamel::ConcurrentQueue<item_t>;
    std::unique_ptr<queue> q = std::make_unique<queue>(ring_capacity);

    struct producer {
        queue& q;
        moodycamel::ProducerToken token;
        explicit producer(moodycamel_cq& a) : q(*a.q), token(*a.q) {}
        void push(item_t v) {
            spin_until([&] { return q.enqueue(token, v); });
        }
    };
    struct consumer {
        queue& q;
        moodycamel::ConsumerToken token;
        explicit consumer(moodycamel_cq& a) : q(*a.q), token(*a.q) {}
        item_t pop() {
            item_t v = 0;
            spin_until([&] { return q.try_dequeue(token, v); });
            return v;
        }
    };
};

/// BlockingConcurrentQueue: enqueue (may allocate, never waits) and
/// wait_dequeue (semaphore: spins, then sleeps).
struct moodycamel_bcq {
    static constexpr const char* name = "moodycamel_bcq_blocking";
    static constexpr const char* api =
        "moodycamel::BlockingConcurrentQueue(65536) + tokens: enqueue (may allocate)/wait_dequeue";
    static constexpr bool multi = true;
    static constexpr bool blocking = true;
    static constexpr bool round_trip = true;
    static constexpr speed rate = speed::medium;

    using queue = moodycamel::BlockingConcurrentQueue<item_t>;
    std::unique_ptr<queue> q = std::make_unique<queue>(ring_capacity);

    struct producer {
        queue& q;
        moodycamel::ProducerToken token;
        explicit producer(moodycamel_bcq& a) : q(*a.q), token(*a.q) {}
        void push(item_t v) {
            spin_until([&] { return q.enqueue(token, v); });
        }
    };
    struct consumer {
        queue& q;
        moodycamel::ConsumerToken token;
        explicit consumer(moodycamel_bcq& a) : q(*a.q), token(*a.q) {}
        item_t pop() {
            item_t v = 0;
            q.wait_dequeue(token, v);
            return v;
        }
    };
};
#endif

// ---------------------------------------------------------------------- TBB

#if defined(CONQ_BENCH_HAVE_TBB)
template <bool Blocking>
struct tbb_bounded_base {
    static constexpr bool multi = true;
    static constexpr bool blocking = Blocking;
    static constexpr bool round_trip = true;
    static constexpr speed rate = speed::slow;

    using queue = tbb::concurrent_bounded_queue<item_t>;
    std::unique_ptr<queue> q = [] {
        auto p = std::make_unique<queue>();
        p->set_capacity(static_cast<std::ptrdiff_t>(ring_capacity));
        return p;
    }();

    struct producer {
        queue& q;
        explicit producer(tbb_bounded_base& a) : q(*a.q) {}
        void push(item_t v) {
            if constexpr (Blocking)
                q.push(v);
            else
                spin_until([&] { return q.try_push(v); });
        }
    };
    struct consumer {
        queue& q;
        explicit consumer(tbb_bounded_base& a) : q(*a.q) {}
        item_t pop() {
            item_t v = 0;
            if constexpr (Blocking)
                q.pop(v);
            else
                spin_until([&] { return q.try_pop(v); });
            return v;
        }
    };
};

struct tbb_bounded : tbb_bounded_base<false> {
    static constexpr const char* name = "tbb_bounded";
    static constexpr const char* api =
        "tbb::concurrent_bounded_queue (capacity 65536): try_push/try_pop + pause";
};
struct tbb_bounded_blocking : tbb_bounded_base<true> {
    static constexpr const char* name = "tbb_bounded_blocking";
    static constexpr const char* api = "tbb::concurrent_bounded_queue (capacity 65536): push/pop";
};
#endif

// ------------------------------------------------------ atomic_queue, rigtorp

#if defined(CONQ_BENCH_HAVE_ATOMIC_QUEUE)
/// atomic_queue's fastest SPSC configuration: compile-time capacity, the
/// value itself marks a slot empty (NIL = 0; the harness never pushes 0),
/// push/pop spin inside with a pause. Its generic (any T) variant is
/// AtomicQueue2, with a state byte per slot.
template <class Queue, bool Multi>
struct atomic_queue_waiting {
    static constexpr bool multi = Multi;
    static constexpr bool blocking = false;
    static constexpr bool round_trip = true;
    static constexpr speed rate = speed::fast;

    std::unique_ptr<Queue> q = std::make_unique<Queue>();

    struct producer {
        Queue& q;
        explicit producer(atomic_queue_waiting& a) : q(*a.q) {}
        void push(item_t v) { q.push(v); }
    };
    struct consumer {
        Queue& q;
        explicit consumer(atomic_queue_waiting& a) : q(*a.q) {}
        item_t pop() { return q.pop(); }
        std::size_t fill() const { return q.was_size(); }
    };
};

// Template arguments: T, SIZE, NIL, MINIMIZE_CONTENTION, MAXIMIZE_THROUGHPUT,
// TOTAL_ORDER, SPSC (and without NIL for AtomicQueue2).
struct atomic_queue_spsc
    : atomic_queue_waiting<
          atomic_queue::AtomicQueue<item_t, ring_capacity, item_t{0}, true, true, false, true>,
          false> {
    static constexpr const char* name = "atomic_queue_spsc";
    static constexpr const char* api =
        "atomic_queue::AtomicQueue<u64, 65536, NIL=0, SPSC>: push/pop (pause inside)";
};
struct atomic_queue2_spsc
    : atomic_queue_waiting<atomic_queue::AtomicQueue2<item_t, ring_capacity, true, true, false, true>,
                           false> {
    static constexpr const char* name = "atomic_queue2_spsc";
    static constexpr const char* api =
        "atomic_queue::AtomicQueue2<u64, 65536, SPSC> (any T): push/pop (pause inside)";
};
struct atomic_queue_mpmc
    : atomic_queue_waiting<
          atomic_queue::AtomicQueue<item_t, ring_capacity, item_t{0}, true, true, false, false>,
          true> {
    static constexpr const char* name = "atomic_queue_mpmc";
    static constexpr const char* api =
        "atomic_queue::AtomicQueue<u64, 65536, NIL=0>: push/pop (pause inside)";
};
#endif

#if defined(CONQ_BENCH_HAVE_RIGTORP)
struct rigtorp_spsc {
    static constexpr const char* name = "rigtorp_spsc";
    static constexpr const char* api = "rigtorp::SPSCQueue(65536): try_push/front+pop + pause";
    static constexpr bool multi = false;
    static constexpr bool blocking = false;
    static constexpr bool round_trip = true;
    static constexpr speed rate = speed::fast;

    using queue = rigtorp::SPSCQueue<item_t>;
    std::unique_ptr<queue> q = std::make_unique<queue>(ring_capacity);

    struct producer {
        queue& q;
        explicit producer(rigtorp_spsc& a) : q(*a.q) {}
        void push(item_t v) {
            spin_until([&] { return q.try_push(v); });
        }
    };
    struct consumer {
        queue& q;
        explicit consumer(rigtorp_spsc& a) : q(*a.q) {}
        item_t pop() {
            item_t* front = nullptr;
            spin_until([&] { return (front = q.front()) != nullptr; });
            const item_t v = *front;
            q.pop();
            return v;
        }
        std::size_t fill() const { return q.size(); }
    };
};

struct rigtorp_mpmc {
    static constexpr const char* name = "rigtorp_mpmc";
    static constexpr const char* api = "rigtorp::MPMCQueue(65536): try_push/try_pop + pause";
    static constexpr bool multi = true;
    static constexpr bool blocking = false;
    static constexpr bool round_trip = true;
    static constexpr speed rate = speed::fast;

    using queue = rigtorp::MPMCQueue<item_t>;
    std::unique_ptr<queue> q = std::make_unique<queue>(ring_capacity);

    struct producer {
        queue& q;
        explicit producer(rigtorp_mpmc& a) : q(*a.q) {}
        void push(item_t v) {
            spin_until([&] { return q.try_push(v); });
        }
    };
    struct consumer {
        queue& q;
        explicit consumer(rigtorp_mpmc& a) : q(*a.q) {}
        item_t pop() {
            item_t v = 0;
            spin_until([&] { return q.try_pop(v); });
            return v;
        }
    };
};
#endif

}  // namespace conq_bench

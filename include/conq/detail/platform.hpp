// conq/detail/platform.hpp
//
// Cache-line constants, the CPU pause hint, and the asymmetric memory
// barrier pair that lets the hot path of a ring skip a full fence.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#if defined(__linux__)
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#if defined(__SANITIZE_THREAD__)
#define CONQ_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CONQ_TSAN 1
#endif
#endif

// Keeps a function out of line: the slow half of a call whose fast half is
// inlined (see ring_front.hpp).
#if defined(__GNUC__) || defined(__clang__)
#define CONQ_NOINLINE [[gnu::noinline]]
#else
#define CONQ_NOINLINE
#endif

namespace conq::detail {

/// A full (StoreLoad) fence. ThreadSanitizer does not model fences and g++
/// warns about them under -fsanitize=thread, so there a sequentially
/// consistent read-modify-write stands in (a full barrier on x86 and ARMv8).
inline void full_fence() noexcept {
#if defined(CONQ_TSAN)
    static std::atomic<int> tsan_fence_word{0};
    tsan_fence_word.fetch_add(0, std::memory_order_seq_cst);
#else
    std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

// Distance between atomics written by different threads. 128 on x86-64: the
// adjacent-line prefetcher pulls 64-byte lines in pairs, so two hot words 64
// bytes apart still interfere. Not std::hardware_destructive_interference_size:
// g++ 12 warns on every use in a header and clang 14 with libstdc++ lacks it.
#if defined(__x86_64__) || defined(__i386__) || defined(__aarch64__) && defined(__APPLE__)
inline constexpr std::size_t destructive_size = 128;
#elif defined(__s390x__)
inline constexpr std::size_t destructive_size = 256;
#else
inline constexpr std::size_t destructive_size = 64;
#endif
inline constexpr std::size_t constructive_size = 64;

/// Tells the CPU we are in a spin loop (frees the sibling hyper-thread's
/// resources and avoids the memory-order mis-speculation flush on exit).
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#elif defined(__aarch64__)
    asm volatile("yield" ::: "memory");
#else
    std::atomic_signal_fence(std::memory_order_seq_cst);
#endif
}

// Asymmetric barrier pair.
//
// A sleeper and a waker form a Dekker pattern: the waker publishes data and
// then reads "is anyone asleep?"; the sleeper announces itself and then reads
// the data. Each side needs a StoreLoad fence, which costs tens of cycles on
// every push and pop. Linux's membarrier(PRIVATE_EXPEDITED) lets the rare
// side (the sleeper, about to make a system call anyway) force a full fence on
// every running thread of the process, so the common side (the waker) only
// needs to stop the compiler from reordering. Where membarrier is missing the
// light side falls back to a real fence.
inline std::atomic<int> membarrier_state{0};  // 0 unknown, 1 usable, 2 unusable

/// Registers the process for expedited membarrier once. Containers call this
/// at construction so that the light barrier is cheap from the first push on.
inline bool asymmetric_barrier_init() noexcept {
    int s = membarrier_state.load(std::memory_order_acquire);
    if (s != 0) return s == 1;
    bool ok = false;
#if defined(__linux__) && defined(__NR_membarrier) && !defined(CONQ_NO_MEMBARRIER)
    long cmds = syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    if (cmds > 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0 &&
        syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0) {
        ok = true;
    }
#endif
    int expected = 0;
    membarrier_state.compare_exchange_strong(expected, ok ? 1 : 2, std::memory_order_acq_rel);
    return membarrier_state.load(std::memory_order_acquire) == 1;
}

/// The cheap half: a compiler barrier when membarrier is usable, else a fence.
/// `usable` is what asymmetric_barrier_init() returned (a caller on a hot
/// path keeps its own copy; see wait_point<blocking>).
inline void light_barrier(bool usable) noexcept {
    if (usable) [[likely]] {
        std::atomic_signal_fence(std::memory_order_seq_cst);
    } else {
        full_fence();
    }
}
/// The same, reading the process-wide flag.
inline void light_barrier() noexcept {
    light_barrier(membarrier_state.load(std::memory_order_relaxed) == 1);
}

/// The expensive half: every running thread of the process passes a full
/// fence before this returns.
inline void heavy_barrier() noexcept {
#if defined(__linux__) && defined(__NR_membarrier) && !defined(CONQ_NO_MEMBARRIER)
    if (membarrier_state.load(std::memory_order_acquire) == 1 &&
        syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0) {
        return;
    }
#endif
    full_fence();
}

// The same pair between processes (rings in shared memory). A process that
// registers for MEMBARRIER_CMD_GLOBAL_EXPEDITED is reached by every global
// expedited membarrier, from any process: its light side may then be a
// compiler barrier. A process that could not register keeps a real fence on
// its light side; the heavy side always issues the global membarrier (or a
// fence where the kernel lacks it), so it reaches every registered peer.
inline std::atomic<int> global_membarrier_state{0};  // 0 unknown, 1 registered, 2 unusable

/// Registers this process for global expedited membarrier once. Every
/// process that attaches to a shared ring calls it.
inline bool shared_barrier_init() noexcept {
    int s = global_membarrier_state.load(std::memory_order_acquire);
    if (s != 0) return s == 1;
    bool ok = false;
#if defined(__linux__) && defined(__NR_membarrier) && !defined(CONQ_NO_MEMBARRIER)
    long cmds = syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    if (cmds > 0 && (cmds & MEMBARRIER_CMD_GLOBAL_EXPEDITED) != 0 &&
        syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0) == 0) {
        ok = true;
    }
#endif
    int expected = 0;
    global_membarrier_state.compare_exchange_strong(expected, ok ? 1 : 2, std::memory_order_acq_rel);
    return global_membarrier_state.load(std::memory_order_acquire) == 1;
}

/// The cheap half, between processes.
inline void shared_light_barrier() noexcept {
    if (global_membarrier_state.load(std::memory_order_relaxed) == 1) [[likely]] {
        std::atomic_signal_fence(std::memory_order_seq_cst);
    } else {
        full_fence();
    }
}

/// The expensive half, between processes: every running thread of every
/// registered process passes a full fence before this returns.
inline void shared_heavy_barrier() noexcept {
#if defined(__linux__) && defined(__NR_membarrier) && !defined(CONQ_NO_MEMBARRIER)
    static const bool available = [] {
        long cmds = syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
        return cmds > 0 && (cmds & MEMBARRIER_CMD_GLOBAL_EXPEDITED) != 0;
    }();
    if (available && syscall(__NR_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0) == 0) {
        full_fence();  // and this thread's own
        return;
    }
#endif
    full_fence();
}

/// Rounds up to a power of two (n >= 1).
constexpr std::size_t round_up_pow2(std::size_t n) noexcept {
    std::size_t p = 1;
    while (p < n) p <<= 1;
    return p;
}

}  // namespace conq::detail

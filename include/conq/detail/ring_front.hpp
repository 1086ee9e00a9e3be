// conq/detail/ring_front.hpp
//
// The waiting half of the ring interface (push, push_for, pop, pop_for,
// close), written once over the non-blocking primitives that each ring
// supplies. A ring derives from ring_front<Ring> and provides:
//
//   bool try_emplace_impl(Args&&...)   non-blocking push; false if full or closed
//   bool try_pop_impl(F&& take)        non-blocking pop; calls take(T&) on the item
//   bool push_ready() const            "a push may succeed now" (room, or closed)
//   bool pop_ready() const             "a pop may succeed now" (an item, or closed)
//   bool drained()                     closed and every accepted item popped
//   wait_point<W> not_empty_, not_full_
#pragma once

#include <chrono>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>

#include "conq/detail/platform.hpp"
#include "conq/detail/wait.hpp"

namespace conq::detail {

template <class Ring, class T, class Overflow>
class ring_front {
public:
    using value_type = T;

    // push and pop first make one non-blocking attempt inline and only then
    // call the waiting loop, kept out of line: inlined whole, the loop made
    // them up to three times slower than try_push/try_pop on a busy ring.
    // push_for and pop_for keep the loop inline: split the same way, they
    // made the shared rings' waiting calls (built on them) up to half as
    // fast (docs/benchmarks.md).

    /// Pushes, waiting while full (overflow `block`); with `reject` it never
    /// waits, with `drop_oldest` it makes room. Returns false only when the
    /// ring is closed (or, with `reject`, full). On false `v` is untouched.
    /// \pre the concurrency policy admits the calling producer.
    bool push(T&& v) {
        if (self().try_emplace_impl(std::move(v))) [[likely]] return true;
        return push_wait(std::move(v));
    }
    bool push(const T& v) requires std::is_copy_constructible_v<T> {
        if (self().try_emplace_impl(v)) [[likely]] return true;
        return push_wait(v);
    }

    /// As push, but gives up after `timeout`; false on time-out or close.
    template <class Rep, class Period>
    bool push_for(T&& v, std::chrono::duration<Rep, Period> timeout) {
        return push_until(std::move(v), deadline_after(timeout));
    }
    template <class Rep, class Period>
    bool push_for(const T& v, std::chrono::duration<Rep, Period> timeout)
        requires std::is_copy_constructible_v<T>
    {
        return push_until(v, deadline_after(timeout));
    }

    /// Pops, waiting while empty. nullopt only once the ring is closed and
    /// every item pushed before the close has been popped.
    /// \pre the concurrency policy admits the calling consumer.
    std::optional<T> pop() {
        std::optional<T> out;
        if (self().try_pop_impl(emplace_into(out))) [[likely]] return out;
        return pop_wait();
    }

    /// As pop, but gives up after `timeout` (nullopt on time-out too).
    template <class Rep, class Period>
    std::optional<T> pop_for(std::chrono::duration<Rep, Period> timeout) {
        return pop_until(deadline_after(timeout));
    }

    /// Non-blocking pop into an optional.
    [[nodiscard]] std::optional<T> try_pop() {
        std::optional<T> out;
        self().try_pop_impl(emplace_into(out));
        return out;
    }
    /// Non-blocking pop that move-assigns into `out` (no optional on hot loops).
    [[nodiscard]] bool try_pop(T& out) {
        return self().try_pop_impl([&](T& slot) noexcept(std::is_nothrow_move_assignable_v<T>) {
            out = std::move(slot);
        });
    }

protected:
    // The waiting loops, for push/pop out of line.
    template <class U>
    CONQ_NOINLINE bool push_wait(U&& v) { return push_until(std::forward<U>(v), no_deadline); }
    CONQ_NOINLINE std::optional<T> pop_wait() { return pop_until(no_deadline); }

    template <class U>
    bool push_until(U&& v, deadline_t deadline) {
        Ring& r = self();
        for (;;) {
            if (r.try_emplace_impl(std::forward<U>(v))) return true;
            if (r.closed()) return false;
            if constexpr (std::is_same_v<Overflow, reject>) {
                return false;
            } else {
                if (!r.not_full_.wait_until([&r] { return r.push_ready(); }, deadline)) {
                    return r.try_emplace_impl(std::forward<U>(v));
                }
            }
        }
    }

    std::optional<T> pop_until(deadline_t deadline) {
        Ring& r = self();
        std::optional<T> out;
        auto take = emplace_into(out);
        for (;;) {
            if (r.try_pop_impl(take)) return out;
            if (r.closed()) {
                // Items whose push began before close() may still be landing.
                if (r.drained()) return out;
                if (r.try_pop_impl(take)) return out;
                std::this_thread::yield();
                continue;
            }
            if (!r.not_empty_.wait_until([&r] { return r.pop_ready(); }, deadline)) {
                r.try_pop_impl(take);
                return out;
            }
        }
    }

private:
    Ring& self() noexcept { return static_cast<Ring&>(*this); }

    /// The take function of try_pop_impl that moves the item into `out`.
    static auto emplace_into(std::optional<T>& out) noexcept {
        return [&out](T& slot) noexcept(std::is_nothrow_move_constructible_v<T>) {
            out.emplace(std::move(slot));
        };
    }
};

}  // namespace conq::detail

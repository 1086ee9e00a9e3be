// 09-delay-timers.cpp: retries and time-outs with conq::delay_queue.
//
// schedule_after() returns a handle; cancel(handle) takes the item back (a
// request that completed in time cancels its time-out). pop() sleeps until
// the earliest item is due. Tests use conq::manual_clock instead of the
// steady clock: time moves only when advance() is called, and advance()
// wakes the sleeping pop, so nothing sleeps for real.
//
// Part 1: a manual clock, a consumer thread, time moved by hand.
// Part 2: the steady clock and a timing wheel, a real 20 ms delay.

#include <conq/delay_queue.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

using namespace std::chrono_literals;

int main() {
    // Part 1: manual time.
    conq::manual_clock clock;
    conq::delay_queue<std::string, conq::manual_clock> timeouts(clock);

    auto a = timeouts.schedule_after("request A timed out", 300ms);
    timeouts.schedule_after("request B timed out", 100ms);
    timeouts.schedule_after("request C timed out", 200ms);
    timeouts.cancel(a);  // A's reply arrived in time
    std::printf("next due at %lld ms\n",
                static_cast<long long>(timeouts.next_due()->time_since_epoch() / 1ms));

    std::atomic<int> popped{0};
    std::thread consumer([&] {
        while (std::optional<std::string> s = timeouts.pop()) {
            std::printf("clock at %lld ms: %s\n",
                        static_cast<long long>(clock.now().time_since_epoch() / 1ms), s->c_str());
            popped.fetch_add(1);
        }
    });
    auto wait_for_pops = [&](int n) {
        while (popped.load() < n) std::this_thread::yield();
    };
    clock.advance(150ms);  // B is due: the consumer wakes and prints it
    wait_for_pops(1);
    clock.advance(50ms);   // C is due
    wait_for_pops(2);
    clock.advance(1s);     // nothing more: A was cancelled
    timeouts.close();      // pop returns nullopt once closed and empty
    consumer.join();
    std::printf("%d time-outs fired\n", popped.load());

    // Part 2: the steady clock and a timing wheel (O(1) schedule and cancel).
    conq::delay_queue<int, conq::timer_wheel<>> retries;
    const auto start = std::chrono::steady_clock::now();
    retries.schedule_after(1, 20ms);
    int first = *retries.pop();  // sleeps about 20 ms
    const auto waited = std::chrono::steady_clock::now() - start;
    std::printf("retry %d after at least 20 ms: %s\n", first, waited >= 20ms ? "yes" : "no");
    return waited >= 20ms && popped.load() == 2 ? 0 : 1;
}

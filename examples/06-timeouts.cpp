// 06-timeouts.cpp: waiting, but not forever.
//
// push_for(v, timeout) waits at most `timeout` for room; pop_for(timeout)
// waits at most `timeout` for an item. They work with every wait policy
// (here `blocking`, which sleeps in the kernel with a deadline). A time-out
// returns false / std::nullopt; closed() tells a time-out from a shutdown.
// A push that fails leaves its argument untouched, so nothing is lost.
//
// Part 1: pop_for on an empty queue times out. Part 2: push_for on a full
// queue times out and the string is still there. Part 3: pop_for gets an
// item that arrives from another thread before its deadline. Part 4: after
// close(), pop_for returns at once.

#include <conq/queue.hpp>

#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>

using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;

static long long ms_since(clk::time_point t0) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(clk::now() - t0).count();
}

int main() {
    bool ok = true;
    conq::spsc_queue<std::string, conq::blocking> q(2);

    // ---- Part 1: nothing arrives.
    auto t0 = clk::now();
    std::optional<std::string> got = q.pop_for(30ms);
    const long long waited = ms_since(t0);
    std::printf("part 1: pop_for(30ms) on empty: %s after %lld ms, closed: %d\n",
                got ? "item" : "nullopt", waited, q.closed());
    ok = ok && !got && waited >= 30 && !q.closed();

    // ---- Part 2: no room.
    ok = ok && q.try_push("a") && q.try_push("b");  // capacity 2: now full
    std::string msg = "important";
    t0 = clk::now();
    const bool pushed = q.push_for(std::move(msg), 30ms);
    std::printf("part 2: push_for(30ms) on full: %s after %lld ms, msg still \"%s\"\n",
                pushed ? "pushed" : "timed out", ms_since(t0), msg.c_str());
    ok = ok && !pushed && msg == "important";

    // ---- Part 3: an item arrives in time. The producer role moves to another
    // thread: allowed, since main pushes no more and starting the thread
    // orders main's earlier pushes before the new thread's.
    ok = ok && q.pop() == "a" && q.pop() == "b";  // empty again
    std::thread late([&q] {
        std::this_thread::sleep_for(10ms);
        q.push("late but in time");
    });
    t0 = clk::now();
    got = q.pop_for(5s);
    late.join();
    std::printf("part 3: pop_for(5s) got \"%s\" after %lld ms\n", got ? got->c_str() : "",
                ms_since(t0));
    ok = ok && got == "late but in time";

    // ---- Part 4: closed and empty: no waiting.
    q.close();
    t0 = clk::now();
    got = q.pop_for(5s);
    std::printf("part 4: after close(), pop_for(5s) returned %s after %lld ms, closed: %d\n",
                got ? "an item" : "nullopt", ms_since(t0), q.closed());
    ok = ok && !got && q.closed();
    return ok ? 0 : 1;
}

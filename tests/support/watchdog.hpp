// tests/support/watchdog.hpp
//
// A watchdog for tests that could hang (a waiter that is never woken): if
// the guarded scope does not end within the limit, it prints what was
// running and aborts the process, so the test fails with a message instead
// of hanging until the ctest time-out.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

namespace conq_test {

class watchdog {
public:
    watchdog(std::string what, std::chrono::seconds limit)
        : what_(std::move(what)), thread_([this, limit] { run(limit); }) {}
    watchdog(const watchdog&) = delete;
    watchdog& operator=(const watchdog&) = delete;
    ~watchdog() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            done_ = true;
        }
        cv_.notify_one();
        thread_.join();
    }

private:
    void run(std::chrono::seconds limit) {
        std::unique_lock<std::mutex> lock(mutex_);
        if (!cv_.wait_for(lock, limit, [this] { return done_; })) {
            std::fprintf(stderr,
                         "\nconq_test::watchdog: \"%s\" did not finish within %lld s "
                         "(a waiting thread was probably never woken); aborting.\n",
                         what_.c_str(), static_cast<long long>(limit.count()));
            std::fflush(stderr);
            std::abort();
        }
    }

    std::string what_;
    std::mutex mutex_;
    std::condition_variable cv_;
    bool done_ = false;
    std::thread thread_;  // last: starts after the members above exist
};

}  // namespace conq_test

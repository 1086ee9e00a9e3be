// tests/support/kill9.hpp
//
// One round of a SIGKILL test: start a child that reports 8-byte values over
// a pipe as it makes progress, let it run for a while, kill it with SIGKILL,
// and collect everything it reported before it died. The test then reopens
// what the child was writing and checks it against the reports.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conq_catch.hpp"

namespace conq_test {

/// What one killed child left behind.
struct killed_child {
    int status = 0;                      // as waitpid() gave it
    std::vector<std::uint64_t> reports;  // every value it wrote, in order
};

/// Forks; the child runs `body`, which must end the process (a child never
/// returns into the test). \returns the child's pid (in the parent).
template <class Body>
pid_t fork_child(Body&& body) {
    const pid_t pid = ::fork();
    if (pid == 0) {
        body();
        ::_exit(126);
    }
    return pid;
}

/// Makes a pipe, calls `start(fd)` to start the child with the pipe's write
/// end as `fd` (fork_child, or fork and exec) and takes its pid, lets it run
/// for `run_for`, kills it with SIGKILL, reaps it and reads its reports to
/// the end. Requires that the child was killed: a child that exits by itself
/// has found something wrong (its exit code says what).
template <class Start>
killed_child kill_after(std::chrono::microseconds run_for, Start&& start) {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    const pid_t pid = start(fds[1]);
    ::close(fds[1]);
    REQUIRE(pid > 0);
    std::this_thread::sleep_for(run_for);
    ::kill(pid, SIGKILL);
    killed_child out;
    REQUIRE(::waitpid(pid, &out.status, 0) == pid);
    std::uint64_t v = 0;
    while (::read(fds[0], &v, sizeof v) == sizeof v) out.reports.push_back(v);
    ::close(fds[0]);
    INFO("child status " << out.status
                         << (WIFEXITED(out.status)
                                 ? ", exited with " + std::to_string(WEXITSTATUS(out.status))
                                 : std::string()));
    REQUIRE(WIFSIGNALED(out.status));
    return out;
}

}  // namespace conq_test

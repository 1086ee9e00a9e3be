// tests/support/child_process.hpp
//
// A program that a test starts and then waits for, signals or stops:
//
//   child_process p({"/usr/bin/beanstalkd", "-p", "0"}, {.quiet = true});
//   p.kill(SIGKILL);
//   if (auto status = p.wait_exit(2s)) ...      // reaped: a wait status
//   int status = p.stop();                      // SIGTERM, SIGKILL after a grace
//   child_process::describe_status(status)      // "exited with status 1", ...
//
// Started with posix_spawn (no fork of a test process that may have
// threads). Options: working directory, environment, stdout and stderr into
// a file or /dev/null, a process group of its own (then kill() signals the
// whole group, grandchildren included). The destructor kills (SIGKILL) and
// reaps a child that is still running, so none outlives a failed test.
// POSIX, with glibc's posix_spawn_file_actions_addchdir_np.
#pragma once

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <spawn.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace conq_test {

struct spawn_options {
    std::filesystem::path dir;                     // working directory; empty: the test's
    std::optional<std::vector<std::string>> env;  // "NAME=value" entries; nullopt: the test's
    std::filesystem::path output;                  // stdout and stderr into this file (truncated)
    bool quiet = false;                            // without `output`: both to /dev/null
    bool own_group = false;                        // a process group of its own
};

class child_process {
public:
    /// Starts argv[0] (a path) with `argv`.
    /// \throws std::system_error if it cannot be started.
    explicit child_process(std::vector<std::string> argv, spawn_options opts = {})
        : program_(argv.empty() ? std::string() : argv.front()), group_(opts.own_group) {
        std::vector<char*> args = pointers(argv);
        std::vector<std::string> env_strings = opts.env.value_or(std::vector<std::string>{});
        std::vector<char*> env = pointers(env_strings);

        posix_spawn_file_actions_t actions;
        ::posix_spawn_file_actions_init(&actions);
        if (!opts.output.empty()) {
            ::posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, opts.output.c_str(),
                                               O_WRONLY | O_CREAT | O_TRUNC, 0644);
            ::posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
        } else if (opts.quiet) {
            ::posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
            ::posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
        }
        if (!opts.dir.empty()) ::posix_spawn_file_actions_addchdir_np(&actions, opts.dir.c_str());
        posix_spawnattr_t attr;
        ::posix_spawnattr_init(&attr);
        if (group_) {
            ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
            ::posix_spawnattr_setpgroup(&attr, 0);
        }
        pid_t pid = -1;
        const int error = ::posix_spawn(&pid, args[0], &actions, &attr, args.data(),
                                        opts.env ? env.data() : environ);
        ::posix_spawnattr_destroy(&attr);
        ::posix_spawn_file_actions_destroy(&actions);
        if (error != 0) throw std::system_error(error, std::generic_category(), "cannot start " + program_);
        pid_ = pid;
    }

    child_process(child_process&& o) noexcept
        : program_(std::move(o.program_)), group_(o.group_), pid_(std::exchange(o.pid_, -1)),
          status_(o.status_) {}
    child_process& operator=(child_process&& o) noexcept {
        if (this != &o) {
            abandon();
            program_ = std::move(o.program_);
            group_ = o.group_;
            pid_ = std::exchange(o.pid_, -1);
            status_ = o.status_;
        }
        return *this;
    }
    child_process(const child_process&) = delete;
    child_process& operator=(const child_process&) = delete;
    ~child_process() { abandon(); }

    [[nodiscard]] pid_t pid() const noexcept { return pid_; }
    [[nodiscard]] const std::string& program() const noexcept { return program_; }

    /// Sends `sig` to the program (to its whole group with own_group); a
    /// no-op once it has been reaped.
    void kill(int sig) noexcept {
        if (pid_ > 0) ::kill(group_ ? -pid_ : pid_, sig);
    }

    /// Waits up to `timeout` for the program to end and reaps it: its wait
    /// status (WIFEXITED, WTERMSIG...), or nullopt while it still runs. Once
    /// reaped, the same status is returned again.
    std::optional<int> wait_exit(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
        if (pid_ <= 0) return status_;
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            int status = 0;
            const pid_t result = ::waitpid(pid_, &status, WNOHANG);
            if (result == pid_) {
                pid_ = -1;
                status_ = status;
                return status_;
            }
            if (result < 0 && errno != EINTR) {
                pid_ = -1;
                return status_;
            }
            if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
    }

    /// SIGTERM, then SIGKILL if the program is still there after `grace`;
    /// returns its wait status.
    int stop(std::chrono::milliseconds grace = std::chrono::seconds(2)) {
        if (pid_ > 0) {
            kill(SIGTERM);
            if (!wait_exit(grace)) {
                kill(SIGKILL);
                (void)wait_exit(std::chrono::seconds(10));
            }
        }
        return status_.value_or(0);
    }

    /// "exited with status 1", "was killed by signal 6 (Aborted)", ... for
    /// a wait status.
    [[nodiscard]] static std::string describe_status(int status) {
        if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
        if (WIFSIGNALED(status)) {
            const char* name = ::strsignal(WTERMSIG(status));
            return "was killed by signal " + std::to_string(WTERMSIG(status)) +
                   (name ? std::string(" (") + name + ")" : "");
        }
        return "ended with wait status " + std::to_string(status);
    }

private:
    static std::vector<char*> pointers(std::vector<std::string>& strings) {
        std::vector<char*> result;
        for (auto& s : strings) result.push_back(s.data());
        result.push_back(nullptr);
        return result;
    }
    void abandon() noexcept {
        if (pid_ > 0) {
            kill(SIGKILL);
            int status = 0;
            while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
            }
            pid_ = -1;
        }
    }

    std::string program_;
    bool group_ = false;
    pid_t pid_ = -1;
    std::optional<int> status_;
};

}  // namespace conq_test

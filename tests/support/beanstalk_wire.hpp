// tests/support/beanstalk_wire.hpp
//
// Talking to a beanstalkd-protocol server from a test, over loopback TCP:
//
//   free_port()       a TCP port on 127.0.0.1 that nothing listens on now
//   server_process    starts a server program on such a port, waits until it
//                     accepts connections, and stops it when it goes
//   connection        a blocking client socket that sends raw bytes and
//                     reads whole protocol replies: one CRLF-terminated
//                     line, plus the <n>-byte body and its CRLF after
//                     `RESERVED <id> <n>`, `FOUND <id> <n>` and `OK <n>`
//
// Every wait takes a timeout (poll), so a server that never answers fails
// the test instead of hanging it. Writes use MSG_NOSIGNAL: a server that
// closed the connection does not kill the test with SIGPIPE. POSIX only.
#pragma once

#include <algorithm>
#include <charconv>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include "child_process.hpp"

namespace conq_test {

namespace detail {

[[noreturn]] inline void throw_errno(const std::string& what) {
    throw std::system_error(errno, std::generic_category(), what);
}

inline sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return address;
}

/// Milliseconds left until `deadline`, for poll(): 0 once it has passed.
inline int poll_ms_until(std::chrono::steady_clock::time_point deadline) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    return static_cast<int>(std::clamp<std::chrono::milliseconds::rep>(left.count(), 0, 60'000));
}

}  // namespace detail

/// The environment variable `name`, or `fallback` when it is unset or empty.
inline std::string env_or(const char* name, const char* fallback = "") {
    const char* value = std::getenv(name);
    return value && *value ? value : fallback;
}

/// CONQ_TEST_SEED if set (to repeat a run), else a random seed.
inline std::uint64_t test_seed() {
    const std::string text = env_or("CONQ_TEST_SEED");
    if (!text.empty()) return std::strtoull(text.c_str(), nullptr, 10);
    std::random_device device;
    return (std::uint64_t{device()} << 32) ^ device();
}

/// `bytes` with control and non-ASCII bytes escaped, cut after `limit`.
inline std::string visible(std::string_view bytes, std::size_t limit = 120) {
    std::string out;
    for (std::size_t i = 0; i < bytes.size() && i < limit; ++i) {
        const auto c = static_cast<unsigned char>(bytes[i]);
        if (c == '\r') out += "\\r";
        else if (c == '\n') out += "\\n";
        else if (c < 0x20 || c >= 0x7f) {
            static constexpr char hex[] = "0123456789abcdef";
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        } else {
            out += static_cast<char>(c);
        }
    }
    if (bytes.size() > limit) out += "...(" + std::to_string(bytes.size()) + " bytes)";
    return out;
}

/// The words of a reply line, split at each space (empty words kept, so a
/// doubled space shows).
inline std::vector<std::string_view> words_of(std::string_view line) {
    std::vector<std::string_view> words;
    std::size_t start = 0;
    while (start <= line.size()) {
        std::size_t space = line.find(' ', start);
        if (space == std::string_view::npos) space = line.size();
        words.push_back(line.substr(start, space - start));
        start = space + 1;
    }
    return words;
}

/// A word that is a decimal number and nothing else, or nullopt.
inline std::optional<std::uint64_t> number_of(std::string_view word) {
    std::uint64_t value = 0;
    const auto [end, error] = std::from_chars(word.data(), word.data() + word.size(), value);
    if (word.empty() || error != std::errc() || end != word.data() + word.size()) return std::nullopt;
    return value;
}

/// A TCP port on 127.0.0.1 that was free a moment ago: the kernel picks one
/// for a socket bound to port 0, and the socket is closed again. Another
/// process may take it before the caller binds it; server_process retries
/// with a fresh port when that happens.
inline std::uint16_t free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) detail::throw_errno("free_port: socket");
    sockaddr_in address = detail::loopback(0);
    socklen_t length = sizeof address;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
        int saved = errno;
        ::close(fd);
        errno = saved;
        detail::throw_errno("free_port: bind to 127.0.0.1:0");
    }
    ::close(fd);
    return ntohs(address.sin_port);
}

/// How a read_reply ended.
enum class reply_status {
    ok,       ///< `bytes` is one whole reply
    timeout,  ///< no whole reply within the time allowed; `bytes` is what came
    closed,   ///< the server closed the connection first; `bytes` is what came
};

struct reply {
    reply_status status = reply_status::ok;
    std::string bytes;

    [[nodiscard]] bool ok() const noexcept { return status == reply_status::ok; }
};

/// A client connection to 127.0.0.1:<port>. Blocking from the caller's
/// view, with a timeout on every wait. Movable, not copyable; the socket is
/// closed when the object goes. Not thread-safe.
class connection {
public:
    /// Connects, or throws std::system_error (ECONNREFUSED when nothing
    /// listens). TCP_NODELAY is set, so that separate send() calls leave as
    /// separate segments.
    explicit connection(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
        if (fd_ < 0) detail::throw_errno("connection: socket");
        sockaddr_in address = detail::loopback(port);
        if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
            int saved = errno;
            close();
            errno = saved;
            detail::throw_errno("connect to 127.0.0.1:" + std::to_string(port));
        }
        int one = 1;
        ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }

    connection(connection&& other) noexcept
        : fd_(std::exchange(other.fd_, -1)), input_(std::move(other.input_)), eof_(other.eof_) {}
    connection& operator=(connection&& other) noexcept {
        if (this != &other) {
            close();
            fd_ = std::exchange(other.fd_, -1);
            input_ = std::move(other.input_);
            eof_ = other.eof_;
        }
        return *this;
    }
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;
    ~connection() { close(); }

    [[nodiscard]] bool is_open() const noexcept { return fd_ >= 0; }

    /// Sends all of `bytes`. False when the connection is closed or the
    /// server has gone (EPIPE, ECONNRESET); a send into a socket buffer that
    /// the server never drains blocks at most 10 s, then fails as well.
    bool send(std::string_view bytes) {
        if (fd_ < 0) return false;
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (!bytes.empty()) {
            ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) {
                bytes.remove_prefix(static_cast<std::size_t>(n));
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                if (std::chrono::steady_clock::now() >= deadline) return false;
                pollfd p{fd_, POLLOUT, 0};
                ::poll(&p, 1, detail::poll_ms_until(deadline));
                continue;
            }
            return false;
        }
        return true;
    }

    /// Reads exactly one reply: a line up to and including CRLF and, when
    /// the line is `RESERVED <id> <n>`, `FOUND <id> <n>` or `OK <n>`, the
    /// n bytes after it and their CRLF. Bytes after the reply stay buffered
    /// for the next call (pipelined replies). Without a whole reply within
    /// `timeout` (status timeout) or before the server closes (status
    /// closed), the bytes received so far are returned and stay buffered.
    [[nodiscard]] reply read_reply(std::chrono::milliseconds timeout) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            if (std::size_t length = complete_reply_length(); length != 0) {
                reply result{reply_status::ok, input_.substr(0, length)};
                input_.erase(0, length);
                return result;
            }
            if (eof_) return {reply_status::closed, input_};
            if (!receive_until(deadline)) return {eof_ ? reply_status::closed : reply_status::timeout, input_};
        }
    }

    /// True once the server has closed the connection (EOF or a reset)
    /// within `timeout`, with no unread byte before the end. False when a
    /// byte is (or arrives) unread, or the time passes with nothing.
    [[nodiscard]] bool at_eof(std::chrono::milliseconds timeout) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (input_.empty() && !eof_) {
            if (!receive_until(deadline)) break;
        }
        return input_.empty() && eof_;
    }

    /// The bytes that arrived and were not read as replies yet, after
    /// waiting up to `timeout` for the first one.
    [[nodiscard]] const std::string& unread(std::chrono::milliseconds timeout) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (input_.empty() && !eof_) {
            if (!receive_until(deadline)) break;
        }
        receive_until(std::chrono::steady_clock::now());  // and whatever else is there now
        return input_;
    }

    /// Half-closes: the server reads EOF, replies can still be read.
    void shutdown_write() {
        if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
    }

    void close() noexcept {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

private:
    /// Length of the whole reply at the front of input_, or 0 while it is
    /// incomplete.
    [[nodiscard]] std::size_t complete_reply_length() const {
        std::size_t line_end = input_.find("\r\n");
        if (line_end == std::string::npos) return 0;
        std::size_t line_length = line_end + 2;
        std::optional<std::size_t> body = body_length(std::string_view(input_).substr(0, line_end));
        if (!body) return line_length;
        std::size_t total = line_length + *body + 2;
        return input_.size() >= total ? total : 0;
    }

    /// n for `RESERVED <id> <n>`, `FOUND <id> <n>` and `OK <n>` lines.
    [[nodiscard]] static std::optional<std::size_t> body_length(std::string_view line) {
        const auto words = words_of(line);
        auto number = [](std::string_view word) -> std::optional<std::size_t> {
            if (word.size() > 12) return std::nullopt;
            return number_of(word);
        };
        if (words.size() == 3 && (words[0] == "RESERVED" || words[0] == "FOUND") && number(words[1])) {
            return number(words[2]);
        }
        if (words.size() == 2 && words[0] == "OK") return number(words[1]);
        return std::nullopt;
    }

    /// Waits until `deadline` for input, appends what is there. False when
    /// nothing came (the time passed, or the connection ended: eof_ says).
    bool receive_until(std::chrono::steady_clock::time_point deadline) {
        if (fd_ < 0 || eof_) {
            eof_ = true;
            return false;
        }
        for (;;) {
            pollfd p{fd_, POLLIN, 0};
            int ready = ::poll(&p, 1, detail::poll_ms_until(deadline));
            if (ready < 0 && errno == EINTR) continue;
            if (ready <= 0) return false;
            char chunk[16384];
            ssize_t n = ::recv(fd_, chunk, sizeof chunk, MSG_DONTWAIT);
            if (n > 0) {
                input_.append(chunk, static_cast<std::size_t>(n));
                return true;
            }
            if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
            // 0: an orderly close. An error (ECONNRESET: the server closed
            // with our unread bytes in its buffer) ends the connection too.
            eof_ = true;
            return false;
        }
    }

    int fd_ = -1;
    std::string input_;
    bool eof_ = false;
};

/// A server program running on a loopback port, for the length of a test.
///
/// The constructor starts `program args... -l 127.0.0.1 -p <port>` (a free
/// port) and returns once a TCP connection to it succeeds. That first
/// connection then sends `quit` and waits (up to 2 s) for the server to
/// close it, so it no longer counts among the server's current connections
/// when the test begins; it does count once in beanstalkd's
/// total-connections. If the program exits before it accepts a connection
/// (the port was taken meanwhile, say) it is started again on another port,
/// three times in all; then, or after 10 s without a connection, the
/// constructor throws std::runtime_error.
///
/// The program's standard output and error are the test's, or /dev/null
/// with `quiet` (for a reference server's log lines).
///
/// The destructor stops the program: SIGTERM, then SIGKILL after 2 s.
class server_process {
public:
    server_process(std::string program, std::vector<std::string> args, bool quiet = false,
                   std::chrono::milliseconds ready_timeout = std::chrono::seconds(10))
        : program_(std::move(program)), quiet_(quiet) {
        std::string failure;
        for (int attempt = 0; attempt < 3; ++attempt) {
            port_ = free_port();
            start(args);
            failure = wait_until_ready(ready_timeout);
            if (failure.empty()) return;
            if (pid() > 0) {  // running, but never accepted: no point in another port
                stop();
                break;
            }
        }
        throw std::runtime_error(failure);
    }

    server_process(const server_process&) = delete;
    server_process& operator=(const server_process&) = delete;
    ~server_process() {
        if (child_) child_->stop();
    }

    [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
    [[nodiscard]] pid_t pid() const noexcept { return child_ ? child_->pid() : -1; }
    [[nodiscard]] const std::string& program() const noexcept { return program_; }

    /// Sends `sig` to the program (no-op once it has been reaped).
    void kill(int sig) {
        if (child_) child_->kill(sig);
    }

    /// Waits up to `timeout` for the program to end and reaps it: its wait
    /// status (WIFEXITED, WTERMSIG...), or nullopt while it still runs. Once
    /// reaped, the same status is returned again.
    std::optional<int> wait_exit(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
        return child_ ? child_->wait_exit(timeout) : std::nullopt;
    }

    /// SIGTERM, then SIGKILL if the program is still there after `grace`;
    /// returns its wait status.
    int stop(std::chrono::milliseconds grace = std::chrono::seconds(2)) {
        return child_ ? child_->stop(grace) : 0;
    }

    /// "exited with status 1", "was killed by signal 6 (Aborted)", ... for
    /// a wait status.
    [[nodiscard]] static std::string describe_status(int status) {
        return child_process::describe_status(status);
    }

private:
    void start(const std::vector<std::string>& args) {
        std::vector<std::string> words{program_};
        words.insert(words.end(), args.begin(), args.end());
        words.insert(words.end(), {"-l", "127.0.0.1", "-p", std::to_string(port_)});
        spawn_options o;
        o.quiet = quiet_;
        child_.emplace(std::move(words), std::move(o));
    }

    /// Empty once the server accepted a connection, else why not.
    std::string wait_until_ready(std::chrono::milliseconds timeout) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        std::string where = program_ + " on 127.0.0.1:" + std::to_string(port_);
        for (;;) {
            if (auto status = wait_exit(std::chrono::milliseconds(0))) {
                return where + " " + describe_status(*status) + " before accepting a connection";
            }
            try {
                connection probe(port_);
                if (probe.send("quit\r\n")) (void)probe.at_eof(std::chrono::seconds(2));
                return {};
            } catch (const std::system_error&) {
                // not listening yet
            }
            if (std::chrono::steady_clock::now() >= deadline) {
                return where + " accepted no connection within " + std::to_string(timeout.count()) + " ms";
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
    }

    std::string program_;
    bool quiet_;
    std::uint16_t port_ = 0;
    std::optional<child_process> child_;
};

}  // namespace conq_test

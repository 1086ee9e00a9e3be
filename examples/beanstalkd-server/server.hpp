// conq::beanstalk::server: the beanstalkd protocol over TCP, served from one
// thread with non-blocking sockets and epoll, over a conq::work_queues<std::string>
// (which other threads of the same program may use at the same time).
//
// One connection is one beanstalkd client: a used tube, a watch list (a
// work_queues consumer), the jobs it reserved (job handles, abandoned when
// it disconnects). Commands are answered in order; every command that a
// read brought in is answered before the replies are written, in one write
// per connection and loop turn. A reserve that finds nothing waits in a
// first-come-first-served list; a listener on the work queues (a flag, and
// an eventfd when the loop sleeps) says when a job may be ready, and the
// loop's timeout covers delays, pauses, time-to-run ends and reserve
// timeouts.
//
// Tubes follow beanstalkd's lifetime: made when first used or watched,
// dropped when no connection uses or watches them and they hold no job;
// list-tubes gives them in beanstalkd's order.
#pragma once

#include "protocol.hpp"

#include <conq/broker/work_queue.hpp>
#include <conq/version.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <vector>

namespace conq::beanstalk {

using job_queues = work_queues<std::string>;

struct server_options {
    std::string address = "127.0.0.1";  ///< -l; "0.0.0.0" for every interface, "unix:PATH" for a unix socket
    std::uint16_t port = 11300;         ///< -p; 0 picks a free port (see server::port)
    std::size_t max_job_size = job_size_default;  ///< -z
    int verbose = 0;                    ///< -V: connections (1), commands (2) to stderr
    /// After a turn that served something, poll this long for more before
    /// sleeping (0: sleep at once).
    int spin_us = 50;
    std::uint64_t binlog_max_size = 10485760;  ///< shown by stats (beanstalkd's -s)
};

class server {
public:
    /// Binds and listens. \throws std::system_error.
    server(job_queues& queues, server_options opts) : wq_(queues), opts_(std::move(opts)) {
        started_ = std::chrono::steady_clock::now();
        make_id();
        ep_ = check(::epoll_create1(EPOLL_CLOEXEC), "epoll_create1");
        wake_fd_ = check(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), "eventfd");
        listen_fd_ = open_listener();
        add_fd(wake_fd_, EPOLLIN, &wake_tag_);
        add_fd(listen_fd_, EPOLLIN, &listen_tag_);
        tube* d = make_tube("default");
        d->pinned = true;
        // Tubes a durable journal brought back: listed while they hold jobs.
        for (const std::string& name : wq_.queue_names())
            if (name != "default") unreferenced(make_tube(name));
        wq_.set_listener([this] { on_change(); });
    }
    server(const server&) = delete;
    server& operator=(const server&) = delete;
    ~server() {
        wq_.set_listener({});
        while (!conns_.empty()) close_conn(*conns_.begin()->second);
        for (const int fd : {listen_fd_, wake_fd_, signal_fd_, ep_})
            if (fd >= 0) ::close(fd);
    }

    /// The port it listens on (the one the system chose for port 0).
    [[nodiscard]] std::uint16_t port() const noexcept { return port_; }

    /// Serves SIGINT and SIGTERM (stop) and SIGUSR1 (drain mode) from the
    /// loop. The caller blocks them in every thread first (pthread_sigmask
    /// before any thread starts).
    void handle_signals() {
        sigset_t set;
        sigemptyset(&set);
        for (const int s : {SIGINT, SIGTERM, SIGUSR1}) sigaddset(&set, s);
        signal_fd_ = check(::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC), "signalfd");
        add_fd(signal_fd_, EPOLLIN, &signal_tag_);
    }

    /// Serves until stop(). \throws std::system_error if epoll fails.
    void run() {
        while (!stop_.load(std::memory_order_acquire)) run_once(-1);
    }

    /// One turn of the loop: waits for events (at most `max_wait_ms`, -1
    /// for as long as nothing is due), then serves them.
    void run_once(int max_wait_ms) {
        int timeout = next_timeout_ms();
        if (max_wait_ms >= 0 && (timeout < 0 || timeout > max_wait_ms)) timeout = max_wait_ms;
        int n = 0;
        // Busy: poll a while before sleeping, as the next request of a
        // connection just served tends to come within microseconds, and a
        // sleep and wake-up costs more than the request.
        if (opts_.spin_us > 0 && timeout != 0 && busy_) {
            const auto until = clock::now() + std::chrono::microseconds(opts_.spin_us);
            for (;;) {
                n = ::epoll_wait(ep_, events_, max_events, 0);
                if (n != 0 || changed_.load(std::memory_order_relaxed) || clock::now() >= until) break;
                // A few microseconds between polls: each poll takes the
                // epoll lock that a sender's wake-up needs, and on a
                // hyperthread a tight loop slows its sibling.
                for (int i = 0; i < 64; ++i) conq::detail::cpu_relax();
            }
        }
        if (n == 0) {
            sleeping_.store(true, std::memory_order_seq_cst);
            if (changed_.load(std::memory_order_seq_cst)) timeout = 0;
            n = ::epoll_wait(ep_, events_, max_events, timeout);
            sleeping_.store(false, std::memory_order_relaxed);
        }
        busy_ = n > 0;
        if (n < 0) {
            if (errno == EINTR) return;
            throw std::system_error(errno, std::generic_category(), "epoll_wait");
        }
        for (int i = 0; i < n; ++i) dispatch_event(events_[i]);
        serve_waiters();
        flush_dirty();
    }

    /// Serves a connected stream socket (an inherited one, one end of a
    /// socketpair) as a client; takes ownership of `fd`.
    void adopt(int fd) {
        ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
        open_conn(fd);
    }

    /// Clients connected now.
    [[nodiscard]] std::size_t connections() const noexcept { return conns_.size(); }

    /// Makes run() return; callable from any thread.
    void stop() noexcept {
        stop_.store(true, std::memory_order_release);
        wake();
    }

    /// beanstalkd's drain mode (SIGUSR1): puts are answered DRAINING.
    void drain() {
        draining_ = true;
        wq_.drain();
    }

private:
    using clock = std::chrono::steady_clock;
    static constexpr std::int64_t forever = std::numeric_limits<std::int64_t>::max();
    static constexpr std::size_t read_chunk = 64 * 1024;
    static constexpr std::size_t input_cap = 1 << 20;   // unread commands kept per connection
    static constexpr std::size_t output_cap = 4 << 20;  // replies waiting before reading stops
    static constexpr int max_events = 256;

    struct tube {
        std::string name;
        std::size_t index = 0;  // in tubes_, beanstalkd's list order
        std::size_t using_count = 0, watching = 0, waiting = 0;
        bool pinned = false;    // "default" is never dropped
        bool orphan = false;    // unreferenced, kept for its jobs
        [[nodiscard]] bool referenced() const noexcept { return pinned || using_count || watching; }
    };

    // command: reading a command line; overlong: dropping a line that is
    // too long, until its end; body: reading a put's body; discard: reading
    // a body that is too big; waiting: in a reserve.
    enum class phase : std::uint8_t { command, overlong, body, discard, waiting };

    struct conn {
        int fd = -1;
        std::uint64_t serial = 0;
        std::string in;
        std::size_t in_pos = 0;
        std::string out;
        std::size_t out_pos = 0;
        phase ph = phase::command;
        // put: the header waiting for its body, or the bytes still to skip
        std::uint32_t put_priority = 0, put_delay = 0, put_ttr = 0, put_bytes = 0;
        std::uint64_t discard_left = 0;
        tube* use = nullptr;
        std::vector<tube*> watch;  // beanstalkd's order: appended, the last moved into a hole
        std::optional<job_queues::consumer> consumer;
        std::unordered_map<job_id, job_queues::job> held;
        bool producer = false, worker = false;
        bool peer_closed = false, closing = false, dirty = false;
        std::uint32_t events = 0;
        // waiting reserve
        std::int64_t wait_until = forever;
        conn* wprev = nullptr;
        conn* wnext = nullptr;
    };

    // ------------------------------------------------------------- setup

    static int check(int r, const char* what) {
        if (r < 0) throw std::system_error(errno, std::generic_category(), what);
        return r;
    }

    int open_listener() {
        if (opts_.address.starts_with("unix:")) return open_unix_listener(opts_.address.substr(5));
        addrinfo hints{};
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
        addrinfo* res = nullptr;
        const std::string service = std::to_string(opts_.port);
        const int g = ::getaddrinfo(opts_.address.empty() ? nullptr : opts_.address.c_str(), service.c_str(),
                                    &hints, &res);
        if (g != 0)
            throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                                    "cannot resolve -l " + opts_.address + ": " + ::gai_strerror(g));
        std::unique_ptr<addrinfo, void (*)(addrinfo*)> guard(res, ::freeaddrinfo);
        int fd = -1;
        int err = 0;
        for (addrinfo* a = res; a; a = a->ai_next) {
            fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
            if (fd < 0) {
                err = errno;
                continue;
            }
            const int one = 1;
            ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 1024) == 0) break;
            err = errno;
            ::close(fd);
            fd = -1;
        }
        if (fd < 0)
            throw std::system_error(err, std::generic_category(),
                                    "cannot listen on " + opts_.address + ":" + service);
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
        port_ = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                         : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
        return fd;
    }

    // beanstalkd 1.12's "-l unix:PATH": a stream socket at PATH, replacing
    // a stale socket file there.
    int open_unix_listener(const std::string& path) {
        sockaddr_un a{};
        if (path.empty() || path.size() >= sizeof a.sun_path)
            throw std::system_error(std::make_error_code(std::errc::invalid_argument), "bad socket path " + path);
        a.sun_family = AF_UNIX;
        std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
        const int fd = check(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), "socket");
        struct stat st{};
        if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(path.c_str());
        if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 1024) != 0) {
            const int err = errno;
            ::close(fd);
            throw std::system_error(err, std::generic_category(), "cannot listen on unix:" + path);
        }
        return fd;
    }

    void add_fd(int fd, std::uint32_t events, void* tag) {
        epoll_event ev{};
        ev.events = events;
        ev.data.ptr = tag;
        check(::epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev), "epoll_ctl");
    }

    void make_id() {
        std::random_device rd;
        const std::uint64_t v = (std::uint64_t{rd()} << 32) ^ rd();
        char buf[17];
        std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
        id_ = buf;
    }

    // -------------------------------------------------- loop and wake-ups

    // Runs with the work queues' lock held, on any thread.
    void on_change() noexcept {
        changed_.store(true, std::memory_order_seq_cst);
        if (sleeping_.load(std::memory_order_seq_cst)) wake();
    }
    void wake() noexcept {
        const std::uint64_t one = 1;
        [[maybe_unused]] const auto r = ::write(wake_fd_, &one, sizeof one);
    }

    static std::int64_t now_ns() noexcept {
        return std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now().time_since_epoch()).count();
    }

    // When the loop must look at its waiting reserves again without being
    // woken: a reserve timeout, a held job entering its deadline margin, or
    // a timed event of the work queues (a delayed job due, a pause or a
    // time-to-run ending).
    int next_timeout_ms() {
        if (!waiting_head_) return -1;
        const std::int64_t now = now_ns();
        std::int64_t until = forever;
        for (conn* c = waiting_head_; c; c = c->wnext) {
            until = std::min(until, c->wait_until);
            if (!c->held.empty())
                if (const auto soon = c->consumer->deadline_soon_in()) until = std::min(until, now + soon->count());
        }
        if (const auto e = wq_.next_event_in()) until = std::min(until, now + e->count());
        next_check_ = until;
        if (until == forever) return -1;
        const std::int64_t left = until - now;
        if (left <= 0) return 0;
        return static_cast<int>(std::min<std::int64_t>((left + 999'999) / 1'000'000, 60'000));
    }

    void dispatch_event(const epoll_event& ev) {
        if (ev.data.ptr == &wake_tag_) {
            std::uint64_t v;
            while (::read(wake_fd_, &v, sizeof v) > 0) {}
            return;
        }
        if (ev.data.ptr == &listen_tag_) {
            accept_all();
            return;
        }
        if (ev.data.ptr == &signal_tag_) {
            signalfd_siginfo si;
            while (::read(signal_fd_, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
                if (si.ssi_signo == SIGUSR1) drain();
                else stop_.store(true, std::memory_order_release);
            }
            return;
        }
        conn& c = *static_cast<conn*>(ev.data.ptr);
        if ((ev.events & EPOLLOUT) && !flush(c)) return;  // closed, and freed
        if (ev.events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(c);
    }

    void accept_all() {
        for (;;) {
            const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno == EINTR || errno == ECONNABORTED) continue;
                if (errno != EAGAIN && errno != EWOULDBLOCK)
                    std::fprintf(stderr, "conq-beanstalkd: accept: %s\n", std::strerror(errno));
                return;
            }
            const int one = 1;
            ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // fails harmlessly on unix sockets
            open_conn(fd);
        }
    }

    void open_conn(int fd) {
        auto owned = std::make_unique<conn>();
        conn& c = *owned;
        c.fd = fd;
        c.serial = ++total_connections_;
        c.use = find_or_make_tube("default");
        ++c.use->using_count;
        c.watch.push_back(c.use);
        ++c.use->watching;
        c.consumer.emplace(wq_.make_consumer("default"));
        conns_.emplace(fd, std::move(owned));
        set_events(c, EPOLLIN, true);
        if (opts_.verbose)
            std::fprintf(stderr, "conq-beanstalkd: connection %llu open\n", static_cast<unsigned long long>(c.serial));
    }

    void set_events(conn& c, std::uint32_t events, bool add = false) {
        if (!add && events == c.events) return;
        epoll_event ev{};
        ev.events = events;
        ev.data.ptr = &c;
        if (::epoll_ctl(ep_, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c.fd, &ev) < 0) {
            std::fprintf(stderr, "conq-beanstalkd: epoll_ctl: %s\n", std::strerror(errno));
            c.closing = true;
        }
        c.events = events;
    }

    // Reading stops while too much input or output waits, and once the
    // peer closed its side.
    void update_events(conn& c) {
        std::uint32_t e = 0;
        if (!c.peer_closed && !c.closing && c.in.size() - c.in_pos < input_cap && c.out.size() < output_cap)
            e |= EPOLLIN;
        if (c.out_pos < c.out.size()) e |= EPOLLOUT;
        set_events(c, e);
    }

    void on_readable(conn& c) {
        if (c.peer_closed || c.closing) return;
        // Into the loop's buffer, then appended: growing c.in by a whole
        // chunk would zero it on every read.
        const ssize_t r = ::recv(c.fd, read_buf_.get(), read_chunk, 0);
        if (r > 0) {
            c.in.append(read_buf_.get(), static_cast<std::size_t>(r));
        } else {
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
            if (r < 0) {  // reset: nothing more can be said to it
                close_conn(c);
                return;
            }
            c.peer_closed = true;
        }
        process(c);
        mark_dirty(c);
    }

    void mark_dirty(conn& c) {
        if (c.dirty) return;
        c.dirty = true;
        dirty_.push_back(&c);
    }

    void flush_dirty() {
        // flush() may close a connection, which is then no longer in dirty_.
        for (std::size_t i = 0; i < dirty_.size(); ++i) {
            conn* c = dirty_[i];
            c->dirty = false;
            flush(*c);
        }
        dirty_.clear();
    }

    // Writes what the connection has to say. \returns false if the
    // connection was closed (and `c` destroyed).
    bool flush(conn& c) {
        while (c.out_pos < c.out.size()) {
            const ssize_t n = ::send(c.fd, c.out.data() + c.out_pos, c.out.size() - c.out_pos, MSG_NOSIGNAL);
            if (n > 0) {
                c.out_pos += static_cast<std::size_t>(n);
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
            close_conn(c);
            return false;
        }
        if (c.out_pos == c.out.size()) {
            const bool was_full = c.out.size() >= output_cap;
            c.out.clear();
            c.out_pos = 0;
            if (was_full && !c.closing) process(c);  // commands held back by a full output
            if (c.out_pos < c.out.size()) return flush(c);
            if (c.closing) {
                close_conn(c);
                return false;
            }
        }
        update_events(c);
        return true;
    }

    // ------------------------------------------------------- connections

    void close_conn(conn& c) {
        if (c.fd < 0) return;
        if (c.ph == phase::waiting) unwait(c);
        for (auto& [id, j] : c.held) j.abandon();  // back to ready, as beanstalkd does
        c.held.clear();
        c.consumer.reset();
        if (c.producer) --producers_;
        if (c.worker) --workers_;
        --c.use->using_count;
        std::vector<tube*> left = std::move(c.watch);
        for (tube* t : left) --t->watching;
        if (std::find(left.begin(), left.end(), c.use) == left.end()) left.push_back(c.use);
        for (tube* t : left) unreferenced(t);  // each once: it may be destroyed
        ::epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
        ::close(c.fd);
        if (opts_.verbose) std::fprintf(stderr, "conq-beanstalkd: connection %llu closed\n",
                                        static_cast<unsigned long long>(c.serial));
        const int fd = std::exchange(c.fd, -1);
        if (c.dirty) std::erase(dirty_, &c);
        conns_.erase(fd);  // destroys c
    }

    // Answers every complete command in the input, in order, until one
    // waits (a reserve, a body not fully read) or the output is full.
    void process(conn& c) {
        while (c.fd >= 0 && !c.closing && c.ph != phase::waiting && c.out.size() < output_cap) {
            const std::string_view avail(c.in.data() + c.in_pos, c.in.size() - c.in_pos);
            if (c.ph == phase::body) {
                if (avail.size() < std::size_t{c.put_bytes} + 2) break;
                finish_put(c, avail.substr(0, c.put_bytes), avail.substr(c.put_bytes, 2));
                c.in_pos += std::size_t{c.put_bytes} + 2;
                c.ph = phase::command;
                continue;
            }
            if (c.ph == phase::discard) {
                const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(c.discard_left, avail.size()));
                c.in_pos += n;
                c.discard_left -= n;
                if (c.discard_left != 0) break;
                reply(c, "JOB_TOO_BIG\r\n");
                c.ph = phase::command;
                continue;
            }
            const line_scan s = scan_line(avail);
            if (s.what == line_scan::kind::incomplete) break;
            if (s.what == line_scan::kind::overlong) {
                c.in_pos += s.consumed;
                c.ph = phase::overlong;
                continue;
            }
            if (c.ph == phase::overlong) {
                c.in_pos += s.consumed;
                c.ph = phase::command;
                reply(c, "BAD_FORMAT\r\n");
                continue;
            }
            const std::string_view line = avail.substr(0, s.length);
            if (opts_.verbose >= 2)
                std::fprintf(stderr, "conq-beanstalkd: %llu <%.*s>\n", static_cast<unsigned long long>(c.serial),
                             static_cast<int>(line.size()), line.data());
            // The line stays in c.in while the command runs (the tube name
            // points into it); only in_pos moves.
            execute(c, parse(line));
            c.in_pos += s.consumed;
        }
        if (c.fd < 0) return;
        if (c.in_pos == c.in.size()) {
            c.in.clear();
            c.in_pos = 0;
        } else if (c.in_pos >= read_chunk) {
            c.in.erase(0, c.in_pos);
            c.in_pos = 0;
        }
        if (c.peer_closed && !c.closing) {
            // beanstalkd answers a reserve waiting on a half-closed
            // connection TIMED_OUT; whatever else was sent is answered,
            // then the connection closes.
            if (c.ph == phase::waiting) {
                unwait(c);
                reply(c, "TIMED_OUT\r\n");
                return process(c);
            }
            c.closing = true;
        }
    }

    static void reply(conn& c, std::string_view s) { c.out.append(s); }

    template <class... Numbers>
    static void reply_line(conn& c, std::string_view word, Numbers... n) {
        c.out.append(word);
        char buf[24];
        ((c.out.push_back(' '), c.out.append(buf, std::to_chars(buf, buf + sizeof buf, n).ptr)), ...);
        c.out.append("\r\n");
    }

    static void reply_job(conn& c, std::string_view word, job_id id, const std::string& body) {
        reply_line(c, word, id, body.size());
        c.out.append(body);
        c.out.append("\r\n");
    }

    // ----------------------------------------------------------- commands

    void count(op o) { ++op_counts_[static_cast<std::size_t>(o)]; }

    void execute(conn& c, const command& cmd) {
        if (cmd.result == command::status::unknown_command) return reply(c, "UNKNOWN_COMMAND\r\n");
        if (cmd.result == command::status::bad_format) return reply(c, "BAD_FORMAT\r\n");
        count(cmd.verb);
        if (cmd.late_bad_format && cmd.verb != op::put) return reply(c, "BAD_FORMAT\r\n");
        try {
            run_command(c, cmd);
        } catch (const broker_error& e) {
            // The work queues were closed or failed under a command that
            // had no protocol error of its own.
            std::fprintf(stderr, "conq-beanstalkd: %s\n", e.what());
            reply(c, "INTERNAL_ERROR\r\n");
        } catch (const durable_error& e) {
            std::fprintf(stderr, "conq-beanstalkd: %s\n", e.what());
            reply(c, "INTERNAL_ERROR\r\n");
        } catch (const std::bad_alloc&) {
            reply(c, "OUT_OF_MEMORY\r\n");
        }
    }

    static bool is(const broker_error& e, broker_errc code) noexcept { return e.code() == code; }

    void run_command(conn& c, const command& cmd) {
        switch (cmd.verb) {
        case op::put:
            if (cmd.bytes > opts_.max_job_size) {
                c.ph = phase::discard;  // read the body, then JOB_TOO_BIG
                c.discard_left = std::uint64_t{cmd.bytes} + 2;
                return;
            }
            if (cmd.late_bad_format) return reply(c, "BAD_FORMAT\r\n");
            if (!c.producer) {
                c.producer = true;
                ++producers_;
            }
            c.put_priority = cmd.priority, c.put_delay = cmd.delay, c.put_ttr = cmd.ttr, c.put_bytes = cmd.bytes;
            c.ph = phase::body;
            return;
        case op::reserve:
        case op::reserve_with_timeout: return start_reserve(c, cmd.verb == op::reserve ? -1 : cmd.timeout);
        case op::reserve_job:
            set_worker(c);
            try {
                grant(c, c.consumer->reserve_job(cmd.id));
            } catch (const broker_error& e) {
                if (!is(e, broker_errc::unknown_job)) throw;
                reply(c, "NOT_FOUND\r\n");
            }
            return;
        case op::remove: return remove(c, cmd.id);
        case op::release:
            return decide(c, cmd.id, "RELEASED\r\n", [&](job_queues::job& j) {
                j.release(cmd.priority, std::chrono::seconds(cmd.delay));
            });
        case op::bury:
            return decide(c, cmd.id, "BURIED\r\n", [&](job_queues::job& j) { j.bury(cmd.priority); });
        case op::touch: {
            const auto it = c.held.find(cmd.id);
            if (it != c.held.end()) {
                try {
                    it->second.touch();
                    return reply(c, "TOUCHED\r\n");
                } catch (const broker_error& e) {
                    if (!is(e, broker_errc::not_reserved)) throw;
                    c.held.erase(it);
                }
            }
            return reply(c, "NOT_FOUND\r\n");
        }
        case op::peek:
            try {
                const auto info = wq_.peek(cmd.id);
                reply_job(c, "FOUND", info.id, *info.payload);
            } catch (const broker_error& e) {
                if (!is(e, broker_errc::unknown_job)) throw;
                reply(c, "NOT_FOUND\r\n");
            }
            return;
        case op::peek_ready: return reply_peek(c, wq_.peek_ready(c.use->name));
        case op::peek_delayed: return reply_peek(c, wq_.peek_delayed(c.use->name));
        case op::peek_buried: return reply_peek(c, wq_.peek_buried(c.use->name));
        case op::kick: return reply_line(c, "KICKED", wq_.kick(c.use->name, cmd.bound));
        case op::kick_job:
            try {
                wq_.kick_job(cmd.id);
                reply(c, "KICKED\r\n");
            } catch (const broker_error& e) {
                if (!is(e, broker_errc::unknown_job)) throw;
                reply(c, "NOT_FOUND\r\n");
            }
            return;
        case op::stats_job:
            try {
                reply_yaml(c, job_yaml(wq_.peek(cmd.id)));
            } catch (const broker_error& e) {
                if (!is(e, broker_errc::unknown_job)) throw;
                reply(c, "NOT_FOUND\r\n");
            }
            return;
        case op::stats_tube: {
            const auto it = tube_by_name_.find(cmd.tube);
            if (it == tube_by_name_.end()) return reply(c, "NOT_FOUND\r\n");
            return reply_yaml(c, tube_yaml(*it->second));
        }
        case op::stats: return reply_yaml(c, stats_yaml());
        case op::use: {
            tube* t = find_or_make_tube(cmd.tube);
            wq_.open_queue(cmd.tube);
            ++t->using_count;
            tube* old = std::exchange(c.use, t);
            --old->using_count;
            unreferenced(old);
            c.out.append("USING ").append(t->name).append("\r\n");
            return;
        }
        case op::watch: {
            tube* t = find_or_make_tube(cmd.tube);
            if (std::find(c.watch.begin(), c.watch.end(), t) == c.watch.end()) {
                c.consumer->watch(cmd.tube);
                c.watch.push_back(t);
                ++t->watching;
            }
            return reply_line(c, "WATCHING", c.watch.size());
        }
        case op::ignore: {
            const auto it = std::find_if(c.watch.begin(), c.watch.end(), [&](tube* t) { return t->name == cmd.tube; });
            if (it != c.watch.end()) {
                if (c.watch.size() < 2) return reply(c, "NOT_IGNORED\r\n");
                tube* t = *it;
                *it = c.watch.back();
                c.watch.pop_back();
                c.consumer->ignore(cmd.tube);
                --t->watching;
                unreferenced(t);
            }
            return reply_line(c, "WATCHING", c.watch.size());
        }
        case op::list_tubes: return reply_yaml(c, list_yaml(tubes_));
        case op::list_tube_used: c.out.append("USING ").append(c.use->name).append("\r\n"); return;
        case op::list_tubes_watched: return reply_yaml(c, list_yaml(c.watch));
        case op::pause_tube: {
            const auto it = tube_by_name_.find(cmd.tube);
            if (it == tube_by_name_.end()) return reply(c, "NOT_FOUND\r\n");
            // beanstalkd pauses for at least a nanosecond.
            wq_.pause(cmd.tube, cmd.delay ? std::chrono::nanoseconds(std::chrono::seconds(cmd.delay))
                                          : std::chrono::nanoseconds(1));
            return reply(c, "PAUSED\r\n");
        }
        case op::quit: c.closing = true; return;
        case op::unknown: return reply(c, "UNKNOWN_COMMAND\r\n");
        }
    }

    void finish_put(conn& c, std::string_view body, std::string_view crlf) {
        // beanstalkd numbers the job when it reads the header, so a job
        // refused after its body still uses up an id.
        if (crlf != "\r\n") {
            wq_.skip_id();
            return reply(c, "EXPECTED_CRLF\r\n");
        }
        if (draining_) {
            wq_.skip_id();
            return reply(c, "DRAINING\r\n");
        }
        put_options o;
        o.priority = c.put_priority;
        o.delay = std::chrono::seconds(c.put_delay);
        o.ttr = std::chrono::seconds(std::max<std::uint32_t>(c.put_ttr, 1));  // beanstalkd: ttr 0 is 1
        try {
            reply_line(c, "INSERTED", wq_.put(c.use->name, std::string(body), o));
        } catch (const broker_error& e) {
            if (is(e, broker_errc::draining)) {
                wq_.skip_id();
                return reply(c, "DRAINING\r\n");
            }
            std::fprintf(stderr, "conq-beanstalkd: put: %s\n", e.what());
            reply(c, "INTERNAL_ERROR\r\n");
        } catch (const durable_error& e) {
            std::fprintf(stderr, "conq-beanstalkd: put: %s\n", e.what());
            reply(c, "INTERNAL_ERROR\r\n");
        }
    }

    // -------------------------------------------------------- reserving

    void set_worker(conn& c) {
        if (!c.worker) {
            c.worker = true;
            ++workers_;
        }
    }

    void start_reserve(conn& c, std::int32_t timeout_s) {
        set_worker(c);
        // Reserves that waited longer go first.
        serve_waiters();
        auto r = c.consumer->poll_reserve();
        switch (r.status) {
        case reserve_status::reserved: return grant(c, std::move(*r.value));
        case reserve_status::deadline_soon: return reply(c, "DEADLINE_SOON\r\n");
        case reserve_status::closed: return reply(c, "INTERNAL_ERROR\r\n");
        case reserve_status::timed_out: break;
        }
        if (timeout_s == 0) return reply(c, "TIMED_OUT\r\n");
        c.wait_until = timeout_s < 0 ? forever : now_ns() + std::int64_t{timeout_s} * 1'000'000'000;
        c.ph = phase::waiting;
        c.wprev = waiting_tail_;
        c.wnext = nullptr;
        if (waiting_tail_) waiting_tail_->wnext = &c;
        else waiting_head_ = &c;
        waiting_tail_ = &c;
        ++waiting_count_;
        for (tube* t : c.watch) ++t->waiting;
    }

    void unwait(conn& c) {
        if (c.wprev) c.wprev->wnext = c.wnext;
        else waiting_head_ = c.wnext;
        if (c.wnext) c.wnext->wprev = c.wprev;
        else waiting_tail_ = c.wprev;
        c.wprev = c.wnext = nullptr;
        --waiting_count_;
        for (tube* t : c.watch) --t->waiting;
        c.ph = phase::command;
    }

    void grant(conn& c, job_queues::job j) {
        const job_id id = j.id();
        reply_job(c, "RESERVED", id, j.payload());
        if (c.held.size() >= 64 && (c.held.size() & (c.held.size() - 1)) == 0)
            std::erase_if(c.held, [](const auto& kv) { return !kv.second.held(); });  // lost to time-to-run
        c.held.insert_or_assign(id, std::move(j));
    }

    // Gives the waiting reserves, longest waiting first, what became ready,
    // DEADLINE_SOON or TIMED_OUT.
    void serve_waiters() {
        if (!waiting_head_) {
            changed_.store(false, std::memory_order_relaxed);
            return;
        }
        if (serving_) return;  // a reserve among the commands of a waiter just served
        const bool changed = changed_.exchange(false, std::memory_order_acq_rel);
        if (!changed && now_ns() < next_check_) return;
        serving_ = true;
        conn* const last = waiting_tail_;
        for (conn* c = waiting_head_; c;) {
            conn* next = c == last ? nullptr : c->wnext;
            auto r = c->consumer->poll_reserve();
            bool done = true;
            switch (r.status) {
            case reserve_status::reserved:
                unwait(*c);
                grant(*c, std::move(*r.value));
                break;
            case reserve_status::deadline_soon:
                unwait(*c);
                reply(*c, "DEADLINE_SOON\r\n");
                break;
            case reserve_status::timed_out:
            case reserve_status::closed:
                if (now_ns() >= c->wait_until || r.status == reserve_status::closed) {
                    unwait(*c);
                    reply(*c, "TIMED_OUT\r\n");
                } else {
                    done = false;
                }
                break;
            }
            if (done) {
                process(*c);  // the commands it sent after the reserve
                if (c->fd >= 0) mark_dirty(*c);
            }
            c = next;
        }
        serving_ = false;
    }

    // ------------------------------------------------- deciding on jobs

    template <class F>
    void decide(conn& c, job_id id, std::string_view ok, F&& f) {
        const auto it = c.held.find(id);
        if (it == c.held.end()) return reply(c, "NOT_FOUND\r\n");
        try {
            f(it->second);
        } catch (const broker_error& e) {
            if (!is(e, broker_errc::not_reserved)) throw;
            c.held.erase(it);  // its time-to-run ran out
            return reply(c, "NOT_FOUND\r\n");
        }
        c.held.erase(it);
        reply(c, ok);
    }

    // delete: a job this connection reserved, or any ready, delayed or
    // buried one.
    void remove(conn& c, job_id id) {
        std::string queue;
        if (const auto it = c.held.find(id); it != c.held.end()) {
            if (orphans_) queue = it->second.queue();
            try {
                it->second.remove();
                c.held.erase(it);
                reply(c, "DELETED\r\n");
                return left_tube(queue);
            } catch (const broker_error& e) {
                if (!is(e, broker_errc::not_reserved)) throw;
                c.held.erase(it);
            }
        }
        try {
            if (orphans_) queue = wq_.peek(id).queue;
            wq_.remove(id);
        } catch (const broker_error& e) {
            if (!is(e, broker_errc::unknown_job)) throw;
            return reply(c, "NOT_FOUND\r\n");
        }
        reply(c, "DELETED\r\n");
        left_tube(queue);
    }

    // A job left `queue`: an unreferenced tube goes with its last job.
    void left_tube(const std::string& queue) {
        if (queue.empty()) return;
        const auto it = tube_by_name_.find(queue);
        if (it != tube_by_name_.end() && it->second->orphan) unreferenced(it->second.get());
    }

    // ------------------------------------------------------------ tubes

    tube* make_tube(std::string_view name) {
        auto t = std::make_unique<tube>();
        t->name.assign(name);
        t->index = tubes_.size();
        tube* p = t.get();
        tubes_.push_back(p);
        tube_by_name_.emplace(t->name, std::move(t));
        return p;
    }
    tube* find_or_make_tube(std::string_view name) {
        const auto it = tube_by_name_.find(name);
        if (it == tube_by_name_.end()) return make_tube(name);
        tube* t = it->second.get();
        if (t->orphan) {
            t->orphan = false;
            --orphans_;
        }
        return t;
    }
    // A tube may have lost its last reference: drop it if it holds no job
    // (the work queues decide, other users of them included), else keep it
    // as an orphan until its last job is deleted.
    void unreferenced(tube* t) {
        if (t->referenced()) return;
        if (!wq_.drop_queue(t->name) && wq_.stats(t->name)) {
            if (!t->orphan) {
                t->orphan = true;
                ++orphans_;
            }
            return;
        }
        if (t->orphan) --orphans_;
        // beanstalkd's set removal: the last tube moves into the hole.
        tube* last = tubes_.back();
        tubes_[t->index] = last;
        last->index = t->index;
        tubes_.pop_back();
        const std::string name = t->name;
        tube_by_name_.erase(name);
    }

    // ------------------------------------------------------------- YAML

    template <class T>
    static void put_field(std::string& y, std::string_view key, const T& v) {
        y.append(key).append(": ");
        if constexpr (std::is_convertible_v<const T&, std::string_view>) {
            y.append(std::string_view(v));
        } else {
            char buf[24];
            y.append(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
        }
        y.push_back('\n');
    }
    static std::int64_t seconds(std::chrono::nanoseconds d) noexcept { return d.count() / 1'000'000'000; }

    static void reply_yaml(conn& c, const std::string& y) {
        reply_line(c, "OK", y.size());
        c.out.append(y);
        c.out.append("\r\n");
    }

    static std::string job_yaml(const job_info<std::string>& j) {
        std::string y = "---\n";
        put_field(y, "id", j.id);
        put_field(y, "tube", j.queue);
        put_field(y, "state", to_string(j.state));
        put_field(y, "pri", j.priority);
        put_field(y, "age", seconds(j.age));
        put_field(y, "delay", seconds(j.delay));
        put_field(y, "ttr", seconds(j.ttr));
        put_field(y, "time-left", seconds(j.time_left));
        put_field(y, "file", 0);
        put_field(y, "reserves", j.reserves);
        put_field(y, "timeouts", j.timeouts);
        put_field(y, "releases", j.releases);
        put_field(y, "buries", j.buries);
        put_field(y, "kicks", j.kicks);
        return y;
    }

    std::string tube_yaml(const tube& t) const {
        const queue_stats s = wq_.stats(t.name).value_or(queue_stats{});
        std::string y = "---\n";
        put_field(y, "name", t.name);
        put_field(y, "current-jobs-urgent", s.urgent);
        put_field(y, "current-jobs-ready", s.ready);
        put_field(y, "current-jobs-reserved", s.reserved);
        put_field(y, "current-jobs-delayed", s.delayed);
        put_field(y, "current-jobs-buried", s.buried);
        put_field(y, "total-jobs", s.total_jobs);
        put_field(y, "current-using", t.using_count);
        put_field(y, "current-watching", s.watchers);
        put_field(y, "current-waiting", t.waiting + s.waiting);
        put_field(y, "cmd-delete", s.deletes);
        put_field(y, "cmd-pause-tube", s.pauses);
        put_field(y, "pause", seconds(s.pause));
        put_field(y, "pause-time-left", seconds(s.pause_left));
        return y;
    }

    template <class List>
    static std::string list_yaml(const List& tubes) {
        std::string y = "---\n";
        for (const tube* t : tubes) y.append("- ").append(t->name).push_back('\n');
        return y;
    }

    std::string stats_yaml() const {
        const work_stats s = wq_.stats();
        const auto n = [this](op o) { return op_counts_[static_cast<std::size_t>(o)]; };
        std::string y = "---\n";
        put_field(y, "current-jobs-urgent", s.urgent);
        put_field(y, "current-jobs-ready", s.ready);
        put_field(y, "current-jobs-reserved", s.reserved);
        put_field(y, "current-jobs-delayed", s.delayed);
        put_field(y, "current-jobs-buried", s.buried);
        put_field(y, "cmd-put", n(op::put));
        put_field(y, "cmd-peek", n(op::peek));
        put_field(y, "cmd-peek-ready", n(op::peek_ready));
        put_field(y, "cmd-peek-delayed", n(op::peek_delayed));
        put_field(y, "cmd-peek-buried", n(op::peek_buried));
        put_field(y, "cmd-reserve", n(op::reserve));
        put_field(y, "cmd-reserve-with-timeout", n(op::reserve_with_timeout));
        put_field(y, "cmd-delete", n(op::remove));
        put_field(y, "cmd-release", n(op::release));
        put_field(y, "cmd-use", n(op::use));
        put_field(y, "cmd-watch", n(op::watch));
        put_field(y, "cmd-ignore", n(op::ignore));
        put_field(y, "cmd-bury", n(op::bury));
        put_field(y, "cmd-kick", n(op::kick));
        put_field(y, "cmd-touch", n(op::touch));
        put_field(y, "cmd-stats", n(op::stats));
        put_field(y, "cmd-stats-job", n(op::stats_job));
        put_field(y, "cmd-stats-tube", n(op::stats_tube));
        put_field(y, "cmd-list-tubes", n(op::list_tubes));
        put_field(y, "cmd-list-tube-used", n(op::list_tube_used));
        put_field(y, "cmd-list-tubes-watched", n(op::list_tubes_watched));
        put_field(y, "cmd-pause-tube", n(op::pause_tube));
        put_field(y, "job-timeouts", s.timeouts);
        put_field(y, "total-jobs", s.total_jobs);
        put_field(y, "max-job-size", opts_.max_job_size);
        put_field(y, "current-tubes", tubes_.size());
        put_field(y, "current-connections", conns_.size());
        put_field(y, "current-producers", producers_);
        put_field(y, "current-workers", workers_);
        put_field(y, "current-waiting", waiting_count_);
        put_field(y, "total-connections", total_connections_);
        put_field(y, "pid", static_cast<long>(::getpid()));
        put_field(y, "version", "\"conq " + std::to_string(version_major) + "." + std::to_string(version_minor) +
                                    "." + std::to_string(version_patch) + "\"");
        rusage ru{};
        ::getrusage(RUSAGE_SELF, &ru);
        char t[64];
        std::snprintf(t, sizeof t, "%ld.%06ld", static_cast<long>(ru.ru_utime.tv_sec),
                      static_cast<long>(ru.ru_utime.tv_usec));
        put_field(y, "rusage-utime", std::string_view(t));
        std::snprintf(t, sizeof t, "%ld.%06ld", static_cast<long>(ru.ru_stime.tv_sec),
                      static_cast<long>(ru.ru_stime.tv_usec));
        put_field(y, "rusage-stime", std::string_view(t));
        put_field(y, "uptime",
                  std::chrono::duration_cast<std::chrono::seconds>(clock::now() - started_).count());
        put_field(y, "binlog-oldest-index", 0);
        put_field(y, "binlog-current-index", 0);
        put_field(y, "binlog-records-migrated", 0);
        put_field(y, "binlog-records-written", 0);
        put_field(y, "binlog-max-size", opts_.binlog_max_size);
        put_field(y, "draining", draining_ ? "true" : "false");
        put_field(y, "id", id_);
        utsname u{};
        ::uname(&u);
        put_field(y, "hostname", std::string_view(u.nodename));
        put_field(y, "os", std::string_view(u.version));
        put_field(y, "platform", std::string_view(u.machine));
        return y;
    }

    void reply_peek(conn& c, const std::optional<job_info<std::string>>& j) {
        if (!j) return reply(c, "NOT_FOUND\r\n");
        reply_job(c, "FOUND", j->id, *j->payload);
    }

    // ------------------------------------------------------------- data

    job_queues& wq_;
    server_options opts_;
    int ep_ = -1, wake_fd_ = -1, listen_fd_ = -1, signal_fd_ = -1;
    std::uint16_t port_ = 0;
    char wake_tag_ = 0, listen_tag_ = 0, signal_tag_ = 0;  // epoll data for the non-connection fds
    epoll_event events_[max_events];
    std::unique_ptr<char[]> read_buf_ = std::make_unique<char[]>(read_chunk);
    std::atomic<bool> stop_{false};
    std::atomic<bool> sleeping_{false};
    std::atomic<bool> changed_{false};
    bool draining_ = false;
    bool serving_ = false;
    bool busy_ = false;
    std::int64_t next_check_ = 0;

    std::unordered_map<int, std::unique_ptr<conn>> conns_;
    std::vector<conn*> dirty_;
    conn* waiting_head_ = nullptr;
    conn* waiting_tail_ = nullptr;
    std::size_t waiting_count_ = 0;

    struct string_hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
    };
    std::unordered_map<std::string, std::unique_ptr<tube>, string_hash, std::equal_to<>> tube_by_name_;
    std::vector<tube*> tubes_;
    std::size_t orphans_ = 0;

    std::uint64_t op_counts_[op_count] = {};
    std::size_t producers_ = 0, workers_ = 0;
    std::uint64_t total_connections_ = 0;
    clock::time_point started_;
    std::string id_;
};

}  // namespace conq::beanstalk

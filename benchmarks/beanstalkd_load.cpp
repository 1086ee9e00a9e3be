// benchmarks/beanstalkd_load.cpp
//
// conq_beanstalkd_load: a load generator for servers that speak the beanstalk
// protocol (beanstalkd itself, conq-beanstalkd). It measures one load per run
// and prints one result, as text or as one JSON object (--json);
// scripts/bench-beanstalkd.sh runs it against both servers in turn.
//
// It is built to cost the server as little CPU as possible on a small machine:
// one thread drives every connection with non-blocking sockets and epoll; each
// connection is a small state machine; replies are parsed as they arrive,
// lines and bodies, and every reply is checked (anything unexpected ends the
// program with status 1 and the reply quoted). Commands produced while
// handling one batch of replies leave in one send() per connection; each
// wake-up costs one epoll_wait(), then one recv() per ready connection.
// Its CPU time and, with --server-pid, the server's are reported per
// operation, so a client that became the bottleneck shows.
//
// Loads (each on its own tube, `conq-load.<pid>.<load>` unless --tube is
// given, so that jobs left by an earlier run cannot interfere):
//
//   cycle     --conns connections (default 1), each doing put, reserve,
//             delete, one command at a time; rate in cycles/s, latency of a
//             whole cycle.
//   many      --producers connections (default 4) putting one job at a time
//             and --workers connections (default 4) reserving and deleting;
//             producers stop at the total, so the tube drains; rate in jobs
//             deleted per second, latency of put, reserve and delete round
//             trips (a reserve waits while the tube is empty).
//   pipeline  --conns connections (default 1), each sending --depth puts
//             (default 100) in one write and then reading the replies; rate in
//             puts/s, latency of a whole batch. The jobs are then reserved and
//             deleted, 1000 reserves per write and then their deletes, not
//             timed. Since every put stays in the server until then, a run
//             is kept under --max-queued MiB of jobs (default 1024).
//
// Each run starts with a warm-up (--warmup operations: cycles, jobs or puts)
// on the same connections, without a gap: the clock starts when the warm-up's
// last operation completes, and only operations sent after that are sampled.
// With --seconds the run lasts that long after the warm-up instead of
// --jobs operations (in `many`, producers stop then and the tube drains).
//
// Usage: conq_beanstalkd_load --port=11300 --load=cycle [--json] [...]
//        (--help lists every option)
#include "bench_common.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <memory>
#include <optional>

namespace {

using conq_bench::cat;
using conq_bench::clock_type;
using time_point = clock_type::time_point;

/// The run failed (no server, an unexpected reply, a stall): status 1.
[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "%s: %s\n", conq_bench::program_name, what.c_str());
    std::exit(1);
}

std::string errno_text() {
    return std::strerror(errno);
}

// A reply or a line quoted in a message: printable ASCII, the rest escaped,
// at most 120 characters.
std::string quoted(std::string_view text) {
    std::string out = "\"";
    for (const char ch : text.substr(0, 120)) {
        if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\') {
            out.push_back(ch);
        } else {
            char hex[8];
            std::snprintf(hex, sizeof hex, "\\x%02x", static_cast<unsigned char>(ch));
            out.append(hex);
        }
    }
    if (text.size() > 120) out.append("...");
    out.push_back('"');
    return out;
}

// ------------------------------------------------------------------ options

enum class load_kind { cycle, many, pipeline };

const char* load_name(load_kind k) {
    switch (k) {
        case load_kind::cycle: return "cycle";
        case load_kind::many: return "many";
        case load_kind::pipeline: return "pipeline";
    }
    return "?";
}

struct options {
    std::string host = "127.0.0.1";
    std::string port = "11300";
    load_kind load = load_kind::cycle;
    std::string label = "server";
    std::string tube;
    std::uint64_t jobs = 0;  // operations measured; 0: the load's default
    double seconds = 0;      // > 0: measure for this long instead
    std::optional<std::uint64_t> warmup;
    std::uint64_t conns = 0;  // cycle, pipeline; 0: 1
    std::uint64_t producers = 4;
    std::uint64_t workers = 4;
    std::uint64_t depth = 100;
    std::uint64_t size = 16;
    std::uint64_t max_queued_mib = 1024;
    int server_pid = 0;
    int stall_s = 30;
    bool json = false;
    bool spin = false;  // poll epoll without sleeping
};

constexpr const char* usage_text =
    "usage: conq_beanstalkd_load [options]\n"
    "  --host=ADDR        server address (default 127.0.0.1)\n"
    "  --port=N           server port (default 11300)\n"
    "  --load=KIND        cycle | many | pipeline (default cycle)\n"
    "  --jobs=N           operations to measure: cycles, jobs or puts\n"
    "                     (defaults 20000, 200000, 300000)\n"
    "  --seconds=S        measure for S seconds instead of --jobs\n"
    "  --warmup=N         operations before the clock starts\n"
    "                     (defaults 1000, 10000, 20 batches)\n"
    "  --conns=N          connections of cycle and pipeline (default 1);\n"
    "                     for many, the producers and the workers each\n"
    "  --producers=N      many: producer connections (default 4)\n"
    "  --workers=N        many: worker connections (default 4)\n"
    "  --depth=N          pipeline: puts per write (default 100)\n"
    "  --size=N           job body bytes (default 16)\n"
    "  --tube=NAME        tube (default conq-load.<pid>.<load>)\n"
    "  --label=TEXT       the server's name in the result (default server)\n"
    "  --max-queued=MIB   pipeline: at most this much job data left in the\n"
    "                     server before the drain (default 1024; counted as\n"
    "                     --size + 256 bytes a job)\n"
    "  --server-pid=PID   also report the CPU time of that process\n"
    "  --stall=S          give up after S seconds without a reply (default 30)\n"
    "  --json             print the result as one JSON object\n"
    "  --spin             poll for replies without sleeping (the client then\n"
    "                     takes a whole CPU, but no wake-up costs)\n";

double parse_seconds(const std::string& text) {
    char* end = nullptr;
    const double v = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || !(v > 0) || v > 86400) {
        conq_bench::usage_error(
            cat("--seconds must be a number of seconds > 0 (got \"", text, "\")"));
    }
    return v;
}

/// The most jobs `pipeline` may leave in the server (see --max-queued).
std::uint64_t queued_cap(const options& o) {
    return (o.max_queued_mib << 20) / (o.size + 256);
}

options parse_options(int argc, char** argv) {
    options o;
    bool producers_set = false;
    bool workers_set = false;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--help" || arg == "-h") {
            std::fputs(usage_text, stdout);
            std::exit(0);
        }
        if (arg == "--json") {
            o.json = true;
            continue;
        }
        if (arg == "--spin") {
            o.spin = true;
            continue;
        }
        const auto eq = arg.find('=');
        if (!arg.starts_with("--") || eq == std::string::npos) {
            conq_bench::usage_error(cat("unknown argument ", arg, " (see --help)"));
        }
        const std::string key = arg.substr(2, eq - 2);
        const std::string value = arg.substr(eq + 1);
        auto count = [&](std::uint64_t min) {
            return conq_bench::parse_count(cat("--", key), value, min);
        };
        if (key == "host") {
            o.host = value;
        } else if (key == "port") {
            o.port = std::to_string(count(1));
        } else if (key == "load") {
            if (value == "cycle") {
                o.load = load_kind::cycle;
            } else if (value == "many") {
                o.load = load_kind::many;
            } else if (value == "pipeline") {
                o.load = load_kind::pipeline;
            } else {
                conq_bench::usage_error(
                    cat("--load must be cycle, many or pipeline (got \"", value, "\")"));
            }
        } else if (key == "jobs") {
            o.jobs = count(1);
        } else if (key == "seconds") {
            o.seconds = parse_seconds(value);
        } else if (key == "warmup") {
            o.warmup = count(0);
        } else if (key == "conns") {
            o.conns = count(1);
        } else if (key == "producers") {
            o.producers = count(1);
            producers_set = true;
        } else if (key == "workers") {
            o.workers = count(1);
            workers_set = true;
        } else if (key == "depth") {
            o.depth = count(1);
        } else if (key == "size") {
            o.size = count(0);
        } else if (key == "tube") {
            o.tube = value;
        } else if (key == "label") {
            o.label = value;
        } else if (key == "max-queued") {
            o.max_queued_mib = count(1);
        } else if (key == "server-pid") {
            o.server_pid = static_cast<int>(count(1));
        } else if (key == "stall") {
            o.stall_s = static_cast<int>(count(1));
        } else {
            conq_bench::usage_error(cat("unknown option --", key, " (see --help)"));
        }
    }
    if (o.load == load_kind::many && o.conns != 0) {
        if (!producers_set) o.producers = o.conns;
        if (!workers_set) o.workers = o.conns;
    }
    if (o.conns == 0) o.conns = 1;
    if (o.jobs == 0) {
        o.jobs = o.load == load_kind::cycle  ? 20'000
                 : o.load == load_kind::many ? 200'000
                                             : 300'000;
    }
    if (!o.warmup) {
        o.warmup = o.load == load_kind::cycle  ? 1'000
                   : o.load == load_kind::many ? 10'000
                                               : 20 * o.depth;
    }
    if (o.tube.empty())
        o.tube = cat("conq-load.", std::to_string(::getpid()), ".", load_name(o.load));
    if (o.tube.size() > 200 || o.tube.find_first_of(" \t\r\n") != std::string::npos ||
        o.tube[0] == '-' || o.tube == "default") {
        conq_bench::usage_error(
            "--tube must be a beanstalk name other than default: at most 200 bytes, "
            "no spaces, not starting with a hyphen");
    }
    // Every put of `pipeline` stays in the server until the drain: refuse a
    // run that would pile up more than --max-queued (a server that runs out
    // of memory takes the machine with it), and cut a --seconds run there.
    if (o.load == load_kind::pipeline && o.seconds == 0 &&
        (*o.warmup + o.jobs + o.conns * o.depth) > queued_cap(o)) {
        conq_bench::usage_error(
            cat("--warmup + --jobs would leave more than --max-queued=",
                std::to_string(o.max_queued_mib), " MiB of jobs in the server (at most ",
                std::to_string(queued_cap(o)), " jobs of ", std::to_string(o.size),
                " bytes); lower them or raise --max-queued"));
    }
    if (o.conns > 10'000 || o.producers > 10'000 || o.workers > 10'000) {
        conq_bench::usage_error("at most 10000 connections of each kind");
    }
    return o;
}

// ------------------------------------------------------------------ replies

enum class reply_kind : std::uint8_t {
    inserted,
    reserved,
    deleted,
    using_tube,
    watching,
    timed_out
};

/// One parsed reply. `text` is the job body (RESERVED) or the tube name
/// (USING); it points into the connection's buffer and stays valid until
/// the next read.
struct reply {
    reply_kind kind{};
    std::uint64_t number = 0;  // job id (INSERTED, RESERVED) or count (WATCHING)
    std::string_view text;
};

bool parse_number(std::string_view text, std::uint64_t& out) {
    if (text.empty()) return false;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc() && end == text.data() + text.size();
}

// -------------------------------------------------------------- connection

/// One client connection: a byte buffer each way and the reply parser.
/// Sending and receiving never block (after setup()).
class connection {
public:
    connection(int index, std::string name, int fd)
        : index_(index), name_(std::move(name)), fd_(fd) {
        in_.resize(64 * 1024);
    }
    ~connection() { ::close(fd_); }
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    int index() const noexcept { return index_; }
    int fd() const noexcept { return fd_; }
    const std::string& name() const noexcept { return name_; }
    std::uint64_t recvs() const noexcept { return recvs_; }
    std::uint64_t sends() const noexcept { return sends_; }
    std::uint64_t replies() const noexcept { return replies_; }

    [[noreturn]] void fail(const std::string& what) const { die(cat(name_, ": ", what)); }

    void queue(std::string_view bytes) { out_.append(bytes); }

    /// Sends what is queued; returns true when some is left for later (the
    /// socket buffer is full: wait until it is writable).
    bool flush() {
        while (out_sent_ < out_.size()) {
            const ssize_t n =
                ::send(fd_, out_.data() + out_sent_, out_.size() - out_sent_, MSG_NOSIGNAL);
            if (n > 0) {
                out_sent_ += static_cast<std::size_t>(n);
                ++sends_;
            } else if (n < 0 && errno == EINTR) {
                continue;
            } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                return true;
            } else {
                fail(cat("send: ", errno_text()));
            }
        }
        out_.clear();
        out_sent_ = 0;
        return false;
    }

    /// One recv() into the buffer (growing it when a body needs more room).
    void fill() {
        if (in_begin_ == in_end_) {
            in_begin_ = in_end_ = 0;
        } else if (in_.size() - in_end_ < 4096 && in_begin_ > 0) {
            std::memmove(in_.data(), in_.data() + in_begin_, in_end_ - in_begin_);
            in_end_ -= in_begin_;
            in_begin_ = 0;
        }
        if (in_.size() - in_end_ < 4096) in_.resize(in_.size() * 2);
        const ssize_t n = ::recv(fd_, in_.data() + in_end_, in_.size() - in_end_, 0);
        if (n > 0) {
            in_end_ += static_cast<std::size_t>(n);
            ++recvs_;
        } else if (n == 0) {
            fail("the server closed the connection");
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            fail(cat("recv: ", errno_text()));
        }
    }

    /// Parses the next complete reply; false when more bytes are needed.
    /// Ends the program on a reply this load never expects (NOT_FOUND,
    /// BURIED, OUT_OF_MEMORY, BAD_FORMAT, ...).
    bool next(reply& r) {
        const char* p = in_.data() + in_begin_;
        const std::size_t avail = in_end_ - in_begin_;
        const void* nl = std::memchr(p, '\n', avail);
        if (nl == nullptr) {
            if (avail > 1024) fail(cat("reply line longer than 1024 bytes: ", quoted({p, avail})));
            return false;
        }
        const std::size_t line_len = static_cast<std::size_t>(static_cast<const char*>(nl) - p) + 1;
        if (line_len < 2 || p[line_len - 2] != '\r') {
            fail(cat("reply line not ended by \\r\\n: ", quoted({p, line_len})));
        }
        const std::string_view line(p, line_len - 2);
        std::size_t consumed = line_len;
        auto arg = [&](std::string_view word) { return line.substr(word.size()); };
        if (line.starts_with("INSERTED ")) {
            r.kind = reply_kind::inserted;
            if (!parse_number(arg("INSERTED "), r.number)) fail(cat("bad reply ", quoted(line)));
        } else if (line.starts_with("RESERVED ")) {
            const std::string_view rest = arg("RESERVED ");
            const auto space = rest.find(' ');
            std::uint64_t bytes = 0;
            if (space == std::string_view::npos || !parse_number(rest.substr(0, space), r.number) ||
                !parse_number(rest.substr(space + 1), bytes) || bytes > (std::uint64_t{1} << 31)) {
                fail(cat("bad reply ", quoted(line)));
            }
            if (avail < line_len + bytes + 2) return false;  // the body is still on its way
            const char* body = p + line_len;
            if (body[bytes] != '\r' || body[bytes + 1] != '\n') {
                fail(cat("job body not followed by \\r\\n after ", quoted(line)));
            }
            r.kind = reply_kind::reserved;
            r.text = std::string_view(body, bytes);
            consumed += bytes + 2;
        } else if (line == "DELETED") {
            r.kind = reply_kind::deleted;
        } else if (line.starts_with("USING ")) {
            r.kind = reply_kind::using_tube;
            r.text = arg("USING ");
        } else if (line.starts_with("WATCHING ")) {
            r.kind = reply_kind::watching;
            if (!parse_number(arg("WATCHING "), r.number)) fail(cat("bad reply ", quoted(line)));
        } else if (line == "TIMED_OUT") {
            r.kind = reply_kind::timed_out;
        } else {
            fail(cat("unexpected reply ", quoted(line)));
        }
        in_begin_ += consumed;
        ++replies_;
        return true;
    }

    /// Blocking: makes `tube` the one used and the only one watched, checks
    /// the three replies, then turns the socket non-blocking.
    void setup(const std::string& tube) {
        queue(cat("use ", tube, "\r\nwatch ", tube, "\r\nignore default\r\n"));
        if (flush()) fail("setup commands did not fit the socket buffer");
        reply r;
        int step = 0;
        while (step < 3) {
            fill();
            while (step < 3 && next(r)) {
                if (step == 0 && (r.kind != reply_kind::using_tube || r.text != tube)) {
                    fail(cat("expected USING ", tube, " after use"));
                }
                if (step == 1 && (r.kind != reply_kind::watching || r.number != 2)) {
                    fail("expected WATCHING 2 after watch");
                }
                if (step == 2 && (r.kind != reply_kind::watching || r.number != 1)) {
                    fail("expected WATCHING 1 after ignore default");
                }
                ++step;
            }
        }
        if (in_begin_ != in_end_) fail("more replies than commands during setup");
        const int flags = ::fcntl(fd_, F_GETFL);
        if (flags < 0 || ::fcntl(fd_, F_SETFL, flags | O_NONBLOCK) < 0)
            fail(cat("fcntl: ", errno_text()));
        recvs_ = sends_ = replies_ = 0;
    }

private:
    int index_;
    std::string name_;
    int fd_;
    std::vector<char> in_;
    std::size_t in_begin_ = 0;
    std::size_t in_end_ = 0;
    std::string out_;
    std::size_t out_sent_ = 0;
    std::uint64_t recvs_ = 0;
    std::uint64_t sends_ = 0;
    std::uint64_t replies_ = 0;
};

using connections = std::vector<std::unique_ptr<connection>>;

int connect_to(const options& o) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (const int rc = ::getaddrinfo(o.host.c_str(), o.port.c_str(), &hints, &found); rc != 0) {
        die(cat("cannot resolve ", o.host, ": ", ::gai_strerror(rc)));
    }
    int fd = -1;
    std::string error = "no address";
    for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
        fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            error = errno_text();
            continue;
        }
        if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            error = errno_text();
            ::close(fd);
            fd = -1;
        }
    }
    ::freeaddrinfo(found);
    if (fd < 0) die(cat("cannot connect to ", o.host, ":", o.port, " (", o.label, "): ", error));
    // Every command is one small write that must leave at once.
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

connections open_connections(const options& o, std::uint64_t count, const char* role,
                             int first_index) {
    connections out;
    for (std::uint64_t i = 0; i < count; ++i) {
        const int index = first_index + static_cast<int>(i);
        auto c = std::make_unique<connection>(
            index, cat(o.label, " ", role, " ", std::to_string(i)), connect_to(o));
        c->setup(o.tube);
        out.push_back(std::move(c));
    }
    return out;
}

// -------------------------------------------------------------- the loop

/// Runs `driver` over `conns` until driver.done(): waits in epoll for
/// replies, hands each to driver.on_reply() with the time the batch that
/// carried it was read, then sends what the driver queued (one send() per
/// connection per batch). A driver provides start(connection&, now),
/// on_reply(connection&, const reply&, now) and done().
template <class Driver>
void run_loop(const options& o, connections& conns, Driver& driver) {
    const int ep = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die(cat("epoll_create1: ", errno_text()));
    std::vector<char> writing(conns.size(), 0);
    auto watch = [&](std::size_t i, int op) {
        epoll_event ev{};
        ev.events = EPOLLIN | (writing[i] ? EPOLLOUT : 0u);
        ev.data.u32 = static_cast<std::uint32_t>(i);
        if (::epoll_ctl(ep, op, conns[i]->fd(), &ev) != 0) die(cat("epoll_ctl: ", errno_text()));
    };
    auto flush = [&](std::size_t i) {
        const char left = conns[i]->flush() ? 1 : 0;
        if (left != writing[i]) {
            writing[i] = left;
            watch(i, EPOLL_CTL_MOD);
        }
    };
    for (std::size_t i = 0; i < conns.size(); ++i) watch(i, EPOLL_CTL_ADD);

    time_point now = clock_type::now();
    for (std::size_t i = 0; i < conns.size(); ++i) {
        driver.start(*conns[i], now);
        flush(i);
    }
    std::array<epoll_event, 256> events;
    reply r;
    time_point last_event = now;
    while (!driver.done()) {
        const int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()),
                                   o.spin ? 0 : o.stall_s * 1000);
        if (n < 0) {
            if (errno == EINTR) continue;
            die(cat("epoll_wait: ", errno_text()));
        }
        if (n == 0 && o.spin && clock_type::now() - last_event < std::chrono::seconds(o.stall_s)) continue;
        if (n == 0) {
            die(cat(o.label, ": no reply for ", std::to_string(o.stall_s),
                    " s (the server stalled, or lost a command or a job)"));
        }
        now = clock_type::now();
        last_event = now;
        for (int k = 0; k < n; ++k) {
            const std::size_t i = events[k].data.u32;
            connection& c = *conns[i];
            if ((events[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0) {
                // One recv() per wake-up: epoll is level-triggered, so bytes
                // left in the socket wake us again, and a second recv() that
                // finds nothing would be a wasted system call.
                c.fill();
                while (c.next(r)) driver.on_reply(c, r, now);
            }
            flush(i);
        }
    }
    ::close(ep);
}

// ------------------------------------------------------------ measurement

/// CPU seconds (user + system) of this process, of the server if given, and
/// of the whole machine (what other processes take shows as the difference).
struct cpu_times {
    double client = 0;
    double server = -1;   // unknown
    double machine = -1;  // unknown

    static cpu_times take(int server_pid) {
        cpu_times t;
        const auto tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
        {
            // cpu  user nice system idle iowait irq softirq steal ...
            std::ifstream in("/proc/stat");
            std::string cpu;
            std::array<double, 8> v{};
            if (in >> cpu && cpu == "cpu" &&
                in >> v[0] >> v[1] >> v[2] >> v[3] >> v[4] >> v[5] >> v[6] >> v[7]) {
                t.machine = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / tick;
            }
        }
        rusage ru{};
        ::getrusage(RUSAGE_SELF, &ru);
        t.client = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                   static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
        if (server_pid > 0) {
            std::ifstream in(cat("/proc/", std::to_string(server_pid), "/stat"));
            std::string stat;
            std::getline(in, stat);
            // Fields after the command name, which is in parentheses and may
            // hold spaces: state is field 3, utime 14 and stime 15.
            const auto close = stat.rfind(')');
            if (close != std::string::npos) {
                std::istringstream fields(stat.substr(close + 2));
                std::string field;
                double utime = -1;
                double stime = -1;
                for (int f = 3; f <= 15 && fields >> field; ++f) {
                    if (f == 14) utime = std::strtod(field.c_str(), nullptr);
                    if (f == 15) stime = std::strtod(field.c_str(), nullptr);
                }
                if (utime >= 0 && stime >= 0) {
                    t.server = (utime + stime) / tick;
                }
            }
        }
        return t;
    }
};

/// Latency samples of one kind of round trip, in microseconds.
class latency {
public:
    explicit latency(std::string name) : name_(std::move(name)) {}
    const std::string& name() const noexcept { return name_; }
    void add(time_point sent, time_point received) {
        samples_.push_back(std::chrono::duration<double, std::micro>(received - sent).count());
    }
    std::size_t count() const noexcept { return samples_.size(); }
    /// Nearest-rank percentile, p in [0, 1]; needs sort() first.
    double percentile(double p) const {
        if (samples_.empty()) return 0;
        const auto rank =
            static_cast<std::size_t>(std::ceil(p * static_cast<double>(samples_.size())));
        return samples_[std::clamp<std::size_t>(rank, 1, samples_.size()) - 1];
    }
    void sort() { std::sort(samples_.begin(), samples_.end()); }

private:
    std::string name_;
    std::vector<double> samples_;
};

/// Counts operations (cycles, jobs, puts), decides when the warm-up ends and
/// when no new operation may start, and keeps the measured window.
class meter {
public:
    meter(const options& o, std::uint64_t warmup) : o_(o), warmup_(warmup) {}

    void begin(time_point now) {
        if (warmup_ == 0) open(now);
    }
    /// Whether `n` more operations may start now.
    bool may_start(time_point now, std::uint64_t n = 1) {
        if (started_ + n > cap_) {
            capped_ = true;
            return false;
        }
        if (o_.seconds > 0) return !measuring_ || now < deadline_;
        return started_ < warmup_ + o_.jobs;
    }
    /// At most `cap` operations in all, warm-up included.
    void cap(std::uint64_t cap) noexcept { cap_ = cap; }
    bool capped() const noexcept { return capped_; }
    void started(std::uint64_t n = 1) noexcept { started_ += n; }
    void completed(time_point now, std::uint64_t n = 1) {
        done_ += n;
        if (measuring_) {
            measured_ += n;
            end_ = now;
        } else if (done_ >= warmup_) {
            open(now);
        }
    }
    /// Whether an operation sent at `sent` belongs to the measured window.
    bool sampled(time_point sent) const noexcept { return measuring_ && sent >= start_; }
    void finish() { cpu_end_ = cpu_times::take(o_.server_pid); }

    std::uint64_t started_count() const noexcept { return started_; }
    std::uint64_t measured() const noexcept { return measured_; }
    double seconds() const { return std::chrono::duration<double>(end_ - start_).count(); }
    double client_cpu() const { return cpu_end_.client - cpu_start_.client; }
    double server_cpu() const {
        return cpu_start_.server < 0 || cpu_end_.server < 0 ? -1
                                                            : cpu_end_.server - cpu_start_.server;
    }
    /// CPU seconds taken by everything but this client and the server
    /// (the kernel's interrupt work included); -1 when unknown.
    double other_cpu() const {
        if (cpu_start_.machine < 0 || cpu_end_.machine < 0 || server_cpu() < 0) return -1;
        return std::max(0.0, cpu_end_.machine - cpu_start_.machine - client_cpu() - server_cpu());
    }

private:
    void open(time_point now) {
        measuring_ = true;
        start_ = end_ = now;
        deadline_ = now + std::chrono::duration_cast<clock_type::duration>(
                              std::chrono::duration<double>(o_.seconds));
        cpu_start_ = cpu_times::take(o_.server_pid);
    }

    const options& o_;
    const std::uint64_t warmup_;
    std::uint64_t cap_ = UINT64_MAX;
    bool capped_ = false;
    std::uint64_t started_ = 0;
    std::uint64_t done_ = 0;
    std::uint64_t measured_ = 0;
    bool measuring_ = false;
    time_point start_{};
    time_point end_{};
    time_point deadline_{};
    cpu_times cpu_start_;
    cpu_times cpu_end_;
};

/// The job every load puts: fixed priority, no delay, a TTR far longer than
/// any run, and a body of --size bytes ('a' to 'z', repeated).
struct job_text {
    std::string body;
    std::string put;  // the whole command, body and final \r\n included

    explicit job_text(std::uint64_t size) {
        for (std::uint64_t i = 0; i < size; ++i) body.push_back(static_cast<char>('a' + i % 26));
        put = cat("put 1024 0 600 ", std::to_string(size), "\r\n", body, "\r\n");
    }
    void check(const connection& c, const reply& r) const {
        if (r.text != body) {
            c.fail(cat("job body differs from the one put (", std::to_string(r.text.size()),
                       " bytes: ", quoted(r.text), ")"));
        }
    }
};

void queue_delete(connection& c, std::uint64_t id) {
    char line[40] = "delete ";
    char* end = std::to_chars(line + 7, line + sizeof line - 2, id).ptr;
    *end++ = '\r';
    *end++ = '\n';
    c.queue(std::string_view(line, static_cast<std::size_t>(end - line)));
}

[[noreturn]] void unexpected(const connection& c, const char* expected, const char* after) {
    c.fail(cat("expected ", expected, " after ", after));
}

// ------------------------------------------------------------------ cycle

/// put -> INSERTED -> reserve -> RESERVED -> delete -> DELETED, one command
/// at a time on each connection.
class cycle_driver {
public:
    cycle_driver(const job_text& job, meter& m, std::size_t conns)
        : job_(job), m_(m), state_(conns) {}

    void start(connection& c, time_point now) {
        auto& s = state_[static_cast<std::size_t>(c.index())];
        if (!m_.may_start(now)) {
            if (s.step != phase::idle) --active_;
            s.step = phase::idle;
            return;
        }
        if (s.step == phase::idle) ++active_;
        m_.started();
        s.step = phase::put;
        s.sent = now;
        c.queue(job_.put);
    }
    void on_reply(connection& c, const reply& r, time_point now) {
        auto& s = state_[static_cast<std::size_t>(c.index())];
        switch (s.step) {
            case phase::put:
                if (r.kind != reply_kind::inserted) unexpected(c, "INSERTED", "put");
                s.step = phase::reserve;
                c.queue("reserve\r\n");
                return;
            case phase::reserve:
                if (r.kind != reply_kind::reserved) unexpected(c, "RESERVED", "reserve");
                job_.check(c, r);
                s.step = phase::remove;
                queue_delete(c, r.number);
                return;
            case phase::remove:
                if (r.kind != reply_kind::deleted) unexpected(c, "DELETED", "delete");
                if (m_.sampled(s.sent)) cycles.add(s.sent, now);
                m_.completed(now);
                start(c, now);
                return;
            case phase::idle: c.fail("a reply to no command");
        }
    }
    bool done() const noexcept { return active_ == 0; }

    latency cycles{"cycle"};

private:
    enum class phase : std::uint8_t { idle, put, reserve, remove };
    struct conn_state {
        phase step = phase::idle;
        time_point sent{};
    };
    const job_text& job_;
    meter& m_;
    std::vector<conn_state> state_;
    std::size_t active_ = 0;
};

// ------------------------------------------------------------------- many

/// Producers (connection indexes below `producers`) put one job at a time
/// until the meter says stop; workers reserve and delete until every job
/// put is deleted. The meter counts deletes.
class many_driver {
public:
    many_driver(const job_text& job, meter& m, std::size_t producers, std::size_t workers)
        : job_(job),
          m_(m),
          producers_(producers),
          state_(producers + workers),
          active_producers_(producers) {}

    void start(connection& c, time_point now) {
        const auto i = static_cast<std::size_t>(c.index());
        if (i < producers_) {
            put(c, now);
        } else {
            send(c, now, wanted::reserved, "reserve\r\n");
        }
    }
    void on_reply(connection& c, const reply& r, time_point now) {
        auto& s = state_[static_cast<std::size_t>(c.index())];
        const bool sampled = m_.sampled(s.sent);
        switch (s.awaiting) {
            case wanted::inserted:
                if (r.kind != reply_kind::inserted) unexpected(c, "INSERTED", "put");
                if (sampled) puts.add(s.sent, now);
                ++inserted_;
                put(c, now);
                return;
            case wanted::reserved:
                if (r.kind != reply_kind::reserved) unexpected(c, "RESERVED", "reserve");
                job_.check(c, r);
                if (sampled) reserves.add(s.sent, now);
                s.sent = now;
                s.awaiting = wanted::deleted;
                queue_delete(c, r.number);
                return;
            case wanted::deleted:
                if (r.kind != reply_kind::deleted) unexpected(c, "DELETED", "delete");
                if (sampled) deletes.add(s.sent, now);
                ++deleted_;
                m_.completed(now);
                send(c, now, wanted::reserved, "reserve\r\n");
                return;
            case wanted::nothing: c.fail("a reply to no command");
        }
    }
    bool done() const noexcept { return active_producers_ == 0 && deleted_ == inserted_; }

    latency puts{"put"};
    latency reserves{"reserve"};
    latency deletes{"delete"};

private:
    enum class wanted : std::uint8_t { nothing, inserted, reserved, deleted };
    struct conn_state {
        wanted awaiting = wanted::nothing;
        time_point sent{};  // when the command in flight left
    };

    void send(connection& c, time_point now, wanted what, std::string_view command) {
        auto& s = state_[static_cast<std::size_t>(c.index())];
        s.awaiting = what;
        s.sent = now;
        c.queue(command);
    }
    // Producers stop at the total (or the deadline), so the tube drains and
    // the workers' last reserves stay unanswered until the connections close.
    void put(connection& c, time_point now) {
        if (m_.may_start(now)) {
            m_.started();
            send(c, now, wanted::inserted, job_.put);
        } else {
            state_[static_cast<std::size_t>(c.index())].awaiting = wanted::nothing;
            --active_producers_;
        }
    }

    const job_text& job_;
    meter& m_;
    const std::size_t producers_;
    std::vector<conn_state> state_;
    std::size_t active_producers_;
    std::uint64_t inserted_ = 0;
    std::uint64_t deleted_ = 0;
};

// --------------------------------------------------------------- pipeline

/// Each connection sends `depth` puts in one write and waits for all the
/// INSERTED replies before the next batch. The meter counts puts.
class pipeline_driver {
public:
    pipeline_driver(const job_text& job, meter& m, std::uint64_t depth, std::size_t conns)
        : m_(m), depth_(depth), state_(conns) {
        for (std::uint64_t i = 0; i < depth; ++i) batch_.append(job.put);
    }

    void start(connection& c, time_point now) {
        auto& s = state_[static_cast<std::size_t>(c.index())];
        if (!m_.may_start(now, depth_)) return;
        ++active_;
        m_.started(depth_);
        s.waiting = depth_;
        s.sent = now;
        c.queue(batch_);
    }
    void on_reply(connection& c, const reply& r, time_point now) {
        auto& s = state_[static_cast<std::size_t>(c.index())];
        if (r.kind != reply_kind::inserted || s.waiting == 0) unexpected(c, "INSERTED", "put");
        ++inserted_;
        if (--s.waiting > 0) return;
        --active_;
        if (m_.sampled(s.sent)) batches.add(s.sent, now);
        m_.completed(now, depth_);
        start(c, now);
    }
    bool done() const noexcept { return active_ == 0; }
    std::uint64_t inserted() const noexcept { return inserted_; }

    latency batches{"batch"};

private:
    struct conn_state {
        std::uint64_t waiting = 0;
        time_point sent{};
    };
    meter& m_;
    const std::uint64_t depth_;
    std::string batch_;
    std::vector<conn_state> state_;
    std::size_t active_ = 0;
    std::uint64_t inserted_ = 0;
};

/// Reserves and deletes `jobs` jobs (the tube holds exactly those), in
/// batches: `depth` reserve-with-timeout 0 commands in one write, then,
/// once every RESERVED is in, the deletes in one write. Not timed: it
/// empties the tube after `pipeline`.
class drain_driver {
public:
    drain_driver(const job_text& job, std::uint64_t jobs, std::uint64_t depth, std::size_t conns)
        : job_(job), left_(jobs), depth_(depth), state_(conns) {}

    void start(connection& c, time_point) {
        auto& s = state_[static_cast<std::size_t>(c.index())];
        const std::uint64_t k = std::min(depth_, left_);
        if (k == 0) return;
        left_ -= k;
        s.reserving = k;
        s.ids.clear();
        ++active_;
        for (std::uint64_t i = 0; i < k; ++i) c.queue("reserve-with-timeout 0\r\n");
    }
    void on_reply(connection& c, const reply& r, time_point now) {
        auto& s = state_[static_cast<std::size_t>(c.index())];
        if (r.kind == reply_kind::reserved && s.reserving > 0) {
            job_.check(c, r);
            s.ids.push_back(r.number);
            if (--s.reserving == 0) {
                for (const std::uint64_t id : s.ids) queue_delete(c, id);
            }
        } else if (r.kind == reply_kind::deleted && s.reserving == 0 && !s.ids.empty()) {
            s.ids.pop_back();
            if (s.ids.empty()) {
                --active_;
                start(c, now);
            }
        } else if (r.kind == reply_kind::timed_out) {
            c.fail("TIMED_OUT while draining: the tube holds fewer jobs than were put");
        } else {
            unexpected(c, "RESERVED or DELETED", "reserve-with-timeout 0 or delete");
        }
    }
    bool done() const noexcept { return active_ == 0; }

private:
    struct conn_state {
        std::uint64_t reserving = 0;
        std::vector<std::uint64_t> ids;  // reserved, delete sent or about to be
    };
    const job_text& job_;
    std::uint64_t left_;
    const std::uint64_t depth_;
    std::vector<conn_state> state_;
    std::size_t active_ = 0;
};

// ----------------------------------------------------------------- output

std::string json_string(std::string_view s) {
    std::string out = "\"";
    for (const char ch : s) {
        if (ch == '"' || ch == '\\') {
            out.push_back('\\');
            out.push_back(ch);
        } else if (static_cast<unsigned char>(ch) < 0x20) {
            char esc[8];
            std::snprintf(esc, sizeof esc, "\\u%04x", static_cast<unsigned char>(ch));
            out.append(esc);
        } else {
            out.push_back(ch);
        }
    }
    out.push_back('"');
    return out;
}

std::string json_number(double v) {
    if (!std::isfinite(v)) return "null";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    return buf;
}

/// Key-value pairs in order, written as one JSON object.
class json_object {
public:
    void add(const std::string& key, const std::string& raw) {
        body_.append(body_.empty() ? "" : ", ").append(json_string(key)).append(": ").append(raw);
    }
    void text(const std::string& key, std::string_view v) { add(key, json_string(v)); }
    void number(const std::string& key, double v) { add(key, json_number(v)); }
    void count(const std::string& key, std::uint64_t v) { add(key, std::to_string(v)); }
    std::string str() const { return cat("{", body_, "}"); }

private:
    std::string body_;
};

std::string context_json() {
    json_object c;
    for (const auto& [key, value] : conq_bench::build_context()) c.text(key, value);
    c.count("num_cpus", static_cast<std::uint64_t>(std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN))));
    utsname un{};
    if (::uname(&un) == 0) c.text("conq_kernel", un.release);
    return c.str();
}

struct run_summary {
    const char* rate_unit;
    std::vector<latency*> latencies;  // the first is the load's main one
    std::uint64_t connections = 0;
    std::uint64_t recvs = 0;
    std::uint64_t sends = 0;
    std::uint64_t replies = 0;
};

void report(const options& o, const meter& m, run_summary& s) {
    const double secs = m.seconds();
    const double rate = secs > 0 ? static_cast<double>(m.measured()) / secs : 0;
    for (latency* l : s.latencies) l->sort();
    const std::array<std::pair<const char*, double>, 5> points{
        {{"p50", 0.50}, {"p90", 0.90}, {"p99", 0.99}, {"p999", 0.999}, {"max", 1.0}}};
    const double server_cpu = m.server_cpu();
    if (o.json) {
        json_object j;
        j.text("name", cat(load_name(o.load), "/", o.label));
        j.text("run_type", "iteration");
        j.text("load", load_name(o.load));
        j.text("label", o.label);
        j.text("host", o.host);
        j.add("port", o.port);
        j.text("tube", o.tube);
        if (o.load == load_kind::many) {
            j.count("producers", o.producers);
            j.count("workers", o.workers);
            j.count("conns", o.producers + o.workers);
        } else {
            j.count("conns", o.conns);
        }
        j.count("depth", o.load == load_kind::pipeline ? o.depth : 1);
        j.count("size", o.size);
        j.text("client_wait", o.spin ? "spin" : "sleep");
        j.count("warmup", o.warmup.value_or(0));
        j.count("ops", m.measured());
        j.number("seconds", secs);
        j.number("rate", rate);
        j.text("rate_unit", s.rate_unit);
        j.text("latency", s.latencies.front()->name());
        for (const auto& [key, p] : points)
            j.number(cat(key, "_us"), s.latencies.front()->percentile(p));
        for (latency* l : s.latencies) {
            for (const auto& [key, p] : points)
                j.number(cat(l->name(), "_", key, "_us"), l->percentile(p));
            j.count(cat(l->name(), "_samples"), l->count());
        }
        j.number("client_cpu_s", m.client_cpu());
        j.number(
            "client_cpu_us_per_op",
            m.client_cpu() * 1e6 / static_cast<double>(std::max<std::uint64_t>(1, m.measured())));
        if (m.other_cpu() >= 0)
            j.number("other_cpu_pct", secs > 0 ? 100 * m.other_cpu() / secs : 0);
        if (server_cpu >= 0) {
            j.number("server_cpu_s", server_cpu);
            j.number(
                "server_cpu_us_per_op",
                server_cpu * 1e6 / static_cast<double>(std::max<std::uint64_t>(1, m.measured())));
        }
        j.count("client_recvs", s.recvs);
        j.count("client_sends", s.sends);
        j.number("replies_per_recv",
                 s.recvs ? static_cast<double>(s.replies) / static_cast<double>(s.recvs) : 0);
        j.add("context", context_json());
        std::printf("%s\n", j.str().c_str());
        return;
    }
    std::printf("%s on %s (%s:%s, tube %s): %llu ops in %.3f s = %.0f %s\n", load_name(o.load),
                o.label.c_str(), o.host.c_str(), o.port.c_str(), o.tube.c_str(),
                static_cast<unsigned long long>(m.measured()), secs, rate, s.rate_unit);
    for (latency* l : s.latencies) {
        std::printf("  %-8s latency us:", l->name().c_str());
        for (const auto& [key, p] : points) std::printf(" %s %.1f", key, l->percentile(p));
        std::printf(" (%zu samples)\n", l->count());
    }
    std::printf("  client CPU %.0f%%", secs > 0 ? 100 * m.client_cpu() / secs : 0.0);
    if (server_cpu >= 0)
        std::printf(", server CPU %.0f%%", secs > 0 ? 100 * server_cpu / secs : 0.0);
    if (m.other_cpu() >= 0)
        std::printf(", other processes %.0f%%", secs > 0 ? 100 * m.other_cpu() / secs : 0.0);
    std::printf("; %.2f replies per recv()\n",
                s.recvs ? static_cast<double>(s.replies) / static_cast<double>(s.recvs) : 0.0);
}

void add_io(run_summary& s, const connections& conns) {
    for (const auto& c : conns) {
        s.recvs += c->recvs();
        s.sends += c->sends();
        s.replies += c->replies();
    }
}

}  // namespace

int main(int argc, char** argv) {
    conq_bench::program_name = "conq_beanstalkd_load";
    const options o = parse_options(argc, argv);
    const job_text job(o.size);
    meter m(o, *o.warmup);
    run_summary s{};
    switch (o.load) {
        case load_kind::cycle: {
            connections conns = open_connections(o, o.conns, "connection", 0);
            cycle_driver d(job, m, conns.size());
            m.begin(clock_type::now());
            run_loop(o, conns, d);
            m.finish();
            s.rate_unit = "cycles/s";
            s.latencies = {&d.cycles};
            add_io(s, conns);
            report(o, m, s);
            break;
        }
        case load_kind::many: {
            connections conns = open_connections(o, o.producers, "producer", 0);
            connections workers =
                open_connections(o, o.workers, "worker", static_cast<int>(o.producers));
            for (auto& w : workers) conns.push_back(std::move(w));
            many_driver d(job, m, o.producers, o.workers);
            m.begin(clock_type::now());
            run_loop(o, conns, d);
            m.finish();
            s.rate_unit = "jobs/s";
            s.latencies = {&d.puts, &d.deletes, &d.reserves};
            add_io(s, conns);
            report(o, m, s);
            break;
        }
        case load_kind::pipeline: {
            connections conns = open_connections(o, o.conns, "connection", 0);
            pipeline_driver d(job, m, o.depth, conns.size());
            m.cap(queued_cap(o));
            m.begin(clock_type::now());
            run_loop(o, conns, d);
            m.finish();
            if (m.capped()) {
                std::fprintf(
                    stderr,
                    "%s: stopped after %.1f s, at --max-queued=%llu MiB of jobs in the server\n",
                    conq_bench::program_name, m.seconds(),
                    static_cast<unsigned long long>(o.max_queued_mib));
            }
            s.rate_unit = "puts/s";
            s.latencies = {&d.batches};
            add_io(s, conns);
            drain_driver drain(job, d.inserted(), std::max<std::uint64_t>(o.depth, 1000),
                               conns.size());
            run_loop(o, conns, drain);
            report(o, m, s);
            break;
        }
    }
    return 0;
}

// libFuzzer target: conq-beanstalkd's command handling on arbitrary bytes.
//
// The input is what a client sends on one connection. It goes through
// protocol.hpp's line scanner and parser alone (checking their invariants),
// then to a real conq::beanstalk::server (in memory, -z 100) over a
// socketpair: the client side writes the input, shuts down its sending side
// and reads everything back. Every reply must be one of the protocol's, with
// bodies of the size their line announces; INTERNAL_ERROR (not in the list
// of expected replies), a crash, a hang
// or a sanitizer report is a finding. After the connection is gone, no job
// may still be reserved (a closed connection gives its jobs back).
//
// Build and run: scripts/fuzz.sh (clang++ with -fsanitize=fuzzer,address,undefined).
#include "beanstalkd-server/server.hpp"

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

namespace bs = conq::beanstalk;

[[noreturn]] void finding(const char* what, std::string_view context) {
    std::fprintf(stderr, "beanstalk_protocol: %s: [%.*s]\n", what, static_cast<int>(std::min<std::size_t>(context.size(), 300)),
                 context.data());
    std::abort();
}

void check_parser(std::string_view in) {
    bool overlong = false;
    while (!in.empty()) {
        const bs::line_scan s = bs::scan_line(in);
        if (s.what == bs::line_scan::kind::incomplete) {
            if (in.size() >= bs::line_max) finding("incomplete with a full line buffer", in);
            return;
        }
        if (s.consumed == 0 || s.consumed > in.size() || s.consumed > bs::line_max) finding("bad scan", in);
        if (s.what == bs::line_scan::kind::overlong) {
            overlong = true;
        } else if (overlong) {
            overlong = false;  // the end of a line too long: BAD_FORMAT
        } else {
            const std::string_view line = in.substr(0, s.length);
            if (line.find('\r') != std::string_view::npos) finding("a line holds a CR", line);
            const bs::command c = bs::parse(line);
            if (c.ok() && !c.late_bad_format &&
                (c.verb == bs::op::use || c.verb == bs::op::watch || c.verb == bs::op::ignore ||
                 c.verb == bs::op::stats_tube || c.verb == bs::op::pause_tube) &&
                !conq::valid_queue_name(c.tube))
                finding("an invalid tube name accepted", line);
            if (c.ok() && c.verb == bs::op::unknown) finding("unknown verb accepted", line);
        }
        in.remove_prefix(s.consumed);
    }
}

bool starts(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// Checks that `out` is a sequence of whole replies.
void check_replies(std::string_view out) {
    static constexpr std::string_view plain[] = {
        "DEADLINE_SOON", "TIMED_OUT", "DELETED", "NOT_FOUND", "RELEASED", "BURIED", "TOUCHED",
        "NOT_IGNORED", "KICKED", "PAUSED", "BAD_FORMAT", "UNKNOWN_COMMAND", "EXPECTED_CRLF",
        "JOB_TOO_BIG", "DRAINING", "OUT_OF_MEMORY"};
    while (!out.empty()) {
        const std::size_t eol = out.find("\r\n");
        if (eol == std::string_view::npos) finding("a reply without its CRLF", out);
        const std::string_view line = out.substr(0, eol);
        out.remove_prefix(eol + 2);
        bool known = false;
        for (const auto p : plain) known = known || line == p;
        if (known || starts(line, "INSERTED ") || starts(line, "USING ") || starts(line, "WATCHING ") ||
            starts(line, "KICKED "))
            continue;
        std::size_t body = 0;
        if (starts(line, "RESERVED ") || starts(line, "FOUND ") || starts(line, "OK ")) {
            body = std::strtoull(line.data() + line.rfind(' ') + 1, nullptr, 10);
        } else {
            finding("an unknown reply", line);
        }
        if (out.size() < body + 2 || out.substr(body, 2) != "\r\n") finding("a body of the wrong size", line);
        out.remove_prefix(body + 2);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    check_parser(in);

    bs::job_queues queues;
    bs::server_options o;
    o.port = 0;
    o.max_job_size = 100;
    bs::server srv(queues, o);
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
    srv.adopt(sv[0]);
    // The input is at most a few KiB: it fits the socket buffer at once.
    if (::send(sv[1], in.data(), in.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(in.size())) std::abort();
    ::shutdown(sv[1], SHUT_WR);
    ::fcntl(sv[1], F_SETFL, O_NONBLOCK);

    std::string out;
    char buf[65536];
    for (int turn = 0; srv.connections() != 0; ++turn) {
        if (turn > 100000) finding("the connection never ended", in);
        srv.run_once(0);
        for (ssize_t n; (n = ::recv(sv[1], buf, sizeof buf, 0)) > 0;) out.append(buf, static_cast<std::size_t>(n));
    }
    for (ssize_t n; (n = ::recv(sv[1], buf, sizeof buf, 0)) > 0;) out.append(buf, static_cast<std::size_t>(n));
    ::close(sv[1]);
    check_replies(out);
    if (queues.stats().reserved != 0) finding("a job still reserved after the connection closed", in);
    return 0;
}

// conq-beanstalkd against the real beanstalkd, byte for byte.
//
// Each script in tests/server/scripts/*.txt runs against two servers at
// once, started with the script's flags on free loopback ports: the real
// beanstalkd (the program named by $BEANSTALKD, /usr/bin/beanstalkd by
// default) and conq-beanstalkd ($CONQ_BEANSTALKD, which ctest sets). The
// servers go in lockstep: each step is done on both before the next one,
// and every reply read from conq-beanstalkd must equal beanstalkd's, after
// the normalisation below. A script is one Catch2 section, named after its
// file (`server_conformance_tests -c put` runs scripts/put.txt only).
//
// Script format. One step per line; blank lines and lines starting with
// `#` are skipped.
//
//   flags: -z 100         server flags, for both servers (before any step)
//   c1> put 0 0 0 5\r\nhello\r\n
//                         send bytes on connection c1: the text after "> ",
//                         exactly, with no newline added. Escapes: \r \n \t
//                         \\ \xNN, and \{N} which repeats the next byte
//                         (or escape) N times: \{201}a is 201 a's. Write a
//                         trailing space as \x20 so that it shows.
//   c1<                   read one reply on c1 from each server and compare
//   c1< 3                 the same, three times
//   c1>< stats\r\n        send, then read one reply: `c1> ...` and `c1<`
//   c1<eof                both servers close c1 (within the read timeout)
//   c1<none 300           neither server sends anything on c1 for 300 ms
//   c1 connect            open c1 now (else it opens on its first use)
//   c1 close              close c1 (the servers see EOF)
//   c1 shutdown           half-close c1: the servers read EOF, c1 still reads
//   sleep 1100            wait 1100 ms
//   signal USR1           send a signal (USR1, USR2, HUP, INT, TERM) to both
//
// Connections are c1, c2, ...; replies are read whole (a line, plus the
// body of RESERVED, FOUND and OK). A read waits up to 5 s; beanstalkd not
// replying in that time is an error in the script. After the last step no
// connection may hold an unread reply, and conq-beanstalkd must end on
// SIGTERM (status 0 or killed by the signal; not a sanitizer's abort).
// Before the first step each server has had one connection, which sent
// quit (server_process's readiness check): total-connections counts it.
//
// Time: scripts about a timed behaviour (ttr, delays, pauses, timeouts)
// use 1 to 2 s; all of them take about 20 s.
//
// Ordering between connections. A reply proves that the server processed
// the command; a send whose reply is not read yet does not, and neither
// does a connect (the server accepts later). So before a step on another
// connection (or a signal) follows such a send or connect, the runner
// waits 100 ms, and it waits as long after a close, a shutdown and a
// signal: then e.g. `c1> reserve` (blocking) is surely registered before
// `c2> stats` counts the waiting connections.
//
// Normalisation, the only differences allowed:
//   - stats: the values of pid, version, rusage-utime, rusage-stime,
//     uptime, id, hostname, os, platform and binlog-* (replaced by `*`);
//   - stats-job: the value of file; stats-job age and time-left and
//     stats-tube pause-time-left may differ by at most 1: the two servers
//     run a step some microseconds apart, so a whole-second count can tick
//     over on one and not yet on the other;
//   - then the `OK <bytes>` count of those three replies is recomputed on
//     both sides from the normalised body (a wrong count still shows: the
//     reply's CRLF and the next reply no longer line up).
// A YAML reply is recognised by its keys (pid: stats; time-left: stats-job;
// pause-time-left: stats-tube). Keys, their order and all other values must
// match exactly.
//
// Set CONQ_CONFORMANCE_TRACE=1 to print every step and beanstalkd's reply.
#include "beanstalk_wire.hpp"
#include "conq_catch.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <signal.h>
#include <unistd.h>

namespace {

using namespace std::chrono_literals;
using conq_test::connection;
using conq_test::reply;
using conq_test::reply_status;
using conq_test::server_process;

constexpr auto reply_timeout = 5000ms;
constexpr auto settle_time = 100ms;

// ------------------------------------------------------------------ scripts

struct step {
    enum class kind { send, read, expect_eof, expect_silence, connect, close, shutdown, sleep, signal };
    kind what = kind::send;
    int line = 0;
    std::string text;        // the script line, for messages
    std::string conn;        // the connection: all but sleep and signal
    std::string bytes;       // send
    int count = 1;           // read
    std::chrono::milliseconds time{0};  // expect_silence, sleep
    int signal = 0;
};

struct script {
    std::string name;
    std::vector<std::string> flags;
    std::vector<step> steps;
};

[[noreturn]] void script_error(const std::string& where, const std::string& what) {
    throw std::runtime_error(where + ": " + what);
}

int parse_count(std::string_view text, const std::string& where) {
    int value = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size() || value < 0) {
        script_error(where, "expected a non-negative number, not `" + std::string(text) + "`");
    }
    return value;
}

/// The bytes a send line stands for (escapes in the header comment).
std::string unescape(std::string_view text, const std::string& where) {
    std::string out;
    std::size_t i = 0;
    // One byte, literal or escaped, starting at text[i].
    auto next_byte = [&]() -> char {
        if (i >= text.size()) script_error(where, "\\{N} must be followed by a byte");
        char c = text[i++];
        if (c != '\\') return c;
        if (i >= text.size()) script_error(where, "a lone \\ at the end of the line");
        char e = text[i++];
        switch (e) {
            case 'r': return '\r';
            case 'n': return '\n';
            case 't': return '\t';
            case '\\': return '\\';
            case 'x': {
                unsigned value = 0;
                auto digits = text.substr(i, 2);
                auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), value, 16);
                if (digits.size() != 2 || error != std::errc() || end != digits.data() + 2) {
                    script_error(where, "\\x needs two hex digits");
                }
                i += 2;
                return static_cast<char>(value);
            }
            default: script_error(where, std::string("unknown escape \\") + e);
        }
    };
    while (i < text.size()) {
        if (text.substr(i, 2) == "\\{") {
            std::size_t close = text.find('}', i);
            if (close == std::string_view::npos) script_error(where, "\\{ without }");
            int repeat = parse_count(text.substr(i + 2, close - i - 2), where);
            i = close + 1;
            out.append(static_cast<std::size_t>(repeat), next_byte());
        } else {
            out.push_back(next_byte());
        }
    }
    return out;
}

int parse_signal(std::string_view name, const std::string& where) {
    static const std::array<std::pair<std::string_view, int>, 5> known{
        {{"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"HUP", SIGHUP}, {"INT", SIGINT}, {"TERM", SIGTERM}}};
    for (auto [known_name, number] : known) {
        if (name == known_name) return number;
    }
    script_error(where, "unknown signal `" + std::string(name) + "`");
}

script parse_script(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path.string());
    script result;
    result.name = path.stem().string();
    std::string line;
    int number = 0;
    while (std::getline(in, line)) {
        ++number;
        std::string where = path.filename().string() + ":" + std::to_string(number);
        if (line.find('\r') != std::string::npos) script_error(where, "a raw CR; write \\r");
        std::string_view text = line;
        if (text.find_first_not_of(" \t") == std::string_view::npos || text.front() == '#') continue;

        step s;
        s.line = number;
        s.text = line;
        if (text.substr(0, 6) == "flags:") {
            if (!result.steps.empty()) script_error(where, "flags: must come before the first step");
            std::istringstream words{std::string(text.substr(6))};
            for (std::string word; words >> word;) result.flags.push_back(word);
            continue;
        }
        if (text.substr(0, 6) == "sleep ") {
            s.what = step::kind::sleep;
            s.time = std::chrono::milliseconds(parse_count(text.substr(6), where));
        } else if (text.substr(0, 7) == "signal ") {
            s.what = step::kind::signal;
            s.signal = parse_signal(text.substr(7), where);
        } else if (text.size() >= 2 && text[0] == 'c' && text[1] >= '0' && text[1] <= '9') {
            std::size_t name_end = text.find_first_not_of("0123456789", 1);
            if (name_end == std::string_view::npos) script_error(where, "a connection with nothing to do");
            s.conn = std::string(text.substr(0, name_end));
            std::string_view rest = text.substr(name_end);
            if (rest.substr(0, 3) == ">< ") {
                s.what = step::kind::send;
                s.bytes = unescape(rest.substr(3), where);
                result.steps.push_back(s);
                s.what = step::kind::read;
            } else if (rest.substr(0, 2) == "> ") {
                s.what = step::kind::send;
                s.bytes = unescape(rest.substr(2), where);
            } else if (rest == "<") {
                s.what = step::kind::read;
            } else if (rest.substr(0, 2) == "< ") {
                s.what = step::kind::read;
                s.count = parse_count(rest.substr(2), where);
            } else if (rest == "<eof") {
                s.what = step::kind::expect_eof;
            } else if (rest.substr(0, 6) == "<none ") {
                s.what = step::kind::expect_silence;
                s.time = std::chrono::milliseconds(parse_count(rest.substr(6), where));
            } else if (rest == " connect") {
                s.what = step::kind::connect;
            } else if (rest == " close") {
                s.what = step::kind::close;
            } else if (rest == " shutdown") {
                s.what = step::kind::shutdown;
            } else {
                script_error(where, "unknown step `" + line + "`");
            }
        } else {
            script_error(where, "unknown step `" + line + "`");
        }
        result.steps.push_back(std::move(s));
    }
    return result;
}

std::filesystem::path scripts_directory() {
    std::string source = conq_test::env_or("CONQ_TEST_SOURCE_DIR", "");
    if (!source.empty()) return std::filesystem::path(source) / "server" / "scripts";
    return std::filesystem::path(__FILE__).parent_path() / "scripts";
}

std::vector<std::filesystem::path> script_paths() {
    std::vector<std::filesystem::path> paths;
    for (const auto& entry : std::filesystem::directory_iterator(scripts_directory())) {
        if (entry.path().extension() == ".txt") paths.push_back(entry.path());
    }
    std::sort(paths.begin(), paths.end());
    return paths;
}

// ------------------------------------------ replies: display, normalisation

/// `bytes` with \r \n \t \\ and \xNN escapes, in quotes; a multi-line
/// reply (YAML) continues on a new, indented line after each \n.
std::string visible(std::string_view bytes) {
    constexpr std::size_t shown = 4096;
    std::size_t first_lf = bytes.find('\n');
    bool multi_line = first_lf != std::string_view::npos && first_lf + 1 < bytes.size();
    std::string out = "\"";
    for (std::size_t i = 0; i < bytes.size() && i < shown; ++i) {
        unsigned char c = static_cast<unsigned char>(bytes[i]);
        switch (c) {
            case '\r': out += "\\r"; break;
            case '\n':
                out += "\\n";
                if (multi_line && i + 1 < bytes.size() && bytes[i + 1] != '\r') out += "\n      ";
                break;
            case '\t': out += "\\t"; break;
            case '\\': out += "\\\\"; break;
            case '"': out += "\\\""; break;
            default:
                if (c >= 0x20 && c < 0x7f) {
                    out += static_cast<char>(c);
                } else {
                    char hex[5];
                    std::snprintf(hex, sizeof hex, "\\x%02x", c);
                    out += hex;
                }
        }
    }
    out += "\"";
    if (bytes.size() > shown) out += " ... (" + std::to_string(bytes.size() - shown) + " more bytes)";
    return out;
}

std::string describe(const reply& r) {
    switch (r.status) {
        case reply_status::ok: return visible(r.bytes);
        case reply_status::timeout:
            return "no whole reply within " + std::to_string(reply_timeout.count()) + " ms; received " +
                   visible(r.bytes);
        case reply_status::closed: return "the connection closed; received " + visible(r.bytes);
    }
    return {};
}

/// `bytes` cut after each LF (the last piece may lack one).
std::vector<std::string_view> split_lines(std::string_view bytes) {
    std::vector<std::string_view> lines;
    while (!bytes.empty()) {
        std::size_t end = std::min(bytes.find('\n'), bytes.size() - 1);
        lines.push_back(bytes.substr(0, end + 1));
        bytes.remove_prefix(end + 1);
    }
    return lines;
}

/// ", first in line N: <expected line> / <actual line>" for two different
/// replies, lines counted from 1. The `OK <n>` lines of two YAML replies
/// are passed over: their counts differ whenever a line does.
std::string first_difference(std::string_view expected, std::string_view actual) {
    auto want = split_lines(expected);
    auto got = split_lines(actual);
    std::size_t i = 0;
    if (expected.substr(0, 3) == "OK " && actual.substr(0, 3) == "OK " && want.size() > 1 && got.size() > 1) i = 1;
    while (i < want.size() && i < got.size() && want[i] == got[i]) ++i;
    auto line = [](const std::vector<std::string_view>& lines, std::size_t n) {
        return n < lines.size() ? visible(lines[n]) : std::string("(no such line)");
    };
    return ", first in line " + std::to_string(i + 1) + ": " + line(want, i) + " / " + line(got, i);
}

/// An `OK <n>` reply split into its YAML lines, with the reply's last two
/// bytes (CRLF when the count was right).
struct yaml_reply {
    std::vector<std::string> lines;
    std::string trailer;

    static std::optional<yaml_reply> parse(const std::string& bytes) {
        if (bytes.substr(0, 3) != "OK ") return std::nullopt;
        std::size_t line_end = bytes.find("\r\n");
        if (line_end == std::string::npos || bytes.size() < line_end + 4) return std::nullopt;
        yaml_reply result;
        for (auto line : split_lines(std::string_view(bytes).substr(line_end + 2, bytes.size() - line_end - 4))) {
            result.lines.emplace_back(line);
        }
        result.trailer = bytes.substr(bytes.size() - 2);
        return result;
    }

    [[nodiscard]] std::string bytes() const {
        std::string body;
        for (const auto& line : lines) body += line;
        return "OK " + std::to_string(body.size()) + "\r\n" + body + trailer;
    }

    /// The key of a `key: value\n` line, and where its value starts.
    static std::pair<std::string_view, std::size_t> key_of(std::string_view line) {
        std::size_t colon = line.find(": ");
        if (colon == std::string_view::npos) return {{}, 0};
        return {line.substr(0, colon), colon + 2};
    }

    [[nodiscard]] bool has_key(std::string_view key) const {
        return std::any_of(lines.begin(), lines.end(),
                           [&](const std::string& line) { return key_of(line).first == key; });
    }
};

std::optional<long long> integer_value(std::string_view value) {
    while (!value.empty() && value.back() == '\n') value.remove_suffix(1);
    long long result = 0;
    auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), result);
    if (error != std::errc() || end != value.data() + value.size() || value.empty()) return std::nullopt;
    return result;
}

/// Applies the normalisation (see the header comment) to both replies.
void normalise(reply& expected, reply& actual) {
    if (!expected.ok() || !actual.ok()) return;
    auto reference = yaml_reply::parse(expected.bytes);
    auto candidate = yaml_reply::parse(actual.bytes);
    if (!reference || !candidate) return;

    std::vector<std::string_view> ignored;  // values differ between any two servers
    std::vector<std::string_view> seconds;  // whole seconds counted from a moment in the past
    if (reference->has_key("pid")) {
        ignored = {"pid", "version", "rusage-utime", "rusage-stime", "uptime",
                   "binlog-oldest-index", "binlog-current-index", "binlog-records-migrated",
                   "binlog-records-written", "binlog-max-size", "id", "hostname", "os", "platform"};
    } else if (reference->has_key("time-left")) {
        ignored = {"file"};
        seconds = {"age", "time-left"};
    } else if (reference->has_key("pause-time-left")) {
        seconds = {"pause-time-left"};
    } else {
        return;
    }
    auto is_in = [](const std::vector<std::string_view>& keys, std::string_view key) {
        return std::find(keys.begin(), keys.end(), key) != keys.end();
    };
    auto hide_values = [&](yaml_reply& yaml) {
        for (auto& line : yaml.lines) {
            auto [key, value_at] = yaml_reply::key_of(line);
            if (is_in(ignored, key)) line = line.substr(0, value_at) + "*\n";
        }
    };
    hide_values(*reference);
    hide_values(*candidate);
    for (std::size_t i = 0; i < reference->lines.size() && i < candidate->lines.size(); ++i) {
        auto [key, value_at] = yaml_reply::key_of(reference->lines[i]);
        if (!is_in(seconds, key) || yaml_reply::key_of(candidate->lines[i]).first != key) continue;
        auto want = integer_value(std::string_view(reference->lines[i]).substr(value_at));
        auto got = integer_value(std::string_view(candidate->lines[i]).substr(value_at));
        if (want && got && *got - *want >= -1 && *got - *want <= 1) candidate->lines[i] = reference->lines[i];
    }
    expected.bytes = reference->bytes();
    actual.bytes = candidate->bytes();
}

// ------------------------------------------------------------------- runner

/// One server and the script's connections to it.
struct side {
    std::string label;
    server_process server;
    std::map<std::string, connection> connections;

    side(std::string name, const std::string& program, const std::vector<std::string>& flags, bool quiet)
        : label(std::move(name)), server(program, flags, quiet) {}

    connection& get(const std::string& name) {
        auto found = connections.find(name);
        if (found == connections.end()) found = connections.emplace(name, connection(server.port())).first;
        return found->second;
    }
};

class runner {
public:
    runner(const script& s, const std::string& reference_program, const std::string& tested_program)
        : script_(s),
          reference_("beanstalkd", reference_program, s.flags, /*quiet=*/true),
          tested_("conq-beanstalkd", tested_program, s.flags, /*quiet=*/false),
          trace_(!conq_test::env_or("CONQ_CONFORMANCE_TRACE", "").empty()) {}

    void run() {
        for (const auto& s : script_.steps) {
            settle_before(s);
            if (trace_ && s.line != traced_line_) {
                std::printf("%s:%d  %s\n", script_.name.c_str(), s.line, s.text.c_str());
            }
            traced_line_ = s.line;
            run_step(s);
        }
        finish();
    }

private:
    void settle_before(const step& s) {
        if (!unsettled_) return;
        bool same_connection = !s.conn.empty() && s.conn == *unsettled_;
        if (s.what == step::kind::sleep && s.time >= settle_time) {
            unsettled_.reset();  // the sleep is the wait
        } else if (!same_connection) {
            std::this_thread::sleep_for(settle_time);
            unsettled_.reset();
        }
    }

    void run_step(const step& s) {
        switch (s.what) {
            case step::kind::send:
                for (side* each : {&reference_, &tested_}) (void)each->get(s.conn).send(s.bytes);
                unsettled_ = s.conn;
                break;
            case step::kind::read:
                for (int i = 0; i < s.count; ++i) compare_reply(s, i);
                unsettled_.reset();
                break;
            case step::kind::expect_eof: {
                bool reference_closed = reference_.get(s.conn).at_eof(reply_timeout);
                if (!reference_closed) fail_script(s, "beanstalkd did not close the connection");
                if (connection& tested = tested_.get(s.conn); !tested.at_eof(reply_timeout)) {
                    const std::string& bytes = tested.unread(0ms);
                    fail(s, "beanstalkd closed the connection; conq-beanstalkd " +
                                (bytes.empty() ? std::string("kept it open") : "sent " + visible(bytes)));
                }
                unsettled_.reset();
                break;
            }
            case step::kind::expect_silence: {
                std::this_thread::sleep_for(s.time);
                if (auto what = heard(reference_.get(s.conn))) fail_script(s, "beanstalkd " + *what);
                if (auto what = heard(tested_.get(s.conn))) {
                    fail(s, "beanstalkd sent nothing; conq-beanstalkd " + *what);
                }
                unsettled_.reset();
                break;
            }
            case step::kind::connect:
                for (side* each : {&reference_, &tested_}) {
                    if (each->connections.count(s.conn)) fail_script(s, s.conn + " is already open");
                    (void)each->get(s.conn);
                }
                unsettled_ = s.conn;
                break;
            case step::kind::close:
                for (side* each : {&reference_, &tested_}) each->connections.erase(s.conn);
                std::this_thread::sleep_for(settle_time);
                break;
            case step::kind::shutdown:
                for (side* each : {&reference_, &tested_}) each->get(s.conn).shutdown_write();
                std::this_thread::sleep_for(settle_time);
                break;
            case step::kind::sleep: std::this_thread::sleep_for(s.time); break;
            case step::kind::signal:
                for (side* each : {&reference_, &tested_}) each->server.kill(s.signal);
                std::this_thread::sleep_for(settle_time);
                break;
        }
    }

    /// What the server did on `c` that breaks a silence, if anything.
    static std::optional<std::string> heard(connection& c) {
        if (const std::string& bytes = c.unread(0ms); !bytes.empty()) return "sent " + visible(bytes);
        if (c.at_eof(0ms)) return std::string("closed the connection");
        return std::nullopt;
    }

    void compare_reply(const step& s, int index) {
        reply expected = reference_.get(s.conn).read_reply(reply_timeout);
        if (trace_) std::printf("    -> %s\n", describe(expected).c_str());
        if (!expected.ok()) fail_script(s, "beanstalkd gave " + describe(expected));
        reply actual = tested_.get(s.conn).read_reply(reply_timeout);
        normalise(expected, actual);
        if (actual.ok() && actual.bytes == expected.bytes) return;

        std::string message = s.count > 1 ? "reply " + std::to_string(index + 1) + " of " + std::to_string(s.count)
                                          : "the reply";
        message += " differs";
        if (actual.ok()) message += first_difference(expected.bytes, actual.bytes);
        fail(s, message + ":\n  beanstalkd:      " + describe(expected) + "\n  conq-beanstalkd: " + describe(actual));
    }

    void finish() {
        std::this_thread::sleep_for(50ms);  // time for a reply nobody asked for
        for (side* each : {&reference_, &tested_}) {
            for (auto& [name, conn] : each->connections) {
                const std::string& left = conn.unread(0ms);
                if (left.empty()) continue;
                std::string message = each->label + " sent on " + name + " after the last step: " + visible(left);
                if (each == &reference_) throw std::runtime_error(script_.name + ".txt: unread replies: " + message);
                FAIL(script_.name << ".txt, at the end: " << message);
            }
        }
        tested_.connections.clear();
        int status = tested_.server.stop();
        bool clean = (WIFEXITED(status) && WEXITSTATUS(status) == 0) ||
                     (WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
        if (!clean) {
            FAIL(script_.name << ".txt, at the end: conq-beanstalkd, sent SIGTERM, "
                              << server_process::describe_status(status));
        }
    }

    /// A difference between the servers: the test fails here.
    [[noreturn]] void fail(const step& s, const std::string& what) {
        std::string message = script_.name + ".txt:" + std::to_string(s.line) + "  `" + s.text + "`\n" + what;
        if (auto status = tested_.server.wait_exit(0ms)) {
            message += "\n(conq-beanstalkd " + server_process::describe_status(*status) + ")";
        }
        FAIL(message);
        throw std::logic_error("unreachable");
    }

    /// beanstalkd itself did not do what the script expects.
    [[noreturn]] void fail_script(const step& s, const std::string& what) {
        throw std::runtime_error(script_.name + ".txt:" + std::to_string(s.line) + "  `" + s.text +
                                 "`: error in the script: " + what);
    }

    const script& script_;
    side reference_;
    side tested_;
    bool trace_;
    int traced_line_ = 0;
    std::optional<std::string> unsettled_;  // a connection with a send or connect not settled yet
};

}  // namespace

TEST_CASE("conq-beanstalkd replies as beanstalkd does, byte for byte", "[server][conformance]") {
    std::string reference_program = conq_test::env_or("BEANSTALKD", "/usr/bin/beanstalkd");
    std::string tested_program = conq_test::env_or("CONQ_BEANSTALKD", "");
    if (tested_program.empty()) FAIL("set CONQ_BEANSTALKD to the conq-beanstalkd program (ctest does)");
    if (::access(reference_program.c_str(), X_OK) != 0) {
        FAIL("no beanstalkd at " << reference_program
                                 << ": install it (Debian: beanstalkd; scripts/install-deps.sh test) "
                                    "or set BEANSTALKD");
    }

    auto paths = script_paths();
    REQUIRE_FALSE(paths.empty());
    for (const auto& path : paths) {
        DYNAMIC_SECTION(path.stem().string()) {
            script s = parse_script(path);
            runner(s, reference_program, tested_program).run();
        }
    }
}

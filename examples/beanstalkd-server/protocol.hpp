// The beanstalkd protocol's command lines: splitting a byte stream into lines
// and parsing one line into a command, with the exact acceptance rules of
// beanstalkd 1.12 (prot.c), quirks included, so that conq-beanstalkd answers
// malformed input with the same error as the real server:
//
//   - a line ends at the first "\r\n"; a '\r' followed by anything else
//     leaves the line unfinished. A line is at most 224 bytes with its CRLF.
//     A longer one is thrown away, 224 bytes at a time, until a line end
//     shows up in one of those pieces (a CRLF cut in two between pieces
//     does not count); then it is answered BAD_FORMAT and what follows its
//     end is the next command;
//   - commands are recognised by prefix, in beanstalkd's order ("reservex"
//     is reserve with trailing garbage, so BAD_FORMAT, not UNKNOWN_COMMAND);
//   - numbers may be preceded by spaces and must start with a digit (no
//     sign); u32 fields reject values over 2^32-1;
//   - tube names: 1 to 200 of A-Z a-z 0-9 - + / ; . $ _ ( ), not starting
//     with '-'.
//
// Pure functions over std::string_view, no allocation: the fuzz target
// (tests/fuzz/beanstalk_protocol.fuzz.cpp) drives them directly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string_view>

namespace conq::beanstalk {

/// The longest command line, its CRLF included (beanstalkd's LINE_BUF_SIZE).
inline constexpr std::size_t line_max = 224;
/// The longest tube name.
inline constexpr std::size_t tube_name_max = 200;
/// The default and the largest -z (beanstalkd's JOB_DATA_SIZE_LIMIT_*).
inline constexpr std::size_t job_size_default = 65535;
inline constexpr std::size_t job_size_max = 1073741824;

enum class op : std::uint8_t {
    put, peek, peek_ready, peek_delayed, peek_buried, reserve_with_timeout, reserve_job, reserve,
    remove, release, bury, kick, kick_job, touch, stats_job, stats_tube, stats, use, watch, ignore,
    list_tubes_watched, list_tube_used, list_tubes, quit, pause_tube, unknown,
};
inline constexpr std::size_t op_count = static_cast<std::size_t>(op::unknown) + 1;

/// What a command line asks, or why it is refused.
struct command {
    enum class status : std::uint8_t {
        ok,
        bad_format,       ///< BAD_FORMAT
        unknown_command,  ///< UNKNOWN_COMMAND
    };
    op verb = op::unknown;
    status result = status::unknown_command;
    /// beanstalkd counts the command in its statistics, then answers
    /// BAD_FORMAT: a put whose size is followed by garbage (but a size over
    /// the limit answers JOB_TOO_BIG, after reading the body), a pause-tube
    /// whose tube name is not a valid one.
    bool late_bad_format = false;
    std::string_view tube;          ///< use, watch, ignore, stats-tube, pause-tube
    std::uint64_t id = 0;           ///< the by-id commands
    std::uint32_t priority = 0;     ///< put, release, bury
    std::uint32_t delay = 0;        ///< put, release, pause-tube: seconds
    std::uint32_t ttr = 0;          ///< put: seconds, as sent (0 means 1)
    std::uint32_t bytes = 0;        ///< put: body size without its CRLF
    std::int32_t timeout = 0;       ///< reserve-with-timeout: seconds; negative waits for ever
    std::uint32_t bound = 0;        ///< kick

    [[nodiscard]] bool ok() const noexcept { return result == status::ok; }
};

/// Where the next command line ends in `buf` (bytes not yet consumed).
struct line_scan {
    enum class kind : std::uint8_t {
        incomplete,  ///< wait for more bytes
        line,        ///< buf[0, length) is a line, then its CRLF
        overlong,    ///< line_max bytes without an end: drop them (see the top)
    };
    kind what = kind::incomplete;
    std::size_t length = 0;    ///< line: bytes before the CRLF
    std::size_t consumed = 0;  ///< line: length + 2; overlong: line_max
};

[[nodiscard]] constexpr line_scan scan_line(std::string_view buf) noexcept {
    const std::size_t window = buf.size() < line_max ? buf.size() : line_max;
    // beanstalkd looks at the first '\r' of its buffer, in all but the last
    // byte (which may be a '\r' whose '\n' has not arrived yet).
    if (window >= 2) {
        const std::size_t cr = buf.substr(0, window - 1).find('\r');
        if (cr != std::string_view::npos && buf[cr + 1] == '\n')
            return {line_scan::kind::line, cr, cr + 2};
    }
    if (window == line_max) return {line_scan::kind::overlong, 0, line_max};
    return {};
}

namespace detail {

constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
constexpr bool is_c_space(char c) noexcept {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}
constexpr bool is_name_char(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '-' || c == '+' ||
           c == '/' || c == ';' || c == '.' || c == '$' || c == '_' || c == '(' || c == ')';
}

/// Digits at the front of s as an unsigned value; false on overflow of U.
template <class U>
constexpr bool parse_digits(std::string_view& s, U& out) noexcept {
    U v = 0;
    std::size_t i = 0;
    for (; i < s.size() && is_digit(s[i]); ++i) {
        const U d = static_cast<U>(s[i] - '0');
        if (v > (std::numeric_limits<U>::max() - d) / 10) return false;
        v = static_cast<U>(v * 10 + d);
    }
    out = v;
    s.remove_prefix(i);
    return true;
}

/// beanstalkd's read_u32/read_u64: spaces, then at least one digit, no
/// overflow; with `to_end` nothing may follow. Advances s past the number.
template <class U>
constexpr bool read_uint(std::string_view& s, U& out, bool to_end) noexcept {
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    if (s.empty() || !is_digit(s.front())) return false;
    if (!parse_digits(s, out)) return false;
    return !to_end || s.empty();
}

/// strtoul/strtol's reading: C whitespace, an optional sign, digits (none
/// gives 0 and `any` false); false on overflow (ERANGE).
constexpr bool read_c_integer(std::string_view s, bool& negative, std::uint64_t& magnitude, bool& any) noexcept {
    while (!s.empty() && is_c_space(s.front())) s.remove_prefix(1);
    negative = false;
    if (!s.empty() && (s.front() == '+' || s.front() == '-')) {
        negative = s.front() == '-';
        s.remove_prefix(1);
    }
    any = !s.empty() && is_digit(s.front());
    magnitude = 0;
    return parse_digits(s, magnitude);
}

/// beanstalkd's name_is_ok: the whole rest is a valid tube name.
constexpr bool name_is_ok(std::string_view s) noexcept {
    if (s.empty() || s.size() > tube_name_max || s.front() == '-') return false;
    for (const char c : s)
        if (!is_name_char(c)) return false;
    return true;
}

struct prefix_entry {
    std::string_view text;
    op verb;
};
// beanstalkd's which_cmd order: a prefix test, so "reserve-with-timeout "
// must come before "reserve", and "stats-job " before "stats".
inline constexpr prefix_entry prefixes[] = {
    {"put ", op::put},
    {"peek ", op::peek},
    {"peek-ready", op::peek_ready},
    {"peek-delayed", op::peek_delayed},
    {"peek-buried", op::peek_buried},
    {"reserve-with-timeout ", op::reserve_with_timeout},
    {"reserve-job ", op::reserve_job},
    {"reserve", op::reserve},
    {"delete ", op::remove},
    {"release ", op::release},
    {"bury ", op::bury},
    {"kick ", op::kick},
    {"kick-job ", op::kick_job},
    {"touch ", op::touch},
    {"stats-job ", op::stats_job},
    {"stats-tube ", op::stats_tube},
    {"stats", op::stats},
    {"use ", op::use},
    {"watch ", op::watch},
    {"ignore ", op::ignore},
    {"list-tubes-watched", op::list_tubes_watched},
    {"list-tube-used", op::list_tube_used},
    {"list-tubes", op::list_tubes},
    {"quit", op::quit},
    {"pause-tube", op::pause_tube},
};

}  // namespace detail

/// The protocol's name of a command (for cmd-* statistics and logs).
[[nodiscard]] constexpr std::string_view name(op o) noexcept {
    switch (o) {
    case op::put: return "put";
    case op::peek: return "peek";
    case op::peek_ready: return "peek-ready";
    case op::peek_delayed: return "peek-delayed";
    case op::peek_buried: return "peek-buried";
    case op::reserve_with_timeout: return "reserve-with-timeout";
    case op::reserve_job: return "reserve-job";
    case op::reserve: return "reserve";
    case op::remove: return "delete";
    case op::release: return "release";
    case op::bury: return "bury";
    case op::kick: return "kick";
    case op::kick_job: return "kick-job";
    case op::touch: return "touch";
    case op::stats_job: return "stats-job";
    case op::stats_tube: return "stats-tube";
    case op::stats: return "stats";
    case op::use: return "use";
    case op::watch: return "watch";
    case op::ignore: return "ignore";
    case op::list_tubes_watched: return "list-tubes-watched";
    case op::list_tube_used: return "list-tube-used";
    case op::list_tubes: return "list-tubes";
    case op::quit: return "quit";
    case op::pause_tube: return "pause-tube";
    case op::unknown: break;
    }
    return "unknown";
}

/// Parses one command line (without its CRLF). The tube name, if any, points
/// into `line`.
[[nodiscard]] constexpr command parse(std::string_view line) noexcept {
    using detail::read_uint;
    command c;
    const auto bad = [&c] {
        c.result = command::status::bad_format;
        return c;
    };
    // beanstalkd NUL-terminates the line and refuses one that is shorter
    // as a C string.
    if (line.find('\0') != std::string_view::npos) return bad();
    std::string_view rest;
    for (const auto& p : detail::prefixes) {
        if (line.substr(0, p.text.size()) == p.text) {
            c.verb = p.verb;
            rest = line.substr(p.text.size());
            break;
        }
    }
    c.result = command::status::ok;
    switch (c.verb) {
    case op::unknown: c.result = command::status::unknown_command; return c;
    case op::put: {
        if (!read_uint(rest, c.priority, false) || !read_uint(rest, c.delay, false) ||
            !read_uint(rest, c.ttr, false) || !read_uint(rest, c.bytes, false))
            return bad();
        c.late_bad_format = !rest.empty();
        return c;
    }
    case op::peek_ready:
    case op::peek_delayed:
    case op::peek_buried:
    case op::reserve:
    case op::stats:
    case op::list_tubes_watched:
    case op::list_tube_used:
    case op::list_tubes:
        // "don't allow trailing garbage"
        if (!rest.empty()) return bad();
        return c;
    case op::quit: return c;  // beanstalkd ignores what follows "quit"
    case op::peek:
    case op::reserve_job:
    case op::remove:
    case op::kick_job:
    case op::touch:
    case op::stats_job:
        if (!read_uint(rest, c.id, true)) return bad();
        return c;
    case op::release:
        if (!read_uint(rest, c.id, false) || !read_uint(rest, c.priority, false) || !read_uint(rest, c.delay, true))
            return bad();
        return c;
    case op::bury:
        if (!read_uint(rest, c.id, false) || !read_uint(rest, c.priority, true)) return bad();
        return c;
    case op::reserve_with_timeout: {
        // strtol into an int: no digits reads 0, a negative value waits for
        // ever, only overflow of a long is refused.
        bool negative = false, any = false;
        std::uint64_t m = 0;
        if (!detail::read_c_integer(rest, negative, m, any)) return bad();
        if (negative ? m > std::uint64_t{1} << 63 : m > std::uint64_t{std::numeric_limits<std::int64_t>::max()})
            return bad();
        const std::uint64_t v = negative ? ~m + 1 : m;
        c.timeout = static_cast<std::int32_t>(static_cast<std::uint32_t>(v));
        return c;
    }
    case op::kick: {
        // strtoul into an unsigned int: at least one digit, a sign wraps.
        bool negative = false, any = false;
        std::uint64_t m = 0;
        if (!detail::read_c_integer(rest, negative, m, any) || !any) return bad();
        c.bound = static_cast<std::uint32_t>(negative ? ~m + 1 : m);
        return c;
    }
    case op::stats_tube:
    case op::use:
    case op::watch:
    case op::ignore:
        if (!detail::name_is_ok(rest)) return bad();
        c.tube = rest;
        return c;
    case op::pause_tube: {
        // read_tube_name: spaces, then name characters (no space is needed
        // after "pause-tube"), then the delay to the end; the name's length
        // and first character are checked after the command is counted.
        while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
        std::size_t n = 0;
        while (n < rest.size() && detail::is_name_char(rest[n])) ++n;
        if (n == 0) return bad();
        c.tube = rest.substr(0, n);
        rest.remove_prefix(n);
        if (!read_uint(rest, c.delay, true)) return bad();
        c.late_bad_format = !detail::name_is_ok(c.tube);
        return c;
    }
    }
    return c;
}

}  // namespace conq::beanstalk

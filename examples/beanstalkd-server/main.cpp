// conq-beanstalkd: a drop-in replacement for beanstalkd 1.12 over conq's
// work queues. The flags are beanstalkd's own:
//
//   conq-beanstalkd [-l ADDR] [-p PORT] [-z BYTES] [-b DIR [-f MS | -F] [-s BYTES]] [-S US] [-V] [-v] [-h]
//
// -S is conq-beanstalkd's own: how long the loop polls for more work after
// serving some before it sleeps (default 50 microseconds, 0 never polls).
//
// See docs/beanstalkd-server.md.
#include "server.hpp"

#include <conq/durable/log.hpp>

#include <pthread.h>
#include <signal.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <string_view>

namespace {

struct flags {
    conq::beanstalk::server_options server;
    std::string binlog_dir;
    long fsync_ms = 50;  // beanstalkd's default -f
    bool no_fsync = false;
};

[[noreturn]] void usage(int status) {
    std::FILE* out = status == 0 ? stdout : stderr;
    std::fprintf(out,
                 "Use: conq-beanstalkd [OPTIONS]\n"
                 "\n"
                 "Options:\n"
                 " -b DIR   write-ahead log directory (jobs survive a restart)\n"
                 " -f MS    fsync at most once every MS milliseconds (default 50; 0: before every reply)\n"
                 " -F       never fsync\n"
                 " -l ADDR  listen on address (default is 127.0.0.1; unix:PATH for a unix socket)\n"
                 " -p PORT  listen on port (default is 11300; 0 picks one and prints it)\n"
                 " -s BYTES size of each write-ahead log file (default is 10485760)\n"
                 " -S US    after serving, poll this many microseconds before sleeping (default 50; 0: never)\n"
                 " -z BYTES set the maximum job size in bytes (default is 65535, at most 1073741824)\n"
                 " -V       increase verbosity\n"
                 " -v       show version information\n"
                 " -h       show this help\n");
    std::exit(status);
}

[[noreturn]] void fail(const char* what, const char* arg) {
    std::fprintf(stderr, "conq-beanstalkd: %s: %s\n", what, arg);
    usage(5);
}

unsigned long long number(const char* s, const char* flag, unsigned long long max) {
    char* end = nullptr;
    errno = 0;
    const unsigned long long v = std::strtoull(s, &end, 10);
    if (errno || end == s || *end != '\0' || s[0] == '-' || v > max) fail(flag, s);
    return v;
}

// beanstalkd's parsing: flags may be grouped (-VV) and take their value
// from the rest of the word or the next one (-p11300, -p 11300).
flags parse(int argc, char** argv) {
    flags f;
    for (int i = 1; i < argc; ++i) {
        const char* a = argv[i];
        if (a[0] != '-' || a[1] == '\0') fail("unknown argument", a);
        for (const char* p = a + 1; *p; ++p) {
            const char flag = *p;
            const auto value = [&]() -> const char* {
                if (p[1] != '\0') {
                    const char* v = p + 1;
                    p += std::strlen(p) - 1;
                    return v;
                }
                if (i + 1 >= argc) fail("missing value for flag", a);
                return argv[++i];
            };
            switch (flag) {
            case 'b': f.binlog_dir = value(); break;
            case 'f': f.fsync_ms = static_cast<long>(number(value(), "invalid -f", 86'400'000)); break;
            case 'F': f.no_fsync = true; break;
            case 'l': f.server.address = value(); break;
            case 'p': f.server.port = static_cast<std::uint16_t>(number(value(), "invalid -p", 65535)); break;
            case 's': f.server.binlog_max_size = number(value(), "invalid -s", 1ull << 40); break;
            case 'S': f.server.spin_us = static_cast<int>(number(value(), "invalid -S", 1'000'000)); break;
            case 'z':
                f.server.max_job_size = number(value(), "invalid -z", conq::beanstalk::job_size_max);
                break;
            case 'V': ++f.server.verbose; break;
            case 'v':
                std::printf("conq-beanstalkd %d.%d.%d (beanstalkd 1.12 protocol)\n", conq::version_major,
                            conq::version_minor, conq::version_patch);
                std::exit(0);
            case 'h': usage(0);
            case 'c':
            case 'n': break;  // beanstalkd's old compaction switches: no effect there either
            default: {
                const char s[2] = {flag, '\0'};
                fail("unknown flag", s);
            }
            }
        }
    }
    return f;
}

}  // namespace

int main(int argc, char** argv) {
    const flags f = parse(argc, argv);

    // Signals are read from a signalfd by the loop: block them in every
    // thread, including those the durable journal starts.
    sigset_t set;
    sigemptyset(&set);
    for (const int s : {SIGINT, SIGTERM, SIGUSR1}) sigaddset(&set, s);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    try {
        conq::work_queue_options wo;
        // The stored size of a job: its body, and the codec's few bytes.
        wo.max_payload = f.server.max_job_size + 64;
        std::optional<conq::beanstalk::job_queues> queues;
        if (f.binlog_dir.empty()) {
            queues.emplace(wo);
        } else {
            conq::durable_options d;
            d.sync = f.no_fsync ? conq::sync::none
                     : f.fsync_ms == 0 ? conq::sync::always
                                       : conq::sync::interval(std::chrono::milliseconds(f.fsync_ms));
            d.max_record_size = static_cast<std::uint32_t>(
                std::max<std::size_t>(std::size_t{1} << 20, f.server.max_job_size + 4096));
            d.segment_size = std::max<std::uint64_t>(f.server.binlog_max_size, std::uint64_t{d.max_record_size} * 4);
            queues.emplace(std::filesystem::path(f.binlog_dir), d, wo);
        }
        conq::beanstalk::server s(*queues, f.server);
        s.handle_signals();
        if (f.server.port == 0) {
            std::printf("%u\n", static_cast<unsigned>(s.port()));
            std::fflush(stdout);
        }
        s.run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "conq-beanstalkd: %s\n", e.what());
        return 1;
    }
    return 0;
}

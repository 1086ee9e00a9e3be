// Kill -9 of a process using durable conq::streams (sync::always).
//
// The test forks and executes this same program again, running only the
// hidden test case "[.stream_child]". The child opens the streams in the
// directory it is given, opens the stream "s" (3 partitions) and works from
// four threads:
//   - two appenders append keyed records; each key belongs to one appender
//     (the keys of each partition are dealt to both, so both append to every
//     partition at once), and its records carry the key and a per-key
//     sequence number (0, 1, 2, ... over the whole history; the parent says
//     where each key goes on). Each append is reported over a pipe, as
//     (partition, offset, key, seq), once append() has returned;
//   - two consumers, each the only member of its group ("g", "h"), poll,
//     check every record they get (payload, key, per-key order) and now and
//     then commit, all positions or one partition's; each commit is
//     reported, as (group, partition, next offset), once commit() returned.
// The parent kills the child at a random moment (now and then during its
// start, which includes recovery; otherwise 10 to 150 ms after the child
// said it is ready), reopens the directory and checks:
//   - offsets are dense from 0 in every partition, and every record decodes
//     (stream::read throws on a torn one), is keyed, sits in its key's
//     partition and carries exactly the payload of its (key, seq);
//   - per key, the sequence numbers in offset order are exactly 0, 1, 2, ...
//     (an appender appends a key's next record only after the previous one's
//     append returned, so no record of a key can be lost before a later one
//     of it survives; what a kill loses is a tail, and the next round goes on
//     from what is there);
//   - every reported append is at its reported partition and offset, and
//     every record an earlier round found is still there, unchanged;
//   - every reported commit is visible: committed(group, p) is at least the
//     reported value; a group's committed offsets never go back and never
//     pass the end of the partition; a new member starts there.
// Then the next round goes on appending and committing in the same
// directory: recovery after recovery, segment rolls, offsets-log compaction.
//
// A kill -9 leaves the page cache alone: this test cannot see a missing
// fsync, only records or commits that were reported but are not there
// (misordered publication, a bad recovery, a commit returned before it was
// written). Power cuts are tests/crash/power_loss.tests.cpp's part.
#include "conq_catch.hpp"
#include "stress_config.hpp"
#include "temp_dir.hpp"
#include "watchdog.hpp"

#include <conq/broker/stream.hpp>

#include <array>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

using streams_t = conq::streams<std::string>;
using record_t = conq::stream_record<std::string>;

constexpr std::uint32_t partitions = 3;
constexpr std::uint32_t key_count = 16;
constexpr std::array<const char*, 2> group_names = {"g", "h"};

std::string key_name(std::uint32_t k) { return "key-" + std::to_string(k); }

std::uint32_t key_partition(std::uint32_t k) { return conq::stream_key_partition(key_name(k), partitions); }

/// Which appender (0 or 1) owns key k: the keys of each partition, in order,
/// are dealt to the two in turn.
unsigned key_owner(std::uint32_t k) {
    unsigned before = 0;
    for (std::uint32_t j = 0; j < k; ++j) before += key_partition(j) == key_partition(k);
    return before % 2;
}

/// The payload of a key's seq-th record: "key-K#seq#" and a filler whose
/// length and letters depend on both.
std::string body(std::uint32_t k, std::uint64_t seq) {
    std::string s = key_name(k) + "#" + std::to_string(seq) + "#";
    s.append(static_cast<std::size_t>((seq * 7 + k * 13) % 200), static_cast<char>('a' + (seq + k) % 26));
    return s;
}

/// Parses a payload made by body(); false if it is not one (wrong key,
/// number, or filler).
bool parse(std::string_view key, std::string_view payload, std::uint32_t& k, std::uint64_t& seq) {
    if (key.substr(0, 4) != "key-") return false;
    const auto [p, ec] = std::from_chars(key.data() + 4, key.data() + key.size(), k);
    if (ec != std::errc() || p != key.data() + key.size() || k >= key_count || key_name(k) != key) return false;
    if (payload.substr(0, key.size() + 1) != std::string(key) + "#") return false;
    const char* at = payload.data() + key.size() + 1;
    const char* end = payload.data() + payload.size();
    const auto [q, ec2] = std::from_chars(at, end, seq);
    if (ec2 != std::errc() || q == end || *q != '#') return false;
    return payload == body(k, seq);
}

conq::durable_options opts() {
    conq::durable_options o;
    o.segment_size = 1 << 20;
    o.max_record_size = 4096;
    o.sync = conq::sync::always;
    return o;
}

conq::stream_options stream_opts() {
    conq::stream_options o;
    o.partitions = partitions;
    o.max_payload = 1024;
    return o;
}

// What the child reports, one write each (atomic: below PIPE_BUF).
struct message {
    std::uint32_t kind;  // ready, appended or committed
    std::uint32_t partition;
    std::uint64_t offset;  // appended: the record's offset; committed: the next offset
    std::uint64_t who;     // appended: the key; committed: the group
    std::uint64_t seq;     // appended: the key's sequence number
};
static_assert(sizeof(message) == 32);
enum : std::uint32_t { ready = 1, appended = 2, committed = 3 };

/// Starts this program again as the child.
pid_t spawn(const std::filesystem::path& dir, int read_fd, int write_fd, std::uint64_t seed,
            const std::string& next_seqs) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::close(read_fd);
        ::setenv("CONQ_SK_DIR", dir.c_str(), 1);
        ::setenv("CONQ_SK_FD", std::to_string(write_fd).c_str(), 1);
        ::setenv("CONQ_SK_SEED", std::to_string(seed).c_str(), 1);
        ::setenv("CONQ_SK_NEXT", next_seqs.c_str(), 1);
        ::execl("/proc/self/exe", "/proc/self/exe", "[.stream_child]", static_cast<char*>(nullptr));
        ::_exit(127);
    }
    return pid;
}

/// Reads what is there now from the (non-blocking) pipe into `buf`; false
/// at end of file.
bool drain(int fd, std::string& buf) {
    char chunk[4096];
    for (;;) {
        const ::ssize_t n = ::read(fd, chunk, sizeof chunk);
        if (n > 0) {
            buf.append(chunk, static_cast<std::size_t>(n));
            continue;
        }
        if (n == 0) return false;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
        FAIL("read from the child's pipe: " << std::strerror(errno));
    }
}

/// The complete messages in `buf` (taken out of it).
std::vector<message> take_messages(std::string& buf) {
    std::vector<message> out(buf.size() / sizeof(message));
    if (!out.empty()) std::memcpy(out.data(), buf.data(), out.size() * sizeof(message));
    buf.erase(0, out.size() * sizeof(message));
    return out;
}

struct found {
    std::uint32_t key;
    std::uint64_t seq;
    friend bool operator==(const found&, const found&) = default;
};

}  // namespace

// The child's part: hidden, run only by spawn(). It never returns.
TEST_CASE("durable streams child process", "[.stream_child]") {
    const char* dir = std::getenv("CONQ_SK_DIR");
    const char* fd_text = std::getenv("CONQ_SK_FD");
    const char* seed_text = std::getenv("CONQ_SK_SEED");
    const char* next_text = std::getenv("CONQ_SK_NEXT");
    if (!dir || !fd_text || !seed_text || !next_text) ::_exit(6);
    const int fd = std::atoi(fd_text);
    const auto seed = std::strtoull(seed_text, nullptr, 10);
    std::vector<std::uint64_t> start(key_count, 0);
    {
        const char* at = next_text;
        for (std::uint32_t k = 0; k < key_count; ++k) {
            char* end = nullptr;
            start[k] = std::strtoull(at, &end, 10);
            if (end == at || (*end != ',' && *end != '\0')) ::_exit(6);
            at = *end ? end + 1 : end;
        }
    }
    auto report = [fd](const message& m) {
        if (::write(fd, &m, sizeof m) != static_cast<::ssize_t>(sizeof m)) ::_exit(3);
    };
    try {
        streams_t s(dir, opts());
        auto& st = s.create("s", stream_opts());
        report({ready, 0, 0, 0, 0});
        std::vector<std::thread> threads;
        for (unsigned t = 0; t < 2; ++t)
            threads.emplace_back([&, t] {
                try {
                    std::mt19937_64 rng(seed * 4 + t);
                    std::vector<std::uint32_t> mine;
                    for (std::uint32_t k = 0; k < key_count; ++k)
                        if (key_owner(k) == t) mine.push_back(k);
                    std::vector<std::uint64_t> next = start;
                    for (;;) {
                        const std::uint32_t k = mine[rng() % mine.size()];
                        const std::uint64_t seq = next[k]++;
                        const conq::append_result r = st.append(key_name(k), body(k, seq));
                        if (r.partition != key_partition(k)) ::_exit(4);
                        report({appended, r.partition, r.offset, k, seq});
                    }
                } catch (...) {
                    ::_exit(2);
                }
            });
        for (unsigned g = 0; g < group_names.size(); ++g)
            threads.emplace_back([&, g] {
                try {
                    std::mt19937_64 rng(seed * 4 + 2 + g);
                    auto c = st.join(group_names[g], "only");
                    std::vector<record_t> batch;
                    std::vector<std::optional<std::uint64_t>> last(key_count);  // per key, the last seq read
                    for (;;) {
                        batch.clear();
                        c.poll(batch, 1 + rng() % 64, std::chrono::milliseconds(1));
                        for (const auto& r : batch) {
                            std::uint32_t k = 0;
                            std::uint64_t seq = 0;
                            if (!r.keyed() || !parse(r.key(), r.payload(), k, seq)) ::_exit(5);
                            if (r.partition != key_partition(k)) ::_exit(5);
                            if (last[k] && seq != *last[k] + 1) ::_exit(5);
                            last[k] = seq;
                        }
                        if (rng() % 3 != 0) continue;
                        if (rng() % 2 == 0) {
                            std::array<std::uint64_t, partitions> at{};
                            for (std::uint32_t p = 0; p < partitions; ++p) at[p] = c.position(p);
                            c.commit();
                            for (std::uint32_t p = 0; p < partitions; ++p) report({committed, p, at[p], g, 0});
                        } else {
                            const auto p = static_cast<std::uint32_t>(rng() % partitions);
                            const std::uint64_t at = c.position(p);
                            c.commit(p, at);
                            report({committed, p, at, g, 0});
                        }
                    }
                } catch (...) {
                    ::_exit(2);
                }
            });
        for (auto& t : threads) t.join();
    } catch (...) {
        ::_exit(2);
    }
    ::_exit(0);
}

TEST_CASE("durable streams survive SIGKILL: reported appends and commits are there, offsets dense, nothing torn",
          "[crash][stream]") {
    conq_test::watchdog dog("streams kill -9", std::chrono::seconds(300));
    conq_test::temp_dir dir("conq-streamkill");
    const auto sdir = dir.path() / "streams";
    {
        std::array<std::array<std::uint32_t, 2>, partitions> owners{};
        for (std::uint32_t k = 0; k < key_count; ++k) ++owners[key_partition(k)][key_owner(k)];
        for (std::uint32_t p = 0; p < partitions; ++p) {
            INFO("partition " << p);
            REQUIRE(owners[p][0] > 0);  // both appenders write to every partition
            REQUIRE(owners[p][1] > 0);
        }
    }
    {
        auto o = opts();
        o.prefault = false;
        streams_t s(sdir, o);
        s.create("s", stream_opts());
    }

    std::mt19937_64 rng(20240611);
    const std::size_t rounds = 25 * conq_test::stress_scale();
    std::array<std::vector<found>, partitions> seen;  // every record found so far, by partition and offset
    std::array<std::array<std::uint64_t, partitions>, group_names.size()> last_committed{};
    std::vector<std::uint64_t> next_seq(key_count, 0);
    std::uint64_t appends_total = 0, commits_total = 0, early_kills = 0;
    for (std::size_t round = 0; round < rounds; ++round) {
        INFO("round " << round);
        std::string next_text;
        for (std::uint32_t k = 0; k < key_count; ++k) {
            if (k) next_text += ',';
            next_text += std::to_string(next_seq[k]);
        }
        int fds[2];
        REQUIRE(::pipe(fds) == 0);
        REQUIRE(::fcntl(fds[0], F_SETFL, O_NONBLOCK) == 0);
        const pid_t pid = spawn(sdir, fds[0], fds[1], rng(), next_text);
        ::close(fds[1]);

        // One round in five is killed during the child's start (opening the
        // directory: recovery); the others a while after it is ready.
        const bool early = rng() % 5 == 0;
        early_kills += early;
        const auto spawned = std::chrono::steady_clock::now();
        std::optional<std::chrono::steady_clock::time_point> kill_at;
        if (early) kill_at = spawned + std::chrono::microseconds(rng() % 20000);
        const auto after_ready = std::chrono::microseconds(10000 + rng() % 140000);
        std::string buf;
        std::vector<message> got;
        bool open = true;
        while (open) {
            const auto t = std::chrono::steady_clock::now();
            if (kill_at && t >= *kill_at) break;
            if (t - spawned > std::chrono::seconds(60)) {
                ::kill(pid, SIGKILL);
                ::waitpid(pid, nullptr, 0);
                FAIL("the child did not get ready within 60 s");
            }
            const std::chrono::steady_clock::duration wait =
                kill_at ? *kill_at - t : std::chrono::milliseconds(100);
            pollfd pf{fds[0], POLLIN, 0};
            ::poll(&pf, 1, static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(wait).count()) + 1);
            open = drain(fds[0], buf);
            for (const message& m : take_messages(buf)) {
                if (m.kind == ready && !kill_at) kill_at = std::chrono::steady_clock::now() + after_ready;
                got.push_back(m);
            }
        }
        ::kill(pid, SIGKILL);
        int status = 0;
        REQUIRE(::waitpid(pid, &status, 0) == pid);
        INFO("child status " << status);
        // An exit code means the child found something wrong (or failed).
        REQUIRE(WIFSIGNALED(status));
        REQUIRE(WTERMSIG(status) == SIGKILL);
        while (drain(fds[0], buf)) {
        }
        ::close(fds[0]);
        for (const message& m : take_messages(buf)) got.push_back(m);
        CONQ_REQUIRE(buf.empty());

        // Reopen and read everything.
        auto o = opts();
        o.prefault = false;
        streams_t s(sdir, o);
        REQUIRE(s.names() == std::vector<std::string>{"s"});
        auto& st = s.get("s");
        REQUIRE(st.options() == stream_opts());
        std::vector<std::uint64_t> seqs(key_count, 0);
        std::vector<record_t> batch;
        for (std::uint32_t p = 0; p < partitions; ++p) {
            INFO("partition " << p);
            REQUIRE(st.begin_offset(p) == 0u);
            const std::uint64_t end = st.end_offset(p);
            REQUIRE(end >= seen[p].size());  // nothing found before is gone
            std::vector<found> recs;
            recs.reserve(static_cast<std::size_t>(end));
            while (recs.size() < end) {
                batch.clear();
                const std::size_t n = st.read(p, recs.size(), 4096, batch);  // throws on a torn record
                CONQ_REQUIRE(n > 0);
                CONQ_REQUIRE_EQ(batch.size(), n);
                for (const auto& r : batch) {
                    CONQ_REQUIRE_EQ(r.partition, p);
                    CONQ_REQUIRE_EQ(r.offset, recs.size());  // dense
                    CONQ_REQUIRE(r.keyed());
                    std::uint32_t k = 0;
                    std::uint64_t seq = 0;
                    if (!parse(r.key(), r.payload(), k, seq))
                        FAIL("offset " << r.offset << ": key \"" << r.key() << "\", payload \"" << r.payload()
                                       << "\" is not a record of this test");
                    CONQ_REQUIRE_EQ(key_partition(k), p);
                    CONQ_REQUIRE_EQ(seq, seqs[k]);  // per key: 0, 1, 2, ...
                    ++seqs[k];
                    recs.push_back({k, seq});
                }
            }
            batch.clear();
            CONQ_REQUIRE_EQ(st.read(p, end, 16, batch), 0u);  // nothing past the end
            // Every record an earlier round found is still there, unchanged.
            for (std::size_t i = 0; i < seen[p].size(); ++i) CONQ_REQUIRE(recs[i] == seen[p][i]);
            seen[p] = std::move(recs);
        }

        // What the child reported.
        std::uint64_t appends = 0, commits = 0;
        bool was_ready = false;
        for (const message& m : got) {
            switch (m.kind) {
            case ready: was_ready = true; break;
            case appended: {
                ++appends;
                CONQ_REQUIRE(m.partition < partitions);
                CONQ_REQUIRE(m.who < key_count);
                CONQ_REQUIRE_EQ(key_partition(static_cast<std::uint32_t>(m.who)), m.partition);
                const auto& part = seen[m.partition];
                if (m.offset >= part.size())
                    FAIL("reported append of key " << m.who << " seq " << m.seq << " at partition " << m.partition
                                                   << " offset " << m.offset << " is gone (partition ends at "
                                                   << part.size() << ")");
                CONQ_REQUIRE(part[m.offset] == (found{static_cast<std::uint32_t>(m.who), m.seq}));
                break;
            }
            case committed: {
                ++commits;
                CONQ_REQUIRE(m.partition < partitions);
                CONQ_REQUIRE(m.who < group_names.size());
                const std::uint64_t c = st.committed(group_names[m.who], m.partition);
                if (c < m.offset)
                    FAIL("group " << group_names[m.who] << " partition " << m.partition << ": commit of "
                                  << m.offset << " was reported, committed() says " << c);
                break;
            }
            default: FAIL("unknown report kind " << m.kind);
            }
        }
        if (!early) CHECK(was_ready);
        for (std::uint32_t g = 0; g < group_names.size(); ++g) {
            auto c = st.join(group_names[g], "checker");  // the child's member is gone: this one owns all
            for (std::uint32_t p = 0; p < partitions; ++p) {
                INFO("group " << group_names[g] << ", partition " << p);
                const std::uint64_t at = st.committed(group_names[g], p);
                CHECK(at >= last_committed[g][p]);  // commits only move forward here
                CHECK(at <= st.end_offset(p));
                CHECK(c.position(p) == at);  // a new member starts at the committed offset
                last_committed[g][p] = at;
            }
        }
        next_seq = seqs;
        appends_total += appends;
        commits_total += commits;
    }
    std::uint64_t records = 0;
    for (const auto& part : seen) records += part.size();
    if (std::getenv("CONQ_STRESS_VERBOSE") != nullptr) {
        // The oldest segment of offsets/: above 0 once compaction deleted some.
        std::string first_offsets_segment;
        for (const auto& e : std::filesystem::directory_iterator(sdir / "s" / "offsets"))
            if (e.path().extension() == ".seg" &&
                (first_offsets_segment.empty() || e.path().filename().string() < first_offsets_segment))
                first_offsets_segment = e.path().filename().string();
        std::printf("streams kill -9: %zu rounds (%llu killed while starting), %llu appends and %llu commits "
                    "reported, %llu records at the end; offsets/ starts at %s\n",
                    rounds, static_cast<unsigned long long>(early_kills),
                    static_cast<unsigned long long>(appends_total), static_cast<unsigned long long>(commits_total),
                    static_cast<unsigned long long>(records), first_offsets_segment.c_str());
    }
    INFO("appends " << appends_total << ", commits " << commits_total << ", records " << records);
    CHECK(appends_total > 0u);
    CHECK(commits_total > 0u);
    for (const auto& part : seen) CHECK(!part.empty());
}

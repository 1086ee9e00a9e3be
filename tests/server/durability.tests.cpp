// tests/server/durability.tests.cpp
//
// A durable server (`-b DIR`) killed with SIGKILL at a random moment keeps,
// after a restart on the same directory, every job it acknowledged, exactly
// as it was, and nothing else.
//
// Each round starts the server on the directory, checks it against what the
// previous rounds were told, then lets three client connections work for a
// few milliseconds and kills the server while their commands are in flight.
// Each connection owns two tubes (it uses and watches only those), so the
// order of its replies is the order in which its jobs changed, and the test
// keeps an exact account of every job from the replies alone:
//
//   - a put answered INSERTED is there, with its body byte for byte, its
//     tube and priority; reserve, release, bury, kick, kick-job and delete
//     answered move it as beanstalkd says; a job held by a reserve is ready
//     after the restart, a delayed one still delayed (with what was left of
//     its delay), a buried one buried;
//   - a job answered DELETED is NOT_FOUND, in every later round;
//   - a command left without reply at the kill may have happened or not:
//     both outcomes are accepted, for that job only. A put left without
//     reply may have made a job whose id nobody saw: the check peeks every
//     id up to the next one the server gives out, and a job that nobody was
//     told about must carry the body of such a put;
//   - ids only grow: a put after a restart gets an id above every id seen
//     before (and no job lies above it).
//
// The same rounds run with `-f 0` (fsync before each reply), and a clean
// stop (SIGTERM, with jobs reserved at that moment) must keep everything.
//
// CONQ_BEANSTALKD names the server (ctest sets it). beanstalkd 1.12 itself
// does not pass: after a restart its binlog gives a job released with a new
// priority (and no delay) its old one, and a buried job taken by
// reserve-job is buried again.
// Rounds scale with CONQ_STRESS_SCALE; CONQ_TEST_SEED repeats a run (each
// failure prints the seed).
#include "beanstalk_wire.hpp"
#include "conq_catch.hpp"
#include "stress_config.hpp"
#include "temp_dir.hpp"
#include "watchdog.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <signal.h>
#include <sys/wait.h>

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using conq_test::connection;
using conq_test::number_of;
using conq_test::server_process;
using conq_test::test_seed;
using conq_test::visible;
using conq_test::words_of;
using job_id = std::uint64_t;

// About 0.2 s each (0.4 s under a sanitizer, which the server carries too).
constexpr std::size_t kill_rounds = 30;
constexpr int client_count = 3;
constexpr auto reply_timeout = 10s;
// Server and test read the clocks some milliseconds apart, and delays are
// whole seconds: a delay may be seen running out this much early or late.
constexpr auto delay_slack = 1500ms;

// ---------------------------------------------------------------- helpers

std::string program_under_test() {
    std::string program = conq_test::env_or("CONQ_BEANSTALKD");
    if (program.empty()) FAIL("set CONQ_BEANSTALKD to the conq-beanstalkd program (ctest does)");
    return program;
}

/// A reply's first line without its CRLF, and its body (RESERVED, FOUND, OK).
struct reply_parts {
    std::string_view line;
    std::string_view body;
};

reply_parts split_reply(const std::string& bytes) {
    const std::string_view all(bytes);
    const std::size_t end = all.find("\r\n");
    if (end == std::string_view::npos) return {all, {}};
    reply_parts parts{all.substr(0, end), {}};
    if (all.size() >= end + 4) parts.body = all.substr(end + 2, all.size() - end - 4);
    return parts;
}

/// The `key: value` lines of a YAML reply body.
std::map<std::string, std::string, std::less<>> yaml_fields(std::string_view body) {
    std::map<std::string, std::string, std::less<>> fields;
    std::size_t start = 0;
    while (start < body.size()) {
        std::size_t end = body.find('\n', start);
        if (end == std::string_view::npos) end = body.size();
        const std::string_view line = body.substr(start, end - start);
        if (const std::size_t colon = line.find(": "); colon != std::string_view::npos)
            fields.emplace(line.substr(0, colon), line.substr(colon + 2));
        start = end + 1;
    }
    return fields;
}

std::uint64_t yaml_number(const std::map<std::string, std::string, std::less<>>& fields, std::string_view key) {
    const auto it = fields.find(key);
    if (it == fields.end()) return ~std::uint64_t{0};
    return number_of(it->second).value_or(~std::uint64_t{0});
}

std::string describe(const conq_test::reply& r) {
    switch (r.status) {
    case conq_test::reply_status::ok: return "`" + visible(r.bytes) + "`";
    case conq_test::reply_status::timeout: return "no reply within the time allowed (got `" + visible(r.bytes) + "`)";
    case conq_test::reply_status::closed: return "the connection closed (after `" + visible(r.bytes) + "`)";
    }
    return "?";
}

// ------------------------------------------------------------- the account

enum class where : std::uint8_t { ready, reserved, delayed, buried, gone };

std::string_view name_of(where w) {
    switch (w) {
    case where::ready: return "ready";
    case where::reserved: return "reserved";
    case where::delayed: return "delayed";
    case where::buried: return "buried";
    case where::gone: return "deleted";
    }
    return "?";
}

/// What the server said about a job, or would say had a command happened.
struct snapshot {
    where at = where::ready;
    std::uint32_t priority = 0;
    std::uint32_t delay_s = 0;  // delayed: the delay given
    // delayed: it started between these (the command sent, its reply read)
    clock_type::time_point delayed_from{};
    clock_type::time_point delayed_by{};

    [[nodiscard]] std::string describe() const {
        std::string s(name_of(at));
        if (at != where::gone) s += ", pri " + std::to_string(priority);
        if (at == where::delayed) s += ", delay " + std::to_string(delay_s) + " s";
        return s;
    }
};

struct tracked_job {
    std::string body;
    std::string tube;
    snapshot now;
    /// The state had the command left without reply at the kill happened.
    std::optional<snapshot> unsure;
    /// What happened to it, for a failure message.
    std::string history;

    void note(std::string_view event) {
        if (history.size() > 400) {  // the latest events
            const std::size_t cut = history.find("; ", history.size() - 300);
            history.replace(0, cut == std::string::npos ? history.size() - 300 : cut + 2, "...; ");
        }
        if (!history.empty()) history += "; ";
        history += event;
    }
};

/// A put that got no reply before the kill: its job may exist or not.
struct put_attempt {
    std::string body;
    std::string tube;
    std::uint32_t priority = 0;
    std::uint32_t delay_s = 0;
    clock_type::time_point sent{};
};

/// The jobs of one client's two tubes, as its replies told them.
struct client_account {
    int index = 0;
    std::array<std::string, 2> tubes;
    std::map<job_id, tracked_job> jobs;  // not deleted (or unsure)
    std::vector<put_attempt> unanswered;
    std::uint64_t serial = 0;  // makes every body unique
    /// The commands left without reply at the last kill, for a failure message.
    std::string in_flight;
};

/// What stats-job and peek showed of an id.
struct observed {
    bool found = false;
    std::string body;
    std::string tube;
    std::string state;
    std::uint64_t priority = 0;
    std::uint64_t time_left = 0;
};

/// Whether `o`, seen after a restart at `now`, is what `s` turns into.
bool restart_matches(const snapshot& s, const tracked_job& job, const observed& o, clock_type::time_point now) {
    if (s.at == where::gone) return !o.found;
    if (!o.found || o.body != job.body || o.tube != job.tube || o.priority != s.priority) return false;
    switch (s.at) {
    case where::ready:
    case where::reserved: return o.state == "ready";
    case where::buried: return o.state == "buried";
    case where::delayed: {
        const auto delay = std::chrono::seconds(s.delay_s);
        const bool may_be_ready = now + delay_slack >= s.delayed_from + delay;
        const bool may_be_delayed = now - delay_slack < s.delayed_by + delay;
        if (o.state == "ready") return may_be_ready;
        if (o.state != "delayed" || !may_be_delayed) return false;
        // time-left: what is left of the delay, in whole seconds.
        using std::chrono::seconds;
        const auto least = std::chrono::duration_cast<seconds>(s.delayed_from + delay - now - delay_slack);
        const auto most = std::chrono::duration_cast<seconds>(s.delayed_by + delay - now + delay_slack);
        const auto left = static_cast<std::int64_t>(o.time_left);
        return left >= least.count() - 1 && left <= most.count() + 1;
    }
    case where::gone: break;
    }
    return false;
}

std::string describe(const observed& o) {
    if (!o.found) return "NOT_FOUND";
    return "tube " + o.tube + ", " + o.state + ", pri " + std::to_string(o.priority) + ", time-left " +
           std::to_string(o.time_left) + ", body `" + visible(o.body, 40) + "` (" + std::to_string(o.body.size()) +
           " bytes)";
}

// ----------------------------------------------------------------- a client

/// One command of a batch, and what its expected reply does to the account.
struct command {
    enum class kind : std::uint8_t { use, watch, ignore, put, reserve, reserve_job, remove, release, bury, kick_job,
                                     kick, touch, peek };
    kind what = kind::use;
    std::string text;
    job_id id = 0;
    snapshot after;  // remove, release, bury, kick_job: the job's state once done
    put_attempt put;
    std::string tube;  // use, watch, ignore, kick
};

/// One client connection for one round: sends batches of pipelined commands
/// chosen from its account, reads the replies in order and applies them.
/// When the server dies it records the commands left without reply.
class client {
public:
    /// Every id the server gives this client must be above `id_floor`.
    client(client_account& account, std::uint16_t port, std::uint64_t seed, job_id id_floor,
           const std::atomic<bool>& stop)
        : account_(account), port_(port), rng_(seed), last_id_(id_floor), stop_(stop) {}

    /// Runs until the server goes (or, once `stop` is set, until the batch
    /// under way is answered; the connection stays open then).
    void run() {
        try {
            connection_.emplace(port_);
        } catch (const std::system_error&) {
            return;  // killed before it accepted this one
        }
        std::vector<command> setup;
        for (const auto& tube : account_.tubes)
            setup.push_back({command::kind::watch, "watch " + tube + "\r\n", 0, {}, {}, tube});
        setup.push_back({command::kind::ignore, "ignore default\r\n", 0, {}, {}, "default"});
        setup.push_back({command::kind::use, "use " + account_.tubes[0] + "\r\n", 0, {}, {}, account_.tubes[0]});
        used_ = account_.tubes[0];
        if (!exchange(setup)) return;
        while (!stop_.load(std::memory_order_relaxed)) {
            std::vector<command> batch = plan();
            if (!exchange(batch)) return;
        }
        // A clean stop: leave a job reserved, if any is ready, so that the
        // restart shows it ready again.
        if (count(where::reserved) == 0 && count(where::ready) > 0) {
            std::vector<command> batch{{command::kind::reserve, "reserve-with-timeout 0\r\n", 0, {}, {}, {}}};
            (void)exchange(batch);
        }
    }

    [[nodiscard]] const std::vector<std::string>& failures() const noexcept { return failures_; }
    /// Ids this client saw answered DELETED.
    [[nodiscard]] const std::vector<job_id>& deleted() const noexcept { return deleted_; }
    [[nodiscard]] std::size_t held_count() const { return count(where::reserved); }
    /// Closes the connection (a clean round keeps it open until the server stops).
    void disconnect() { connection_.reset(); }

private:
    [[nodiscard]] std::size_t count(where w) const {
        return static_cast<std::size_t>(std::count_if(account_.jobs.begin(), account_.jobs.end(),
                                                      [w](const auto& kv) { return kv.second.now.at == w; }));
    }

    std::uint32_t pick_priority() {
        static constexpr std::array<std::uint32_t, 7> common{0, 1, 512, 1023, 1024, 65535, 4294967295u};
        if (rng_() % 4 == 0) return static_cast<std::uint32_t>(rng_());
        return common[rng_() % common.size()];
    }
    std::uint32_t pick_delay() {
        const auto roll = rng_() % 100;
        return roll < 70 ? 0 : roll < 85 ? 1 : 3600;
    }

    std::string make_body() {
        std::string body = "c" + std::to_string(account_.index) + "-" + std::to_string(++account_.serial) + ":";
        const auto roll = rng_() % 100;
        const std::size_t size = roll < 50 ? rng_() % 65 : roll < 85 ? 65 + rng_() % 960 : 1025 + rng_() % 3072;
        for (std::size_t i = 0; i < size; ++i) body.push_back(static_cast<char>(rng_() & 0xff));
        return body;
    }

    template <class Pred>
    std::vector<job_id> ids_where(const std::set<job_id>& taken, Pred pred) const {
        std::vector<job_id> ids;
        for (const auto& [id, job] : account_.jobs)
            if (!taken.count(id) && pred(job)) ids.push_back(id);
        return ids;
    }

    enum class action : std::uint8_t { put, reserve, delete_held, delete_idle, release, bury, kick_job, kick, touch,
                                       peek, reserve_job };

    /// 1 to 6 commands, each job named by at most one of them (a `kick`
    /// goes alone), so that every command left without reply has one
    /// known alternative outcome.
    std::vector<command> plan() {
        std::vector<command> batch;
        std::set<job_id> taken;
        const bool crowded = account_.jobs.size() > 150;  // then mostly deletes
        const std::size_t count = 1 + rng_() % 6;
        const auto now = clock_type::now();
        const auto use = [&](const std::string& tube) {
            if (tube == used_) return;
            batch.push_back({command::kind::use, "use " + tube + "\r\n", 0, {}, {}, tube});
            used_ = tube;
        };
        while (batch.size() < count) {
            const auto held = ids_where(taken, [](const tracked_job& j) { return j.now.at == where::reserved; });
            const auto idle = ids_where(taken, [](const tracked_job& j) { return j.now.at != where::reserved; });
            const auto buried = ids_where(taken, [](const tracked_job& j) { return j.now.at == where::buried; });
            // kick-job: buried, or delayed for so long that it surely still is
            const auto kickable = ids_where(taken, [now](const tracked_job& j) {
                const auto due = j.now.delayed_by + std::chrono::seconds(j.now.delay_s);
                return j.now.at == where::buried || (j.now.at == where::delayed && due > now + 60s);
            });
            const auto when = [](bool possible, unsigned weight) { return possible ? weight : 0u; };
            const std::array<std::pair<action, unsigned>, 11> weights{{
                {action::put, crowded ? 4u : 30u},
                {action::reserve, 20},
                {action::delete_held, when(!held.empty(), 12)},
                {action::delete_idle, when(!idle.empty(), crowded ? 20u : 6u)},
                {action::release, when(!held.empty(), 8)},
                {action::bury, when(!held.empty(), 8)},
                {action::kick_job, when(!kickable.empty(), 4)},
                {action::kick, when(!buried.empty() && batch.empty(), 2)},
                {action::touch, when(!held.empty(), 2)},
                {action::peek, when(!idle.empty(), 4)},
                {action::reserve_job, when(!idle.empty(), 3)},
            }};
            unsigned total = 0;
            for (const auto& w : weights) total += w.second;
            unsigned roll = static_cast<unsigned>(rng_() % total);
            std::size_t chosen = 0;
            while (roll >= weights[chosen].second) roll -= weights[chosen++].second;
            const auto pick = [this](const std::vector<job_id>& ids) { return ids[rng_() % ids.size()]; };
            command c;
            switch (weights[chosen].first) {
            case action::put: {
                const std::string& tube = account_.tubes[rng_() % 2];
                use(tube);
                c.what = command::kind::put;
                c.put = {make_body(), tube, pick_priority(), pick_delay(), {}};
                c.text = "put " + std::to_string(c.put.priority) + " " + std::to_string(c.put.delay_s) + " 600 " +
                         std::to_string(c.put.body.size()) + "\r\n" + c.put.body + "\r\n";
                break;
            }
            case action::reserve:
                c.what = command::kind::reserve;
                c.text = "reserve-with-timeout 0\r\n";
                break;
            case action::delete_held:
            case action::delete_idle:
                c.what = command::kind::remove;
                c.id = pick(weights[chosen].first == action::delete_held ? held : idle);
                c.after.at = where::gone;
                c.text = "delete " + std::to_string(c.id) + "\r\n";
                break;
            case action::release:
                c.what = command::kind::release;
                c.id = pick(held);
                c.after.priority = pick_priority();
                c.after.delay_s = pick_delay();
                c.after.at = c.after.delay_s ? where::delayed : where::ready;
                c.text = "release " + std::to_string(c.id) + " " + std::to_string(c.after.priority) + " " +
                         std::to_string(c.after.delay_s) + "\r\n";
                break;
            case action::bury:
                c.what = command::kind::bury;
                c.id = pick(held);
                c.after.at = where::buried;
                c.after.priority = pick_priority();
                c.text = "bury " + std::to_string(c.id) + " " + std::to_string(c.after.priority) + "\r\n";
                break;
            case action::kick_job:
                c.what = command::kind::kick_job;
                c.id = pick(kickable);
                c.after.at = where::ready;
                c.after.priority = account_.jobs.at(c.id).now.priority;
                c.text = "kick-job " + std::to_string(c.id) + "\r\n";
                break;
            case action::kick:  // every buried job of the tube, alone in its batch
                c.what = command::kind::kick;
                c.tube = account_.jobs.at(pick(buried)).tube;
                use(c.tube);
                c.text = "kick 1000000\r\n";
                batch.push_back(std::move(c));
                return batch;
            case action::touch:
                c.what = command::kind::touch;
                c.id = pick(held);
                c.text = "touch " + std::to_string(c.id) + "\r\n";
                break;
            case action::peek:
                c.what = command::kind::peek;
                c.id = pick(idle);
                c.text = "peek " + std::to_string(c.id) + "\r\n";
                break;
            case action::reserve_job:
                c.what = command::kind::reserve_job;
                c.id = pick(idle);
                c.text = "reserve-job " + std::to_string(c.id) + "\r\n";
                break;
            }
            if (c.id != 0) taken.insert(c.id);
            batch.push_back(std::move(c));
        }
        return batch;
    }

    /// Sends the batch (in one to three pieces) and applies its replies.
    /// False once the connection is gone or a reply is wrong.
    bool exchange(std::vector<command>& batch) {
        std::string bytes;
        for (const auto& c : batch) bytes += c.text;
        const auto sent = clock_type::now();
        for (auto& c : batch) c.put.sent = c.after.delayed_from = sent;
        const std::size_t pieces = 1 + rng_() % 3;
        std::size_t at = 0;
        for (std::size_t i = 1; i <= pieces && at < bytes.size(); ++i) {
            const std::size_t end = i == pieces ? bytes.size() : at + rng_() % (bytes.size() - at + 1);
            if (!connection_->send(std::string_view(bytes).substr(at, end - at))) break;
            at = end;
        }
        for (std::size_t i = 0; i < batch.size(); ++i) {
            const conq_test::reply r = connection_->read_reply(reply_timeout);
            if (r.status == conq_test::reply_status::closed) {
                left_without_reply(batch, i);
                return false;
            }
            if (!r.ok()) {
                fail(batch[i], "got " + describe(r));
                return false;
            }
            if (!apply(batch[i], r.bytes)) return false;
        }
        return true;
    }

    void left_without_reply(const std::vector<command>& batch, std::size_t first) {
        for (std::size_t i = first; i < batch.size(); ++i) {
            const command& c = batch[i];
            account_.in_flight += visible(c.text.substr(0, c.text.find('\r'))) + "; ";
            switch (c.what) {
            case command::kind::put: account_.unanswered.push_back(c.put); break;
            case command::kind::remove:
            case command::kind::release:
            case command::kind::bury:
            case command::kind::kick_job: {
                tracked_job& job = account_.jobs.at(c.id);
                job.unsure = c.after;
                job.unsure->delayed_by = clock_type::now();  // the kill came before this
                job.note("unanswered " + visible(c.text));
                break;
            }
            case command::kind::kick:
                for (auto& [id, job] : account_.jobs) {
                    if (job.tube == c.tube && job.now.at == where::buried) {
                        job.unsure = job.now;
                        job.unsure->at = where::ready;
                        job.note("unanswered kick (tube)");
                    }
                }
                break;
            case command::kind::reserve_job: {
                // A reserved job is ready after the restart, whatever it was.
                tracked_job& job = account_.jobs.at(c.id);
                job.unsure = job.now;
                job.unsure->at = where::ready;
                job.note("unanswered " + visible(c.text));
                break;
            }
            default: break;  // a reserve's job was ready (or due) anyway
            }
        }
    }

    void fail(const command& c, const std::string& what) {
        failures_.push_back("client " + std::to_string(account_.index) + ": `" + visible(c.text, 60) + "`: " + what);
    }

    /// Applies the reply `bytes` of `c`; false (and a failure) when it is
    /// not the reply the account predicts.
    bool apply(const command& c, const std::string& bytes) {
        const reply_parts parts = split_reply(bytes);
        const std::string_view line = parts.line, body = parts.body;
        const auto words = words_of(line);
        const auto now = clock_type::now();
        const auto expect = [&](std::string_view wanted) {
            if (line == wanted) return true;
            fail(c, "expected " + std::string(wanted) + ", got `" + visible(bytes) + "`");
            return false;
        };
        switch (c.what) {
        case command::kind::use: return expect("USING " + c.tube);
        case command::kind::watch:
        case command::kind::ignore:
            if (words.size() == 2 && words[0] == "WATCHING") return true;
            fail(c, "expected WATCHING <n>, got `" + visible(bytes) + "`");
            return false;
        case command::kind::put: {
            const auto id = words.size() == 2 && words[0] == "INSERTED" ? number_of(words[1]) : std::nullopt;
            if (!id) {
                fail(c, "expected INSERTED <id>, got `" + visible(bytes) + "`");
                return false;
            }
            if (*id <= last_id_ || account_.jobs.count(*id)) {
                fail(c, "id " + std::to_string(*id) + " is not above " + std::to_string(last_id_) +
                            ", the highest id seen before");
                return false;
            }
            last_id_ = *id;
            tracked_job job{c.put.body, c.put.tube, {}, std::nullopt, {}};
            job.now.priority = c.put.priority;
            if (c.put.delay_s) {
                job.now.at = where::delayed;
                job.now.delay_s = c.put.delay_s;
                job.now.delayed_from = c.put.sent;
                job.now.delayed_by = now;
            }
            job.note(visible(c.text.substr(0, c.text.find('\r'))));
            account_.jobs.emplace(*id, std::move(job));
            return true;
        }
        case command::kind::reserve:
        case command::kind::reserve_job: {
            if (c.what == command::kind::reserve && line == "TIMED_OUT") {
                // Nothing may be ready then (a short delay may have run out
                // unseen: that job does not count).
                for (const auto& [id, job] : account_.jobs) {
                    if (job.now.at == where::ready) {
                        fail(c, "TIMED_OUT while job " + std::to_string(id) + " of tube " + job.tube + " is ready");
                        return false;
                    }
                }
                return true;
            }
            // A reserve earlier in the batch may have taken the job named.
            if (c.what == command::kind::reserve_job && line == "NOT_FOUND" &&
                account_.jobs.at(c.id).now.at == where::reserved)
                return true;
            const auto id = words.size() == 3 && words[0] == "RESERVED" ? number_of(words[1]) : std::nullopt;
            const auto it = id ? account_.jobs.find(*id) : account_.jobs.end();
            if (it == account_.jobs.end() || (c.what == command::kind::reserve_job && *id != c.id)) {
                fail(c, "expected RESERVED of a job of tubes " + account_.tubes[0] + ", " + account_.tubes[1] +
                            ", got `" + visible(bytes) + "`");
                return false;
            }
            tracked_job& job = it->second;
            const bool reservable =
                job.now.at == where::ready ||
                (job.now.at == where::delayed &&
                 now + delay_slack >= job.now.delayed_from + std::chrono::seconds(job.now.delay_s)) ||
                c.what == command::kind::reserve_job;
            if (!reservable || job.now.at == where::reserved) {
                fail(c, "job " + std::to_string(*id) + " reserved while " + job.now.describe());
                return false;
            }
            if (body != job.body) {
                fail(c, "job " + std::to_string(*id) + " came with body `" + visible(body, 40) + "`, put with `" +
                            visible(job.body, 40) + "`");
                return false;
            }
            job.now.at = where::reserved;
            job.note(visible(c.text));
            return true;
        }
        case command::kind::remove:
        case command::kind::release:
        case command::kind::bury:
        case command::kind::kick_job: {
            static constexpr std::array<std::string_view, 4> ok{"DELETED", "RELEASED", "BURIED", "KICKED"};
            const std::size_t which = c.what == command::kind::remove    ? 0
                                      : c.what == command::kind::release ? 1
                                      : c.what == command::kind::bury    ? 2
                                                                         : 3;
            if (!expect(ok[which])) return false;
            if (c.what == command::kind::remove) {
                account_.jobs.erase(c.id);
                deleted_.push_back(c.id);
                return true;
            }
            tracked_job& job = account_.jobs.at(c.id);
            job.now = c.after;
            if (job.now.at == where::delayed) job.now.delayed_by = now;
            job.note(visible(c.text));
            return true;
        }
        case command::kind::kick: {
            std::size_t buried = 0;
            for (const auto& [id, job] : account_.jobs) buried += job.tube == c.tube && job.now.at == where::buried;
            if (!expect("KICKED " + std::to_string(buried))) return false;
            for (auto& [id, job] : account_.jobs)
                if (job.tube == c.tube && job.now.at == where::buried) {
                    job.now.at = where::ready;
                    job.note("kick (tube)");
                }
            return true;
        }
        case command::kind::touch: return expect("TOUCHED");
        case command::kind::peek: {
            const tracked_job& job = account_.jobs.at(c.id);
            if (line == "FOUND " + std::to_string(c.id) + " " + std::to_string(job.body.size()) && body == job.body)
                return true;
            fail(c, "expected FOUND with the body `" + visible(job.body, 40) + "`, got `" + visible(bytes) + "`");
            return false;
        }
        }
        return false;
    }

    client_account& account_;
    std::uint16_t port_;
    std::mt19937_64 rng_;
    job_id last_id_;
    const std::atomic<bool>& stop_;
    std::optional<connection> connection_;
    std::string used_;
    std::vector<std::string> failures_;
    std::vector<job_id> deleted_;
};

// ------------------------------------------------------------ the checker

/// Everything the rounds so far established, and the check after a restart.
class ledger {
public:
    ledger() {
        for (int i = 0; i < client_count; ++i) {
            client_account& a = accounts_.emplace_back();
            a.index = i;
            a.tubes = {"c" + std::to_string(i) + "-a", "c" + std::to_string(i) + ".b"};
        }
    }

    std::vector<client_account>& accounts() noexcept { return accounts_; }
    [[nodiscard]] job_id highest_id() const noexcept { return highest_id_; }
    /// Jobs found of puts that got no reply.
    [[nodiscard]] std::size_t adopted() const noexcept { return adopted_; }
    void record_deleted(const std::vector<job_id>& ids) { deleted_.insert(ids.begin(), ids.end()); }

    /// Checks the restarted server on `port` against the account; returns
    /// what is wrong (empty when all is right). Afterwards the account is
    /// what the server showed: unsure outcomes resolved, unseen jobs of
    /// unanswered puts adopted.
    std::vector<std::string> check(std::uint16_t port) {
        std::vector<std::string> problems;
        connection c(port);
        const auto ask = [&](const std::string& text) {
            if (!c.send(text)) throw std::runtime_error("the server went during the check");
            const conq_test::reply r = c.read_reply(reply_timeout);
            if (!r.ok()) throw std::runtime_error("`" + visible(text) + "` during the check: " + describe(r));
            return r.bytes;
        };

        // The next id the server gives out is above every id it gave out
        // before (those seen) and every job it holds (checked below).
        if (!deleted_.empty()) highest_id_ = std::max(highest_id_, *deleted_.rbegin());
        for (const client_account& account : accounts_)
            if (!account.jobs.empty()) highest_id_ = std::max(highest_id_, account.jobs.rbegin()->first);
        (void)ask("use conq-probe\r\n");
        const std::string inserted = ask("put 0 0 60 5\r\nprobe\r\n");
        const auto probe_words = words_of(split_reply(inserted).line);
        const auto probe = probe_words.size() == 2 && probe_words[0] == "INSERTED" ? number_of(probe_words[1])
                                                                                    : std::nullopt;
        if (!probe) throw std::runtime_error("the probe put got `" + visible(inserted) + "`");
        if (*probe <= highest_id_)
            problems.push_back("after the restart a put got id " + std::to_string(*probe) + ", not above " +
                               std::to_string(highest_id_) + ", the highest id seen before");

        // Every id up to the probe's, and some above: peek, then stats-job.
        std::map<job_id, observed> seen;
        const job_id last = std::max(*probe, highest_id_) + 64;
        constexpr job_id chunk = 256;
        for (job_id from = 1; from <= last; from += chunk) {
            const job_id to = std::min(last, from + chunk - 1);
            std::string request;
            for (job_id id = from; id <= to; ++id)
                if (id != *probe) request += "peek " + std::to_string(id) + "\r\n";
            if (!c.send(request)) throw std::runtime_error("the server went during the check");
            for (job_id id = from; id <= to; ++id) {
                if (id == *probe) continue;
                const conq_test::reply r = c.read_reply(reply_timeout);
                if (!r.ok()) throw std::runtime_error("peek " + std::to_string(id) + ": " + describe(r));
                const auto [line, body] = split_reply(r.bytes);
                if (line == "NOT_FOUND") continue;
                const auto words = words_of(line);
                if (words.size() != 3 || words[0] != "FOUND" || number_of(words[1]) != id) {
                    problems.push_back("peek " + std::to_string(id) + " got `" + visible(r.bytes) + "`");
                    continue;
                }
                seen[id].found = true;
                seen[id].body = std::string(body);
            }
        }
        for (auto& [id, o] : seen) {
            const std::string yaml = ask("stats-job " + std::to_string(id) + "\r\n");
            const auto fields = yaml_fields(split_reply(yaml).body);
            const auto field = [&](std::string_view key) {
                const auto it = fields.find(key);
                return it == fields.end() ? std::string("?") : it->second;
            };
            o.tube = field("tube");
            o.state = field("state");
            o.priority = yaml_number(fields, "pri");
            o.time_left = yaml_number(fields, "time-left");
            if (id > *probe)
                problems.push_back("job " + std::to_string(id) + " lies above id " + std::to_string(*probe) +
                                   ", the one the next put got: " + describe(o));
        }
        const auto now = clock_type::now();
        const job_id highest_found = seen.empty() ? 0 : seen.rbegin()->first;

        std::size_t live = 0;
        for (client_account& account : accounts_) {
            for (auto it = account.jobs.begin(); it != account.jobs.end();) {
                const job_id id = it->first;
                tracked_job& job = it->second;
                const auto s = seen.find(id);
                const observed o = s == seen.end() ? observed{} : s->second;
                if (s != seen.end()) seen.erase(s);
                const bool as_told = restart_matches(job.now, job, o, now);
                if (!as_told && !(job.unsure && restart_matches(*job.unsure, job, o, now))) {
                    std::string expected = job.now.describe();
                    if (job.unsure) expected += " or (its last command unanswered) " + job.unsure->describe();
                    problems.push_back("job " + std::to_string(id) + " of tube " + job.tube + ": expected " +
                                       expected + ", found " + describe(o) + "; its history: " + job.history +
                                       "; commands of client " + std::to_string(account.index) +
                                       " without reply at the kill: " + account.in_flight);
                }
                if (!o.found) {
                    if (job.unsure && job.unsure->at == where::gone) deleted_.insert(id);
                    it = account.jobs.erase(it);
                    continue;
                }
                adopt(job, o, as_told ? job.now : job.unsure.value_or(job.now));
                job.note("restart: " + o.state);
                ++live;
                ++it;
            }
        }
        // What is left: ids nobody was told about (or told were deleted).
        for (const auto& [id, found] : seen) {
            const observed& o = found;  // a binding cannot be captured (clang 14)
            if (deleted_.count(id)) {
                problems.push_back("job " + std::to_string(id) + " is there after DELETED: " + describe(o));
                continue;
            }
            bool explained = false;
            for (client_account& account : accounts_) {
                const auto attempt = std::find_if(account.unanswered.begin(), account.unanswered.end(),
                                                  [&](const put_attempt& p) { return p.body == o.body; });
                if (attempt == account.unanswered.end()) continue;
                tracked_job job{attempt->body, attempt->tube, {}, std::nullopt, {}};
                job.now.priority = attempt->priority;
                if (attempt->delay_s) {
                    job.now.at = where::delayed;
                    job.now.delay_s = attempt->delay_s;
                    job.now.delayed_from = attempt->sent;
                    job.now.delayed_by = now;  // its INSERTED never came: at the latest, the kill
                }
                if (!restart_matches(job.now, job, o, now)) {
                    problems.push_back("job " + std::to_string(id) + " of an unanswered put: expected " +
                                       job.now.describe() + " in tube " + job.tube + ", found " + describe(o));
                }
                adopt(job, o, job.now);
                job.note("unanswered put, restart: " + o.state);
                account.jobs.emplace(id, std::move(job));
                account.unanswered.erase(attempt);
                explained = true;
                ++adopted_;
                ++live;
                break;
            }
            if (!explained)
                problems.push_back("job " + std::to_string(id) + " is there, but no put of its body was left without "
                                   "reply: " + describe(o));
        }
        for (client_account& account : accounts_) {
            account.unanswered.clear();
            account.in_flight.clear();
        }

        if (const std::string reply = ask("delete " + std::to_string(*probe) + "\r\n"); reply != "DELETED\r\n")
            problems.push_back("delete of the probe job got `" + visible(reply) + "`");
        deleted_.insert(*probe);
        highest_id_ = std::max({highest_id_, *probe, highest_found});

        // The counts agree with the jobs found, and nothing is reserved.
        const auto stats = yaml_fields(split_reply(ask("stats\r\n")).body);
        const std::uint64_t counted = yaml_number(stats, "current-jobs-ready") +
                                      yaml_number(stats, "current-jobs-delayed") +
                                      yaml_number(stats, "current-jobs-buried");
        if (counted != live || yaml_number(stats, "current-jobs-reserved") != 0)
            problems.push_back("stats counts " + std::to_string(counted) + " ready, delayed and buried jobs and " +
                               std::to_string(yaml_number(stats, "current-jobs-reserved")) + " reserved; " +
                               std::to_string(live) + " jobs were found, none reserved");
        return problems;
    }

    /// Ready, delayed and buried jobs, by the account (all settled).
    [[nodiscard]] std::size_t live_jobs() const {
        std::size_t n = 0;
        for (const auto& a : accounts_) n += a.jobs.size();
        return n;
    }

private:
    /// The job as the restarted server showed it (which matched `as`: a
    /// delayed job keeps the window of its delay).
    static void adopt(tracked_job& job, const observed& o, const snapshot& as) {
        job.now = as;
        job.unsure.reset();
        if (o.state == "ready") job.now.at = where::ready;
        else if (o.state == "buried") job.now.at = where::buried;
        else if (o.state == "delayed") job.now.at = where::delayed;
    }

    std::vector<client_account> accounts_;
    std::set<job_id> deleted_;
    std::size_t adopted_ = 0;
    job_id highest_id_ = 0;
};

std::string join(const std::vector<std::string>& lines, std::size_t limit = 25) {
    std::string out;
    for (std::size_t i = 0; i < lines.size() && i < limit; ++i) out += "\n  " + lines[i];
    if (lines.size() > limit) out += "\n  ... and " + std::to_string(lines.size() - limit) + " more";
    return out;
}

/// The end of a server sent SIGTERM: exit status 0, or (beanstalkd) the signal.
bool clean_exit(int status) {
    return (WIFEXITED(status) && WEXITSTATUS(status) == 0) || (WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
}

/// One client per account of `book`, each on a thread of its own, working
/// on the server at `port` until it goes away or `stop` is set.
struct traffic {
    std::atomic<bool> stop{false};
    std::vector<std::unique_ptr<client>> clients;
    std::vector<std::thread> threads;

    traffic(ledger& book, std::uint16_t port, std::mt19937_64& rng) {
        for (auto& account : book.accounts())
            clients.push_back(std::make_unique<client>(account, port, rng(), book.highest_id(), stop));
        for (auto& c : clients) threads.emplace_back([&c] { c->run(); });
    }
    void join() {
        for (auto& t : threads) t.join();
    }
    /// After join(): records the clients' deletes in `book`; returns what
    /// went wrong for them.
    std::vector<std::string> settle(ledger& book) {
        std::vector<std::string> failures;
        for (auto& c : clients) {
            failures.insert(failures.end(), c->failures().begin(), c->failures().end());
            book.record_deleted(c->deleted());
        }
        return failures;
    }
};

/// Rounds of start, check, work, SIGKILL on one directory.
void kill_rounds_with(const std::vector<std::string>& extra_flags, std::size_t rounds) {
    const std::string program = program_under_test();
    const std::uint64_t seed = test_seed();
    INFO("seed " << seed << " (CONQ_TEST_SEED=" << seed << " repeats this run)");
    conq_test::watchdog guard("durability rounds", std::chrono::seconds(300 * conq_test::stress_scale()));

    conq_test::temp_dir dir("conq-durability");
    std::vector<std::string> flags{"-b", dir.path().string()};
    flags.insert(flags.end(), extra_flags.begin(), extra_flags.end());
    ledger book;
    std::mt19937_64 rng(seed);
    std::size_t left_unanswered = 0, kills_mid_batch = 0;
    for (std::size_t round = 0; round < rounds; ++round) {
        INFO("round " << round + 1 << " of " << rounds);
        server_process server(program, flags);
        const auto problems = book.check(server.port());
        if (!problems.empty()) FAIL("after the restart:" << join(problems));

        traffic work(book, server.port(), rng);
        std::this_thread::sleep_for(std::chrono::milliseconds(2 + rng() % 99));  // traffic, then the kill
        server.kill(SIGKILL);
        const auto status = server.wait_exit();
        work.join();

        REQUIRE(status.has_value());
        if (!WIFSIGNALED(*status) || WTERMSIG(*status) != SIGKILL)
            FAIL("the server " << server_process::describe_status(*status) << " before the kill");
        const auto failures = work.settle(book);
        if (!failures.empty()) FAIL("while it ran:" << join(failures));
        std::size_t unanswered = 0;
        for (const auto& account : book.accounts()) {
            unanswered += account.unanswered.size();
            for (const auto& [id, job] : account.jobs) unanswered += job.unsure.has_value();
        }
        left_unanswered += unanswered;
        kills_mid_batch += unanswered > 0;
    }
    server_process server(program, flags);
    const auto problems = book.check(server.port());
    if (!problems.empty()) FAIL("after the last restart:" << join(problems));
    std::printf("durability %s: %zu rounds, %zu killed with commands in flight, %zu commands left without "
                "reply (%zu puts of them made a job), %zu jobs at the end, highest id %llu\n",
                extra_flags.empty() ? "(-f 50)" : "(-f 0)", rounds, kills_mid_batch, left_unanswered,
                book.adopted(), book.live_jobs(), static_cast<unsigned long long>(book.highest_id()));
    CHECK(kills_mid_batch > 0);  // else the kills never met traffic
    CHECK(book.highest_id() > 0);
    CHECK(clean_exit(server.stop()));
}

}  // namespace

TEST_CASE("a durable server killed with SIGKILL keeps every acknowledged job", "[server][durability]") {
    kill_rounds_with({}, conq_test::scaled(kill_rounds));
}

TEST_CASE("a durable server that syncs before each reply survives SIGKILL as well", "[server][durability]") {
    kill_rounds_with({"-f", "0"}, conq_test::scaled(kill_rounds));
}

TEST_CASE("a durable server stopped with SIGTERM keeps everything", "[server][durability]") {
    const std::string program = program_under_test();
    const std::uint64_t seed = test_seed();
    INFO("seed " << seed << " (CONQ_TEST_SEED=" << seed << " repeats this run)");
    conq_test::watchdog guard("clean restarts", std::chrono::seconds(120));

    conq_test::temp_dir dir("conq-durability");
    const std::vector<std::string> flags{"-b", dir.path().string()};
    ledger book;
    std::mt19937_64 rng(seed);
    for (int round = 0; round < 3; ++round) {
        INFO("round " << round + 1);
        server_process server(program, flags);
        const auto problems = book.check(server.port());
        if (!problems.empty()) FAIL("after the restart:" << join(problems));

        traffic work(book, server.port(), rng);
        std::this_thread::sleep_for(200ms);  // traffic, then the stop
        work.stop = true;
        work.join();
        const auto failures = work.settle(book);
        std::size_t held = 0;
        for (auto& c : work.clients) held += c->held_count();
        if (!failures.empty()) FAIL("while it ran:" << join(failures));
        CHECK(held > 0);  // reserved at the stop: ready after the restart

        // Stopped with the clients still connected, jobs in their hands.
        const int status = server.stop(10s);
        INFO("the server, sent SIGTERM, " << server_process::describe_status(status));
        CHECK(clean_exit(status));
        for (auto& c : work.clients) c->disconnect();
        for (const auto& account : book.accounts()) {
            CHECK(account.unanswered.empty());
            for (const auto& [id, job] : account.jobs) CHECK_FALSE(job.unsure.has_value());
        }
    }
    server_process server(program, flags);
    const auto problems = book.check(server.port());
    if (!problems.empty()) FAIL("after the last restart:" << join(problems));
    CHECK(book.live_jobs() > 0);
    CHECK(clean_exit(server.stop()));
}

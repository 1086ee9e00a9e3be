// Simulated power loss for the durable parts of the broker: the work_queues
// journal and durable streams (partition logs and the offsets log).
//
// As tests/crash/power_loss.tests.cpp: shadow disks (io_faults.hpp's
// shadow_disk for the journal's one directory, tree_shadow below for a
// streams directory tree) keep what msync and directory fsyncs made
// durable. Between calls the test builds the disk a power cut could leave
// (the shadow plus a random subset of the pages written since their last
// sync, some torn at a sector) in a separate directory and opens a fresh
// object there. Under sync::always every call that changes durable state
// returned only after its records were synced, so the recovered state is
// known exactly (reserves are the only changes not synced on their own, and
// a reserved job comes back ready either way).
#include "conq_catch.hpp"
#include "io_faults.hpp"
#include "stress_config.hpp"
#include "temp_dir.hpp"

#include <conq/broker/stream.hpp>
#include <conq/broker/work_queue.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace {

using conq_test::add_unsynced_pages;
using conq_test::read_all;

using namespace std::chrono_literals;

std::string random_payload(std::mt19937_64& rng, std::uint64_t tag) {
    std::string s = "job" + std::to_string(tag) + ":";
    const std::size_t n = 20 + rng() % 300;
    while (s.size() < n) s.push_back(static_cast<char>('a' + rng() % 26));
    return s;
}

/// shadow_disk for a directory tree: files keyed by their path, entries
/// per directory. seed() takes the whole tree as durable (call it when
/// everything there was synced, before the hooks go in); the directories
/// themselves are those seed() saw (the test makes no new ones later).
class tree_shadow : public conq::detail::io_hooks {
public:
    explicit tree_shadow(std::filesystem::path root) : root_(std::move(root)) {}

    void seed() {
        std::lock_guard<std::mutex> g(mu_);
        dirs_.clear();
        dirs_.emplace(root_);
        for (const auto& e : std::filesystem::recursive_directory_iterator(root_))
            if (e.is_directory()) dirs_.emplace(e.path());
        for (const auto& d : dirs_) list_locked(d);
        for (const auto& [d, names] : entries_)
            for (const auto& [name, size] : names) content_[d / name] = read_all(d / name);
    }

    void synced(const std::filesystem::path& file, std::uint64_t off, const std::byte* data,
                std::size_t len) override {
        std::lock_guard<std::mutex> g(mu_);
        auto& img = content_[file];
        if (img.size() < off + len) img.resize(off + len);
        std::memcpy(img.data() + off, data, len);
    }
    void synced_dir(const std::filesystem::path& dir) override {
        std::lock_guard<std::mutex> g(mu_);
        if (dirs_.count(dir) == 0) return;
        list_locked(dir);
    }

    void write_image(const std::filesystem::path& out) const {
        std::lock_guard<std::mutex> g(mu_);
        for (const auto& d : dirs_) std::filesystem::create_directories(out / d.lexically_relative(root_));
        for (const auto& [d, names] : entries_) {
            for (const auto& [name, size] : names) {
                std::vector<std::byte> bytes(size);
                auto it = content_.find(d / name);
                if (it != content_.end() && size != 0 && !it->second.empty())
                    std::memcpy(bytes.data(), it->second.data(), std::min<std::size_t>(size, it->second.size()));
                conq_test::shadow_disk::write_file(out / d.lexically_relative(root_) / name, bytes);
            }
        }
    }

private:
    void list_locked(const std::filesystem::path& dir) {
        auto& names = entries_[dir];
        names.clear();
        for (const auto& e : std::filesystem::directory_iterator(dir))
            if (e.is_regular_file()) names[e.path().filename().string()] = std::filesystem::file_size(e.path());
    }

    std::filesystem::path root_;
    mutable std::mutex mu_;
    std::set<std::filesystem::path> dirs_;
    std::map<std::filesystem::path, std::vector<std::byte>> content_;
    std::map<std::filesystem::path, std::map<std::string, std::uint64_t>> entries_;
};

/// A shadow_disk that also cuts the power in the middle of a call: when a
/// journal segment is unlinked (compaction), it writes the image a cut
/// right after that unlink reached the disk would leave (the shadow, less
/// the file) to `mid`, once per arm().
class cut_disk : public conq_test::shadow_disk {
public:
    cut_disk(std::filesystem::path dir, std::filesystem::path mid)
        : shadow_disk(std::move(dir)), mid_(std::move(mid)) {}
    int inject(conq::detail::io_op op, const std::filesystem::path& p) override {
        if (op == conq::detail::io_op::remove && armed_) {
            armed_ = false;
            taken_ = true;
            write_image(mid_);
            std::filesystem::remove(mid_ / p.filename());
        }
        return 0;
    }
    void arm() {
        armed_ = true;
        if (taken_) std::filesystem::remove_all(mid_);
        taken_ = false;
    }
    [[nodiscard]] bool taken() const { return taken_; }

private:
    std::filesystem::path mid_;
    bool armed_ = false, taken_ = false;
};

std::chrono::system_clock::time_point fixed_wall() {
    return std::chrono::system_clock::time_point(std::chrono::hours(480000));
}

conq::durable_options test_log_options() {
    conq::durable_options o;
    o.sync = conq::sync::always;
    o.prefault = false;
    o.segment_size = std::uint64_t{1} << 16;
    o.max_record_size = (1u << 16) / 4;
    o.wall_clock = fixed_wall;  // delays come back exactly as long as they were
    return o;
}

// ------------------------------------------------------------- work_queues

using wqs = conq::work_queues<std::string, conq::manual_clock>;

enum class mstate { ready, delayed, buried, reserved };

struct mjob {
    std::string queue;
    std::string payload;
    std::uint32_t priority = 0;
    mstate state = mstate::ready;
    std::int64_t due = 0;           // delayed: ready at (the clock stays at 0)
    std::uint64_t bury_order = 0;   // buried: place in the burial order
};

const char* const queue_names[] = {"alpha", "beta"};

/// Opens the image and checks it against the model.
void check_work_image(const std::filesystem::path& image, const std::map<conq::job_id, mjob>& model,
                      const std::vector<conq::job_id>& removed, conq::job_id max_id) {
    conq::manual_clock clock;
    wqs rec(image, test_log_options(), clock);
    const auto st = rec.stats();
    std::size_t buried = 0, delayed = 0, ready = 0;
    for (const auto& [id, j] : model) {
        INFO("job " << id);
        conq::job_info<std::string> info;
        REQUIRE_NOTHROW(info = rec.peek(id));
        REQUIRE(info.id == id);
        REQUIRE(info.queue == j.queue);
        REQUIRE(info.payload);
        REQUIRE(*info.payload == j.payload);
        REQUIRE(info.priority == j.priority);
        switch (j.state) {
            case mstate::ready:
            case mstate::reserved:  // a reserve is not durable by itself, nor does it need to be
                REQUIRE(info.state == conq::job_state::ready);
                ++ready;
                break;
            case mstate::delayed:
                REQUIRE(info.state == conq::job_state::delayed);
                REQUIRE(info.time_left == std::chrono::nanoseconds(j.due));
                ++delayed;
                break;
            case mstate::buried:
                REQUIRE(info.state == conq::job_state::buried);
                ++buried;
                break;
        }
    }
    // Nothing else: no removed job came back, nor any other.
    REQUIRE(st.ready == ready);
    REQUIRE(st.delayed == delayed);
    REQUIRE(st.buried == buried);
    REQUIRE(st.reserved == 0);
    const std::size_t from = removed.size() > 300 ? removed.size() - 300 : 0;
    for (std::size_t k = from; k < removed.size(); ++k) {
        INFO("removed job " << removed[k]);
        REQUIRE_THROWS_AS(rec.peek(removed[k]), conq::broker_error);
    }
    // The burial order, one kick at a time.
    for (const char* q : queue_names) {
        std::vector<std::pair<std::uint64_t, conq::job_id>> order;
        for (const auto& [id, j] : model)
            if (j.queue == q && j.state == mstate::buried) order.emplace_back(j.bury_order, id);
        std::sort(order.begin(), order.end());
        for (const auto& [ignored, id] : order) {
            INFO("queue " << q << ": next buried should be " << id);
            const auto b = rec.peek_buried(q);
            REQUIRE(b.has_value());
            REQUIRE(b->id == id);
            REQUIRE(rec.kick(q, 1) == 1);
            REQUIRE(rec.peek(id).state == conq::job_state::ready);
        }
        REQUIRE_FALSE(rec.peek_buried(q).has_value());
    }
    // Ids continue above every id handed out.
    REQUIRE(rec.put("alpha", "after the cut") > max_id);
}

}  // namespace

TEST_CASE("work_queues keeps every returned change through a simulated power cut", "[crash][power][broker]") {
    conq_test::temp_dir dir("conq-bpower");
    const auto live = dir.path() / "live";
    std::mt19937_64 rng(7);
    const std::size_t steps = 9000 * conq_test::stress_scale();

    const auto mid = dir.path() / "mid";
    cut_disk disk(live, mid);
    std::set<conq::job_id> touched;  // the jobs the current call changes
    std::size_t mid_cuts = 0;
    std::map<conq::job_id, mjob> model;
    std::vector<conq::job_id> removed;
    std::vector<wqs::job> held;
    conq::job_id max_id = 0;
    std::uint64_t bury_seq = 0;
    std::int64_t delay_tick = 0;
    std::size_t cuts = 0, with_unsynced = 0, kicked = 0, buries = 0, releases = 0, removes = 0;
    std::vector<std::uint64_t> first_bases;
    std::uint64_t last_begin = 0;

    conq::manual_clock clock;  // never advances: delays and TTRs stay put
    {
        conq_test::install_hooks on(disk);
        wqs wq(live, test_log_options(), clock);
        first_bases = wq.journal()->segment_bases();

        auto pick = [&](auto pred) -> std::optional<conq::job_id> {
            std::vector<conq::job_id> c;
            for (const auto& [id, j] : model)
                if (pred(j)) c.push_back(id);
            if (c.empty()) return std::nullopt;
            return c[rng() % c.size()];
        };
        auto next_delay = [&] { return 1h + std::chrono::nanoseconds(++delay_tick); };
        // A cut in the middle of the last call (when it dropped a segment):
        // every job that call did not touch must be there as the model says.
        auto check_mid_cut = [&](std::size_t step) {
            if (!disk.taken()) return;
            conq::detail::installed_io_hooks.store(nullptr);
            {
                INFO("cut in the middle of the call before step " << step);
                conq::manual_clock c2;
                wqs rec(mid, test_log_options(), c2);
                for (const auto& [id, j] : model) {
                    if (touched.count(id)) continue;
                    INFO("job " << id);
                    conq::job_info<std::string> info;
                    REQUIRE_NOTHROW(info = rec.peek(id));
                    REQUIRE(*info.payload == j.payload);
                    REQUIRE(info.priority == j.priority);
                    const auto want = j.state == mstate::delayed  ? conq::job_state::delayed
                                      : j.state == mstate::buried ? conq::job_state::buried
                                                                  : conq::job_state::ready;
                    REQUIRE(info.state == want);
                }
            }
            conq::detail::installed_io_hooks.store(&disk);
            std::filesystem::remove_all(mid);
            ++mid_cuts;
        };

        for (std::size_t step = 0; step < steps; ++step) {
            check_mid_cut(step);
            touched.clear();
            disk.arm();
            const auto dice = rng() % 100;
            if (dice < 40 || model.size() < 20) {
                // put
                mjob j;
                j.queue = queue_names[rng() % 2];
                j.payload = random_payload(rng, step);
                j.priority = static_cast<std::uint32_t>(rng() % 4) * 100;
                conq::put_options po;
                po.priority = j.priority;
                if (rng() % 6 == 0) {
                    po.delay = next_delay();
                    j.state = mstate::delayed;
                    j.due = po.delay.count();
                }
                const conq::job_id id = wq.put(j.queue, j.payload, po);
                touched.insert(id);
                REQUIRE(id > max_id);
                max_id = id;
                model.emplace(id, std::move(j));
            } else if (dice < 70) {
                // reserve, then decide
                const char* q = queue_names[rng() % 2];
                auto got = wq.try_reserve({q});
                if (!got) continue;
                const conq::job_id id = got->id();
                touched.insert(id);
                auto it = model.find(id);
                REQUIRE(it != model.end());
                REQUIRE(it->second.queue == q);
                REQUIRE(it->second.state == mstate::ready);
                REQUIRE(got->payload() == it->second.payload);
                it->second.state = mstate::reserved;
                const auto what = rng() % 100;
                if (what < 35) {
                    got->remove();
                    model.erase(it);
                    removed.push_back(id);
                    ++removes;
                } else if (what < 60) {
                    std::optional<std::uint32_t> pri;
                    if (rng() % 2) pri = static_cast<std::uint32_t>(rng() % 4) * 100;
                    got->bury(pri);
                    if (pri) it->second.priority = *pri;
                    it->second.state = mstate::buried;
                    it->second.bury_order = ++bury_seq;
                    ++buries;
                } else if (what < 85) {
                    std::optional<std::uint32_t> pri;
                    if (rng() % 2) pri = static_cast<std::uint32_t>(rng() % 4) * 100;
                    std::chrono::nanoseconds d{0};
                    if (rng() % 4 == 0) d = next_delay();
                    got->release(pri, d);
                    if (pri) it->second.priority = *pri;
                    if (d.count() != 0) {
                        it->second.state = mstate::delayed;
                        it->second.due = d.count();
                    } else {
                        it->second.state = mstate::ready;
                    }
                    ++releases;
                } else {
                    held.push_back(std::move(*got));  // reserved across the next cuts
                }
            } else if (dice < 78) {
                // remove by id
                const auto id = pick([](const mjob& j) { return j.state != mstate::reserved; });
                if (!id) continue;
                touched.insert(*id);
                wq.remove(*id);
                model.erase(*id);
                removed.push_back(*id);
                ++removes;
            } else if (dice < 85) {
                // kick: buried first (oldest burial first), else delayed (soonest first)
                const char* q = queue_names[rng() % 2];
                const std::size_t n = 1 + rng() % 3;
                std::vector<std::pair<std::int64_t, conq::job_id>> b, d;
                for (const auto& [id, j] : model) {
                    if (j.queue != q) continue;
                    if (j.state == mstate::buried) b.emplace_back(static_cast<std::int64_t>(j.bury_order), id);
                    if (j.state == mstate::delayed) d.emplace_back(j.due, id);
                }
                auto& from = b.empty() ? d : b;
                std::sort(from.begin(), from.end());
                const std::size_t expect = std::min(n, from.size());
                REQUIRE(wq.kick(q, n) == expect);
                for (std::size_t k = 0; k < expect; ++k) {
                    model[from[k].second].state = mstate::ready;
                    touched.insert(from[k].second);
                }
                kicked += expect;
            } else if (dice < 89) {
                // kick one job by id
                const auto id = pick([](const mjob& j) {
                    return j.state == mstate::buried || j.state == mstate::delayed;
                });
                if (!id) continue;
                touched.insert(*id);
                wq.kick_job(*id);
                model[*id].state = mstate::ready;
                ++kicked;
            } else if (dice < 95) {
                // decide a held job
                if (held.empty()) continue;
                const std::size_t k = rng() % held.size();
                wqs::job h = std::move(held[k]);
                held.erase(held.begin() + static_cast<std::ptrdiff_t>(k));
                auto& j = model.at(h.id());
                touched.insert(h.id());
                REQUIRE(j.state == mstate::reserved);
                if (rng() % 2) {
                    h.release();
                    j.state = mstate::ready;
                } else {
                    const conq::job_id id = h.id();
                    h.remove();
                    model.erase(id);
                    removed.push_back(id);
                }
            } else {
                // The power goes out.
                const auto image = dir.path() / ("cut" + std::to_string(cuts));
                disk.write_image(image);
                if (rng() % 2) {
                    add_unsynced_pages(live, image, rng);
                    ++with_unsynced;
                }
                conq::detail::installed_io_hooks.store(nullptr);  // recovery of the image is not watched
                {
                    INFO("cut " << cuts << " at step " << step << ": " << model.size() << " live jobs, "
                                << held.size() << " held");
                    check_work_image(image, model, removed, max_id);
                }
                conq::detail::installed_io_hooks.store(&disk);
                std::filesystem::remove_all(image);
                ++cuts;
            }
            if (held.size() > 4) {
                wqs::job h = std::move(held.front());
                held.erase(held.begin());
                touched.insert(h.id());
                h.release();
                model.at(h.id()).state = mstate::ready;
            }
        }
        check_mid_cut(steps);
        last_begin = wq.journal()->begin_offset();
        // The journal compacted: its oldest segments went.
        REQUIRE_FALSE(first_bases.empty());
        CHECK(wq.journal()->segment_bases().front() > first_bases.front());
        CHECK(last_begin > 0);
        // One last cut with everything settled.
        for (auto& h : held) {
            h.release();
            model.at(h.id()).state = mstate::ready;
        }
        held.clear();
        const auto image = dir.path() / "final";
        disk.write_image(image);
        conq::detail::installed_io_hooks.store(nullptr);
        check_work_image(image, model, removed, max_id);
        conq::detail::installed_io_hooks.store(&disk);
    }
    CHECK(cuts > 100);
    CHECK(mid_cuts >= 2);  // compaction dropped segments (twice with this seed)
    CHECK(with_unsynced > 30);
    CHECK(kicked > 100);
    CHECK(buries > 100);
    CHECK(releases > 100);
    CHECK(removes > 1000);
}

// ----------------------------------------------------------------- streams

TEST_CASE("durable streams keep every returned append and commit through a simulated power cut",
          "[crash][power][broker]") {
    using strs = conq::streams<std::string, conq::manual_clock>;
    conq_test::temp_dir dir("conq-spower");
    const auto live = dir.path() / "live";
    std::mt19937_64 rng(11);
    const std::size_t steps = 5000 * conq_test::stress_scale();
    constexpr std::uint32_t parts = 3;

    struct mrec {
        std::string key, payload;
    };
    std::vector<mrec> model[parts];
    std::optional<std::uint64_t> committed[parts];
    std::size_t cuts = 0, with_unsynced = 0, commits = 0;

    conq::manual_clock clock;
    tree_shadow disk(live);
    {
        strs s(live, test_log_options(), clock);
        conq::stream_options so;
        so.partitions = parts;
        auto& st = s.create("events", so);
        auto member = st.join("readers", "m");
        disk.seed();  // create synced the meta file and made the logs
        conq_test::install_hooks on(disk);

        for (std::size_t step = 0; step < steps; ++step) {
            const auto dice = rng() % 100;
            if (dice < 60) {
                const std::string key = "key" + std::to_string(rng() % 16);
                std::string payload = random_payload(rng, step);
                const auto r = st.append(key, payload);
                const std::uint32_t p = conq::stream_key_partition(key, parts);
                REQUIRE(r.partition == p);
                REQUIRE(r.offset == model[p].size());
                model[p].push_back({key, std::move(payload)});
            } else if (dice < 98) {
                const auto p = static_cast<std::uint32_t>(rng() % parts);
                const std::uint64_t lo = committed[p].value_or(0), hi = model[p].size();
                const std::uint64_t off = lo + rng() % (hi - lo + 1);
                member.commit(p, off);
                committed[p] = off;
                ++commits;
            } else {
                const auto image = dir.path() / ("cut" + std::to_string(cuts));
                disk.write_image(image);
                if (rng() % 2) {
                    add_unsynced_pages(live, image, rng);
                    ++with_unsynced;
                }
                conq::detail::installed_io_hooks.store(nullptr);
                {
                    INFO("cut " << cuts << " at step " << step);
                    conq::manual_clock c2;
                    strs rec(image, test_log_options(), c2);
                    REQUIRE(rec.contains("events"));
                    auto& rs = rec.get("events");
                    REQUIRE(rs.partitions() == parts);
                    for (std::uint32_t p = 0; p < parts; ++p) {
                        INFO("partition " << p);
                        REQUIRE(rs.begin_offset(p) == 0);
                        REQUIRE(rs.end_offset(p) == model[p].size());
                        std::vector<conq::stream_record<std::string>> out;
                        std::uint64_t at = 0;
                        while (at < model[p].size()) {
                            out.clear();
                            const std::size_t n = rs.read(p, at, 4096, out);
                            REQUIRE(n > 0);
                            REQUIRE(out.size() == n);
                            for (const auto& r : out) {
                                REQUIRE(r.partition == p);
                                REQUIRE(r.offset == at);  // dense
                                REQUIRE(r.keyed());
                                REQUIRE(r.key() == model[p][at].key);
                                REQUIRE(r.payload() == model[p][at].payload);
                                ++at;
                            }
                        }
                        REQUIRE(rs.committed("readers", p) == committed[p].value_or(0));
                    }
                    // Appends go on at once, right after the last record kept.
                    const auto next = rs.append("key-after", "after the cut");
                    REQUIRE(next.offset == model[next.partition].size());
                }
                conq::detail::installed_io_hooks.store(&disk);
                std::filesystem::remove_all(image);
                ++cuts;
            }
        }
        // The partition logs rolled over several segments.
        for (std::uint32_t p = 0; p < parts; ++p) CHECK(model[p].size() > 500);
    }
    CHECK(cuts > 60);
    CHECK(with_unsynced > 20);
    CHECK(commits > 1100);  // the offsets log compacted (every 1024 commits)
}

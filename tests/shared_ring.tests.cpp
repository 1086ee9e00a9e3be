// Unit tests of conq::shared_ring (include/conq/shared_ring.hpp) inside one
// process: two handles on one shared-memory object or file behave as two
// processes would (each maps the object at its own address), exactly-once
// FIFO between threads, capacity<N> and run-time capacity, closing, the
// checks that refuse a mismatched object, and peer detection. The tests
// with real processes are in tests/crash/shared_ring_ipc.tests.cpp.
#include "conq_catch.hpp"
#include "temp_dir.hpp"

#include <conq/mpmc_ring.hpp>
#include <conq/queue.hpp>
#include <conq/shared_ring.hpp>
#include <conq/spsc_ring.hpp>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

namespace {

struct tick {
    std::uint64_t producer;
    std::uint64_t seq;
    double price;
};

using spsc_t = conq::spsc_ring<tick, conq::shared_memory, conq::blocking>;
using mpmc_t = conq::mpmc_ring<tick, conq::mpmc, conq::shared_memory>;
using inline_t = conq::spsc_ring<std::uint64_t, conq::capacity<64>, conq::shared_memory, conq::spin>;

/// A shared-memory name unique to this process and test, removed afterwards.
struct shm_name {
    std::string name;
    explicit shm_name(const char* tag) : name("/conq-test-" + std::string(tag) + "-" + std::to_string(::getpid())) {
        conq::shared_ring<spsc_t>::remove(name);
    }
    ~shm_name() { conq::shared_ring<spsc_t>::remove(name); }
};

}  // namespace

TEST_CASE("shared_ring: two handles on one object share one ring", "[shared_ring]") {
    shm_name n("basic");
    auto a = conq::shared_ring<spsc_t>::create(n.name, 100, conq::shared_role::producer);
    auto b = conq::shared_ring<spsc_t>::open(n.name, conq::shared_role::consumer);
    CHECK(a->capacity() == 128);  // rounded up to a power of two
    CHECK(b->capacity() == 128);
    CHECK(a.try_push(tick{0, 1, 1.5}));
    CHECK(a.push(tick{0, 2, 2.5}));
    auto x = b.try_pop();
    REQUIRE(x);
    CHECK(x->seq == 1);
    CHECK(x->price == 1.5);
    CHECK(b.pop()->seq == 2);
    CHECK_FALSE(b.try_pop());
    // Fill it: the 129th push does not fit.
    for (std::uint64_t i = 0; i < 128; ++i) REQUIRE(a.try_push(tick{0, i, 0}));
    CHECK_FALSE(a.try_push(tick{0, 999, 0}));
    CHECK_FALSE(a.push_for(tick{0, 999, 0}, std::chrono::milliseconds(1)));
    CHECK(b->size_approx() == 128);
    for (std::uint64_t i = 0; i < 128; ++i) REQUIRE(b.try_pop()->seq == i);
}

TEST_CASE("shared_ring: exactly once and in order between two threads", "[shared_ring][threads]") {
    shm_name n("threads");
    auto prod = conq::shared_ring<spsc_t>::create(n.name, 64, conq::shared_role::producer);
    auto cons = conq::shared_ring<spsc_t>::open(n.name, conq::shared_role::consumer);
    constexpr std::uint64_t count = 200000;
    std::thread t([&] {
        for (std::uint64_t i = 0; i < count; ++i) REQUIRE(prod.push(tick{0, i, double(i)}));
        prod.close();
    });
    std::uint64_t next = 0;
    while (auto v = cons.pop()) {
        REQUIRE(v->seq == next);
        ++next;
    }
    t.join();
    CHECK(next == count);
    CHECK(cons.closed());
}

TEST_CASE("shared_ring: mpmc between threads of several handles", "[shared_ring][threads]") {
    shm_name n("mpmc");
    auto owner = conq::shared_ring<mpmc_t>::create(n.name, 256, conq::shared_role::both);
    constexpr int producers = 2, consumers = 2;
    constexpr std::uint64_t per = 50000;
    std::atomic<std::uint64_t> sum{0}, got{0};
    std::vector<std::thread> ts;
    for (int p = 0; p < producers; ++p)
        ts.emplace_back([&, p] {
            auto h = conq::shared_ring<mpmc_t>::open(n.name, conq::shared_role::producer);
            for (std::uint64_t i = 1; i <= per; ++i) REQUIRE(h.push(tick{std::uint64_t(p), i, 0}));
        });
    for (int c = 0; c < consumers; ++c)
        ts.emplace_back([&] {
            auto h = conq::shared_ring<mpmc_t>::open(n.name, conq::shared_role::consumer);
            std::vector<std::uint64_t> last(producers, 0);
            while (got.load() < producers * per) {
                auto v = h.pop_for(std::chrono::milliseconds(5));
                if (!v) continue;
                REQUIRE(v->seq > last[v->producer]);  // each producer's order, per consumer
                last[v->producer] = v->seq;
                sum.fetch_add(v->seq);
                got.fetch_add(1);
            }
        });
    for (auto& t : ts) t.join();
    CHECK(got.load() == producers * per);
    CHECK(sum.load() == producers * per * (per + 1) / 2);
}

TEST_CASE("shared_ring: capacity<N> rings and file-backed rings", "[shared_ring]") {
    conq_test::temp_dir dir("conq-shm");
    const auto path = dir / "ring";
    auto a = conq::shared_ring<inline_t>::create_file(path, conq::shared_role::producer);
    auto b = conq::shared_ring<inline_t>::open_file(path, conq::shared_role::consumer);
    CHECK(b->capacity() == 64);
    for (std::uint64_t i = 0; i < 64; ++i) REQUIRE(a.try_push(i));
    CHECK_FALSE(a.try_push(64));
    for (std::uint64_t i = 0; i < 64; ++i) REQUIRE(*b.try_pop() == i);
    // A file that exists is not overwritten.
    try {
        (void)conq::shared_ring<inline_t>::create_file(path, conq::shared_role::producer);
        FAIL("created over an existing file");
    } catch (const conq::shared_ring_error& e) {
        CHECK(e.code() == EEXIST);
    }
}

TEST_CASE("shared_ring: an object of another kind is refused with a reason", "[shared_ring][errors]") {
    shm_name n("mismatch");
    auto a = conq::shared_ring<spsc_t>::create(n.name, 16, conq::shared_role::producer);
    SECTION("another element type") {
        using other = conq::spsc_ring<std::uint64_t, conq::shared_memory, conq::blocking>;
        try {
            (void)conq::shared_ring<other>::open(n.name, conq::shared_role::consumer);
            FAIL("opened a ring of another element type");
        } catch (const conq::shared_ring_error& e) {
            CHECK(e.code() == conq::shared_ring_error::mismatch);
            CHECK(std::string(e.what()).find("tick") != std::string::npos);
        }
    }
    SECTION("other policies") {
        using other = conq::spsc_ring<tick, conq::shared_memory, conq::spin>;
        CHECK_THROWS_AS(conq::shared_ring<other>::open(n.name, conq::shared_role::consumer),
                        conq::shared_ring_error);
    }
    SECTION("a name that exists") {
        try {
            (void)conq::shared_ring<spsc_t>::create(n.name, 16, conq::shared_role::producer);
            FAIL("created over an existing object");
        } catch (const conq::shared_ring_error& e) {
            CHECK(e.code() == EEXIST);
        }
    }
    SECTION("a name that does not exist") {
        try {
            (void)conq::shared_ring<spsc_t>::open(n.name + "-absent", conq::shared_role::consumer);
            FAIL("opened an absent object");
        } catch (const conq::shared_ring_error& e) {
            CHECK(e.code() == ENOENT);
        }
    }
}

TEST_CASE("shared_ring: a damaged or foreign object is refused", "[shared_ring][errors]") {
    conq_test::temp_dir dir("conq-shm");
    const auto path = dir / "ring";
    {
        auto a = conq::shared_ring<spsc_t>::create_file(path, 16, conq::shared_role::producer);
    }
    SECTION("another format version") {
        std::FILE* f = std::fopen(path.c_str(), "r+b");
        REQUIRE(f);
        const std::uint32_t v = 99;
        std::fseek(f, 8, SEEK_SET);
        std::fwrite(&v, 4, 1, f);
        std::fclose(f);
        try {
            (void)conq::shared_ring<spsc_t>::open_file(path, conq::shared_role::consumer);
            FAIL("opened a ring of format version 99");
        } catch (const conq::shared_ring_error& e) {
            CHECK(e.code() == conq::shared_ring_error::mismatch);
            CHECK(std::string(e.what()).find("version 99") != std::string::npos);
        }
    }
    SECTION("not a ring at all") {
        std::FILE* f = std::fopen(path.c_str(), "r+b");
        REQUIRE(f);
        std::fwrite("garbage!", 8, 1, f);
        std::fclose(f);
        CHECK_THROWS_AS(conq::shared_ring<spsc_t>::open_file(path, conq::shared_role::consumer),
                        conq::shared_ring_error);
    }
    SECTION("a file cut short") {
        std::filesystem::resize_file(path, 300);
        CHECK_THROWS_AS(conq::shared_ring<spsc_t>::open_file(path, conq::shared_role::consumer),
                        conq::shared_ring_error);
    }
}

TEST_CASE("shared_ring: a consumer learns that every producer has gone", "[shared_ring]") {
    shm_name n("gone");
    auto cons = conq::shared_ring<spsc_t>::create(n.name, 16, conq::shared_role::consumer);
    CHECK_FALSE(cons.peer_gone());  // no producer came yet: not "gone"
    CHECK_FALSE(cons.pop_for(std::chrono::milliseconds(1)));
    {
        auto prod = conq::shared_ring<spsc_t>::open(n.name, conq::shared_role::producer);
        CHECK_FALSE(cons.peer_gone());
        prod.push(tick{0, 7, 0});
    }  // the producer detaches (as a process that exits or dies)
    CHECK(cons.peer_gone());
    auto v = cons.pop();  // what it pushed is still there
    REQUIRE(v);
    CHECK(v->seq == 7);
    CHECK_FALSE(cons.pop());  // then nullopt, not a wait forever
}

TEST_CASE("shared_ring: a producer learns that every consumer has gone", "[shared_ring]") {
    shm_name n("gone2");
    auto prod = conq::shared_ring<spsc_t>::create(n.name, 4, conq::shared_role::producer);
    {
        auto cons = conq::shared_ring<spsc_t>::open(n.name, conq::shared_role::consumer);
        for (std::uint64_t i = 0; i < 4; ++i) REQUIRE(prod.push(tick{0, i, 0}));
    }
    CHECK(prod.peer_gone());
    CHECK_FALSE(prod.push(tick{0, 4, 0}));  // full, and nobody will ever pop
}

TEST_CASE("shared_ring: conq::queue rings work too", "[shared_ring]") {
    using q_t = conq::mpsc_queue<tick, conq::shared_memory, conq::yield>;
    conq_test::temp_dir dir("conq-shm");
    auto a = conq::shared_ring<q_t>::create_file(dir / "q", 8, conq::shared_role::producer);
    auto b = conq::shared_ring<q_t>::open_file(dir / "q", conq::shared_role::consumer);
    std::vector<tick> in{{1, 1, 1.0}, {1, 2, 2.0}, {1, 3, 3.0}};
    CHECK(a->try_push_n(in.begin(), in.end()) == 3);
    std::vector<tick> out(3);
    CHECK(b->try_pop_n(out.begin(), 3) == 3);
    CHECK(out[2].seq == 3);
}

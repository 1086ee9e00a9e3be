// Unit tests of conq::durable_queue (include/conq/durable/queue.hpp): FIFO
// delivery with acks, redelivery of what was not acked after a reopen,
// release, ack before delivery, close waking a blocked pop, checkpoints that
// delete acked segments, exactly-once delivery between threads, and errors.
#include "conq_catch.hpp"
#include "temp_dir.hpp"

#include <conq/durable/queue.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <set>
#include <string>
#include <thread>
#include <vector>

using conq_test::temp_dir;

namespace {

conq::durable_options small() {
    conq::durable_options o;
    o.segment_size = 16 << 10;
    o.max_record_size = 1024;
    o.prefault = false;
    return o;
}

std::string msg(std::uint64_t i) { return "message " + std::to_string(i) + std::string(i % 200, '.'); }

}  // namespace

TEST_CASE("durable_queue: FIFO with acks", "[durable_queue]") {
    temp_dir dir;
    conq::durable_queue q(dir.path(), small());
    for (std::uint64_t i = 0; i < 10; ++i) CHECK(q.push(msg(i)) == i);
    CHECK(q.size_approx() == 10);
    for (std::uint64_t i = 0; i < 10; ++i) {
        auto m = q.try_pop();
        REQUIRE(m);
        CHECK(m->id == i);
        CHECK(m->text() == msg(i));
        CHECK(q.ack(m->id));
        CHECK_FALSE(q.ack(m->id));  // twice: no effect
    }
    CHECK_FALSE(q.try_pop());
    CHECK(q.acked_below() == 10);
    CHECK(q.in_flight() == 0);
}

TEST_CASE("durable_queue: after a reopen, what was not acked comes again and acked never", "[durable_queue]") {
    temp_dir dir;
    std::set<std::uint64_t> acked;
    {
        conq::durable_queue q(dir.path(), small());
        for (std::uint64_t i = 0; i < 300; ++i) q.push(msg(i));
        for (std::uint64_t i = 0; i < 200; ++i) {
            auto m = q.try_pop();
            REQUIRE(m);
            if (i % 3 != 1) {  // acks out of order too: 0, 2, 3, 5, ...
                q.ack(m->id);
                acked.insert(m->id);
            }
        }
        // 1, 4, 7, ... are in flight; 200..299 were never delivered.
        CHECK(q.in_flight() == 200 - acked.size());
    }
    conq::durable_queue q(dir.path(), small());
    CHECK(q.acked_below() == 1);
    std::vector<std::uint64_t> again;
    while (auto m = q.try_pop()) {
        CHECK(m->text() == msg(m->id));
        again.push_back(m->id);
    }
    std::vector<std::uint64_t> want;
    for (std::uint64_t i = 0; i < 300; ++i)
        if (!acked.count(i)) want.push_back(i);
    CHECK(again == want);  // exactly the unacked, in id order
}

TEST_CASE("durable_queue: release puts a message back in front", "[durable_queue]") {
    temp_dir dir;
    conq::durable_queue q(dir.path(), small());
    for (std::uint64_t i = 0; i < 5; ++i) q.push(msg(i));
    auto a = q.try_pop();
    auto b = q.try_pop();
    REQUIRE(a);
    REQUIRE(b);
    CHECK(q.release(b->id));
    CHECK_FALSE(q.release(b->id));  // not in flight any more
    CHECK(q.release(a->id));
    auto c = q.try_pop();
    REQUIRE(c);
    CHECK(c->id == 0);
    CHECK(c->text() == msg(0));
    CHECK(q.try_pop()->id == 1);
    CHECK(q.try_pop()->id == 2);
}

TEST_CASE("durable_queue: an ack before delivery removes the message", "[durable_queue]") {
    temp_dir dir;
    {
        conq::durable_queue q(dir.path(), small());
        for (std::uint64_t i = 0; i < 6; ++i) q.push(msg(i));
        CHECK(q.ack(0));
        CHECK(q.ack(3));
        CHECK(q.try_pop()->id == 1);
        CHECK(q.try_pop()->id == 2);
        CHECK(q.try_pop()->id == 4);
    }
    conq::durable_queue q(dir.path(), small());
    std::vector<std::uint64_t> ids;
    while (auto m = q.try_pop()) ids.push_back(m->id);
    CHECK(ids == std::vector<std::uint64_t>{1, 2, 4, 5});
}

TEST_CASE("durable_queue: errors", "[durable_queue][errors]") {
    temp_dir dir;
    SECTION("ack of an id never pushed") {
        conq::durable_queue q(dir.path(), small());
        q.push("a");
        try {
            q.ack(1);
            FAIL("acked an id that was never pushed");
        } catch (const conq::durable_error& e) {
            CHECK(e.code() == conq::make_error_code(conq::durable_errc::offset_out_of_range));
        }
    }
    SECTION("retention is refused") {
        auto o = small();
        o.retention_bytes = 1 << 20;
        CHECK_THROWS_AS(conq::durable_queue(dir.path(), o), conq::durable_error);
    }
    SECTION("a second queue on the same directory") {
        conq::durable_queue q(dir.path(), small());
        try {
            conq::durable_queue other(dir.path(), small());
            FAIL("two writers on one queue");
        } catch (const conq::durable_error& e) {
            CHECK(e.code() == conq::make_error_code(conq::durable_errc::locked));
        }
    }
    SECTION("a message over the maximum") {
        conq::durable_queue q(dir.path(), small());
        CHECK_THROWS_AS(q.push(std::string(2000, 'x')), conq::durable_error);
        CHECK(q.size_approx() == 0);
    }
}

TEST_CASE("durable_queue: close wakes a blocked pop; pop_for times out", "[durable_queue]") {
    temp_dir dir;
    conq::durable_queue q(dir.path(), small());
    CHECK_FALSE(q.pop_for(std::chrono::milliseconds(1)));
    std::atomic<bool> returned{false};
    std::thread consumer([&] {
        auto m = q.pop();
        CHECK_FALSE(m);
        returned = true;
    });
    while (!returned.load()) {
        q.close();  // again and again until it is seen: no sleep needed
        std::this_thread::yield();
    }
    consumer.join();
    CHECK(q.closed());
}

TEST_CASE("durable_queue: a blocked pop gets the next push", "[durable_queue]") {
    temp_dir dir;
    conq::durable_queue q(dir.path(), small());
    std::thread consumer([&] {
        auto m = q.pop();
        REQUIRE(m);
        CHECK(m->text() == "wake up");
        q.ack(m->id);
    });
    q.push("wake up");
    consumer.join();
    CHECK(q.acked_below() == 1);
}

TEST_CASE("durable_queue: checkpoints delete acked data and old acks", "[durable_queue]") {
    temp_dir dir;
    const std::uint64_t n = conq::durable_queue::checkpoint_every * 3;
    {
        conq::durable_queue q(dir.path(), small());
        for (std::uint64_t i = 0; i < n; ++i) {
            q.push(msg(i));
            auto m = q.try_pop();
            REQUIRE(m);
            if (i != 7) q.ack(m->id);  // one straggler keeps the floor at 7
        }
        CHECK(q.acked_below() == 7);
        CHECK(q.messages().begin_offset() == 0);
        q.ack(7);
        for (std::uint64_t i = 0; i < conq::durable_queue::checkpoint_every; ++i) {
            q.push(msg(n + i));
            q.ack(q.try_pop()->id);
        }
        CHECK(q.acked_below() == n + conq::durable_queue::checkpoint_every);
        CHECK(q.messages().begin_offset() > n / 2);  // fully acked segments went
        q.push("last");
    }
    conq::durable_queue q(dir.path(), small());
    auto m = q.try_pop();
    REQUIRE(m);
    CHECK(m->text() == "last");
    CHECK_FALSE(q.try_pop());
}

TEST_CASE("durable_queue: threads push and pop, every message delivered once", "[durable_queue][threads]") {
    temp_dir dir;
    conq::durable_queue q(dir.path(), small());
    constexpr int producers = 2, consumers = 2;
    constexpr std::uint64_t per_producer = 3000;
    std::atomic<std::uint64_t> consumed{0};
    std::vector<std::vector<std::uint64_t>> seen(consumers);
    std::vector<std::thread> ts;
    for (int p = 0; p < producers; ++p)
        ts.emplace_back([&, p] {
            for (std::uint64_t i = 0; i < per_producer; ++i) q.push(std::to_string(p) + "/" + std::to_string(i));
        });
    for (int c = 0; c < consumers; ++c)
        ts.emplace_back([&, c] {
            std::vector<std::uint64_t> last(producers, 0);
            while (consumed.load() < producers * per_producer) {
                auto m = q.pop_for(std::chrono::milliseconds(5));
                if (!m) continue;
                const std::string s(m->text());
                const auto slash = s.find('/');
                const auto p = static_cast<std::size_t>(std::stoi(s.substr(0, slash)));
                const std::uint64_t i = std::stoull(s.substr(slash + 1)) + 1;
                CHECK(i > last[p]);  // each producer's messages in order, per consumer
                last[p] = i;
                seen[static_cast<std::size_t>(c)].push_back(m->id);
                q.ack(m->id);
                consumed.fetch_add(1);
            }
        });
    for (auto& t : ts) t.join();
    std::set<std::uint64_t> all;
    for (const auto& v : seen)
        for (const auto id : v) CHECK(all.insert(id).second);
    CHECK(all.size() == producers * per_producer);
    CHECK(q.acked_below() == producers * per_producer);
}

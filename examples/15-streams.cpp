// 15-streams.cpp: a partitioned log with consumer groups, with
// conq::streams (the log part of the broker, after Kafka).
//
// Orders are appended with the customer as key: all orders of a customer
// land in one partition, in order. Two members of the group "billing" share
// the three partitions. Bob reads his share but stops before committing;
// when he leaves, Alice takes his partitions over from the group's last
// committed offsets, so the orders Bob read are delivered again
// (at-least-once). The group "audit" reads everything, on its own. Last, a
// durable stream: after a restart its records and the group's committed
// offsets are still there, and the group resumes where it stopped.

#include <conq/broker/stream.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <unistd.h>

namespace {

using batch = std::vector<conq::stream_record<std::string>>;
constexpr auto no_wait = std::chrono::milliseconds(0);

std::string list(const std::vector<std::uint32_t>& ps) {
    std::string s = "{";
    for (const auto p : ps) {
        if (s.size() > 1) s += ',';
        s += std::to_string(p);
    }
    return s += '}';
}

}  // namespace

int main() {
    bool ok = true;
    {
        conq::streams<std::string> s;
        auto& orders = s.create("orders", {.partitions = 3});
        for (int i = 0; i < 12; ++i) {
            const std::string customer = "customer-" + std::to_string(i % 6);
            const auto at = orders.append(customer, "order #" + std::to_string(i));
            if (i < 6)
                std::printf("%s -> partition %u, offset %llu\n", customer.c_str(), at.partition,
                            static_cast<unsigned long long>(at.offset));
        }

        auto alice = orders.join("billing", "alice");
        auto bob = orders.join("billing", "bob");
        std::printf("billing: alice reads partitions %s, bob %s\n", list(alice.assignment()).c_str(),
                    list(bob.assignment()).c_str());
        batch a, b;
        alice.poll(a, 100, no_wait);
        alice.commit();
        const std::size_t bob_read = bob.poll(b, 100, no_wait);  // and no commit
        std::printf("alice billed %zu orders and committed; bob read %zu and stopped before committing\n",
                    a.size(), bob_read);
        bob.leave();
        a.clear();
        alice.poll(a, 100, no_wait);
        std::printf("bob left: alice now reads %s (generation %llu) and gets his %zu orders again:\n",
                    list(alice.assignment()).c_str(), static_cast<unsigned long long>(alice.generation()),
                    a.size());
        for (const auto& r : a)
            std::printf("  partition %u offset %llu: %s for %.*s\n", r.partition,
                        static_cast<unsigned long long>(r.offset), r.payload().c_str(),
                        static_cast<int>(r.key().size()), r.key().data());
        alice.commit();
        ok = ok && a.size() == bob_read;

        auto audit = orders.join("audit");
        batch all;
        while (audit.poll(all, 5, no_wait) != 0) {
        }
        audit.commit();
        std::printf("audit, a group of its own, read all %zu orders; every group done: %s\n", all.size(),
                    s.idle() ? "yes" : "no");
        ok = ok && all.size() == 12 && s.idle();
    }

    const auto dir = std::filesystem::temp_directory_path() / ("conq-example-streams-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    conq::durable_options opts;
    opts.segment_size = 1 << 20;  // small files for a small demo
    opts.max_record_size = 4096;
    {
        conq::streams<std::string> s(dir, opts);
        auto& events = s.create("events", {.partitions = 2});
        for (int i = 0; i < 10; ++i) events.append("event " + std::to_string(i));
        auto c = events.join("reporting");
        batch got;
        c.poll(got, 6, no_wait);
        c.commit();
        std::printf("durable: appended 10 events, group \"reporting\" read and committed %zu\n", got.size());
    }  // the process "stops" here
    {
        conq::streams<std::string> s(dir, opts);
        auto& events = s.get("events");
        auto c = events.join("reporting");
        batch rest;
        while (c.poll(rest, 100, no_wait) != 0) {
        }
        std::printf("after the restart: %u partitions, %llu + %llu records, and the group resumes with %zu:",
                    events.partitions(), static_cast<unsigned long long>(events.end_offset(0)),
                    static_cast<unsigned long long>(events.end_offset(1)), rest.size());
        for (const auto& r : rest) std::printf(" [%s]", r.payload().c_str());
        std::printf("\n");
        ok = ok && rest.size() == 4;
    }  // closed before its directory is removed
    std::filesystem::remove_all(dir);
    return ok ? 0 : 1;
}

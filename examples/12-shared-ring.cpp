// 12-shared-ring.cpp: a ring shared by two processes, with conq::shared_ring.
//
// The parent makes a shared-memory object holding an SPSC ring and
// consumes; a child process (fork) opens it by name and produces. The
// blocking policy lets the parent sleep in the kernel while the ring is
// empty. When the child exits, the parent's pop() drains what is left and
// returns nullopt: the handle notices that every producer is gone.

#include <conq/shared_ring.hpp>
#include <conq/spsc_ring.hpp>

#include <cstdint>
#include <cstdio>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

struct tick {  // trivially copyable: no pointers into one process's memory
    std::uint64_t seq;
    double price;
};

using ticks = conq::spsc_ring<tick, conq::shared_memory, conq::blocking>;

int main() {
    const std::string name = "/conq-example-ticks-" + std::to_string(::getpid());
    auto q = conq::shared_ring<ticks>::create(name, 1024, conq::shared_role::consumer);

    constexpr std::uint64_t count = 100000;
    const pid_t child = ::fork();
    if (child == 0) {
        auto out = conq::shared_ring<ticks>::open(name, conq::shared_role::producer);
        for (std::uint64_t i = 1; i <= count; ++i) out.push(tick{i, 100.0 + static_cast<double>(i % 100) / 8});
        ::_exit(0);  // detaching tells the consumer no more will come
    }

    std::uint64_t received = 0, in_order = 0;
    double last_price = 0;
    while (auto t = q.pop()) {
        ++received;
        in_order += t->seq == received;
        last_price = t->price;
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    conq::shared_ring<ticks>::remove(name);

    std::printf("received %llu ticks from process %d (%llu in order), last price %.3f; producer gone: %s\n",
                static_cast<unsigned long long>(received), static_cast<int>(child),
                static_cast<unsigned long long>(in_order), last_price, q.peer_gone() ? "yes" : "no");
    return received == count && in_order == count ? 0 : 1;
}

// Pushes numbers through a conq::spsc_queue from a producer thread and checks
// that the consumer sees all of them, in order.
#include <conq/conq.hpp>

#include <cstdio>
#include <thread>

int main() {
    constexpr int count = 100000;
    conq::spsc_queue<int, conq::capacity<256>> queue;

    std::thread producer([&queue] {
        for (int i = 0; i < count; ++i) {
            if (!queue.push(i)) return;
        }
        queue.close();
    });

    int expected = 0;
    while (std::optional<int> item = queue.pop()) {
        if (*item != expected) {
            std::fprintf(stderr, "popped %d, expected %d\n", *item, expected);
            producer.join();
            return 1;
        }
        ++expected;
    }
    producer.join();

    std::printf("conqueue %d.%d.%d: %d items through spsc_queue (capacity %zu)\n",
                conq::version_major, conq::version_minor, conq::version_patch, expected,
                queue.capacity());
    return expected == count ? 0 : 1;
}

// 10-durable-log.cpp: an event log that survives restarts, with
// conq::durable_log.
//
// Four threads append events (offsets are dense: 0, 1, 2, ...), a reader
// thread tails the log while it grows, and the log is closed and reopened:
// recovery finds every record, and a new reader replays from any offset.
// sync::every<256> makes one disk sync per 256 records (group commit).

#include <conq/durable/log.hpp>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

int main() {
    const auto dir = std::filesystem::temp_directory_path() / ("conq-example-log-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);

    conq::durable_options opts;
    opts.sync = conq::sync::every<256>;
    opts.segment_size = 256 << 10;  // 256 KiB segments, so that this small demo rolls a few
    opts.max_record_size = 4096;  // (a segment must hold the largest record)

    constexpr int writers = 4;
    constexpr int per_writer = 5000;
    {
        conq::durable_log log(dir, opts);
        std::atomic<int> done{0};
        std::thread tail([&] {
            auto r = log.reader(0);
            std::uint64_t seen = 0;
            while (seen < writers * per_writer) {
                if (auto rec = r.next()) ++seen;
                else std::this_thread::yield();
            }
            std::printf("tailing reader saw %llu records while they were written\n",
                        static_cast<unsigned long long>(seen));
        });
        std::vector<std::thread> ts;
        for (int w = 0; w < writers; ++w)
            ts.emplace_back([&, w] {
                for (int i = 0; i < per_writer; ++i)
                    log.append("writer " + std::to_string(w) + " event " + std::to_string(i));
                done.fetch_add(1);
            });
        for (auto& t : ts) t.join();
        tail.join();
        log.sync();
        std::printf("appended [%llu, %llu) in %zu segment files; durable up to %llu\n",
                    static_cast<unsigned long long>(log.begin_offset()),
                    static_cast<unsigned long long>(log.end_offset()), log.segment_count(),
                    static_cast<unsigned long long>(log.durable_offset()));
    }

    // Reopen: recovery checks every frame and keeps them all.
    bool ok = false;
    {
        conq::durable_log log(dir, opts);
        const auto& rep = log.recovery();
        std::printf("reopened: %llu records in %llu segments, clean: %s\n",
                    static_cast<unsigned long long>(rep.records), static_cast<unsigned long long>(rep.segments),
                    rep.clean() ? "yes" : "no");
        auto r = log.reader(log.end_offset() - 3);
        while (auto rec = r.next())
            std::printf("  offset %llu: %.*s\n", static_cast<unsigned long long>(rec->offset),
                        static_cast<int>(rec->text().size()), rec->text().data());
        ok = rep.records == writers * per_writer && rep.clean();
    }  // closed first: its background thread may still be preparing a file
    std::filesystem::remove_all(dir);
    return ok ? 0 : 1;
}

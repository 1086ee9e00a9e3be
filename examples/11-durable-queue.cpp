// 11-durable-queue.cpp: a job queue that keeps unfinished jobs across a
// restart, with conq::durable_queue.
//
// Ten jobs are pushed; a worker finishes (acks) some, gives one back
// (release), cancels one nobody took yet (ack before delivery) and stops
// with two jobs in hand. After the queue is reopened, exactly the jobs that
// were not acked are delivered again; acked ones never come back. sync::always makes push and ack return only once
// they are on disk.

#include <conq/durable/queue.hpp>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <unistd.h>

int main() {
    const auto dir = std::filesystem::temp_directory_path() / ("conq-example-queue-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    conq::durable_options opts;
    opts.sync = conq::sync::always;
    opts.segment_size = 1 << 20;
    opts.max_record_size = 4096;

    auto show = [](const char* what, const conq::durable_message& m) {
        std::printf("%s %.*s\n", what, static_cast<int>(m.text().size()), m.text().data());
    };
    {
        conq::durable_queue jobs(dir, opts);
        for (int i = 0; i < 10; ++i) jobs.push("job " + std::to_string(i));

        auto a = jobs.try_pop();  // job 0
        jobs.ack(a->id);
        show("done", *a);
        auto b = jobs.try_pop();  // job 1: cannot be done now
        jobs.release(b->id);
        show("released", *b);
        auto c = jobs.try_pop();  // job 1 again: released jobs come first
        jobs.ack(c->id);
        show("done", *c);
        auto d = jobs.try_pop();  // job 2
        auto e = jobs.try_pop();  // job 3
        show("in hand when the worker stops:", *d);
        show("in hand when the worker stops:", *e);
        jobs.ack(7);  // job 7 is cancelled before anyone took it
        std::printf("cancelled job 7\n");
        // The queue object goes away here as if the process had stopped.
    }

    std::vector<std::string> again;
    {
        conq::durable_queue jobs(dir, opts);
        while (auto m = jobs.try_pop()) {
            again.emplace_back(m->text());
            jobs.ack(m->id);
        }
    }  // closed first: its logs' background threads may still be preparing files
    std::printf("after the restart, delivered again:");
    for (const auto& s : again) std::printf(" [%s]", s.c_str());
    std::printf("\n");
    std::filesystem::remove_all(dir);
    // Jobs 0, 1 and 7 were acked; 2 and 3 were in hand; 4..9 were never popped.
    const std::vector<std::string> want{"job 2", "job 3", "job 4", "job 5", "job 6", "job 8", "job 9"};
    return again == want ? 0 : 1;
}

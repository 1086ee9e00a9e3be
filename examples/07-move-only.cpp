// 07-move-only.cpp: move-only items, in-place construction, exceptions.
//
// Items need not be copyable or default-constructible. std::unique_ptr is a
// natural payload: a push that fails leaves the pointer with the caller, so
// nothing leaks. try_emplace(args...) builds the item from its constructor
// arguments. A constructor that throws leaves the queue unchanged. With
// several producers or consumers the item's move constructor must be
// noexcept (a compile-time check); std::unique_ptr's is.
//
// Part 1: unique_ptr payloads, including a push into a full queue.
// Part 2: try_emplace of a move-only type, and a constructor that throws.
// At the end, the items left inside are destroyed with the queue.

#include <conq/queue.hpp>

#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

static int live_tasks = 0;  // counts task objects, to show that none leak

struct task {
    std::string name;
    explicit task(std::string n) : name(std::move(n)) { ++live_tasks; }
    ~task() { --live_tasks; }
};

struct message {  // move-only, no default constructor
    int id;
    std::string body;
    message(int i, std::string b) : id(i), body(std::move(b)) {
        if (i < 0) throw std::invalid_argument("message id must not be negative");
    }
    message(message&&) noexcept = default;
    message& operator=(message&&) noexcept = default;
};

int main() {
    bool ok = true;
    {
        // ---- Part 1: ownership travels through the queue.
        conq::mpmc_queue<std::unique_ptr<task>> tasks(2);
        ok = ok && tasks.try_push(std::make_unique<task>("compile"));
        ok = ok && tasks.try_push(std::make_unique<task>("link"));
        auto extra = std::make_unique<task>("test");
        const bool pushed = tasks.try_push(std::move(extra));  // full: refused
        std::printf("part 1: third push %s; caller still owns \"%s\"\n",
                    pushed ? "accepted" : "refused", extra ? extra->name.c_str() : "(nothing)");
        ok = ok && !pushed && extra != nullptr;
        if (std::optional<std::unique_ptr<task>> t = tasks.try_pop()) {
            std::printf("part 1: popped \"%s\"\n", (*t)->name.c_str());
            ok = ok && (*t)->name == "compile";
        }

        // ---- Part 2: build in place; a throwing constructor changes nothing.
        conq::mpmc_queue<message> inbox(4);
        ok = ok && inbox.try_emplace(1, "hello") && inbox.try_emplace(2, "world");
        bool threw = false;
        try {
            (void)inbox.try_emplace(-1, "bad id");
        } catch (const std::invalid_argument& e) {
            threw = true;
            std::printf("part 2: try_emplace threw \"%s\"; size still %zu\n", e.what(),
                        inbox.size_approx());
        }
        ok = ok && threw && inbox.size_approx() == 2;
        std::optional<message> m = inbox.try_pop();
        ok = ok && m && m->id == 1 && m->body == "hello";
        std::printf("part 2: popped message %d \"%s\"\n", m ? m->id : 0, m ? m->body.c_str() : "");

        // "compile" was freed with `t`. "link" is still in `tasks` and "test"
        // in `extra`: the queue's destructor and unique_ptr free them below.
        std::printf("tasks alive before the queue goes away: %d\n", live_tasks);
        ok = ok && live_tasks == 2;
    }
    std::printf("tasks alive after: %d\n", live_tasks);
    return ok && live_tasks == 0 ? 0 : 1;
}

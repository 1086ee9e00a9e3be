// 17: the beanstalkd protocol server inside your program.
//
// conq-beanstalkd's server class (examples/beanstalkd-server/server.hpp)
// serves the work queues of this process over TCP. Here a C++ producer puts
// a job, a "remote" worker speaking the beanstalkd protocol over a socket
// (as a Python or Node.js client would) reserves it, answers into another
// tube and deletes it, and a C++ consumer reserves the answer.
#include "beanstalkd-server/server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>

namespace {

// A minimal blocking client: sends a command, reads until `until` arrives.
class wire {
public:
    explicit wire(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
            throw std::runtime_error("cannot connect");
    }
    ~wire() { ::close(fd_); }
    std::string ask(const std::string& command, const std::string& until = "\r\n") {
        ::send(fd_, command.data(), command.size(), MSG_NOSIGNAL);
        std::string got;
        char buf[4096];
        while (got.find(until) == std::string::npos) {
            const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
            if (n <= 0) throw std::runtime_error("connection closed");
            got.append(buf, static_cast<std::size_t>(n));
        }
        return got;
    }

private:
    int fd_;
};

}  // namespace

int main() {
    conq::beanstalk::job_queues jobs;  // conq::work_queues<std::string>
    conq::beanstalk::server srv(jobs, {.address = "127.0.0.1", .port = 0});  // any free port
    std::thread net([&] { srv.run(); });

    // A C++ producer.
    const conq::job_id id = jobs.put("emails", "to=ada@example.org", {.priority = 10});
    std::printf("C++ put job %llu into 'emails'\n", static_cast<unsigned long long>(id));

    // A worker elsewhere, speaking the protocol.
    {
        wire w(srv.port());
        w.ask("watch emails\r\n");
        const std::string r = w.ask("reserve-with-timeout 5\r\n", "to=ada@example.org\r\n");
        std::printf("worker got: %s", r.c_str());
        const std::string answer = "sent to ada";
        w.ask("use results\r\n");
        w.ask("put 0 0 60 " + std::to_string(answer.size()) + "\r\n" + answer + "\r\n");
        std::printf("worker: %s", w.ask("delete " + std::to_string(id) + "\r\n").c_str());
    }

    // A C++ consumer of the answers.
    auto c = jobs.make_consumer("results");
    auto r = c.reserve_for(std::chrono::seconds(5));
    if (!r) {
        std::printf("no answer\n");
        return 1;
    }
    std::printf("C++ reserved the answer: %s\n", r->payload().c_str());
    r->remove();

    srv.stop();
    net.join();
    return 0;
}

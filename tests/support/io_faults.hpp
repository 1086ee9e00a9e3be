// tests/support/io_faults.hpp
//
// Test doubles for the durable layer's system-call seam
// (conq::detail::io_hooks):
//
//   fault_plan    fails the N-th call (counting every kind, or one kind)
//                 with an errno, once or from then on
//   shadow_disk   keeps what a power cut would leave: for each file, only
//                 the bytes that msync made durable, and only the directory
//                 entries that a directory fsync made durable
//
// install_hooks puts one in place for a scope. Logs under test run with
// prefault = false, so that no background thread makes calls.
#pragma once

#include <conq/detail/posix_file.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <algorithm>
#include <random>
#include <iterator>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace conq_test {

class install_hooks {
public:
    explicit install_hooks(conq::detail::io_hooks& h) { conq::detail::installed_io_hooks.store(&h); }
    ~install_hooks() { conq::detail::installed_io_hooks.store(nullptr); }
    install_hooks(const install_hooks&) = delete;
    install_hooks& operator=(const install_hooks&) = delete;
};

/// Fails the fail_at-th matching call (1-based) with `err`; with `sticky`,
/// every matching call after it fails too.
class fault_plan : public conq::detail::io_hooks {
public:
    fault_plan(std::uint64_t fail_at, int err, bool sticky, std::optional<conq::detail::io_op> only = {})
        : fail_at_(fail_at), err_(err), sticky_(sticky), only_(only) {}

    int inject(conq::detail::io_op op, const std::filesystem::path&) override {
        std::lock_guard<std::mutex> g(mu_);
        if (only_ && op != *only_) return 0;
        ++calls_;
        if (calls_ == fail_at_ || (sticky_ && calls_ > fail_at_)) {
            ++failures_;
            return err_;
        }
        return 0;
    }
    [[nodiscard]] std::uint64_t calls() const { std::lock_guard<std::mutex> g(mu_); return calls_; }
    [[nodiscard]] std::uint64_t failures() const { std::lock_guard<std::mutex> g(mu_); return failures_; }

private:
    mutable std::mutex mu_;
    std::uint64_t fail_at_;
    int err_;
    bool sticky_;
    std::optional<conq::detail::io_op> only_;
    std::uint64_t calls_ = 0;
    std::uint64_t failures_ = 0;
};

/// The disk as a power cut would leave it. Files are keyed by file name in
/// the one directory under test. A file's content is what msync made
/// durable (the rest reads as zeros: the file was preallocated); a file
/// exists on this disk once a directory fsync followed its creation.
class shadow_disk : public conq::detail::io_hooks {
public:
    explicit shadow_disk(std::filesystem::path dir) : dir_(std::move(dir)) {}

    void synced(const std::filesystem::path& file, std::uint64_t off, const std::byte* data,
                std::size_t len) override {
        std::lock_guard<std::mutex> g(mu_);
        auto& img = content_[file.filename().string()];
        if (img.size() < off + len) img.resize(off + len);
        std::memcpy(img.data() + off, data, len);
    }
    void synced_dir(const std::filesystem::path& dir) override {
        std::lock_guard<std::mutex> g(mu_);
        if (dir != dir_) return;
        entries_.clear();
        for (const auto& e : std::filesystem::directory_iterator(dir_)) {
            const auto name = e.path().filename().string();
            if (e.is_regular_file()) entries_[name] = std::filesystem::file_size(e.path());
        }
    }

    /// Writes the power-cut image into `out`: the durable directory entries,
    /// each with its durable bytes (zeros elsewhere, at the file's size when
    /// the directory was synced).
    void write_image(const std::filesystem::path& out) const {
        std::lock_guard<std::mutex> g(mu_);
        std::filesystem::create_directories(out);
        for (const auto& [name, size] : entries_) {
            std::vector<std::byte> bytes(size);
            auto it = content_.find(name);
            if (it != content_.end() && size != 0 && !it->second.empty())
                std::memcpy(bytes.data(), it->second.data(), std::min<std::size_t>(size, it->second.size()));
            write_file(out / name, bytes);
        }
    }

    static void write_file(const std::filesystem::path& p, const std::vector<std::byte>& bytes) {
        std::FILE* f = std::fopen(p.c_str(), "wb");
        if (!f) throw std::runtime_error("cannot write " + p.string());
        if (!bytes.empty()) std::fwrite(bytes.data(), 1, bytes.size(), f);
        std::fclose(f);
    }

private:
    std::filesystem::path dir_;
    mutable std::mutex mu_;
    std::map<std::string, std::vector<std::byte>> content_;
    std::map<std::string, std::uint64_t> entries_;
};

// --------------------------------------------------- power-cut images

/// The whole content of a file.
inline std::vector<std::byte> read_all(const std::filesystem::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::vector<char> c((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::vector<std::byte> b(c.size());
    if (!c.empty()) std::memcpy(b.data(), c.data(), c.size());
    return b;
}

/// Adds to every file of the image in `out` (recursively) a random part of
/// what the live file at the same relative path holds beyond the shadow:
/// whole 4 KiB pages, some torn after a 512-byte sector.
inline void add_unsynced_pages(const std::filesystem::path& live, const std::filesystem::path& out, std::mt19937_64& rng) {
    for (const auto& e : std::filesystem::recursive_directory_iterator(out)) {
        if (!e.is_regular_file()) continue;
        const auto rel = e.path().lexically_relative(out);
        if (!std::filesystem::exists(live / rel)) continue;  // deleted since: keep the shadow
        auto img = read_all(e.path());
        const auto now = read_all(live / rel);
        bool changed = false;
        for (std::size_t page = 0; page < img.size() && page < now.size(); page += 4096) {
            const std::size_t n = std::min<std::size_t>(4096, std::min(img.size(), now.size()) - page);
            if (std::memcmp(img.data() + page, now.data() + page, n) == 0) continue;
            const auto dice = rng() % 4;
            if (dice == 0) continue;  // this page never reached the disk
            const std::size_t take = dice == 1 ? (rng() % 8) * 512 : n;  // torn, or whole
            std::memcpy(img.data() + page, now.data() + page, std::min(take, n));
            changed = true;
        }
        if (changed) shadow_disk::write_file(e.path(), img);
    }
}

}  // namespace conq_test

// conq/broker/common.hpp
//
// What the three parts of the broker share: the error scheme, the codecs that
// turn payloads into bytes for durable mode, the rules for names, and how a
// part reads its clock.
//
// Errors: every call that rejects its input or its state throws
// conq::broker_error, whose code() is a conq::broker_errc and whose what()
// says which call, which name and why. Nothing already accepted is changed by
// a call that throws. Failures of the files under a durable broker are
// conq::durable_error (conq/durable/options.hpp), from the layer below.
// Outcomes that are part of normal operation (a reserve that times out, a
// subscriber queue that is full under overflow `reject`) are return values,
// not exceptions.
#pragma once

#include <conq/durable/options.hpp>
#include <conq/policy.hpp>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

namespace conq {

// ------------------------------------------------------------------ errors

enum class broker_errc {
    invalid_name = 1,   ///< a queue, stream or subject name breaks the naming rules
    invalid_pattern,    ///< a subscription pattern breaks the pattern rules
    invalid_argument,   ///< a value out of its range (0 partitions, a negative delay...)
    unknown_job,        ///< no job with that id, or not in a state the call applies to
    unknown_queue,      ///< no work queue of that name
    unknown_stream,     ///< no stream of that name
    not_reserved,       ///< the handle no longer holds its job (decided, or its TTR ran out)
    payload_too_large,  ///< a payload above broker_options::max_payload
    offset_out_of_range,///< a stream offset below the retained range or past the end
    closed,             ///< the broker (or the part called) was closed
    draining,           ///< drain() was called: no new work is accepted
    exists,             ///< a stream created again with different settings
};

namespace detail {
class broker_category_impl final : public std::error_category {
public:
    [[nodiscard]] const char* name() const noexcept override { return "conq.broker"; }
    [[nodiscard]] std::string message(int c) const override {
        switch (static_cast<broker_errc>(c)) {
        case broker_errc::invalid_name: return "invalid name";
        case broker_errc::invalid_pattern: return "invalid subscription pattern";
        case broker_errc::invalid_argument: return "invalid argument";
        case broker_errc::unknown_job: return "no such job in that state";
        case broker_errc::unknown_queue: return "no such queue";
        case broker_errc::unknown_stream: return "no such stream";
        case broker_errc::not_reserved: return "the job is no longer reserved by this handle";
        case broker_errc::payload_too_large: return "payload larger than max_payload";
        case broker_errc::offset_out_of_range: return "offset out of range";
        case broker_errc::closed: return "closed";
        case broker_errc::draining: return "draining: no new work is accepted";
        case broker_errc::exists: return "already exists with other settings";
        }
        return "unknown error";
    }
};
}  // namespace detail

inline const std::error_category& broker_category() noexcept {
    static const detail::broker_category_impl c;
    return c;
}
inline std::error_code make_error_code(broker_errc e) noexcept {
    return {static_cast<int>(e), broker_category()};
}

/// The one exception type for rejected calls on the broker and its parts.
class broker_error : public std::runtime_error {
public:
    /// `call` names the operation ("put", "subscribe"...), `detail` the
    /// offending name or value (may be empty).
    broker_error(broker_errc e, std::string_view call, std::string_view detail = {})
        : std::runtime_error(compose(e, call, detail)), code_(make_error_code(e)) {}

    [[nodiscard]] std::error_code code() const noexcept { return code_; }
    [[nodiscard]] broker_errc errc() const noexcept { return static_cast<broker_errc>(code_.value()); }

private:
    static std::string compose(broker_errc e, std::string_view call, std::string_view detail) {
        std::string s = "conq::broker: ";
        s.append(call);
        if (!detail.empty()) {
            s.append(" \"");
            s.append(detail);
            s.append("\"");
        }
        s.append(": ");
        s.append(make_error_code(e).message());
        return s;
    }
    std::error_code code_;
};

}  // namespace conq

namespace std {
template <>
struct is_error_code_enum<conq::broker_errc> : true_type {};
}  // namespace std

namespace conq {

// ------------------------------------------------------------------ names

/// Queue and stream names: 1 to 200 bytes of letters, digits and
/// `- + / ; . $ _ ( )`, not starting with `-` (beanstalkd's tube names).
[[nodiscard]] constexpr bool valid_queue_name(std::string_view s) noexcept {
    if (s.empty() || s.size() > 200 || s.front() == '-') return false;
    for (const char c : s) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                        c == '-' || c == '+' || c == '/' || c == ';' || c == '.' || c == '$' ||
                        c == '_' || c == '(' || c == ')';
        if (!ok) return false;
    }
    return true;
}

namespace detail {
inline void check_queue_name(std::string_view s, std::string_view call) {
    if (!valid_queue_name(s)) throw broker_error(broker_errc::invalid_name, call, s);
}
}  // namespace detail

// ------------------------------------------------------------------ codecs

/// How durable mode stores a payload. Specialise for your type with
///
///   template <> struct conq::codec<Order> {
///       static void encode(const Order&, std::string& out);   // append bytes to out
///       static Order decode(std::span<const std::byte> in);   // throw on bad input
///   };
///
/// Provided: std::string, std::vector<std::byte|char|unsigned char>, and
/// every trivially copyable type (its object bytes, same machine only).
template <class T, class = void>
struct codec;

template <>
struct codec<std::string> {
    static void encode(const std::string& v, std::string& out) { out.append(v); }
    static std::string decode(std::span<const std::byte> in) {
        return std::string(reinterpret_cast<const char*>(in.data()), in.size());
    }
};

template <class B>
struct codec<std::vector<B>, std::enable_if_t<std::is_same_v<B, std::byte> || std::is_same_v<B, char> ||
                                              std::is_same_v<B, unsigned char>>> {
    static void encode(const std::vector<B>& v, std::string& out) {
        out.append(reinterpret_cast<const char*>(v.data()), v.size());
    }
    static std::vector<B> decode(std::span<const std::byte> in) {
        std::vector<B> v(in.size());
        if (!in.empty()) std::memcpy(v.data(), in.data(), in.size());
        return v;
    }
};

template <class T>
struct codec<T, std::enable_if_t<std::is_trivially_copyable_v<T> && !std::is_pointer_v<T>>> {
    static void encode(const T& v, std::string& out) {
        out.append(reinterpret_cast<const char*>(&v), sizeof(T));
    }
    static T decode(std::span<const std::byte> in) {
        if (in.size() != sizeof(T))
            throw durable_error("decode a payload of " + std::to_string(in.size()) + " bytes as a " +
                                    std::to_string(sizeof(T)) + "-byte trivially copyable type",
                                {}, durable_errc::corrupt);
        T v;
        std::memcpy(&v, in.data(), sizeof(T));
        return v;
    }
};

/// T has a codec: a broker of T can be durable.
template <class T>
concept has_codec = requires(const T& v, std::string& out, std::span<const std::byte> in) {
    codec<T>::encode(v, out);
    { codec<T>::decode(in) } -> std::same_as<T>;
};

/// The size a payload counts for in byte limits (max_payload, retention by
/// bytes) in memory: size() of strings and byte vectors, sizeof otherwise.
template <class T>
[[nodiscard]] std::size_t payload_size(const T& v) noexcept {
    if constexpr (requires { { v.size() } -> std::convertible_to<std::size_t>; } &&
                  requires { v.data(); })
        return static_cast<std::size_t>(v.size()) * sizeof(*v.data());
    else
        return sizeof(T);
}

// ------------------------------------------------------------------ clocks

namespace detail {

/// A part's clock: its own when default constructible and none is given
/// (steady_clock), else the caller's, which must outlive the part.
template <class Clock>
class clock_ref {
public:
    clock_ref() requires std::is_default_constructible_v<Clock> : own_(), clock_(&own_) {}
    explicit clock_ref(Clock& c) noexcept : clock_(&c) {}
    clock_ref(const clock_ref&) = delete;
    clock_ref& operator=(const clock_ref&) = delete;

    [[nodiscard]] Clock& get() const noexcept { return *clock_; }
    /// Nanoseconds since the clock's epoch.
    [[nodiscard]] std::int64_t now_ns() const noexcept {
        return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_->now().time_since_epoch())
            .count();
    }

private:
    struct empty {};
    [[no_unique_address]] std::conditional_t<std::is_default_constructible_v<Clock>, Clock, empty> own_;
    Clock* clock_;
};

/// `d` in nanoseconds, saturating instead of overflowing.
template <class Rep, class Period>
[[nodiscard]] constexpr std::int64_t saturating_ns(std::chrono::duration<Rep, Period> d) noexcept {
    using ns = std::chrono::duration<double, std::nano>;
    const double v = std::chrono::duration_cast<ns>(d).count();
    if (v >= 9.2e18) return INT64_MAX;
    if (v <= -9.2e18) return INT64_MIN;
    return static_cast<std::int64_t>(v);
}

/// a + b without overflow.
[[nodiscard]] constexpr std::int64_t add_sat(std::int64_t a, std::int64_t b) noexcept {
    std::int64_t r = 0;
    if (__builtin_add_overflow(a, b, &r)) return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

/// A condition variable whose deadlines are read on a part's clock. With a
/// manual_clock the wait is untimed and every advance() wakes it; with any
/// other clock the deadline becomes a steady_clock deadline. Waiters hold
/// `mu` (the part's mutex) and re-check their condition after each wake.
template <class Clock>
class clock_cv {
public:
    static constexpr std::int64_t forever = INT64_MAX;

    clock_cv(const clock_ref<Clock>& c, std::mutex& mu) : clock_(c), link_(*this, mu) {}
    clock_cv(const clock_cv&) = delete;
    clock_cv& operator=(const clock_cv&) = delete;

    void notify_all() noexcept { cv_.notify_all(); }
    void notify_one() noexcept { cv_.notify_one(); }

    /// Sleeps until notified, or until the clock reads `deadline_ns` or
    /// later (may wake early: callers loop).
    void wait_until(std::unique_lock<std::mutex>& lk, std::int64_t deadline_ns) {
        if constexpr (manual) {
            cv_.wait(lk);
        } else {
            if (deadline_ns == forever) {
                cv_.wait(lk);
                return;
            }
            const std::int64_t left = deadline_ns - clock_.now_ns();
            if (left <= 0) return;
            cv_.wait_for(lk, std::chrono::nanoseconds(left));
        }
    }

private:
    static constexpr bool manual = requires(Clock& c, clock_listener& l) {
        c.subscribe(l);
        c.unsubscribe(l);
    };
    struct no_link {
        no_link(clock_cv&, std::mutex&) noexcept {}
    };
    struct link final : clock_listener {
        link(clock_cv& o, std::mutex& mu) : owner(&o), mu(&mu) { o.clock_.get().subscribe(*this); }
        ~link() { owner->clock_.get().unsubscribe(*this); }
        link(const link&) = delete;
        link& operator=(const link&) = delete;
        void clock_advanced() noexcept override {
            std::lock_guard g(*mu);  // a waiter between its check and its wait is not missed
            owner->cv_.notify_all();
        }
        clock_cv* owner;
        std::mutex* mu;
    };

    const clock_ref<Clock>& clock_;
    std::condition_variable cv_;
    std::conditional_t<manual, link, no_link> link_;
};

}  // namespace detail

}  // namespace conq

// conq/detail/crc32c.hpp
//
// CRC-32C (Castagnoli, the polynomial of iSCSI, ext4, Kafka's record batches)
// for the durable log's record frames.
//
// Where the CPU has the instruction (SSE 4.2 `crc32` on x86-64, checked once
// at run time; the ARMv8 CRC extension when the compiler targets it) eight
// bytes cost one instruction; elsewhere a slicing-by-8 table does the same
// work about five times slower. `crc32c_copy` computes the checksum while it
// copies, so a record's payload is read once, not twice.
//
// The value is the standard one: crc32c("123456789") == 0xE3069283
// (initial value and final xor 0xFFFFFFFF, reflected).
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
#define CONQ_CRC32C_X86 1
#elif defined(__aarch64__) && defined(__ARM_FEATURE_CRC32)
#include <arm_acle.h>
#define CONQ_CRC32C_ARM 1
#endif

namespace conq::detail {

namespace crc32c_impl {

inline constexpr std::uint32_t polynomial = 0x82F63B78u;  // reflected 0x1EDC6F41

/// table[k][b]: the CRC of byte b followed by k zero bytes.
constexpr std::array<std::array<std::uint32_t, 256>, 8> make_tables() {
    std::array<std::array<std::uint32_t, 256>, 8> t{};
    for (std::uint32_t b = 0; b < 256; ++b) {
        std::uint32_t c = b;
        for (int i = 0; i < 8; ++i) c = (c >> 1) ^ ((c & 1u) ? polynomial : 0u);
        t[0][b] = c;
    }
    for (std::size_t k = 1; k < 8; ++k)
        for (std::size_t b = 0; b < 256; ++b) t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xFF];
    return t;
}

inline constexpr auto tables = make_tables();

inline std::uint64_t load64(const std::byte* p) noexcept {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}

/// Portable: slicing-by-8 over little-endian words, byte at a time for the rest.
inline std::uint32_t update_portable(std::uint32_t crc, const std::byte* p, std::size_t n) noexcept {
    if constexpr (std::endian::native == std::endian::little) {
        for (; n >= 8; n -= 8, p += 8) {
            const std::uint64_t v = load64(p) ^ crc;
            crc = tables[7][v & 0xFF] ^ tables[6][(v >> 8) & 0xFF] ^ tables[5][(v >> 16) & 0xFF] ^
                  tables[4][(v >> 24) & 0xFF] ^ tables[3][(v >> 32) & 0xFF] ^
                  tables[2][(v >> 40) & 0xFF] ^ tables[1][(v >> 48) & 0xFF] ^ tables[0][v >> 56];
        }
    }
    for (; n > 0; --n, ++p) crc = (crc >> 8) ^ tables[0][(crc ^ std::to_integer<std::uint32_t>(*p)) & 0xFF];
    return crc;
}

inline std::uint32_t copy_portable(std::uint32_t crc, std::byte* dst, const std::byte* src,
                                   std::size_t n) noexcept {
    std::memcpy(dst, src, n);
    return update_portable(crc, src, n);
}

#if defined(CONQ_CRC32C_X86)

__attribute__((target("sse4.2"))) inline std::uint32_t update_hw(std::uint32_t crc, const std::byte* p,
                                                                 std::size_t n) noexcept {
    std::uint64_t c = crc;
    for (; n >= 8; n -= 8, p += 8) c = _mm_crc32_u64(c, load64(p));
    auto c32 = static_cast<std::uint32_t>(c);
    for (; n > 0; --n, ++p) c32 = _mm_crc32_u8(c32, std::to_integer<std::uint8_t>(*p));
    return c32;
}

__attribute__((target("sse4.2"))) inline std::uint32_t copy_hw(std::uint32_t crc, std::byte* dst,
                                                               const std::byte* src, std::size_t n) noexcept {
    std::uint64_t c = crc;
    for (; n >= 8; n -= 8, src += 8, dst += 8) {
        const std::uint64_t v = load64(src);
        std::memcpy(dst, &v, 8);
        c = _mm_crc32_u64(c, v);
    }
    auto c32 = static_cast<std::uint32_t>(c);
    for (; n > 0; --n, ++src, ++dst) {
        *dst = *src;
        c32 = _mm_crc32_u8(c32, std::to_integer<std::uint8_t>(*src));
    }
    return c32;
}

__attribute__((target("sse4.2"))) inline std::uint32_t frame_copy_hw(std::uint32_t word, std::uint64_t offset,
                                                                     std::byte* dst, const std::byte* src,
                                                                     std::size_t n) noexcept {
    const std::uint32_t c = _mm_crc32_u32(0xFFFFFFFFu, word);
    return copy_hw(static_cast<std::uint32_t>(_mm_crc32_u64(c, offset)), dst, src, n);
}

inline bool cpu_has_crc32c() noexcept {
    static const bool has = __builtin_cpu_supports("sse4.2");
    return has;
}

#elif defined(CONQ_CRC32C_ARM)

inline std::uint32_t update_hw(std::uint32_t crc, const std::byte* p, std::size_t n) noexcept {
    for (; n >= 8; n -= 8, p += 8) crc = __crc32cd(crc, load64(p));
    for (; n > 0; --n, ++p) crc = __crc32cb(crc, std::to_integer<std::uint8_t>(*p));
    return crc;
}

inline std::uint32_t copy_hw(std::uint32_t crc, std::byte* dst, const std::byte* src, std::size_t n) noexcept {
    std::memcpy(dst, src, n);
    return update_hw(crc, src, n);
}

constexpr bool cpu_has_crc32c() noexcept { return true; }

#else

inline std::uint32_t update_hw(std::uint32_t crc, const std::byte* p, std::size_t n) noexcept {
    return update_portable(crc, p, n);
}
inline std::uint32_t copy_hw(std::uint32_t crc, std::byte* dst, const std::byte* src, std::size_t n) noexcept {
    return copy_portable(crc, dst, src, n);
}
constexpr bool cpu_has_crc32c() noexcept { return false; }

#endif

}  // namespace crc32c_impl

/// True when crc32c runs on the CPU's own instruction.
inline bool crc32c_hardware() noexcept { return crc32c_impl::cpu_has_crc32c(); }

/// Continues a CRC-32C over n more bytes. Start with crc32c_init and finish
/// with crc32c_final (or use crc32c for a single buffer).
inline constexpr std::uint32_t crc32c_init = 0xFFFFFFFFu;
inline constexpr std::uint32_t crc32c_final(std::uint32_t state) noexcept { return state ^ 0xFFFFFFFFu; }

inline std::uint32_t crc32c_update(std::uint32_t state, const void* data, std::size_t n) noexcept {
    const auto* p = static_cast<const std::byte*>(data);
    return crc32c_impl::cpu_has_crc32c() ? crc32c_impl::update_hw(state, p, n)
                                         : crc32c_impl::update_portable(state, p, n);
}

/// Copies n bytes from src to dst and continues the CRC over them.
inline std::uint32_t crc32c_copy(std::uint32_t state, void* dst, const void* src, std::size_t n) noexcept {
    auto* d = static_cast<std::byte*>(dst);
    const auto* s = static_cast<const std::byte*>(src);
    return crc32c_impl::cpu_has_crc32c() ? crc32c_impl::copy_hw(state, d, s, n)
                                         : crc32c_impl::copy_portable(state, d, s, n);
}

/// The CRC-32C of a record frame: a 4-byte word, an 8-byte offset, then the
/// payload, which is copied to dst on the way (one pass over it).
inline std::uint32_t crc32c_frame_copy(std::uint32_t word, std::uint64_t offset, void* dst, const void* src,
                                       std::size_t n) noexcept {
    auto* d = static_cast<std::byte*>(dst);
    const auto* s = static_cast<const std::byte*>(src);
#if defined(CONQ_CRC32C_X86)
    if (crc32c_impl::cpu_has_crc32c()) return crc32c_final(crc32c_impl::frame_copy_hw(word, offset, d, s, n));
#elif defined(CONQ_CRC32C_ARM)
    return crc32c_final(crc32c_impl::copy_hw(__crc32cd(__crc32cw(crc32c_init, word), offset), d, s, n));
#endif
    std::uint32_t st = crc32c_impl::update_portable(crc32c_init, reinterpret_cast<const std::byte*>(&word), 4);
    st = crc32c_impl::update_portable(st, reinterpret_cast<const std::byte*>(&offset), 8);
    return crc32c_final(crc32c_impl::copy_portable(st, d, s, n));
}

/// CRC-32C of one buffer.
inline std::uint32_t crc32c(const void* data, std::size_t n) noexcept {
    return crc32c_final(crc32c_update(crc32c_init, data, n));
}

/// The portable path, always (tests compare it with the hardware path).
inline std::uint32_t crc32c_portable(const void* data, std::size_t n) noexcept {
    return crc32c_final(crc32c_impl::update_portable(crc32c_init, static_cast<const std::byte*>(data), n));
}

}  // namespace conq::detail

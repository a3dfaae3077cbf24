// Internet checksum helpers (pure, no I/O).
//
// All functions read and write 16-bit words in network byte order: a
// checksum field is stored big-endian in the packet, and the values these
// functions take and return are the host-order integers of those big-endian
// words. That keeps the arithmetic independent of the machine's byte order.
#pragma once

#include <cstddef>
#include <cstdint>

namespace flannel {

inline uint16_t load_be16(const uint8_t* p) {
  return static_cast<uint16_t>((p[0] << 8) | p[1]);
}
inline uint32_t load_be32(const uint8_t* p) {
  return (static_cast<uint32_t>(p[0]) << 24) | (static_cast<uint32_t>(p[1]) << 16) |
         (static_cast<uint32_t>(p[2]) << 8) | p[3];
}
inline void store_be16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
inline void store_be32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

// Adds `len` bytes to a running one's-complement sum (RFC 1071 §4.1). An odd
// trailing byte is padded with a zero byte on the right, as the RFC requires.
// The result is unfolded; pass it to csum_fold.
uint32_t csum_add_bytes(uint32_t sum, const uint8_t* data, size_t len);

// Folds a 32-bit running sum to 16 bits and returns its one's complement:
// the value to store in a checksum field.
uint16_t csum_fold(uint32_t sum);

// The checksum of `len` bytes, as stored in an IPv4 header or ICMP header
// (RFC 791 §3.1, RFC 792): the field must be zero in `data` when computing.
inline uint16_t internet_checksum(const uint8_t* data, size_t len) {
  return csum_fold(csum_add_bytes(0, data, len));
}

// Incremental update of a stored checksum when one 16-bit word of the
// covered data changes from `old_word` to `new_word` (RFC 1624 §3, eqn. 3:
// HC' = ~(~HC + ~m + m')). Eqn. 3 never yields the 0xFFFF/0x0000 ambiguity
// of RFC 1141's eqn. 2.
uint16_t csum_replace16(uint16_t check, uint16_t old_word, uint16_t new_word);

}  // namespace flannel

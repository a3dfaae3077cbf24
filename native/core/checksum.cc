#include "checksum.h"

#include <cstring>

namespace flannel {

namespace {

inline uint16_t bswap16(uint16_t v) { return static_cast<uint16_t>((v << 8) | (v >> 8)); }

inline bool host_is_little_endian() {
  const uint16_t probe = 1;
  uint8_t first;
  std::memcpy(&first, &probe, 1);
  return first == 1;
}

}  // namespace

uint32_t csum_add_bytes(uint32_t sum, const uint8_t* data, size_t len) {
  // RFC 1071 §2(B): the one's-complement sum is byte-order independent, so
  // sum 32-bit words in host order into a 64-bit accumulator (no carry can
  // be lost below 2^32 words), fold, and swap once if the host is
  // little-endian. This is several times faster than 16-bit big-endian
  // steps and it is what payload checksums of segmented packets cost.
  uint64_t acc = 0;
  size_t i = 0;
  for (; i + 32 <= len; i += 32) {
    uint32_t w[8];
    std::memcpy(w, data + i, 32);
    acc += static_cast<uint64_t>(w[0]) + w[1] + w[2] + w[3] + w[4] + w[5] + w[6] + w[7];
  }
  for (; i + 4 <= len; i += 4) {
    uint32_t w;
    std::memcpy(&w, data + i, 4);
    acc += w;
  }
  // The tail (0..3 bytes) in host order, as if zero-padded on the right.
  uint8_t tail[4] = {0, 0, 0, 0};
  if (i < len) {
    std::memcpy(tail, data + i, len - i);
    uint32_t w;
    std::memcpy(&w, tail, 4);
    acc += w;
  }
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  uint16_t folded = static_cast<uint16_t>(acc);
  if (host_is_little_endian()) folded = bswap16(folded);
  // Now a big-endian-word sum of `data`; add the caller's running sum.
  uint64_t total = static_cast<uint64_t>(sum) + folded;
  while (total >> 32) total = (total & 0xffffffffu) + (total >> 32);
  return static_cast<uint32_t>(total);
}

uint16_t csum_fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffffu) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

uint16_t csum_replace16(uint16_t check, uint16_t old_word, uint16_t new_word) {
  uint32_t sum = static_cast<uint16_t>(~check);
  sum += static_cast<uint16_t>(~old_word);
  sum += new_word;
  return csum_fold(sum);
}

}  // namespace flannel

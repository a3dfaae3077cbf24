#include "checksum.h"

namespace flannel {

uint32_t csum_add_bytes(uint32_t sum, const uint8_t* data, size_t len) {
  // Sum 16-bit big-endian words into a 64-bit accumulator so no carry is lost
  // for any length a packet buffer can have, then reduce to 32 bits.
  uint64_t acc = sum;
  size_t i = 0;
  for (; i + 1 < len; i += 2) acc += load_be16(data + i);
  if (i < len) acc += static_cast<uint64_t>(data[i]) << 8;
  while (acc >> 32) acc = (acc & 0xffffffffu) + (acc >> 32);
  return static_cast<uint32_t>(acc);
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

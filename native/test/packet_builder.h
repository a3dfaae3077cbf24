// Hand-built packets for the native tests, with a reference checksum that
// shares no code with core/checksum.cc (so a bug there cannot hide itself).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace testpkt {

// Straight RFC 1071 loop over big-endian words.
inline uint16_t reference_checksum(const uint8_t* p, size_t len) {
  uint32_t sum = 0;
  for (size_t i = 0; i < len; i += 2) {
    uint32_t word = static_cast<uint32_t>(p[i]) << 8;
    if (i + 1 < len) word |= p[i + 1];
    sum += word;
  }
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum & 0xffff);
}

inline uint32_t ip(int a, int b, int c, int d) {
  return (static_cast<uint32_t>(a) << 24) | (static_cast<uint32_t>(b) << 16) |
         (static_cast<uint32_t>(c) << 8) | static_cast<uint32_t>(d);
}

struct Ipv4Spec {
  uint32_t src = ip(10, 5, 1, 2);
  uint32_t dst = ip(10, 5, 2, 2);
  uint8_t protocol = 17;
  uint8_t ttl = 64;
  uint16_t id = 0x1234;
  uint16_t frag_field = 0x4000;  // DF
  size_t options_len = 0;        // multiple of 4, <= 40
  std::vector<uint8_t> payload = std::vector<uint8_t>(12, 0xab);
};

// An IPv4 packet with a valid header checksum.
inline std::vector<uint8_t> build_ipv4(const Ipv4Spec& s) {
  const size_t hlen = 20 + s.options_len;
  std::vector<uint8_t> p(hlen + s.payload.size(), 0);
  p[0] = static_cast<uint8_t>(0x40 | (hlen / 4));
  p[1] = 0;
  p[2] = static_cast<uint8_t>(p.size() >> 8);
  p[3] = static_cast<uint8_t>(p.size());
  p[4] = static_cast<uint8_t>(s.id >> 8);
  p[5] = static_cast<uint8_t>(s.id);
  p[6] = static_cast<uint8_t>(s.frag_field >> 8);
  p[7] = static_cast<uint8_t>(s.frag_field);
  p[8] = s.ttl;
  p[9] = s.protocol;
  for (int i = 0; i < 4; ++i) {
    p[12 + i] = static_cast<uint8_t>(s.src >> (24 - 8 * i));
    p[16 + i] = static_cast<uint8_t>(s.dst >> (24 - 8 * i));
  }
  for (size_t i = 0; i < s.options_len; ++i) p[20 + i] = 1;  // NOP options
  for (size_t i = 0; i < s.payload.size(); ++i) p[hlen + i] = s.payload[i];
  const uint16_t c = reference_checksum(p.data(), hlen);
  p[10] = static_cast<uint8_t>(c >> 8);
  p[11] = static_cast<uint8_t>(c);
  return p;
}

inline bool header_checksum_ok(const uint8_t* p) {
  const size_t hlen = static_cast<size_t>(p[0] & 0x0f) * 4;
  return reference_checksum(p, hlen) == 0;
}

}  // namespace testpkt

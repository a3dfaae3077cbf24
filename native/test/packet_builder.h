// Hand-built packets for the native tests, with a reference checksum that
// shares no code with core/checksum.cc (so a bug there cannot hide itself).
#pragma once

#include <cstddef>
#include <cstdint>
#include <array>
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

struct TcpSpec {
  uint32_t src = ip(10, 5, 1, 2);
  uint32_t dst = ip(10, 5, 2, 2);
  uint16_t sport = 40000;
  uint16_t dport = 5201;
  uint32_t seq = 1000;
  uint32_t ack = 777;
  uint8_t flags = 0x10;  // ACK
  uint16_t window = 512;
  uint16_t id = 0x100;
  uint16_t frag_field = 0x4000;  // DF
  uint8_t ttl = 64;
  uint8_t tos = 0;
  size_t ip_options_len = 0;
  std::vector<uint8_t> tcp_options;  // multiple of 4
  std::vector<uint8_t> payload;
};

inline void put16(std::vector<uint8_t>& p, size_t off, uint16_t v) {
  p[off] = static_cast<uint8_t>(v >> 8);
  p[off + 1] = static_cast<uint8_t>(v);
}
inline void put32(std::vector<uint8_t>& p, size_t off, uint32_t v) {
  put16(p, off, static_cast<uint16_t>(v >> 16));
  put16(p, off + 2, static_cast<uint16_t>(v));
}

// The TCP (or UDP) checksum of an IPv4 packet recomputed from scratch: 0 when valid.
inline uint16_t l4_check_reference(const uint8_t* p, size_t total_len) {
  const size_t hl = static_cast<size_t>(p[0] & 0x0f) * 4;
  std::vector<uint8_t> buf(12 + total_len - hl);
  for (int i = 0; i < 8; ++i) buf[i] = p[12 + i];
  buf[8] = 0;
  buf[9] = p[9];
  buf[10] = static_cast<uint8_t>((total_len - hl) >> 8);
  buf[11] = static_cast<uint8_t>(total_len - hl);
  for (size_t i = hl; i < total_len; ++i) buf[12 + i - hl] = p[i];
  return reference_checksum(buf.data(), buf.size());
}

// An IPv4/TCP packet with valid IP and TCP checksums.
inline std::vector<uint8_t> build_tcp4(const TcpSpec& s) {
  const size_t iphl = 20 + s.ip_options_len;
  const size_t thl = 20 + s.tcp_options.size();
  std::vector<uint8_t> p(iphl + thl + s.payload.size(), 0);
  p[0] = static_cast<uint8_t>(0x40 | (iphl / 4));
  p[1] = s.tos;
  put16(p, 2, static_cast<uint16_t>(p.size()));
  put16(p, 4, s.id);
  put16(p, 6, s.frag_field);
  p[8] = s.ttl;
  p[9] = 6;
  put32(p, 12, s.src);
  put32(p, 16, s.dst);
  for (size_t i = 0; i < s.ip_options_len; ++i) p[20 + i] = 1;
  put16(p, 10, reference_checksum(p.data(), iphl));
  put16(p, iphl, s.sport);
  put16(p, iphl + 2, s.dport);
  put32(p, iphl + 4, s.seq);
  put32(p, iphl + 8, s.ack);
  p[iphl + 12] = static_cast<uint8_t>((thl / 4) << 4);
  p[iphl + 13] = s.flags;
  put16(p, iphl + 14, s.window);
  for (size_t i = 0; i < s.tcp_options.size(); ++i) p[iphl + 20 + i] = s.tcp_options[i];
  for (size_t i = 0; i < s.payload.size(); ++i) p[iphl + thl + i] = s.payload[i];
  put16(p, iphl + 16, l4_check_reference(p.data(), p.size()));
  return p;
}

// An IPv4/UDP datagram with valid IP and UDP checksums, from a TcpSpec's IP
// fields, ports and payload (the TCP fields are ignored).
inline std::vector<uint8_t> build_udp4(const TcpSpec& s) {
  std::vector<uint8_t> p = build_tcp4(s);
  const size_t iphl = 20 + s.ip_options_len;
  const size_t thl = 20 + s.tcp_options.size();
  p.erase(p.begin() + static_cast<std::ptrdiff_t>(iphl + 8), p.begin() + static_cast<std::ptrdiff_t>(iphl + thl));
  p[9] = 17;
  put16(p, 2, static_cast<uint16_t>(p.size()));
  put16(p, 10, 0);
  put16(p, 10, reference_checksum(p.data(), iphl));
  put16(p, iphl + 4, static_cast<uint16_t>(p.size() - iphl));
  put16(p, iphl + 6, 0);
  for (size_t i = 0; i < s.payload.size(); ++i) p[iphl + 8 + i] = s.payload[i];
  const uint16_t c = l4_check_reference(p.data(), p.size());
  put16(p, iphl + 6, c == 0 ? 0xffff : c);
  return p;
}

inline std::vector<uint8_t> pattern(size_t n, uint8_t seed = 1) {
  std::vector<uint8_t> v(n);
  uint32_t x = seed * 2654435761u + 1;
  for (auto& b : v) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b = static_cast<uint8_t>(x);
  }
  return v;
}

inline bool header_checksum_ok(const uint8_t* p) {
  const size_t hlen = static_cast<size_t>(p[0] & 0x0f) * 4;
  return reference_checksum(p, hlen) == 0;
}

// ---------------------------------------------------------------- IPv6

// An IPv6 address from eight 16-bit groups, as written ("fd00:5:1::2" is
// ip6(0xfd00, 5, 1, 0, 0, 0, 0, 2)).
inline std::array<uint8_t, 16> ip6(uint16_t a, uint16_t b, uint16_t c, uint16_t d, uint16_t e, uint16_t f,
                                   uint16_t g, uint16_t h) {
  const uint16_t w[8] = {a, b, c, d, e, f, g, h};
  std::array<uint8_t, 16> out{};
  for (int i = 0; i < 8; ++i) {
    out[2 * i] = static_cast<uint8_t>(w[i] >> 8);
    out[2 * i + 1] = static_cast<uint8_t>(w[i]);
  }
  return out;
}

struct Ipv6Spec {
  std::array<uint8_t, 16> src = ip6(0xfd00, 5, 2, 0, 0, 0, 0, 2);
  std::array<uint8_t, 16> dst = ip6(0xfd00, 5, 1, 0, 0, 0, 0, 2);
  uint8_t hop_limit = 64;
  uint8_t next_header = 17;
  std::vector<uint8_t> payload = std::vector<uint8_t>(16, 0xab);
};

inline std::vector<uint8_t> build_ipv6(const Ipv6Spec& s) {
  std::vector<uint8_t> p(40 + s.payload.size(), 0);
  p[0] = 0x60;
  put16(p, 4, static_cast<uint16_t>(s.payload.size()));
  p[6] = s.next_header;
  p[7] = s.hop_limit;
  for (int i = 0; i < 16; ++i) {
    p[8 + i] = s.src[i];
    p[24 + i] = s.dst[i];
  }
  for (size_t i = 0; i < s.payload.size(); ++i) p[40 + i] = s.payload[i];
  return p;
}

// The upper-layer checksum of an IPv6 packet whose L4 part starts at 40,
// recomputed from scratch: 0 when valid.
inline uint16_t l4_check_reference6(const uint8_t* p, size_t total_len) {
  if (total_len < 40) return 1;  // no IPv6 packet: never valid
  const size_t l4 = total_len - 40;
  std::vector<uint8_t> buf(40 + l4, 0);
  for (int i = 0; i < 32; ++i) buf[i] = p[8 + i];
  buf[32] = static_cast<uint8_t>(l4 >> 24);
  buf[33] = static_cast<uint8_t>(l4 >> 16);
  buf[34] = static_cast<uint8_t>(l4 >> 8);
  buf[35] = static_cast<uint8_t>(l4);
  buf[39] = p[6];
  for (size_t i = 0; i < l4; ++i) buf[40 + i] = p[40 + i];
  return reference_checksum(buf.data(), buf.size());
}

// An IPv6/TCP packet with a valid TCP checksum.
inline std::vector<uint8_t> build_tcp6(const Ipv6Spec& ip, uint32_t seq, uint8_t flags, const std::vector<uint8_t>& payload) {
  Ipv6Spec s = ip;
  s.next_header = 6;
  s.payload.assign(20 + payload.size(), 0);
  std::vector<uint8_t> p = build_ipv6(s);
  put16(p, 40, 40000);
  put16(p, 42, 5201);
  put32(p, 44, seq);
  put32(p, 48, 777);
  p[52] = 0x50;
  p[53] = flags;
  put16(p, 54, 512);
  for (size_t i = 0; i < payload.size(); ++i) p[60 + i] = payload[i];
  put16(p, 56, l4_check_reference6(p.data(), p.size()));
  return p;
}

// An IPv6/UDP datagram with a valid checksum.
inline std::vector<uint8_t> build_udp6(const Ipv6Spec& ip, uint16_t sport, uint16_t dport, const std::vector<uint8_t>& payload) {
  Ipv6Spec s = ip;
  s.next_header = 17;
  s.payload.assign(8 + payload.size(), 0);
  std::vector<uint8_t> p = build_ipv6(s);
  put16(p, 40, sport);
  put16(p, 42, dport);
  put16(p, 44, static_cast<uint16_t>(8 + payload.size()));
  for (size_t i = 0; i < payload.size(); ++i) p[48 + i] = payload[i];
  const uint16_t c = l4_check_reference6(p.data(), p.size());
  put16(p, 46, c == 0 ? 0xffff : c);
  return p;
}

}  // namespace testpkt

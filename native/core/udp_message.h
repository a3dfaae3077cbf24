// One message received from the UDP socket, cut into its datagrams (pure).
//
// With UDP_GRO the kernel may hand several datagrams of one sender as one
// message: every datagram is `segment_size` bytes but the last, which may be
// shorter (udp_gro_receive; the size comes in the UDP_GRO cmsg). Each
// datagram is one inner IPv4 packet (docs/compatibility.md §5.3) and gets its
// own forwarding decision: the source check holds for every one of them.
#pragma once

#include <cstddef>
#include <cstdint>

namespace flannel {

// Calls `fn(uint8_t* datagram, size_t len)` for each datagram of the message
// `data[0, len)`, in order. `segment_size` 0 (no GRO cmsg) or >= len: one
// datagram. The datagrams tile the message exactly.
template <typename Fn>
void for_each_datagram(uint8_t* data, size_t len, size_t segment_size, Fn&& fn) {
  size_t off = 0;
  do {
    const size_t dlen = segment_size > 0 && len - off > segment_size ? segment_size : len - off;
    fn(data + off, dlen);
    off += dlen;
  } while (off < len);
}

}  // namespace flannel

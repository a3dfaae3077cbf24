// The virtio-net header a TUN device with IFF_VNET_HDR puts before every
// packet (struct virtio_net_hdr, linux/virtio_net.h; 10 bytes, set with
// TUNSETVNETHDRSZ). Pure: decode and encode.
//
// Fields are in the device's byte order, which for TUN is the host's unless
// TUNSETVNETBE/LE says otherwise; flannel-ts runs on little-endian hosts
// (x86-64, arm64) and never changes it, so they are little-endian here.
#pragma once

#include <cstddef>
#include <cstdint>

namespace flannel {

constexpr size_t kVirtioNetHdrLen = 10;

// linux/virtio_net.h. Debian bookworm's headers (6.1) lack
// VIRTIO_NET_HDR_GSO_UDP_L4 (Linux 6.2's include/uapi/linux/virtio_net.h), so all are defined here.
constexpr uint8_t kVirtioFlagNeedsCsum = 1;  // VIRTIO_NET_HDR_F_NEEDS_CSUM
constexpr uint8_t kVirtioFlagDataValid = 2;  // VIRTIO_NET_HDR_F_DATA_VALID
constexpr uint8_t kVirtioGsoNone = 0;        // VIRTIO_NET_HDR_GSO_NONE
constexpr uint8_t kVirtioGsoTcpv4 = 1;       // VIRTIO_NET_HDR_GSO_TCPV4
constexpr uint8_t kVirtioGsoUdp = 3;         // VIRTIO_NET_HDR_GSO_UDP (UFO, obsolete)
constexpr uint8_t kVirtioGsoTcpv6 = 4;       // VIRTIO_NET_HDR_GSO_TCPV6
constexpr uint8_t kVirtioGsoUdpL4 = 5;       // VIRTIO_NET_HDR_GSO_UDP_L4 (USO)
constexpr uint8_t kVirtioGsoEcn = 0x80;      // VIRTIO_NET_HDR_GSO_ECN

struct VirtioNetHdr {
  uint8_t flags = 0;
  uint8_t gso_type = kVirtioGsoNone;
  uint16_t hdr_len = 0;
  uint16_t gso_size = 0;
  uint16_t csum_start = 0;
  uint16_t csum_offset = 0;
};

inline VirtioNetHdr decode_virtio_hdr(const uint8_t* p) {
  VirtioNetHdr h;
  h.flags = p[0];
  h.gso_type = p[1];
  h.hdr_len = static_cast<uint16_t>(p[2] | (p[3] << 8));
  h.gso_size = static_cast<uint16_t>(p[4] | (p[5] << 8));
  h.csum_start = static_cast<uint16_t>(p[6] | (p[7] << 8));
  h.csum_offset = static_cast<uint16_t>(p[8] | (p[9] << 8));
  return h;
}

inline void encode_virtio_hdr(const VirtioNetHdr& h, uint8_t* p) {
  p[0] = h.flags;
  p[1] = h.gso_type;
  p[2] = static_cast<uint8_t>(h.hdr_len);
  p[3] = static_cast<uint8_t>(h.hdr_len >> 8);
  p[4] = static_cast<uint8_t>(h.gso_size);
  p[5] = static_cast<uint8_t>(h.gso_size >> 8);
  p[6] = static_cast<uint8_t>(h.csum_start);
  p[7] = static_cast<uint8_t>(h.csum_start >> 8);
  p[8] = static_cast<uint8_t>(h.csum_offset);
  p[9] = static_cast<uint8_t>(h.csum_offset >> 8);
}

}  // namespace flannel

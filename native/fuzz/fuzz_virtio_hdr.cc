// libFuzzer target: the virtio-net header the TUN puts before each packet
// and the partial checksum completion it asks for (core/virtio_net.h,
// core/gso.h complete_partial_checksum). Invariants: decode/encode round
// trip; completion never touches bytes outside the packet and, when it
// succeeds on a TCP/UDP packet whose checksum field held the pseudo-header
// sum, yields a checksum that verifies.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../core/checksum.h"
#include "../core/gso.h"
#include "../core/virtio_net.h"
#include "../test/packet_builder.h"
#include "fuzz_check.h"

using namespace flannel;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < kVirtioNetHdrLen) return 0;
  const VirtioNetHdr vh = decode_virtio_hdr(data);
  uint8_t again[kVirtioNetHdrLen];
  encode_virtio_hdr(vh, again);
  FUZZ_CHECK(std::memcmp(again, data, kVirtioNetHdrLen) == 0);

  std::vector<uint8_t> pkt(data + kVirtioNetHdrLen, data + size);
  const std::vector<uint8_t> before(pkt);
  const bool ok = complete_partial_checksum(pkt.data(), pkt.size(), vh.csum_start, vh.csum_offset);
  const size_t field = static_cast<size_t>(vh.csum_start) + vh.csum_offset;
  FUZZ_CHECK(ok == (vh.csum_start < pkt.size() && field + 2 <= pkt.size()));
  for (size_t i = 0; i < pkt.size(); ++i) {
    if (!ok || i < field || i >= field + 2) FUZZ_CHECK(pkt[i] == before[i]);
  }
  // A well-formed CHECKSUM_PARTIAL IPv4 TCP/UDP packet: seed the field with
  // the pseudo-header sum as the kernel does, then completion must verify.
  if (pkt.size() >= 28 && (pkt[0] >> 4) == 4 && (pkt[9] == 6 || pkt[9] == 17)) {
    const size_t hl = static_cast<size_t>(pkt[0] & 0x0f) * 4;
    const size_t off = pkt[9] == 6 ? 16 : 6;
    if (hl >= 20 && hl + off + 2 <= pkt.size() && pkt.size() - hl <= 0xffff) {
      std::vector<uint8_t> p(pkt);
      uint8_t pseudo[12];
      std::memcpy(pseudo, p.data() + 12, 8);
      pseudo[8] = 0;
      pseudo[9] = p[9];
      store_be16(pseudo + 10, static_cast<uint16_t>(p.size() - hl));
      store_be16(p.data() + hl + off, static_cast<uint16_t>(~csum_fold(csum_add_bytes(0, pseudo, 12))));
      FUZZ_CHECK(complete_partial_checksum(p.data(), p.size(), static_cast<uint16_t>(hl), static_cast<uint16_t>(off)));
      std::vector<uint8_t> check(12 + p.size() - hl);
      std::memcpy(check.data(), pseudo, 12);
      std::memcpy(check.data() + 12, p.data() + hl, p.size() - hl);
      FUZZ_CHECK(testpkt::reference_checksum(check.data(), check.size()) == 0);
    }
  }
  return 0;
}

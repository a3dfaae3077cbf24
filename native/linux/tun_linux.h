// TUN device creation and offload setup (Linux).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sys_result.h"

namespace flannel {

struct TunOptions {
  // Queues to open. 1 opens an ordinary single-queue device, as upstream's
  // pkg/ip/tun.go does (docs/compatibility.md §5.2); more sets IFF_MULTI_QUEUE and attaches
  // one fd per queue, so each worker thread reads and writes its own queue.
  int queues = 1;
  // IFF_VNET_HDR: every read and write starts with a 10-byte virtio-net
  // header (core/virtio_net.h); needed for any TUN offload.
  bool vnet_hdr = false;
};

struct TunDevice {
  std::vector<int> fds;  // one per queue; fds[0] created the device
  std::string name;      // the name the kernel chose
};

// Opens /dev/net/tun and creates a TUN device with IFF_TUN | IFF_NO_PI (no
// packet-info header: every read and write is one IP packet, after the vnet
// header when there is one), not persistent (it disappears when the last fd
// is closed). `name_template` may contain "%d" for the kernel to fill in with
// the first free index ("flannel%d" gives flannel0); extra queues attach by
// the chosen name. Every fd is non-blocking and close-on-exec.
//
// Failing operations: "open /dev/net/tun" (ENOENT: no device node; ENODEV /
// ENXIO: no tun driver), "ioctl TUNSETIFF" (EPERM: no CAP_NET_ADMIN; EBUSY:
// the name is taken by a non-TUN device), "ioctl TUNGETIFF", "ioctl
// TUNSETVNETHDRSZ", "ioctl TUNSETIFF (attach queue)". On failure nothing
// stays open.
SysResult open_tun(const std::string& name_template, const TunOptions& options, TunDevice* out);

// TUNSETOFFLOAD flags (linux/if_tun.h). Debian bookworm's headers (6.1) lack
// the USO pair (added in Linux 6.2), so all are spelled out here.
constexpr unsigned kTunOffloadCsum = 0x01;    // TUN_F_CSUM: may hand us CHECKSUM_PARTIAL packets
constexpr unsigned kTunOffloadTso4 = 0x02;    // TUN_F_TSO4
constexpr unsigned kTunOffloadTso6 = 0x04;    // TUN_F_TSO6
constexpr unsigned kTunOffloadTsoEcn = 0x08;  // TUN_F_TSO_ECN
constexpr unsigned kTunOffloadUso4 = 0x20;    // TUN_F_USO4 (Linux 6.2; only accepted with USO6)
constexpr unsigned kTunOffloadUso6 = 0x40;    // TUN_F_USO6

// Sets the device's offloads with TUNSETOFFLOAD (for every queue: the flags
// belong to the device). Returns the errno (0 on success).
int set_tun_offload(int fd, unsigned flags);

}  // namespace flannel

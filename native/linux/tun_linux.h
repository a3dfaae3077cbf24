// TUN device creation (Linux).
#pragma once

#include <string>

#include "sys_result.h"

namespace flannel {

struct TunDevice {
  int fd = -1;
  std::string name;  // the name the kernel chose
};

// Opens /dev/net/tun and creates a TUN device with IFF_TUN | IFF_NO_PI (no
// packet-info header: every read and write is one bare IP packet), no vnet
// header, one queue, not persistent (it disappears when the fd is closed), as
// upstream's pkg/ip/tun.go does (compat §5.2). `name_template` may contain
// "%d" for the kernel to fill in with the first free index ("flannel%d" gives
// flannel0). The fd is non-blocking and close-on-exec.
//
// Failing operations: "open /dev/net/tun" (ENOENT: no device node; ENODEV /
// ENXIO: no tun driver), "ioctl TUNSETIFF" (EPERM: no CAP_NET_ADMIN; EBUSY:
// the name is taken by a non-TUN device), "ioctl TUNGETIFF".
SysResult open_tun(const std::string& name_template, TunDevice* out);

}  // namespace flannel

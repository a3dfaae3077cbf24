#include "tun_linux.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "../core/virtio_net.h"

namespace flannel {

namespace {

// Opens one fd and attaches it to `name` (a template for the first queue).
SysResult attach_queue(const char* name, short flags, bool vnet_hdr, const char* op, int* fd_out,
                       std::string* chosen) {
  const int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return SysResult::failure(errno, "open /dev/net/tun");
  auto fail = [fd](const char* failed_op) {
    const int err = errno;
    close(fd);
    return SysResult::failure(err, failed_op);
  };
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  ifr.ifr_flags = flags;
  strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) return fail(op);
  if (vnet_hdr) {
    int size = static_cast<int>(kVirtioNetHdrLen);
    if (ioctl(fd, TUNSETVNETHDRSZ, &size) < 0) return fail("ioctl TUNSETVNETHDRSZ");
  }
  if (chosen != nullptr) {
    // TUNSETIFF writes the chosen name back into ifr; ask again to be sure the
    // reported name is the kernel's view of this fd's device.
    struct ifreq got;
    memset(&got, 0, sizeof(got));
    if (ioctl(fd, TUNGETIFF, &got) < 0) return fail("ioctl TUNGETIFF");
    chosen->assign(got.ifr_name, strnlen(got.ifr_name, IFNAMSIZ));
  }
  *fd_out = fd;
  return SysResult::success();
}

}  // namespace

SysResult open_tun(const std::string& name_template, const TunOptions& options, TunDevice* out) {
  if (name_template.empty() || name_template.size() >= IFNAMSIZ) {
    return SysResult::failure(EINVAL, "check TUN name template");
  }
  if (options.queues < 1) return SysResult::failure(EINVAL, "check TUN queue count");
  short flags = IFF_TUN | IFF_NO_PI;
  if (options.vnet_hdr) flags |= IFF_VNET_HDR;
  if (options.queues > 1) flags |= IFF_MULTI_QUEUE;

  TunDevice dev;
  int fd = -1;
  SysResult r = attach_queue(name_template.c_str(), flags, options.vnet_hdr, "ioctl TUNSETIFF", &fd, &dev.name);
  if (!r.ok()) return r;
  dev.fds.push_back(fd);
  for (int q = 1; q < options.queues; ++q) {
    r = attach_queue(dev.name.c_str(), flags, options.vnet_hdr, "ioctl TUNSETIFF (attach queue)", &fd, nullptr);
    if (!r.ok()) {
      for (int open_fd : dev.fds) close(open_fd);
      return r;
    }
    dev.fds.push_back(fd);
  }
  *out = std::move(dev);
  return SysResult::success();
}

int set_tun_offload(int fd, unsigned flags) {
  return ioctl(fd, TUNSETOFFLOAD, static_cast<unsigned long>(flags)) < 0 ? errno : 0;
}

}  // namespace flannel

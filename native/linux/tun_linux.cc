#include "tun_linux.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

namespace flannel {

SysResult open_tun(const std::string& name_template, TunDevice* out) {
  if (name_template.empty() || name_template.size() >= IFNAMSIZ) {
    return SysResult::failure(EINVAL, "check TUN name template");
  }
  const int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return SysResult::failure(errno, "open /dev/net/tun");

  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  memcpy(ifr.ifr_name, name_template.data(), name_template.size());
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    const int err = errno;
    close(fd);
    return SysResult::failure(err, "ioctl TUNSETIFF");
  }
  // TUNSETIFF writes the chosen name back into ifr; ask again to be sure the
  // reported name is the kernel's view of this fd's device.
  struct ifreq got;
  memset(&got, 0, sizeof(got));
  if (ioctl(fd, TUNGETIFF, &got) < 0) {
    const int err = errno;
    close(fd);
    return SysResult::failure(err, "ioctl TUNGETIFF");
  }
  out->fd = fd;
  out->name.assign(got.ifr_name, strnlen(got.ifr_name, IFNAMSIZ));
  return SysResult::success();
}

}  // namespace flannel

// The result of a setup system call: which operation failed and its errno.
// TypeScript maps these to typed errors with advice (src/forwarder/errors.ts);
// native code never words policy or advice itself.
#pragma once

namespace flannel {

struct SysResult {
  int err = 0;              // errno, 0 on success
  const char* op = nullptr;  // e.g. "open /dev/net/tun", "ioctl TUNSETIFF"

  bool ok() const { return err == 0; }
  static SysResult success() { return SysResult{}; }
  static SysResult failure(int err, const char* op) { return SysResult{err, op}; }
};

}  // namespace flannel

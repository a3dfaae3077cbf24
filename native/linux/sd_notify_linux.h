// systemd's readiness protocol without libsystemd (sd_notify(3)): one
// datagram with "READY=1" (or STOPPING=1, WATCHDOG=1, STATUS=...) sent to
// the AF_UNIX datagram socket named by $NOTIFY_SOCKET. A name starting with
// '@' is in the abstract namespace (the '@' becomes a NUL byte).
#pragma once

#include <string>

#include "sys_result.h"

namespace flannel {

// Failing operations: "check NOTIFY_SOCKET" (EINVAL: empty, too long, not
// absolute or abstract), "socket", "sendto".
SysResult sd_notify_send(const std::string& socket_path, const std::string& message);

}  // namespace flannel

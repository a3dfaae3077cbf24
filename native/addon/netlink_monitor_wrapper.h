// The NetlinkMonitor class of the addon (see netlink_monitor_wrapper.cc).
#pragma once

#include <napi.h>

namespace flannel {

void InitNetlinkMonitor(Napi::Env env, Napi::Object exports);

}  // namespace flannel

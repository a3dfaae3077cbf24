// The flannel-ts native addon: the udp backend's datapath and the few system
// calls Node.js cannot make itself. Policy lives in TypeScript.
#include <napi.h>

#include "../linux/sd_notify_linux.h"
#include "datapath_wrapper.h"
#include "fastpath_wrapper.h"
#include "napi_util.h"
#include "netlink_monitor_wrapper.h"

namespace {

// sdNotify(socketPath, message): one datagram to $NOTIFY_SOCKET. Throws the
// usual {syscall, errno, code} error on failure.
Napi::Value SdNotify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString()) {
    throw Napi::TypeError::New(env, "sdNotify(socketPath, message) needs two strings");
  }
  const flannel::SysResult r =
      flannel::sd_notify_send(info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::String>().Utf8Value());
  if (!r.ok()) throw flannel::ErrnoError(env, r.err, r.op);
  return env.Undefined();
}

Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  flannel::DatapathWrapper::Init(env, exports);
  flannel::InitNetlinkMonitor(env, exports);
  flannel::InitFastPath(env, exports);
  exports.Set("sdNotify", Napi::Function::New(env, SdNotify, "sdNotify"));
  return exports;
}

}  // namespace

NODE_API_MODULE(flannel_native, InitAddon)

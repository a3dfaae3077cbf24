// FastPath: the kernel fast path's loader (native/linux/bpf_fastpath_linux.h) for TypeScript.
#pragma once

#include <napi.h>

namespace flannel {

void InitFastPath(Napi::Env env, Napi::Object exports);

}  // namespace flannel

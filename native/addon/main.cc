// The flannel-ts native addon: the udp backend's datapath and the few system
// calls Node.js cannot make itself. Policy lives in TypeScript.
#include <napi.h>

#include "datapath_wrapper.h"

namespace {

Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  flannel::DatapathWrapper::Init(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(flannel_native, InitAddon)

// NetlinkMonitor(recvBufferBytes, onBatch): rtnetlink notifications read on
// the JS thread's event loop (uv_poll; control plane, no thread needed).
// onBatch(events, overflows) is called once per wakeup with
// [{kind, deleted, ifindex}] and the number of ENOBUFS reports (lost
// notifications) since the last call. The poll handle does not keep the
// process alive. close() stops it; idempotent.
#include <napi.h>
#include <unistd.h>
#include <uv.h>

#include <vector>

#include "../linux/netlink_monitor_linux.h"
#include "napi_util.h"
#include "netlink_monitor_wrapper.h"

namespace flannel {

namespace {

const char* const kKindNames[] = {"link", "address", "route", "neighbor"};

class NetlinkMonitorWrapper : public Napi::ObjectWrap<NetlinkMonitorWrapper> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(env, "NetlinkMonitor", {InstanceMethod<&NetlinkMonitorWrapper::Close>("close")});
    exports.Set("NetlinkMonitor", ctor);
  }

  explicit NetlinkMonitorWrapper(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NetlinkMonitorWrapper>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsFunction()) {
      throw Napi::TypeError::New(env, "new NetlinkMonitor(recvBufferBytes, onBatch) needs a number and a function");
    }
    const SysResult r = open_rtnetlink_monitor(info[0].As<Napi::Number>().Int32Value(), &fd_);
    if (!r.ok()) throw ErrnoError(env, r.err, r.op);
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
      ::close(fd_);
      throw Napi::Error::New(env, "NetlinkMonitor: no event loop");
    }
    poll_ = new uv_poll_t;
    uv_poll_init(loop, poll_, fd_);
    poll_->data = this;
    uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
    uv_poll_start(poll_, UV_READABLE, &NetlinkMonitorWrapper::OnReadable);
    Ref();  // alive while polling, whatever JS holds
  }

  ~NetlinkMonitorWrapper() override { Stop(); }

 private:
  static void OnReadable(uv_poll_t* handle, int status, int events) {
    static_cast<NetlinkMonitorWrapper*>(handle->data)->Drain();
  }

  void Drain() {
    if (fd_ < 0) return;
    batch_.clear();
    uint32_t overflows = 0;
    const int err = drain_rtnetlink_monitor(fd_, &batch_, &overflows);
    if (batch_.empty() && overflows == 0 && err == 0) return;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    Napi::Array list = Napi::Array::New(env, batch_.size());
    for (size_t i = 0; i < batch_.size(); ++i) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("kind", kKindNames[batch_[i].kind]);
      o.Set("deleted", batch_[i].deleted);
      if (batch_[i].ifindex >= 0) o.Set("ifindex", batch_[i].ifindex);
      list.Set(static_cast<uint32_t>(i), o);
    }
    std::vector<napi_value> args = {list, Napi::Number::New(env, overflows)};
    if (err != 0) args.push_back(ErrnoError(env, err, "recv(rtnetlink)").Value());
    try {
      callback_.MakeCallback(Value(), args);
    } catch (const Napi::Error& e) {
      // A throwing listener is an uncaught exception of the process, not a C++ one.
      napi_fatal_exception(env, e.Value());
    }
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Stop();
    return info.Env().Undefined();
  }

  void Stop() {
    if (fd_ < 0) return;
    uv_poll_stop(poll_);
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    poll_ = nullptr;
    ::close(fd_);
    fd_ = -1;
    callback_.Reset();
    Unref();
  }

  int fd_ = -1;
  uv_poll_t* poll_ = nullptr;
  Napi::FunctionReference callback_;
  std::vector<NetlinkNotification> batch_;
};

}  // namespace

void InitNetlinkMonitor(Napi::Env env, Napi::Object exports) { NetlinkMonitorWrapper::Init(env, exports); }

}  // namespace flannel

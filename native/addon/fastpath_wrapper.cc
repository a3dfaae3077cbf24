// new FastPath(objectPath): loads native/bpf/udp_fastpath.bpf.c's object.
//   attach(tunIfindex, extIfindex); close() (detaches, then releases)
//   update({config?, setRoutes?, removeRoutes?, localAddresses?}): one
//     publication, applied in that order (a replaced route is overwritten,
//     never removed first);
//   counters() -> {name: total}
//   testRun("egress" | "ingress", frame, ifindex) -> {retval, data}
// FastPath.removeFilter(ifindex, "egress" | "ingress") -> whether one of ours was there.
// Addresses are dotted quads; ports numbers. Errors are {syscall, errno, code}
// (load failures also carry `log`, libbpf's and the verifier's words).
#include "fastpath_wrapper.h"

#include <arpa/inet.h>

#include <memory>
#include <vector>

#include "../linux/bpf_fastpath_linux.h"
#include "napi_util.h"

namespace flannel {

namespace {

uint32_t NetworkOrder(Napi::Env env, const std::string& text, const char* what) { return htonl(ParseIpv4(env, text, what)); }

uint32_t MaskOf(int64_t len) { return len == 0 ? 0 : htonl(~0u << (32 - len)); }

fp_route_key RouteKey(Napi::Env env, const Napi::Object& o) {
  const int64_t len = IntegerProperty(o, "prefixLen", 0, 32);
  const uint32_t net = NetworkOrder(env, StringProperty(o, "network"), "route network");
  return fp_route_key{static_cast<uint32_t>(len), net & MaskOf(len)};
}

class FastPathWrapper : public Napi::ObjectWrap<FastPathWrapper> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(env, "FastPath",
                                      {
                                          InstanceMethod<&FastPathWrapper::Attach>("attach"),
                                          InstanceMethod<&FastPathWrapper::Update>("update"),
                                          InstanceMethod<&FastPathWrapper::Counters>("counters"),
                                          InstanceMethod<&FastPathWrapper::TestRun>("testRun"),
                                          InstanceMethod<&FastPathWrapper::Close>("close"),
                                          StaticMethod<&FastPathWrapper::RemoveFilter>("removeFilter"),
                                      });
    exports.Set("FastPath", ctor);
  }

  explicit FastPathWrapper(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FastPathWrapper>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "new FastPath(objectPath) needs a string");
    fp_ = std::make_unique<BpfFastPath>();
    std::string log;
    const SysResult r = fp_->load(info[0].As<Napi::String>().Utf8Value(), &log);
    if (!r.ok()) {
      Napi::Error e = ErrnoError(env, r.err, r.op);
      e.Value().Set("log", Napi::String::New(env, log));
      fp_.reset();
      throw e;
    }
  }

 private:
  BpfFastPath& Get(Napi::Env env) {
    if (!fp_) throw Napi::Error::New(env, "FastPath: closed");
    return *fp_;
  }

  Napi::Value Attach(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber()) throw Napi::TypeError::New(env, "attach(tunIfindex, extIfindex) needs two numbers");
    const SysResult r = Get(env).attach(info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Int32Value());
    if (!r.ok()) throw ErrnoError(env, r.err, r.op);
    return env.Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    fp_.reset();  // detaches, then releases the programs and maps
    return info.Env().Undefined();
  }

  Napi::Value Update(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "update(state) needs an object");
    BpfFastPath& fp = Get(env);
    const Napi::Object u = info[0].As<Napi::Object>();
    auto check = [&](const SysResult& r) {
      if (!r.ok()) throw ErrnoError(env, r.err, r.op);
    };
    if (u.Has("config") && u.Get("config").IsObject()) {
      const Napi::Object c = u.Get("config").As<Napi::Object>();
      fp_config cfg{};
      cfg.enabled = c.Get("enabled").ToBoolean() ? 1 : 0;
      cfg.local_addr = NetworkOrder(env, StringProperty(c, "localAddress"), "config.localAddress");
      const Napi::Object own = c.Get("ownSubnet").As<Napi::Object>();
      const int64_t len = IntegerProperty(own, "prefixLen", 0, 32);
      cfg.own_mask = MaskOf(len);
      cfg.own_net = NetworkOrder(env, StringProperty(own, "network"), "config.ownSubnet") & cfg.own_mask;
      cfg.tun_ifindex = static_cast<uint32_t>(IntegerProperty(c, "tunIfindex", 1, INT32_MAX));
      cfg.ext_ifindex = static_cast<uint32_t>(IntegerProperty(c, "extIfindex", 1, INT32_MAX));
      cfg.port = htons(static_cast<uint16_t>(IntegerProperty(c, "port", 1, 65535)));
      const Napi::Value sp = c.Get("sourcePorts");
      if (sp.IsArray()) {
        const Napi::Array ports = sp.As<Napi::Array>();
        if (ports.Length() > FP_MAX_SOURCE_PORTS) throw Napi::RangeError::New(env, "config.sourcePorts: at most 64");
        for (uint32_t i = 0; i < ports.Length(); ++i) cfg.source_port[i] = htons(static_cast<uint16_t>(ports.Get(i).As<Napi::Number>().Uint32Value()));
        cfg.source_ports = static_cast<uint16_t>(ports.Length());
      }
      check(fp.set_config(cfg));
    }
    if (u.Has("setRoutes") && u.Get("setRoutes").IsArray()) {
      const Napi::Array routes = u.Get("setRoutes").As<Napi::Array>();
      for (uint32_t i = 0; i < routes.Length(); ++i) {
        const Napi::Object r = routes.Get(i).As<Napi::Object>();
        fp_route v{};
        v.peer_addr = NetworkOrder(env, StringProperty(r, "peer"), "route peer");
        v.peer_port = htons(static_cast<uint16_t>(IntegerProperty(r, "port", 1, 65535)));
        v.flags = r.Get("fast").ToBoolean() ? FP_ROUTE_FAST : 0;
        check(fp.put_route(RouteKey(env, r), v));
      }
    }
    if (u.Has("removeRoutes") && u.Get("removeRoutes").IsArray()) {
      const Napi::Array routes = u.Get("removeRoutes").As<Napi::Array>();
      for (uint32_t i = 0; i < routes.Length(); ++i) check(fp.delete_route(RouteKey(env, routes.Get(i).As<Napi::Object>())));
    }
    if (u.Has("localAddresses") && u.Get("localAddresses").IsArray()) {
      const Napi::Array a = u.Get("localAddresses").As<Napi::Array>();
      std::vector<uint32_t> addrs;
      for (uint32_t i = 0; i < a.Length(); ++i) {
        const std::string text = a.Get(i).As<Napi::String>().Utf8Value();
        if (text.find(':') == std::string::npos) addrs.push_back(NetworkOrder(env, text, "localAddresses"));
      }
      check(fp.set_local_addrs(addrs));
    }
    return env.Undefined();
  }

  Napi::Value Counters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object out = Napi::Object::New(env);
    const auto c = Get(env).counters();
    for (int i = 0; i < FP_COUNTER_COUNT; ++i) out.Set(BpfFastPath::counter_name(i), Napi::Number::New(env, static_cast<double>(c[i])));
    return out;
  }

  Napi::Value TestRun(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsString() || !info[1].IsBuffer() || !info[2].IsNumber()) {
      throw Napi::TypeError::New(env, "testRun(\"egress\" | \"ingress\", frame, ifindex)");
    }
    const bool egress = info[0].As<Napi::String>().Utf8Value() == "egress";
    const Napi::Buffer<uint8_t> buf = info[1].As<Napi::Buffer<uint8_t>>();
    const std::vector<uint8_t> in(buf.Data(), buf.Data() + buf.Length());
    std::vector<uint8_t> out;
    uint32_t retval = 0;
    const SysResult r = Get(env).test_run(egress, in, info[2].As<Napi::Number>().Int32Value(), &retval, &out);
    if (!r.ok()) throw ErrnoError(env, r.err, r.op);
    Napi::Object o = Napi::Object::New(env);
    o.Set("retval", Napi::Number::New(env, retval));
    o.Set("data", Napi::Buffer<uint8_t>::Copy(env, out.data(), out.size()));
    return o;
  }

  static Napi::Value RemoveFilter(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsString()) throw Napi::TypeError::New(env, "FastPath.removeFilter(ifindex, \"egress\" | \"ingress\")");
    const bool removed = BpfFastPath::remove_filter(info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::String>().Utf8Value() == "egress");
    return Napi::Boolean::New(env, removed);
  }

  std::unique_ptr<BpfFastPath> fp_;
};

}  // namespace

void InitFastPath(Napi::Env env, Napi::Object exports) { FastPathWrapper::Init(env, exports); }

}  // namespace flannel

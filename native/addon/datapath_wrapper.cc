#include "datapath_wrapper.h"

#include <errno.h>
#include <unistd.h>

#include "../core/counters.h"
#include "../linux/offload_linux.h"
#include "../linux/test_faults_linux.h"
#include "../linux/udp_socket_linux.h"
#include "napi_util.h"

namespace flannel {

namespace {

// One route object: {network: "10.5.2.0", prefixLen: 24, peer: "192.168.1.2", port: 8285, flags?}.
// An IPv6 network ("fd00:5:2::", prefixLen up to 128) routes inner IPv6 to the same kind of peer.
struct ParsedRoute {
  bool v6 = false;
  std::pair<uint32_t, uint8_t> key4;
  std::pair<Ipv6Addr, uint8_t> key6;
  NextHop hop{0, 0};
  bool peer6 = false;  // the peer is an IPv6 underlay address (peer6_addr)
  Ipv6Addr peer6_addr{};
};

bool IsIpv6Text(const std::string& text) { return text.find(':') != std::string::npos; }

ParsedRoute ParseRouteNetwork(Napi::Env env, const Napi::Object& o) {
  ParsedRoute r;
  const std::string network = StringProperty(o, "network");
  r.v6 = IsIpv6Text(network);
  const uint8_t len = static_cast<uint8_t>(IntegerProperty(o, "prefixLen", 0, r.v6 ? 128 : 32));
  if (r.v6) {
    r.key6 = {mask_ipv6(ParseIpv6(env, network, "route network"), len), len};
  } else {
    r.key4 = {ParseIpv4(env, network, "route network") & prefix_mask(len), len};
  }
  return r;
}

ParsedRoute ParseRoute(Napi::Env env, const Napi::Value& v) {
  if (!v.IsObject()) throw Napi::TypeError::New(env, "each route must be an object");
  Napi::Object o = v.As<Napi::Object>();
  ParsedRoute r = ParseRouteNetwork(env, o);
  // The peer: a PublicIP, or a PublicIPv6 reached over the IPv6 underlay.
  const std::string peer = StringProperty(o, "peer");
  r.peer6 = IsIpv6Text(peer);
  if (r.peer6) {
    r.peer6_addr = ParseIpv6(env, peer, "route peer");
  } else {
    r.hop.addr = ParseIpv4(env, peer, "route peer");
  }
  r.hop.port = static_cast<uint16_t>(IntegerProperty(o, "port", 1, 65535));
  r.hop.flags = static_cast<uint8_t>(OptionalIntegerProperty(o, "flags", 0, 255, 0));
  return r;
}

// {network: "10.5.1.0", prefixLen: 24}
Ipv4Prefix ParsePrefix(Napi::Env env, const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsObject()) throw Napi::TypeError::New(env, std::string("update(state): policy.") + key + " must be {network, prefixLen}");
  Napi::Object p = v.As<Napi::Object>();
  Ipv4Prefix out;
  out.len = static_cast<uint8_t>(IntegerProperty(p, "prefixLen", 0, 32));
  out.network = ParseIpv4(env, StringProperty(p, "network"), key) & prefix_mask(out.len);
  return out;
}

ParsedRoute ParseRouteKey(Napi::Env env, const Napi::Value& v) {
  if (!v.IsObject()) throw Napi::TypeError::New(env, "each removed route must be an object");
  return ParseRouteNetwork(env, v.As<Napi::Object>());
}

// {network: "fd00:5:1::", prefixLen: 64}
Ipv6Prefix ParsePrefix6(Napi::Env env, const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsObject()) throw Napi::TypeError::New(env, std::string("update(state): policy.") + key + " must be {network, prefixLen}");
  Napi::Object p = v.As<Napi::Object>();
  Ipv6Prefix out;
  out.len = static_cast<uint8_t>(IntegerProperty(p, "prefixLen", 0, 128));
  out.network = mask_ipv6(ParseIpv6(env, StringProperty(p, "network"), key), out.len);
  return out;
}

Napi::Object ObjectArgument(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsObject()) {
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be an object");
  }
  return info[i].As<Napi::Object>();
}

// The most workers (TUN queues, sockets) one datapath runs; the udp backend
// caps its "Workers" option at 8 by default and at this by hand.
constexpr int64_t kMaxWorkers = 64;
// The most per-flow source ports (src/backends/udp/config.ts MAX_SOURCE_PORTS).
constexpr int64_t kMaxSourcePorts = 64;
static_assert(3 * kMaxWorkers <= StatePublisher<ForwardingState>::kMaxReaders,
              "every worker's three threads need a reader slot");

bool OptionalBooleanProperty(const Napi::Object& o, const char* key, bool fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsBoolean()) throw Napi::TypeError::New(o.Env(), std::string(key) + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

#ifdef FLANNEL_TEST_FAULTS
// Test build only: the names of the TestFault bits (native/linux/test_faults_linux.h).
uint32_t ParseTestFaults(Napi::Env env, const Napi::Value& v) {
  if (v.IsUndefined()) return 0;
  if (!v.IsArray()) throw Napi::TypeError::New(env, "start(options): testFaults must be an array of names");
  static const struct {
    const char* name;
    TestFault bit;
  } kNames[] = {
      {"tun-tso", kFaultTunTso},          {"tun-uso", kFaultTunUso},        {"udp-gso-send", kFaultUdpGsoSend},
      {"udp-gro", kFaultUdpGro},          {"tun-gro-write", kFaultTunGroWrite}, {"stall-ingress", kFaultStallIngress},
      {"tun-partial-write", kFaultTunPartialWrite},
  };
  Napi::Array list = v.As<Napi::Array>();
  uint32_t bits = 0;
  for (uint32_t i = 0; i < list.Length(); ++i) {
    Napi::Value item = list.Get(i);
    const std::string name = item.IsString() ? item.As<Napi::String>().Utf8Value() : "";
    bool found = false;
    for (const auto& n : kNames) {
      if (name == n.name) {
        bits |= n.bit;
        found = true;
      }
    }
    if (!found) {
      throw Napi::TypeError::New(env, "unknown test fault \"" + name +
                                          "\" (known: tun-tso, tun-uso, udp-gso-send, udp-gro, tun-gro-write, stall-ingress, tun-partial-write)");
    }
  }
  return bits;
}
#endif  // FLANNEL_TEST_FAULTS

const char* StatusName(OffloadStatus s) {
  switch (s) {
    case OffloadStatus::kOn:
      return "on";
    case OffloadStatus::kOffByConfig:
      return "off";
    case OffloadStatus::kRefusedAtStart:
      return "refused";
    case OffloadStatus::kFailedAtRuntime:
      return "failed";
  }
  return "off";
}

// {tso: {status: "on"|"off"|"refused"|"failed", errno?: "EINVAL"}, ...}
Napi::Object OffloadObject(Napi::Env env, const OffloadState& o) {
  Napi::Object result = Napi::Object::New(env);
  result.Set("vnetHdr", Napi::Boolean::New(env, o.vnet_hdr));
  const struct {
    const char* name;
    const OffloadSwitch* sw;
  } kSwitches[] = {{"tso", &o.tso}, {"uso", &o.uso}, {"gso", &o.gso}, {"udpGro", &o.udp_gro}, {"gro", &o.gro}};
  for (const auto& s : kSwitches) {
    Napi::Object entry = Napi::Object::New(env);
    entry.Set("status", Napi::String::New(env, StatusName(s.sw->status())));
    if (s.sw->err() != 0) entry.Set("code", Napi::String::New(env, ErrnoName(s.sw->err())));
    result.Set(s.name, entry);
  }
  return result;
}

}  // namespace

Napi::Object DatapathWrapper::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(
      env, "Datapath",
      {
          InstanceMethod<&DatapathWrapper::OpenTun>("openTun"),
          InstanceMethod<&DatapathWrapper::BindUdp>("bindUdp"),
          InstanceMethod<&DatapathWrapper::Start>("start"),
          InstanceMethod<&DatapathWrapper::Update>("update"),
          InstanceMethod<&DatapathWrapper::Stats>("stats"),
          InstanceMethod<&DatapathWrapper::DrainRefusals>("drainRefusals"),
          InstanceMethod<&DatapathWrapper::Close>("close"),
      });
  exports.Set("Datapath", ctor);

  Napi::Array names = Napi::Array::New(env, kCounterCount);
  for (uint32_t i = 0; i < kCounterCount; ++i) names.Set(i, Napi::String::New(env, kCounterNames[i]));
  exports.Set("counterNames", names);
  return exports;
}

DatapathWrapper::DatapathWrapper(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<DatapathWrapper>(info),
      publisher_(std::make_unique<ForwardingState>()) {}

DatapathWrapper::~DatapathWrapper() { Shutdown(); }

void DatapathWrapper::EnsureOpen(Napi::Env env, const char* method) const {
  if (closed_) {
    throw Napi::Error::New(env, std::string("Datapath.") + method + "() called after close()");
  }
}

void DatapathWrapper::Publish() {
  // The IPv6 underlay's endpoints: the known v6 peers first (their flags),
  // then any a route names that is not one of them: those are no known
  // sender (Endpoint6Table's known size), so the source check refuses
  // datagrams from them.
  std::vector<std::pair<Ipv6Addr, uint8_t>> endpoints = peers6_;
  const size_t known6 = endpoints.size();
  std::map<Ipv6Addr, uint32_t> index;
  for (uint32_t i = 0; i < endpoints.size(); ++i) index.emplace(endpoints[i].first, i);
  auto hop_of = [&](const RouteTarget& t) {
    if (!t.peer6) return t.hop;
    auto it = index.find(t.addr6);
    if (it == index.end()) {
      it = index.emplace(t.addr6, static_cast<uint32_t>(endpoints.size())).first;
      endpoints.emplace_back(t.addr6, 0);
    }
    NextHop hop = t.hop;
    hop.addr = it->second;
    hop.flags = static_cast<uint8_t>(hop.flags | kPeerUnderlay6);
    return hop;
  };
  std::vector<Ipv4Route> routes;
  routes.reserve(routes_.size());
  for (const auto& r : routes_) routes.push_back(Ipv4Route{r.first.first, r.first.second, hop_of(r.second)});
  std::vector<Ipv6Route> routes6;
  routes6.reserve(routes6_.size());
  for (const auto& r : routes6_) routes6.push_back(Ipv6Route{r.first.first, r.first.second, hop_of(r.second)});
  auto state = std::make_unique<ForwardingState>();
  state->routes = LpmTable(routes);
  state->routes6 = Lpm6Table(routes6);
  state->peers = AddrSet(peers_);
  state->endpoints6 = Endpoint6Table(endpoints, known6);
  state->policy = policy_;
  state->local = LocalAddrs(local4_, local6_);
  publisher_.publish(std::move(state));
}

Napi::Value DatapathWrapper::OpenTun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  EnsureOpen(env, "openTun");
  if (!tun_.fds.empty()) throw Napi::Error::New(env, "Datapath.openTun(): a TUN device is already open");
  if (info.Length() < 1 || !info[0].IsString()) {
    throw Napi::TypeError::New(env, "openTun(nameTemplate, options) needs a string");
  }
  TunOptions options;
  if (info.Length() > 1 && !info[1].IsUndefined()) {
    Napi::Object o = ObjectArgument(info, 1, "openTun(nameTemplate, options): options");
    options.queues = static_cast<int>(OptionalIntegerProperty(o, "queues", 1, kMaxWorkers, 1));
    options.vnet_hdr = OptionalBooleanProperty(o, "vnetHdr", false);
  }
  const SysResult r = open_tun(info[0].As<Napi::String>().Utf8Value(), options, &tun_);
  if (!r.ok()) throw ErrnoError(env, r.err, r.op);
  vnet_hdr_ = options.vnet_hdr;
  Napi::Object result = Napi::Object::New(env);
  result.Set("name", Napi::String::New(env, tun_.name));
  result.Set("queues", Napi::Number::New(env, static_cast<double>(tun_.fds.size())));
  return result;
}

Napi::Value DatapathWrapper::BindUdp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  EnsureOpen(env, "bindUdp");
  if (!udp_fds_.empty() || !udp6_fds_.empty()) {
    throw Napi::Error::New(env, "Datapath.bindUdp(): the UDP sockets are already bound");
  }
  Napi::Object o = ObjectArgument(info, 0, "bindUdp(options)");
  // address: the IPv4 underlay's sockets; address6: the IPv6 underlay's; either or both.
  const bool has4 = !o.Get("address").IsUndefined();
  const bool has6 = !o.Get("address6").IsUndefined();
  if (!has4 && !has6) throw Napi::TypeError::New(env, "bindUdp(options): address or address6 is required");
  UdpSocketOptions options;
  options.port = static_cast<uint16_t>(IntegerProperty(o, "port", 1, 65535));
  options.receive_buffer_bytes =
      static_cast<int>(OptionalIntegerProperty(o, "receiveBufferBytes", 0, INT32_MAX, 0));
  options.send_buffer_bytes = static_cast<int>(OptionalIntegerProperty(o, "sendBufferBytes", 0, INT32_MAX, 0));
  options.count = static_cast<int>(OptionalIntegerProperty(o, "sockets", 1, kMaxWorkers, 1));
  const int source_ports = static_cast<int>(OptionalIntegerProperty(o, "sourcePorts", 0, kMaxSourcePorts, 0));
  if (options.port + source_ports > 65535) {
    throw Napi::RangeError::New(env, "bindUdp(options): port + sourcePorts must be at most 65535");
  }
  UdpSocketOptions options6 = options;
  options6.ipv6 = true;
  if (has6) options6.bind_addr6 = ParseIpv6(env, StringProperty(o, "address6"), "bind address6");
  if (has4) options.bind_addr = ParseIpv4(env, StringProperty(o, "address"), "bind address");
  auto close_all = [this] {
    for (std::vector<int>* fds : {&udp_fds_, &source_fds_, &udp6_fds_, &source6_fds_}) {
      for (int fd : *fds) close(fd);
      fds->clear();
    }
  };
  std::vector<uint16_t> busy4;
  std::vector<uint16_t> busy6;
  if (has4) {
    SysResult r = open_udp_sockets(options, &udp_fds_);
    if (!r.ok()) throw ErrnoError(env, r.err, r.op);
    r = open_source_port_sockets(options, source_ports, &source_fds_, &busy4);
    if (!r.ok()) {
      close_all();
      throw ErrnoError(env, r.err, (std::string(r.op) + " source port").c_str());
    }
  }
  if (has6) {
    SysResult r = open_udp_sockets(options6, &udp6_fds_);
    if (r.ok()) r = open_source_port_sockets(options6, source_ports, &source6_fds_, &busy6);
    if (!r.ok()) {
      close_all();
      throw ErrnoError(env, r.err, (std::string(r.op) + " IPv6").c_str());
    }
  }
  // {busySourcePorts: [8290], busySourcePorts6: []}: source ports another socket holds, left out.
  auto port_list = [env](const std::vector<uint16_t>& ports) {
    Napi::Array a = Napi::Array::New(env, ports.size());
    for (uint32_t i = 0; i < ports.size(); ++i) a.Set(i, Napi::Number::New(env, ports[i]));
    return a;
  };
  Napi::Object result = Napi::Object::New(env);
  result.Set("busySourcePorts", port_list(busy4));
  result.Set("busySourcePorts6", port_list(busy6));
  return result;
}

Napi::Value DatapathWrapper::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  EnsureOpen(env, "start");
  if (forwarder_) throw Napi::Error::New(env, "Datapath.start(): already started");
  if (tun_.fds.empty() || (udp_fds_.empty() && udp6_fds_.empty())) {
    throw Napi::Error::New(env, "Datapath.start(): openTun() and bindUdp() must succeed first");
  }
  const size_t sockets = udp_fds_.empty() ? udp6_fds_.size() : udp_fds_.size();
  if (tun_.fds.size() != sockets) {
    throw Napi::Error::New(env, "Datapath.start(): openTun() queues (" + std::to_string(tun_.fds.size()) +
                                    ") and bindUdp() sockets (" + std::to_string(sockets) +
                                    ") must match: one of each per worker");
  }
  Napi::Object o = ObjectArgument(info, 0, "start(options)");
  ForwarderConfig config;
  config.tun_fds = tun_.fds;
  config.udp_fds = udp_fds_;
  config.udp6_fds = udp6_fds_;
  config.source6_fds = source6_fds_;
  config.source_fds = source_fds_;
  config.vnet_hdr = vnet_hdr_;
  config.icmp_source = ParseIpv4(env, StringProperty(o, "icmpSource"), "icmpSource");
  config.icmp_rate_per_sec = static_cast<uint32_t>(OptionalIntegerProperty(o, "icmpRatePerSec", 0, 1000000, 100));
  config.icmp_burst = static_cast<uint32_t>(OptionalIntegerProperty(o, "icmpBurst", 1, 1000000, 50));
  config.batch_size = static_cast<size_t>(OptionalIntegerProperty(o, "batchSize", 1, 1024, 64));
  config.busy_poll_ns = static_cast<uint64_t>(OptionalIntegerProperty(o, "busyPollMicroseconds", 0, 1000, 0)) * 1000;
  // At least an IPv4 header plus room for a full-size Ethernet frame; at most
  // the largest IPv4 packet plus slack. UDP GRO hands up to 64 KiB per read,
  // so the default holds any of them.
  config.buffer_size = static_cast<size_t>(OptionalIntegerProperty(o, "bufferSize", 1600, 65536 + 4096, 65536));
  Napi::Value offload = o.Get("offload");
  if (!offload.IsUndefined()) {
    if (!offload.IsObject()) throw Napi::TypeError::New(env, "start(options): offload must be an object");
    Napi::Object off = offload.As<Napi::Object>();
    config.offload.tso = OptionalBooleanProperty(off, "tso", false);
    config.offload.uso = OptionalBooleanProperty(off, "uso", false);
    config.offload.gso = OptionalBooleanProperty(off, "gso", false);
    config.offload.gro = OptionalBooleanProperty(off, "gro", false);
  }
#ifdef FLANNEL_TEST_FAULTS
  config.test_faults = ParseTestFaults(env, o.Get("testFaults"));
#endif
  auto forwarder = std::make_unique<Forwarder>(config, &publisher_);
  const SysResult r = forwarder->start();
  if (!r.ok()) throw ErrnoError(env, r.err, r.op);
  forwarder_ = std::move(forwarder);
  return env.Undefined();
}

namespace {

// The parts of one update(), parsed; absent parts stay as they are.
struct ParsedUpdate {
  bool has_routes = false;  // `routes`: the whole table
  std::vector<ParsedRoute> routes;
  std::vector<ParsedRoute> set_routes;     // `setRoutes`
  std::vector<ParsedRoute> remove_routes;  // `removeRoutes` (keys only)
  bool has_peers = false;
  std::vector<Peer> peers;
  std::vector<std::pair<Ipv6Addr, uint8_t>> peers6;
  bool has_policy = false;
  IngressPolicy policy;
  bool has_local = false;
  std::vector<uint32_t> local4;
  std::vector<Ipv6Addr> local6;
};

std::vector<ParsedRoute> ParseRouteList(Napi::Env env, const Napi::Value& v, const char* what, bool keys_only) {
  if (!v.IsArray()) throw Napi::TypeError::New(env, std::string("update(state): ") + what + " must be an array");
  Napi::Array list = v.As<Napi::Array>();
  std::vector<ParsedRoute> out;
  out.reserve(list.Length());
  for (uint32_t i = 0; i < list.Length(); ++i) out.push_back(keys_only ? ParseRouteKey(env, list.Get(i)) : ParseRoute(env, list.Get(i)));
  return out;
}

// [address | {address, flags}]: an IPv6 address is a peer on the IPv6 underlay.
void ParsePeers(Napi::Env env, const Napi::Value& v, ParsedUpdate* u) {
  if (!v.IsArray()) throw Napi::TypeError::New(env, "update(state): peers must be an array");
  Napi::Array list = v.As<Napi::Array>();
  for (uint32_t i = 0; i < list.Length(); ++i) {
    Napi::Value item = list.Get(i);
    std::string address;
    uint8_t flags = 0;
    if (item.IsString()) {
      address = item.As<Napi::String>().Utf8Value();
    } else if (item.IsObject()) {
      Napi::Object o = item.As<Napi::Object>();
      address = StringProperty(o, "address");
      flags = static_cast<uint8_t>(OptionalIntegerProperty(o, "flags", 0, 255, 0));
    } else {
      throw Napi::TypeError::New(env, "each peer must be an address or {address, flags}");
    }
    if (IsIpv6Text(address)) {
      u->peers6.emplace_back(ParseIpv6(env, address, "peer address"), flags);
    } else {
      u->peers.push_back(Peer{ParseIpv4(env, address, "peer address"), flags});
    }
  }
}

IngressPolicy ParsePolicy(Napi::Env env, const Napi::Value& v) {
  if (!v.IsObject()) throw Napi::TypeError::New(env, "update(state): policy must be an object");
  Napi::Object o = v.As<Napi::Object>();
  IngressPolicy p;
  p.configured = true;
  p.source_check = OptionalBooleanProperty(o, "sourceCheck", true);
  p.allow_external_sources = OptionalBooleanProperty(o, "allowExternalSources", false);
  p.partial_checksums = OptionalBooleanProperty(o, "partialChecksums", false);
  p.own_subnet = ParsePrefix(env, o, "ownSubnet");
  p.network = ParsePrefix(env, o, "network");
  // Inner IPv6 with both of ownSubnet6 and network6.
  p.ipv6 = !o.Get("ownSubnet6").IsUndefined();
  if (p.ipv6) {
    p.own_subnet6 = ParsePrefix6(env, o, "ownSubnet6");
    p.network6 = ParsePrefix6(env, o, "network6");
  }
  return p;
}

void ParseLocalAddresses(Napi::Env env, const Napi::Value& v, ParsedUpdate* u) {
  if (!v.IsArray()) throw Napi::TypeError::New(env, "update(state): localAddresses must be an array of addresses");
  Napi::Array list = v.As<Napi::Array>();
  for (uint32_t i = 0; i < list.Length(); ++i) {
    Napi::Value item = list.Get(i);
    if (!item.IsString()) throw Napi::TypeError::New(env, "update(state): localAddresses must be an array of addresses");
    const std::string text = item.As<Napi::String>().Utf8Value();
    if (IsIpv6Text(text)) {
      u->local6.push_back(ParseIpv6(env, text, "local address"));
    } else {
      u->local4.push_back(ParseIpv4(env, text, "local address"));
    }
  }
}

ParsedUpdate ParseUpdate(Napi::Env env, const Napi::Object& o) {
  ParsedUpdate u;
  const Napi::Value routes = o.Get("routes");
  if (!routes.IsUndefined()) {
    u.has_routes = true;
    u.routes = ParseRouteList(env, routes, "routes", false);
  }
  const Napi::Value set = o.Get("setRoutes");
  if (!set.IsUndefined()) u.set_routes = ParseRouteList(env, set, "setRoutes", false);
  const Napi::Value remove = o.Get("removeRoutes");
  if (!remove.IsUndefined()) u.remove_routes = ParseRouteList(env, remove, "removeRoutes", true);
  if (u.has_routes && (!u.set_routes.empty() || !u.remove_routes.empty())) {
    throw Napi::TypeError::New(env, "update(state): give either routes or setRoutes/removeRoutes, not both");
  }
  const Napi::Value peers = o.Get("peers");
  if (!peers.IsUndefined()) {
    u.has_peers = true;
    ParsePeers(env, peers, &u);
  }
  const Napi::Value policy = o.Get("policy");
  if (!policy.IsUndefined()) {
    u.has_policy = true;
    u.policy = ParsePolicy(env, policy);
  }
  const Napi::Value local = o.Get("localAddresses");
  if (!local.IsUndefined()) {
    u.has_local = true;
    ParseLocalAddresses(env, local, &u);
  }
  return u;
}

}  // namespace

Napi::Value DatapathWrapper::Update(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  EnsureOpen(env, "update");
  // Everything is parsed before anything changes, so a bad entry changes nothing.
  ParsedUpdate u = ParseUpdate(env, ObjectArgument(info, 0, "update(state)"));
  auto put = [this](const ParsedRoute& r) {
    const RouteTarget target{r.hop, r.peer6, r.peer6_addr};
    if (r.v6) {
      routes6_[r.key6] = target;
    } else {
      routes_[r.key4] = target;
    }
  };
  if (u.has_routes) {
    routes_.clear();
    routes6_.clear();
    for (const ParsedRoute& r : u.routes) put(r);
  }
  for (const ParsedRoute& k : u.remove_routes) {
    if (k.v6) {
      routes6_.erase(k.key6);
    } else {
      routes_.erase(k.key4);
    }
  }
  for (const ParsedRoute& r : u.set_routes) put(r);
  if (u.has_peers) {
    peers_.swap(u.peers);
    peers6_.swap(u.peers6);
  }
  if (u.has_policy) policy_ = u.policy;
  if (u.has_local) {
    local4_.swap(u.local4);
    local6_.swap(u.local6);
  }
  Publish();
  return env.Undefined();
}

Napi::Value DatapathWrapper::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  EnsureOpen(env, "stats");
  uint64_t values[kCounterCount] = {};
  if (forwarder_) forwarder_->snapshot(values);
  Napi::Object counters = Napi::Object::New(env);
  for (uint32_t i = 0; i < kCounterCount; ++i) {
    counters.Set(kCounterNames[i], Napi::Number::New(env, static_cast<double>(values[i])));
  }
  // A stats poll is also the writer's periodic chance to free retired tables.
  const size_t retired = publisher_.reclaim();
  Napi::Object result = Napi::Object::New(env);
  result.Set("counters", counters);
  result.Set("routes", Napi::Number::New(env, static_cast<double>(routes_.size() + routes6_.size())));
  result.Set("peers", Napi::Number::New(env, static_cast<double>(peers_.size() + peers6_.size())));
  result.Set("retiredTables", Napi::Number::New(env, static_cast<double>(retired)));
  result.Set("running", Napi::Boolean::New(env, forwarder_ != nullptr));
  result.Set("workers", Napi::Number::New(env, static_cast<double>(forwarder_ ? forwarder_->workers() : 0)));
  if (forwarder_) result.Set("offload", OffloadObject(env, forwarder_->offload()));
  if (forwarder_) result.Set("heartbeatAgeMs", Napi::Number::New(env, forwarder_->oldest_heartbeat_age_ms()));
  return result;
}

Napi::Value DatapathWrapper::DrainRefusals(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  EnsureOpen(env, "drainRefusals");
  Refusal refusals[RefusalLog::kRing];
  const size_t n = forwarder_ ? forwarder_->drain_refusals(refusals, RefusalLog::kRing) : 0;
  Napi::Array result = Napi::Array::New(env, n);
  for (size_t i = 0; i < n; ++i) {
    const Refusal& r = refusals[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("sender", r.sender6 ? FormatIpv6(r.sender_addr6) : FormatIpv4(r.sender));
    o.Set("reason", Napi::String::New(env, kCounterNames[r.reason]));
    if (r.reason != kIngressDropUnknownSource) {
      o.Set("innerSource", r.version == 6 ? FormatIpv6(r.inner_src6) : FormatIpv4(r.inner_src));
      o.Set("innerDestination", r.version == 6 ? FormatIpv6(r.inner_dst6) : FormatIpv4(r.inner_dst));
    }
    result.Set(static_cast<uint32_t>(i), o);
  }
  return result;
}

Napi::Value DatapathWrapper::Close(const Napi::CallbackInfo& info) {
  Shutdown();
  return info.Env().Undefined();
}

void DatapathWrapper::Shutdown() {
  if (closed_) return;
  closed_ = true;
  if (forwarder_) {
    forwarder_->stop();
    forwarder_.reset();
  }
  for (int fd : udp_fds_) close(fd);
  udp_fds_.clear();
  for (int fd : udp6_fds_) close(fd);
  udp6_fds_.clear();
  for (int fd : source6_fds_) close(fd);
  source6_fds_.clear();
  for (int fd : source_fds_) close(fd);
  source_fds_.clear();
  // Closing the last fd of a non-persistent TUN removes the device, its
  // addresses and its routes (docs/compatibility.md §5.7).
  for (int fd : tun_.fds) close(fd);
  tun_.fds.clear();
}

}  // namespace flannel

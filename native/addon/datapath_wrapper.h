// `Datapath`: the JavaScript-visible object of the udp backend's native
// datapath. TypeScript (src/forwarder) is its only user.
//
// Lifecycle: openTun() -> (TypeScript configures the device over rtnetlink)
// -> bindUdp() (as many sockets as TUN queues: one per worker) -> start() ->
// update()/stats()/drainRefusals() any number of times -> close(). update()
// may be called before start(). After close() every method throws. close()
// is also run by the destructor.
//
// update() takes every part of the forwarding state that changed (routes,
// peers, the ingress policy, this node's addresses), parses all of it before
// changing anything, and publishes the whole state once: the forwarding
// threads never see routes without their peers or the other way round.
//
// Setup failures throw an Error carrying `syscall` (the failing operation),
// `errno` and `code` (e.g. "EPERM"); src/forwarder/errors.ts turns those into
// typed errors with advice. Argument errors throw TypeError.
#pragma once

#include <napi.h>

#include <cstdint>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "../core/forwarding.h"
#include "../core/state_publisher.h"
#include "../linux/forwarder_linux.h"
#include "../linux/tun_linux.h"

namespace flannel {

class DatapathWrapper : public Napi::ObjectWrap<DatapathWrapper> {
 public:
  static Napi::Object Init(Napi::Env env, Napi::Object exports);
  explicit DatapathWrapper(const Napi::CallbackInfo& info);
  ~DatapathWrapper() override;

 private:
  Napi::Value OpenTun(const Napi::CallbackInfo& info);
  Napi::Value BindUdp(const Napi::CallbackInfo& info);
  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value Update(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  Napi::Value DrainRefusals(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  void EnsureOpen(Napi::Env env, const char* method) const;
  // Builds a ForwardingState from routes_/peers_/policy_/local_ and publishes it.
  void Publish();
  void Shutdown();

  // A route's peer: its IPv4 endpoint in hop, or an IPv6 endpoint (peer6),
  // whose index Publish() assigns.
  struct RouteTarget {
    NextHop hop{0, 0};
    bool peer6 = false;
    Ipv6Addr addr6{};
  };
  using RouteKey = std::pair<uint32_t, uint8_t>;  // masked network, prefix length
  std::map<RouteKey, RouteTarget> routes_;
  using Route6Key = std::pair<Ipv6Addr, uint8_t>;  // masked network, prefix length
  std::map<Route6Key, RouteTarget> routes6_;
  std::vector<Peer> peers_;
  std::vector<std::pair<Ipv6Addr, uint8_t>> peers6_;  // known peers on the IPv6 underlay, with their flags
  IngressPolicy policy_;
  std::vector<uint32_t> local4_;  // this node's addresses
  std::vector<Ipv6Addr> local6_;

  StatePublisher<ForwardingState> publisher_;
  std::unique_ptr<Forwarder> forwarder_;
  TunDevice tun_;
  std::vector<int> udp_fds_;
  std::vector<int> udp6_fds_;  // the IPv6 underlay's sockets (bindUdp address6)
  std::vector<int> source6_fds_;  // its per-flow source ports
  std::vector<int> source_fds_;  // the per-flow source ports (bindUdp sourcePorts)
  bool vnet_hdr_ = false;
  bool closed_ = false;
};

}  // namespace flannel

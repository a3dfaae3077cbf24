#include "ingress_linux.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/udp.h>
#include <poll.h>
#include <string.h>

#include <algorithm>
#include <new>

#include "../core/gso.h"
#include "../core/udp_message.h"
#include "forwarder_linux.h"

namespace flannel {

IngressPath::IngressPath(SharedContext* shared, int tun_fd, int udp_fd, bool underlay6, CounterBlock* counters,
                         RefusalLog* refusals)
    : DatapathThread(shared, tun_fd, counters), udp_fd_(udp_fd), underlay6_(underlay6), refusals_(*refusals) {}

bool IngressPath::allocate() {
  const size_t batch = config_.batch_size;
  batch_ = batch;
  buffers_.reset(new (std::nothrow) uint8_t[batch * config_.buffer_size]);
  iov_.reset(new (std::nothrow) struct iovec[batch]);
  msgs_.reset(new (std::nothrow) struct mmsghdr[batch]);
  addrs_.reset(new (std::nothrow) SockAddr[batch]);
  control_.reset(new (std::nothrow) Control[batch]);
  held_.reset(new (std::nothrow) InnerPacket[kMaxHeldPackets]);
  next_.reset(new (std::nothrow) uint16_t[kMaxHeldPackets]);
  items_.reset(new (std::nothrow) CoalescedItem[kMaxHeldPackets]);
  merged_headers_.reset(new (std::nothrow) uint8_t[kMaxHeldPackets * kCoalesceArenaPerPacket]);
  if (!buffers_ || !iov_ || !msgs_ || !addrs_ || !control_ || !held_ || !next_ || !items_ || !merged_headers_) {
    return false;
  }
  memset(msgs_.get(), 0, sizeof(struct mmsghdr) * batch);
  memset(addrs_.get(), 0, sizeof(SockAddr) * batch);
  for (size_t i = 0; i < batch; ++i) {
    iov_[i] = {buffers_.get() + i * config_.buffer_size, config_.buffer_size};
    struct msghdr& h = msgs_[i].msg_hdr;
    h.msg_iov = &iov_[i];
    h.msg_iovlen = 1;
    h.msg_name = &addrs_[i];
  }
  return true;
}

uint16_t IngressPath::gro_size(size_t k) const {
  const struct msghdr& h = msgs_[k].msg_hdr;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(const_cast<struct msghdr*>(&h), c)) {
    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
      int size = 0;
      memcpy(&size, CMSG_DATA(c), sizeof(size));
      return size > 0 && size <= 0xffff ? static_cast<uint16_t>(size) : 0;
    }
  }
  return 0;
}

bool IngressPath::serve(int reader_slot) {
  StatePublisher<ForwardingState>& publisher = *shared_->publisher;
  const size_t full_batch = config_.batch_size;
  if (shared_->faults.take(kFaultStallIngress)) {
    // Test only: a wedged worker (no beat, no work) until the forwarder stops.
    while (!wait_for(shared_->stop_fd, POLLIN, 100) && !stopping()) {
    }
    return false;
  }
  for (int round = 0; round < kMaxBatchesPerWake; ++round) {
    const ForwardingState& state = *publisher.read(reader_slot);
    const size_t batch = batch_;
    for (size_t k = 0; k < batch; ++k) {
      struct msghdr& h = msgs_[k].msg_hdr;
      h.msg_namelen = underlay6_ ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
      h.msg_control = control_[k].bytes;
      h.msg_controllen = sizeof(control_[k].bytes);
      h.msg_flags = 0;
    }
    counters_.add(kUdpReceiveCalls);
    const int got = recvmmsg(udp_fd_, msgs_.get(), static_cast<unsigned>(batch), MSG_DONTWAIT, nullptr);
    if (got < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) counters_.add(kUdpReceiveErrors);
      break;
    }
    const size_t asked = batch;
    bool large = false;
    for (int k = 0; k < got; ++k) {
      const struct mmsghdr& m = msgs_[k];
      uint8_t* data = static_cast<uint8_t*>(iov_[k].iov_base);
      const size_t len = m.msg_len;
      if (len >= kLargeMessageBytes) large = true;
      if (m.msg_hdr.msg_flags & MSG_TRUNC) {
        counters_.add(kUdpReceivedPackets);
        counters_.add(kUdpReceivedBytes, len);
        counters_.add(kIngressDropOversize);
        continue;
      }
      Sender source{0, underlay6_};
      Ipv6Addr source6{};
      if (underlay6_) {
        source6 = load_ipv6(addrs_[k].v6.sin6_addr.s6_addr);
        source.key = state.endpoints6.find(source6);
      } else {
        source.key = ntohl(addrs_[k].v4.sin_addr.s_addr);
      }
      // The refusal log's key of this sender (a fold of an IPv6 address).
      const uint32_t sender_key = underlay6_ ? static_cast<uint32_t>((source6.hi ^ source6.lo) ^ ((source6.hi ^ source6.lo) >> 32))
                                             : source.key;
      const size_t step = gro_size(static_cast<size_t>(k));
      if (step > 0 && step < len) counters_.add(kUdpGroMessages);
      for_each_datagram(data, len, step, [&](uint8_t* pkt, size_t dlen) {
        counters_.add(kUdpReceivedPackets);
        counters_.add(kUdpReceivedBytes, dlen);
        const Decision d = decide_ingress(pkt, dlen, source, state);
        if (!d.forward) {
          counters_.add(d.drop);
          const bool inner = d.drop == kIngressDropSpoofedSource || d.drop == kIngressDropForeignDestination ||
                             d.drop == kIngressDropMartianSource || d.drop == kIngressDropIpv6SenderIncapable;
          if (inner || d.drop == kIngressDropUnknownSource) {
            Refusal r{sender_key, d.drop};
            r.sender6 = underlay6_;
            r.sender_addr6 = source6;
            if (inner) {
              r.version = d.version;
              r.inner_src = d.header.src;
              r.inner_dst = d.header.dst;
              r.inner_src6 = d.header6.src;
              r.inner_dst6 = d.header6.dst;
            }
            refusals_.note(r);
          }
          handle_icmp(d, pkt, state);
          return;
        }
        bool partial = d.partial;
        if (partial) {
          counters_.add(kIngressPartialChecksumPackets);
          if (!vnet_hdr_ || shared_->partial_writes_failed.load(std::memory_order_relaxed)) {
            complete_partial_checksum(pkt, d.length, d.partial_spot.start, d.partial_spot.offset);
            partial = false;
          }
        }
        hold(pkt, d.length, partial);
      });
    }
    flush();
    batch_ = large ? std::min(full_batch, kLargeRoundMessages) : full_batch;
    if (static_cast<size_t>(got) < asked) break;
  }
  return true;
}

void IngressPath::hold(uint8_t* pkt, uint16_t len, bool partial) {
  if (held_count_ == kMaxHeldPackets) flush();
  held_[held_count_++] = InnerPacket{pkt, len, partial};
}

int IngressPath::write_inner(const InnerPacket& p) {
  if (!p.partial) return write_tun_packet(p.data, p.len);
  // The spot the ingress decision left partial (partial_checksum.h): TCP or UDP after the IP header.
  const bool v6 = (p.data[0] >> 4) == 6;
  const uint16_t start = v6 ? static_cast<uint16_t>(kIpv6HeaderLen) : static_cast<uint16_t>((p.data[0] & 0x0f) * 4);
  const uint16_t offset = (v6 ? p.data[6] : p.data[9]) == kIpProtoTcp ? 16 : 6;
  if (!shared_->partial_writes_failed.load(std::memory_order_relaxed)) {
    VirtioNetHdr vh;
    vh.flags = kVirtioFlagNeedsCsum;
    vh.csum_start = start;
    vh.csum_offset = offset;
    uint8_t hdr[kVirtioNetHdrLen];
    encode_virtio_hdr(vh, hdr);
    const struct iovec iov[2] = {{hdr, kVirtioNetHdrLen}, {p.data, p.len}};
    const int err = shared_->faults.take(kFaultTunPartialWrite) ? EINVAL : write_tun(iov, 2, kVirtioNetHdrLen + p.len);
    if (err != EINVAL) return err;
    // The kernel refuses NEEDS_CSUM writes: complete in software for good.
    if (!shared_->partial_writes_failed.exchange(true)) counters_.add(kOffloadPartialChecksumFailures);
  }
  complete_partial_checksum(p.data, p.len, start, offset);
  return write_tun_packet(p.data, p.len);
}

void IngressPath::flush() {
  const size_t n = held_count_;
  held_count_ = 0;
  if (n == 0) return;
  if (vnet_hdr_ && shared_->offload.gro.on()) {
    // UDP runs only where the TUN takes USO packets (the USO probe: Linux 6.2).
    const size_t items = coalesce(held_.get(), n, next_.get(), merged_headers_.get(),
                                  kMaxHeldPackets * kCoalesceArenaPerPacket, items_.get(), shared_->offload.uso.on());
    for (size_t i = 0; i < items; ++i) {
      const CoalescedItem& item = items_[i];
      if (item.count > 1 && item.header_len > 0 && shared_->offload.gro.on()) {
        write_merged(item);
      } else {
        write_members(item);
      }
    }
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    if (write_inner(held_[i]) == 0) {
      counters_.add(kTunWrittenPackets);
      counters_.add(kTunWrittenBytes, held_[i].len);
    } else {
      counters_.add(kIngressDropTunWriteError);
    }
  }
}

void IngressPath::write_members(const CoalescedItem& item) {
  uint16_t k = item.first;
  for (uint16_t c = 0; c < item.count; ++c) {
    const InnerPacket& p = held_[k];
    if (write_inner(p) == 0) {
      counters_.add(kTunWrittenPackets);
      counters_.add(kTunWrittenBytes, p.len);
    } else {
      counters_.add(kIngressDropTunWriteError);
    }
    k = next_[k];
  }
}

void IngressPath::write_merged(const CoalescedItem& item) {
  write_iov_[0] = {merged_headers_.get() + item.header_off, item.header_len};
  size_t total = item.header_len;
  size_t bytes = 0;
  uint16_t k = item.first;
  for (uint16_t c = 0; c < item.count; ++c) {
    const InnerPacket& p = held_[k];
    write_iov_[c + 1] = {p.data + item.l34_len, static_cast<size_t>(p.len - item.l34_len)};
    total += p.len - item.l34_len;
    bytes += p.len;
    k = next_[k];
  }
  const int err = shared_->faults.take(kFaultTunGroWrite) ? EINVAL : write_tun(write_iov_, item.count + 1, total);
  if (err == 0) {
    counters_.add(kTunWrittenPackets, item.count);
    counters_.add(kTunWrittenBytes, bytes);
    counters_.add(kTunCoalescedWrites);
    counters_.add(kTunCoalescedPackets, item.count);
    return;
  }
  if (err == EINVAL) {
    // The kernel refuses GSO writes (a virtio_net_hdr_to_skb regression,
    // tailscale/tailscale#13041): off for good; these go out one by one.
    if (shared_->offload.gro.fail_at_runtime(err)) counters_.add(kOffloadGroFailures);
    write_members(item);
    return;
  }
  counters_.add(kIngressDropTunWriteError, item.count);
}

}  // namespace flannel

/*
 * An upstream-style udp forwarder, for the tests and the benchmark: it does
 * what upstream flanneld's udp datapath does (pkg/backend/udp/proxy_amd64.c,
 * run_proxy), written from that behaviour, so a mixed cluster can be tested
 * without Go and the benchmark can say "how much faster than upstream".
 *
 * Behaviour, as upstream's:
 *  - one thread; poll() on the TUN, the UDP socket and the control input;
 *    then, while either fd gave a packet, one read() from the TUN and one
 *    recv() from the socket per round (no batching, no offloads);
 *  - one buffer of MTU bytes for both directions: a datagram larger than
 *    the MTU is cut to MTU bytes by recv() and written as it is;
 *  - TUN -> UDP: a read shorter than an IPv4 header is dropped; the route is
 *    looked up first-match in table order, and a hit is swapped to the front
 *    (find_route); no route: an ICMP net unreachable is written back to the
 *    TUN (send_net_unreachable: TTL 8, from the TUN address, quoting the
 *    header and 8 bytes; none for ICMP, non-first fragments or a header of
 *    60 bytes or more); then the TTL is decremented (a packet reaching 0 is
 *    dropped) with upstream's checksum patch, and sendto() the peer;
 *  - UDP -> TUN: no check of the sender or the packet; TTL decremented, then
 *    write() (retried on EAGAIN);
 *  - no counters, nothing logged per packet.
 *
 * Usage: upstream_udp_proxy <tun-name> <bind-address> <port> <tun-address> <mtu>
 * It opens the TUN (IFF_TUN | IFF_NO_PI; the caller configures it: address,
 * MTU, up, the Network route, as upstream's configureIface), binds the
 * socket, prints {"event":"ready","tun":"<ifname>"} and reads commands on
 * stdin, one per line, answering each with {"reply":"ok"} or {"reply":"error"}:
 *   set <network>/<len> <peer-address> <port>
 *   del <network>/<len>
 * End of input stops it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

struct route {
  uint32_t net;  /* network order, masked */
  uint32_t mask; /* network order */
  struct sockaddr_in hop;
};

static struct route *routes;
static size_t nroutes, cap_routes;
static uint32_t tun_address; /* network order */

static uint32_t mask_of(int len) { return len == 0 ? 0 : htonl(~(uint32_t)0 << (32 - len)); }

static void set_route(uint32_t net, uint32_t mask, const struct sockaddr_in *hop) {
  for (size_t i = 0; i < nroutes; i++) {
    if (routes[i].net == net && routes[i].mask == mask) {
      routes[i].hop = *hop;
      return;
    }
  }
  if (nroutes == cap_routes) {
    cap_routes = cap_routes ? 2 * cap_routes : 8;
    routes = realloc(routes, cap_routes * sizeof(*routes));
    if (!routes) exit(1);
  }
  routes[nroutes].net = net;
  routes[nroutes].mask = mask;
  routes[nroutes].hop = *hop;
  nroutes++;
}

static void del_route(uint32_t net, uint32_t mask) {
  for (size_t i = 0; i < nroutes; i++) {
    if (routes[i].net == net && routes[i].mask == mask) {
      routes[i] = routes[--nroutes]; /* the last entry takes its place */
      return;
    }
  }
}

/* First match in table order; the hit moves to the front by a swap. */
static const struct sockaddr_in *find_route(uint32_t dst) {
  for (size_t i = 0; i < nroutes; i++) {
    if ((dst & routes[i].mask) == routes[i].net) {
      if (i != 0) {
        struct route t = routes[i];
        routes[i] = routes[0];
        routes[0] = t;
      }
      return &routes[0].hop;
    }
  }
  return NULL;
}

/* One's complement sum over 32-bit words, folded (as upstream's cksum). */
static uint16_t sum32(const uint8_t *p, size_t words) {
  uint32_t sum = 0;
  for (size_t i = 0; i < words; i++) {
    uint32_t w;
    memcpy(&w, p + 4 * i, 4);
    sum += w;
    if (sum < w) sum++;
  }
  uint16_t lo = (uint16_t)sum, hi = (uint16_t)(sum >> 16);
  lo += hi;
  if (lo < hi) lo++;
  return (uint16_t)~lo;
}

/* Decrements the TTL; 0 when it reached zero. The checksum patch is upstream's. */
static int decrement_ttl(uint8_t *ip) {
  if (--ip[8] == 0) return 0;
  uint16_t check;
  memcpy(&check, ip + 10, 2);
  if (check >= htons(0xFFFFu - 0x100)) {
    check += htons(0x100) + 1;
  } else {
    check += htons(0x100);
  }
  memcpy(ip + 10, &check, 2);
  return 1;
}

static void send_net_unreachable(int tun, const uint8_t *offender) {
  const size_t ihl = (size_t)(offender[0] & 0x0f) * 4;
  if (ihl >= 60) return;                      /* upstream refuses sizeof(iphdr) + MAX_IPOPTLEN */
  if (offender[9] == IPPROTO_ICMP) return;    /* no ICMP about ICMP (RFC 792) */
  uint16_t frag;
  memcpy(&frag, offender + 6, 2);
  if ((frag & htons(0x1FFF)) != 0) return;    /* first fragments only */
  uint8_t pkt[20 + 8 + 60 + 8] __attribute__((aligned(4)));
  const size_t len = 20 + 8 + ihl + 8;
  memset(pkt, 0, sizeof(pkt));
  pkt[0] = 0x45;
  const uint16_t total = htons((uint16_t)len);
  memcpy(pkt + 2, &total, 2);
  pkt[8] = 8;
  pkt[9] = IPPROTO_ICMP;
  memcpy(pkt + 12, &tun_address, 4);
  memcpy(pkt + 16, offender + 12, 4);
  const uint16_t ipsum = sum32(pkt, 5);
  memcpy(pkt + 10, &ipsum, 2);
  pkt[20] = 3; /* destination unreachable */
  pkt[21] = 0; /* network unreachable */
  memcpy(pkt + 28, offender, ihl + 8);
  /* Like upstream, whole 32-bit words only (ihl + 8 is a multiple of 4). */
  const uint16_t icmpsum = sum32(pkt + 20, (8 + ihl + 8) / 4);
  memcpy(pkt + 22, &icmpsum, 2);
  if (write(tun, pkt, len) < 0) {
    /* upstream logs this at -v >= 1 only */
  }
}

static int tun_to_udp(int tun, int sock, uint8_t *buf, size_t buflen) {
  const ssize_t n = read(tun, buf, buflen);
  if (n < 20) return 0;
  uint32_t dst;
  memcpy(&dst, buf + 16, 4);
  const struct sockaddr_in *hop = find_route(dst);
  if (!hop) {
    send_net_unreachable(tun, buf);
    return 1;
  }
  if (!decrement_ttl(buf)) return 1;
  (void)sendto(sock, buf, (size_t)n, 0, (const struct sockaddr *)hop, sizeof(*hop));
  return 1;
}

static int udp_to_tun(int sock, int tun, uint8_t *buf, size_t buflen) {
  const ssize_t n = recv(sock, buf, buflen, MSG_DONTWAIT);
  if (n < 20) return 0;
  if (!decrement_ttl(buf)) return 1;
  for (;;) {
    if (write(tun, buf, (size_t)n) >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) break;
  }
  return 1;
}

/* Applies one control line; 0 when it is not a valid command. */
static int control(const char *line) {
  char net[64], peer[64];
  int len, port;
  if (sscanf(line, "set %63[0-9.]/%d %63s %d", net, &len, peer, &port) == 4) {
    struct sockaddr_in hop = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct in_addr a;
    if (inet_pton(AF_INET, net, &a) != 1 || inet_pton(AF_INET, peer, &hop.sin_addr) != 1 || len < 0 || len > 32) {
      return 0;
    }
    set_route(a.s_addr & mask_of(len), mask_of(len), &hop);
    return 1;
  }
  if (sscanf(line, "del %63[0-9.]/%d", net, &len) == 2) {
    struct in_addr a;
    if (inet_pton(AF_INET, net, &a) != 1 || len < 0 || len > 32) return 0;
    del_route(a.s_addr & mask_of(len), mask_of(len));
    return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: %s <tun-name> <bind-address> <port> <tun-address> <mtu>\n", argv[0]);
    return 2;
  }
  const size_t mtu = (size_t)atoi(argv[5]);
  struct in_addr tun_in;
  struct sockaddr_in bind_to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[3]))};
  if (inet_pton(AF_INET, argv[4], &tun_in) != 1 || inet_pton(AF_INET, argv[2], &bind_to.sin_addr) != 1 || mtu < 68) {
    fprintf(stderr, "bad address or MTU\n");
    return 2;
  }
  tun_address = tun_in.s_addr;

  const int tun = open("/dev/net/tun", O_RDWR);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  strncpy(ifr.ifr_name, argv[1], IFNAMSIZ - 1);
  if (tun < 0 || ioctl(tun, TUNSETIFF, &ifr) < 0) {
    perror("TUN");
    return 1;
  }
  fcntl(tun, F_SETFL, O_NONBLOCK);
  const int sock = socket(AF_INET, SOCK_DGRAM, 0);
  if (sock < 0 || bind(sock, (struct sockaddr *)&bind_to, sizeof(bind_to)) < 0) {
    perror("UDP socket");
    return 1;
  }
  printf("{\"event\":\"ready\",\"tun\":\"%s\"}\n", ifr.ifr_name);
  fflush(stdout);

  uint8_t *buf = malloc(mtu);
  char line[256];
  size_t used = 0;
  struct pollfd fds[3] = {{.fd = tun, .events = POLLIN}, {.fd = sock, .events = POLLIN}, {.fd = 0, .events = POLLIN}};
  for (;;) {
    if (poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      perror("poll");
      return 1;
    }
    if (fds[2].revents & (POLLIN | POLLHUP)) {
      const ssize_t n = read(0, line + used, sizeof(line) - 1 - used);
      if (n <= 0) break;
      used += (size_t)n;
      line[used] = '\0';
      char *nl;
      while ((nl = strchr(line, '\n')) != NULL) {
        *nl = '\0';
        printf("{\"reply\":\"%s\"}\n", control(line) ? "ok" : "error");
        fflush(stdout);
        used -= (size_t)(nl + 1 - line);
        memmove(line, nl + 1, used + 1);
      }
      if (used == sizeof(line) - 1) used = 0; /* an overlong line is dropped */
    }
    if ((fds[0].revents & POLLIN) || (fds[1].revents & POLLIN)) {
      int active;
      do {
        active = tun_to_udp(tun, sock, buf, mtu);
        active += udp_to_tun(sock, tun, buf, mtu);
      } while (active);
    }
  }
  free(buf);
  close(sock);
  close(tun);
  return 0;
}

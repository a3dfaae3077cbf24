/*
 * UDP request/response round trips for the benchmark's IPv6 modes (the
 * sockperf that Debian ships, 3.7, takes IPv4 addresses only). The same
 * measurement as `sockperf ping-pong --full-rtt`: one message in flight, a
 * fixed-size datagram echoed back by the server, each round trip timed with
 * CLOCK_MONOTONIC.
 *
 *   udp_rtt server <address> <port>
 *   udp_rtt client <address> <port> <seconds> <message bytes>
 *
 * The client prints {"count":N,"p50_us":X,"p99_us":Y} on stdout and exits 0
 * (1 when no round trip completed). Either address family.
 */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_SAMPLES (20 * 1000 * 1000)

static int open_socket(const char* addr, const char* port, int passive, struct sockaddr_storage* peer, socklen_t* len) {
  struct addrinfo hints, *ai;
  memset(&hints, 0, sizeof(hints));
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_NUMERICHOST | (passive ? AI_PASSIVE : 0);
  if (getaddrinfo(addr, port, &hints, &ai) != 0) {
    fprintf(stderr, "udp_rtt: bad address %s port %s\n", addr, port);
    exit(2);
  }
  int fd = socket(ai->ai_family, SOCK_DGRAM, 0);
  if (fd < 0 || (passive && bind(fd, ai->ai_addr, ai->ai_addrlen) < 0)) {
    perror("udp_rtt: socket/bind");
    exit(2);
  }
  memcpy(peer, ai->ai_addr, ai->ai_addrlen);
  *len = ai->ai_addrlen;
  freeaddrinfo(ai);
  return fd;
}

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int cmp(const void* a, const void* b) {
  const double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char** argv) {
  char buf[65536];
  struct sockaddr_storage peer;
  socklen_t len;
  if (argc == 4 && strcmp(argv[1], "server") == 0) {
    int fd = open_socket(argv[2], argv[3], 1, &peer, &len);
    for (;;) {
      len = sizeof(peer);
      ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr*)&peer, &len);
      if (n >= 0) sendto(fd, buf, (size_t)n, 0, (struct sockaddr*)&peer, len);
    }
  }
  if (argc != 6 || strcmp(argv[1], "client") != 0) {
    fprintf(stderr, "usage: udp_rtt server <address> <port> | client <address> <port> <seconds> <bytes>\n");
    return 2;
  }
  const double seconds = atof(argv[4]);
  const size_t size = (size_t)atoi(argv[5]);
  if (size == 0 || size > sizeof(buf)) return 2;
  int fd = open_socket(argv[2], argv[3], 0, &peer, &len);
  struct timeval tv = {1, 0};  // a lost datagram costs a second, not the run
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  double* rtt = malloc(sizeof(double) * MAX_SAMPLES);
  if (!rtt) return 2;
  memset(buf, 0x5a, size);
  size_t count = 0;
  const double end = now_ns() + seconds * 1e9;
  while (count < MAX_SAMPLES) {
    const double t0 = now_ns();
    if (t0 >= end) break;
    if (sendto(fd, buf, size, 0, (struct sockaddr*)&peer, len) < 0) continue;
    if (recv(fd, buf, sizeof(buf), 0) < 0) continue;
    rtt[count++] = (now_ns() - t0) / 1e3;
  }
  if (count == 0) {
    fprintf(stderr, "udp_rtt: no round trip completed\n");
    return 1;
  }
  qsort(rtt, count, sizeof(double), cmp);
  printf("{\"count\":%zu,\"p50_us\":%.3f,\"p99_us\":%.3f}\n", count, rtt[count / 2], rtt[(size_t)((double)count * 0.99)]);
  return 0;
}

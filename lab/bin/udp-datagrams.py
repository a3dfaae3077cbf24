#!/usr/bin/env python3
"""Numbered UDP datagrams with checkable contents, for datapath tests.

Node's dgram module cannot send with UDP_SEGMENT, which is how a pod makes
the kernel hand flannel0 a UDP GSO (USO) packet; Python's socket.sendmsg can.

  udp-datagrams.py serve <addr> <port> <idle_ms>
      prints {"event":"listening"}, then, once no datagram came for idle_ms
      after the first (or none came in the first 20 s: every one was lost),
      {"event":"received","count":N,"bad":B,"distinct":D,"sizes":{...}}
  udp-datagrams.py send <bind_addr> <addr> <port> <count> <size,size,...> [gso]
      sends `count` datagrams, cycling through the sizes; with `gso`, groups
      of up to 32 equal-size datagrams go out in one UDP_SEGMENT send.
      prints {"event":"sent","count":N}
  udp-datagrams.py burst <bind_addr> <addr> <port> <hex,hex,...>
      sends the given payloads (all of one size but a shorter last) as one
      UDP_SEGMENT send: a receiver with UDP_GRO may read them as one message.
      prints {"event":"sent","count":N}

Datagram i of size s: 4-byte index, 4-byte size (network order), then bytes
(i * 7 + j) & 0xff for j in 0..s-9. Sizes are at least 8.
"""
import json
import select
import socket
import struct
import sys
import time

SOL_UDP = 17
UDP_SEGMENT = 103  # linux/udp.h


def datagram(i, size):
    return struct.pack("!II", i, size) + bytes(((i * 7 + j) & 0xFF) for j in range(size - 8))


def valid(d):
    if len(d) < 8:
        return False
    i, size = struct.unpack_from("!II", d)
    return size == len(d) and d == datagram(i, size)


def serve(addr, port, idle_ms):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind((addr, port))
    print(json.dumps({"event": "listening"}), flush=True)
    count = bad = 0
    seen = set()
    sizes = {}
    while True:
        r, _, _ = select.select([s], [], [], idle_ms / 1000 if count else 20)
        if not r:
            break
        d = s.recv(65536)
        count += 1
        if valid(d):
            seen.add(struct.unpack_from("!I", d)[0])
            sizes[len(d)] = sizes.get(len(d), 0) + 1
        else:
            bad += 1
    print(json.dumps({"event": "received", "count": count, "bad": bad, "distinct": len(seen), "sizes": sizes}), flush=True)


def send(bind_addr, addr, port, count, sizes, gso):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((bind_addr, 0))
    dest = (addr, port)
    sent = 0
    i = 0
    while i < count:
        size = sizes[i % len(sizes)]
        if gso:
            n = min(32, count - i)
            group = b"".join(datagram(i + k, size) for k in range(n))
            s.sendmsg([group], [(SOL_UDP, UDP_SEGMENT, struct.pack("=H", size))], 0, dest)
            i += n
            sent += n
        else:
            s.sendto(datagram(i, size), dest)
            i += 1
            sent += 1
        if sent % 64 < (32 if gso else 1):
            time.sleep(0.002)  # keep well under any socket buffer: this checks content, not speed
    print(json.dumps({"event": "sent", "count": sent}), flush=True)


def burst(bind_addr, addr, port, payloads):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((bind_addr, 0))
    size = len(payloads[0])
    s.sendmsg([b"".join(payloads)], [(SOL_UDP, UDP_SEGMENT, struct.pack("=H", size))], 0, (addr, port))
    print(json.dumps({"event": "sent", "count": len(payloads)}), flush=True)


def main():
    a = sys.argv[1:]
    if a[:1] == ["serve"] and len(a) == 4:
        serve(a[1], int(a[2]), int(a[3]))
    elif a[:1] == ["send"] and len(a) in (6, 7):
        send(a[1], a[2], int(a[3]), int(a[4]), [int(x) for x in a[5].split(",")], len(a) == 7 and a[6] == "gso")
    elif a[:1] == ["burst"] and len(a) == 5:
        burst(a[1], a[2], int(a[3]), [bytes.fromhex(x) for x in a[4].split(",")])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()

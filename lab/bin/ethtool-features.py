#!/usr/bin/env python3
"""Show or set a network device's offload features, as `ethtool -k/-K` does.

Debian's ethtool is not part of the test machine's package list, so tests use
this: the SIOCETHTOOL ioctl with ETHTOOL_GSSET_INFO/GSTRINGS (feature names),
ETHTOOL_GFEATURES and ETHTOOL_SFEATURES (include/uapi/linux/ethtool.h).

  ethtool-features.py <iface>                      prints {"name": active, ...} as JSON
  ethtool-features.py <iface> <feature>=on|off ... sets them, prints the new state

Exits 2 with a message when a feature name is unknown or cannot be changed.
"""
import ctypes
import fcntl
import json
import socket
import struct
import sys

SIOCETHTOOL = 0x8946
ETHTOOL_GSTRINGS = 0x1B
ETHTOOL_GSSET_INFO = 0x37
ETHTOOL_GFEATURES = 0x3A
ETHTOOL_SFEATURES = 0x3B
ETH_SS_FEATURES = 4
ETH_GSTRING_LEN = 32


def ethtool(sock, iface, buf):
    # struct ifreq: char ifr_name[16]; then a union whose ifr_data is a pointer.
    ifr = struct.pack("16sP", iface.encode(), ctypes.addressof(buf)) + b"\0" * 16
    fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifr)


def feature_names(sock, iface):
    info = ctypes.create_string_buffer(struct.pack("IIQI", ETHTOOL_GSSET_INFO, 0, 1 << ETH_SS_FEATURES, 0))
    ethtool(sock, iface, info)
    count = struct.unpack_from("I", info.raw, 16)[0]
    strings = ctypes.create_string_buffer(struct.pack("III", ETHTOOL_GSTRINGS, ETH_SS_FEATURES, count) + b"\0" * (count * ETH_GSTRING_LEN))
    ethtool(sock, iface, strings)
    raw = strings.raw[12:]
    return [raw[i * ETH_GSTRING_LEN:(i + 1) * ETH_GSTRING_LEN].split(b"\0", 1)[0].decode() for i in range(count)]


def get_features(sock, iface, count):
    blocks = (count + 31) // 32
    buf = ctypes.create_string_buffer(struct.pack("II", ETHTOOL_GFEATURES, blocks) + b"\0" * (16 * blocks))
    ethtool(sock, iface, buf)
    out = []
    for b in range(blocks):
        available, requested, active, never = struct.unpack_from("IIII", buf.raw, 8 + 16 * b)
        out.append((available, requested, active, never))
    return out


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: ethtool-features.py <iface> [<feature>=on|off ...]")
    iface = sys.argv[1]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    names = feature_names(sock, iface)
    index = {n: i for i, n in enumerate(names) if n}
    blocks = get_features(sock, iface, len(names))
    changes = sys.argv[2:]
    if changes:
        valid = [0] * len(blocks)
        requested = [blk[1] for blk in blocks]
        for change in changes:
            name, _, value = change.partition("=")
            if name not in index or value not in ("on", "off"):
                print(f"ethtool-features: unknown feature or value {change!r} (known: {', '.join(sorted(index))})", file=sys.stderr)
                sys.exit(2)
            i = index[name]
            b, bit = divmod(i, 32)
            if not blocks[b][0] & (1 << bit) or blocks[b][3] & (1 << bit):
                print(f"ethtool-features: {name} cannot be changed on {iface}", file=sys.stderr)
                sys.exit(2)
            valid[b] |= 1 << bit
            if value == "on":
                requested[b] |= 1 << bit
            else:
                requested[b] &= ~(1 << bit)
        payload = struct.pack("II", ETHTOOL_SFEATURES, len(blocks))
        for b in range(len(blocks)):
            payload += struct.pack("II", valid[b], requested[b] & 0xFFFFFFFF)
        ethtool(sock, iface, ctypes.create_string_buffer(payload))
        blocks = get_features(sock, iface, len(names))
    state = {}
    for name, i in index.items():
        b, bit = divmod(i, 32)
        state[name] = bool(blocks[b][2] & (1 << bit))
    print(json.dumps(state))


if __name__ == "__main__":
    main()

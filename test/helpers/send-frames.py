#!/usr/bin/env python3
"""Send N raw Ethernet frames out of one interface (AF_PACKET), for the test helpers.

Each frame: dst MAC, src MAC, EtherType, then the payload b"VUNT" + 4-byte big-endian
sequence number, zero-padded to --size bytes (the size handed to the kernel, without FCS).
Prints the number of frames sent. Needs CAP_NET_RAW and the interface up.
"""
import argparse
import errno
import socket
import struct
import sys
import time

MAGIC = b"VUNT"


def mac_bytes(text):
    parts = text.split(":")
    if len(parts) != 6:
        raise argparse.ArgumentTypeError(f"bad MAC {text!r}")
    return bytes(int(p, 16) for p in parts)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ifname", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--dst", type=mac_bytes, default=mac_bytes("ff:ff:ff:ff:ff:ff"))
    parser.add_argument("--src", type=mac_bytes, default=mac_bytes("02:00:00:00:00:01"))
    parser.add_argument("--ethertype", type=lambda t: int(t, 0), default=0x88B5)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    header = args.dst + args.src + struct.pack("!H", args.ethertype)
    if args.size < len(header) + len(MAGIC) + 4:
        parser.error(f"--size must be at least {len(header) + len(MAGIC) + 4}")

    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((args.ifname, 0))
    sent = 0
    while sent < args.count:
        frame = header + MAGIC + struct.pack("!I", sent)
        frame += bytes(args.size - len(frame))
        try:
            sock.send(frame)
        except OSError as error:
            if error.errno in (errno.ENOBUFS, errno.EAGAIN):
                time.sleep(0.001)  # the device queue is full: let it drain, then retry this frame
                continue
            raise
        sent += 1
    sock.close()
    print(sent)
    return 0


if __name__ == "__main__":
    sys.exit(main())

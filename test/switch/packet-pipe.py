#!/usr/bin/env python3
"""Bridge one interface to stdin/stdout as hex lines, for tests that serve a segment from Node.

Every frame the interface receives (not the ones it sends) is printed as one hex line; every hex
line read from stdin is sent out of the interface as one frame. Prints "ready" once bound.
Needs CAP_NET_RAW; exits when stdin closes.
"""
import os
import selectors
import socket
import sys

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def main():
    ifname = sys.argv[1]
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((ifname, 0))
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    sel.register(sys.stdin, selectors.EVENT_READ)
    print("ready", flush=True)
    pending = b""
    while True:
        for key, _ in sel.select():
            if key.fileobj is sock:
                frame, address = sock.recvfrom(65536)
                if address[2] != PACKET_OUTGOING:
                    print(frame.hex(), flush=True)
            else:
                chunk = os.read(sys.stdin.fileno(), 65536)
                if not chunk:
                    return
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        sock.send(bytes.fromhex(line.decode()))


if __name__ == "__main__":
    main()

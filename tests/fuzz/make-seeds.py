#!/usr/bin/env python3
"""Writes the seed corpora under tests/fuzz/corpus/<target>/: well-formed inputs of each decoder,
so the fuzzers start past the framing checks. Run it after changing a wire format; the seeds are
committed. Python 3 standard library only."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
MAGIC = 0x57524E50
VERSION = 1


def msg(mtype, body, seq=1):
    return struct.pack("<IHHII", MAGIC, VERSION, mtype, 16 + len(body), seq) + body


def hello(name=b"seed"):
    return msg(1, struct.pack("<HHI", 1, 1, 0) + name.ljust(64, b"\0"))


def create_queue(entries=8, doorbell=0, wait=0):
    return msg(3, struct.pack("<IIBBHI", entries, entries, doorbell, wait, 0, 0))


def register_region(size, mode=4):
    return msg(7, struct.pack("<QBBHI", size, mode, 0, 0, 0))


def record(dgram, fds=(), patch=True):
    """fuzz_control's record: flags, len, nfds, (kind, size) per fd, datagram."""
    out = struct.pack("<BHB", 0 if patch else 0x80, len(dgram), len(fds))
    for kind, size in fds:
        out += struct.pack("<BB", kind, size)
    return out + dgram


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    # control: the handshake, a queue (memfd laid out for 8 entries = kind 0 size 2), a region,
    # stats, a destroy, a deregister; and the same without Hello.
    q8 = [(0, 2), (3, 0), (3, 0)]
    write("control", "hello", record(hello()))
    write("control", "hello-queue", record(hello()) + record(create_queue(), q8))
    write("control", "hello-queue-eventfd",
          record(hello()) + record(create_queue(doorbell=1, wait=1), q8))
    write("control", "hello-region",
          record(hello()) + record(register_region(8192), [(1, 2)]))
    write("control", "hello-stats", record(hello()) + record(msg(12, struct.pack("<II", 0, 0))))
    write("control", "no-hello-stats", record(msg(12, struct.pack("<II", 0, 0))))
    write("control", "full-session",
          record(hello()) + record(create_queue(), q8) + record(register_region(4096), [(1, 1)]) +
          record(msg(12, struct.pack("<II", 0, 0))) + record(msg(5, struct.pack("<II", 1, 0))) +
          record(msg(9, struct.pack("<II", 1, 0))))
    write("control", "unsealed-region",
          record(hello()) + record(register_region(4096), [(2, 1)]))
    # dataplane: actions (0 write slot, 1 tail, 2 reap, 3 cq_head, 4 flags, 5 serve).
    def desc(ud, op, flags=0, src=0, dst=0, so=0, do=0, length=0, value=0):
        return struct.pack("<QBBHIIQQQQQ", ud, op, flags, 0, src, dst, so, do, length, value, 0)[:64]
    nop = bytes([0, 0]) + desc(1, 0)
    copy = bytes([0, 1]) + desc(2, 1, 0, 1, 2, 0, 0, 4096)
    cks = bytes([0, 2]) + desc(3, 2, 0, 1, 0, 0, 0, 8192)
    fill = bytes([0, 3]) + desc(4, 3, 1, 0, 2, 0, 0, 16384, 0x0102030405060708)
    alias = bytes([0, 4]) + desc(5, 1, 0, 1, 3, 0, 128, 1024)
    fence = bytes([0, 5]) + desc(6, 1, 2, 2, 1, 0, 0, 64)
    serve = bytes([5])
    write("dataplane", "nop", nop + bytes([1, 1]) + serve + bytes([2]))
    write("dataplane", "mixed", nop + copy + cks + fill + alias + fence + bytes([1, 6]) +
          serve * 8 + bytes([2]) + serve)
    write("dataplane", "big-checksum", cks + bytes([1, 1]) + serve * 40 + bytes([2]))
    write("dataplane", "corrupt-tail", nop + bytes([1, 0xff]) + serve + serve)
    write("dataplane", "corrupt-cq-head", nop + bytes([1, 1]) + bytes([3]) +
          struct.pack("<I", 77) + serve)
    # rdma_wire: a client ConnectRequest, a control message with grants and descriptors, tokens.
    # ConnectRequest: magic, version, flags, sq/cq entries, sq/cq addr, sq/cq rkey, recv depth.
    creq = struct.pack("<IHHIIQQIIII", 0x52524E50, 1, 0, 64, 128, 0x100000, 0x200000, 7, 8, 16, 0)
    write("rdma_wire", "connect", b"\0" + creq)
    write("rdma_wire", "connect-peer", b"\0" + struct.pack(
        "<IHHIIQQIIII", 0x52524E50, 1, 2, 0, 0, 0, 0, 0, 0, 16, 0))
    grants = struct.pack("<B", 2) + struct.pack("<QQB", 0x10000, 8192, 1) + \
        struct.pack("<QQB", 0x11000, 8192, 1)
    write("rdma_wire", "grants-copy", b"\1" + grants + desc(1, 1, 0, 1, 2, 4096, 0, 1024))
    write("rdma_wire", "token", b"\2" + b"a000001:3:deadbeef")
    # config: a flagfile as ringd.flags holds it.
    write("config", "defaults", b"# ringd.flags\n--backend=cpu\n--pollers=1\n")
    write("config", "limits", b"--max_connections=16\n--max_queues=4\n--serve_budget_bytes=8192\n"
          b"--max_registered_bytes_per_uid=1048576\n--socket_mode=0666\n")
    write("config", "fork-mode", b"--default_fork_mode=dontfork\n--admin_group=wheel\n")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Send COUNT malformed or random Ethernet frames out of IFNAME through an
AF_PACKET socket (run inside the guest's namespace). Seeded, so a failure
can be replayed. Prints how many the kernel accepted."""
import random, socket, struct, sys

ifname, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
src = open(f"/sys/class/net/{ifname}/address").read().strip()
src_bytes = bytes(int(x, 16) for x in src.split(":"))
bcast = b"\xff" * 6

def junk():
    kind = rng.randrange(6)
    if kind == 0:  # random bytes, random length (random source MACs too)
        return rng.randbytes(rng.randrange(14, 1515))
    if kind == 1:  # IPv4 header cut short
        return bcast + src_bytes + b"\x08\x00" + rng.randbytes(rng.randrange(0, 20))
    if kind == 2:  # IPv4 with a lying total length and a bad checksum
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 60000, 1, 0, 64, 6, 0xdead, b"\x0a\x0a\x00\x01", b"\x0a\x0a\x00\x02")
        return bcast + src_bytes + b"\x08\x00" + hdr + rng.randbytes(rng.randrange(0, 40))
    if kind == 3:  # ARP with garbage hardware/protocol types
        return bcast + src_bytes + b"\x08\x06" + rng.randbytes(rng.randrange(0, 40))
    if kind == 4:  # IHL below 5 / above the data
        return bcast + src_bytes + b"\x08\x00" + bytes([0x40 | rng.randrange(16)]) + rng.randbytes(rng.randrange(0, 80))
    # multicast/broadcast source MAC: never learnable
    return bcast + b"\x01" + rng.randbytes(5) + b"\x08\x00" + rng.randbytes(rng.randrange(0, 100))

sent = 0
for _ in range(count):
    try:
        s.send(junk())
        sent += 1
    except OSError:
        pass
print(sent)

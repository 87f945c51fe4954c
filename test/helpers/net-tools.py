#!/usr/bin/env python3
"""Small traffic tools for the integration tests, run inside test namespaces.

  net-tools.py udp-echo-server HOST PORT SECONDS
  net-tools.py udp-echo-client HOST PORT MESSAGE        -> prints the echo
  net-tools.py blob-server HOST PORT SECONDS            -> each connection: read 4-byte seed, send 1 MiB derived from it
  net-tools.py blob-clients HOST PORT COUNT             -> COUNT concurrent connections, checks every byte; prints "ok N"
  net-tools.py reset-server HOST PORT SECONDS           -> sends 8 MiB then closes with RST (SO_LINGER 0)
  net-tools.py syn-flood SRC DST COUNT                  -> COUNT TCP SYNs from SRC to DST, random closed ports (raw socket)
  net-tools.py whoami-server HOST PORT SECONDS          -> TCP and UDP on PORT: answers each client with its address
  net-tools.py whoami-client HOST PORT tcp|udp          -> prints the address the server saw
  net-tools.py full-queue-server HOST PORT SECONDS      -> TCP whoami whose accept queue stays full until a SYN is dropped (a connect "in progress"); prints "ready"
  net-tools.py udp-sizes-client HOST PORT SIZE,SIZE,... -> one datagram of each size to an echo server, checks every byte; prints "ok SIZE" each
  net-tools.py udp-burst-server HOST PORT SECONDS       -> each request "COUNT SIZE": COUNT datagrams of SIZE bytes back at once (datagram i: its index, then bytes derived from it)
  net-tools.py udp-burst-client HOST PORT COUNT SIZE    -> asks for a burst, checks every datagram and their order; prints "ok COUNT"
  net-tools.py udp-burst-echo HOST PORT COUNT SIZE      -> COUNT datagrams of SIZE bytes back to back to an echo server, checks every echo; prints "ok COUNT"
  net-tools.py frag-flood SRC DST COUNT                 -> COUNT lone first fragments (1 KiB, MF set, distinct IDs, 100 per 2 ms) from SRC to DST (raw socket)
Every server stops by itself after SECONDS."""
import asyncio, hashlib, os, random, select, socket, struct, sys, time

BLOB = 1 << 20

def blob(seed: int) -> bytes:
    out, block = bytearray(), seed.to_bytes(4, "big")
    while len(out) < BLOB:
        block = hashlib.sha256(block).digest()
        out += block * 64
    return bytes(out[:BLOB])

def udp_serve(host, port, seconds, answer):
    """Calls answer(socket, datagram, peer) for each datagram for SECONDS."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), 8 << 20)  # a burst waits whole while we answer
    s.bind((host, int(port)))
    s.settimeout(0.5)
    end = time.time() + float(seconds)
    while time.time() < end:
        try:
            data, peer = s.recvfrom(65535)
        except socket.timeout:
            continue
        answer(s, data, peer)

def udp_echo_server(host, port, seconds):
    udp_serve(host, port, seconds, lambda s, data, peer: s.sendto(data, peer))

def udp_ask(host, port, message, s=None):
    """Sends `message` (up to 3 times) and returns the first answer's bytes."""
    if s is None:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(2)
    for _ in range(3):
        s.sendto(message, (host, int(port)))
        try:
            return s.recvfrom(65535)[0]
        except socket.timeout:
            continue
    sys.exit(f"no answer to {len(message)} bytes")

def udp_echo_client(host, port, message):
    print(udp_ask(host, port, message.encode()).decode())

def whoami_server(host, port, seconds):
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((host, int(port)))
    tcp.listen(16)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((host, int(port)))
    end = time.time() + float(seconds)
    while time.time() < end:
        ready, _, _ = select.select([tcp, udp], [], [], 0.5)
        if tcp in ready:
            conn, peer = tcp.accept()
            conn.sendall(peer[0].encode() + b"\n")
            conn.close()
        if udp in ready:
            _, peer = udp.recvfrom(65535)
            udp.sendto(peer[0].encode(), peer)

def listen_overflows():
    """TcpExt ListenOverflows of this namespace: SYNs dropped because an accept queue was full."""
    with open("/proc/net/netstat") as f:
        rows = [line.split() for line in f if line.startswith("TcpExt:")]
    return int(rows[1][rows[0].index("ListenOverflows")])

def full_queue_server(host, port, seconds):
    """A whoami TCP server whose accept queue is full until a SYN has been dropped, so that
    connect(2) to it returns "in progress"; then it answers every client, the first one too."""
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((host, int(port)))
    tcp.listen(0)
    filler = socket.create_connection((host, int(port)))
    before = listen_overflows()
    print("ready", flush=True)
    end = time.time() + float(seconds)
    while listen_overflows() == before and time.time() < end:
        time.sleep(0.01)
    filler.close()
    while time.time() < end:
        ready, _, _ = select.select([tcp], [], [], 0.5)
        if ready:
            conn, peer = tcp.accept()
            try:
                conn.sendall(peer[0].encode() + b"\n")
            except OSError:
                pass
            conn.close()

def whoami_client(host, port, protocol):
    if protocol == "tcp":
        with socket.create_connection((host, int(port)), timeout=5) as s:
            print(s.recv(100).decode().strip())
    else:
        print(udp_ask(host, port, b"?").decode())

async def blob_server(host, port, seconds):
    async def handle(reader, writer):
        try:
            seed = struct.unpack("!I", await reader.readexactly(4))[0]
            writer.write(blob(seed))
            await writer.drain()
        finally:
            writer.close()
    server = await asyncio.start_server(handle, host, int(port), backlog=1024)
    await asyncio.sleep(float(seconds))
    server.close()

async def blob_clients(host, port, count):
    async def one(i):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(struct.pack("!I", i))
        data = await reader.readexactly(BLOB)
        writer.close()
        return data == blob(i)
    results = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(int(count))), return_exceptions=True), 120)
    good = sum(1 for r in results if r is True)
    print(f"ok {good}")
    bad = [r for r in results if r is not True]
    if bad:
        sys.exit(f"{len(bad)} failed, first: {bad[0]!r}")

def paced_clients(host, port, count, gap_ms):
    """COUNT connections one after another, GAP_MS apart, to a crr server (bench/tools/tcpload.py):
    each sends a byte, reads the answer and closes first, so its port waits in TIME-WAIT here.
    Prints "ok COUNT", or exits saying how many went before the first failure."""
    for i in range(int(count)):
        try:
            with socket.create_connection((host, int(port)), timeout=5) as s:
                s.sendall(b"c")
                if s.recv(1) != b"s":
                    sys.exit(f"{i} connected, then no answer")
        except OSError as e:
            sys.exit(f"{i} connected, then {e!r}")
        time.sleep(float(gap_ms) / 1000)
    print(f"ok {count}")

def reset_server(host, port, seconds):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, int(port)))
    s.listen(8)
    s.settimeout(float(seconds))
    try:
        c, _ = s.accept()
    except socket.timeout:
        return
    try:
        c.sendall(os.urandom(8 << 20))
    except OSError:
        pass
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()

def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data)//2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF

def syn_flood(src, dst, count):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    rng = random.Random(7)
    srcb, dstb = socket.inet_aton(src), socket.inet_aton(dst)
    for i in range(int(count)):
        sport, dport = 20000 + (i % 40000), rng.randrange(20000, 60000)
        tcp = struct.pack("!HHIIBBHHH", sport, dport, rng.randrange(1 << 32), 0, 5 << 4, 0x02, 64240, 0, 0)
        pseudo = srcb + dstb + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(tcp))
        tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
        s.sendto(tcp, (dst, 0))
    print(count)

def udp_sizes_client(host, port, sizes):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    for size in (int(n) for n in sizes.split(",")):
        message = (blob(size) * (size // BLOB + 1))[:size]
        echo = udp_ask(host, port, message, s)
        if echo != message:
            sys.exit(f"echo of {size} bytes came back as {len(echo)} different bytes")
        print("ok", size, flush=True)

def burst_datagram(i, size):
    index = struct.pack("!I", i)
    return (index + hashlib.sha256(index).digest() * (size // 32 + 1))[:size]

def udp_burst_server(host, port, seconds):
    def answer(s, request, peer):
        count, size = (int(n) for n in request.split())
        burst = [burst_datagram(i, size) for i in range(count)]  # built first, so they leave back to back
        for datagram in burst:
            s.sendto(datagram, peer)
    udp_serve(host, port, seconds, answer)

def udp_burst_client(host, port, count, size):
    count, size = int(count), int(size)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), 8 << 20)  # room for the whole burst (past rmem_max: root): no loss in the guest
    s.settimeout(3)
    s.sendto(f"{count} {size}".encode(), (host, int(port)))
    for i in range(count):
        try:
            datagram = s.recv(65535)
        except socket.timeout:
            sys.exit(f"{i} of {count} datagrams arrived")
        if datagram != burst_datagram(i, size):
            sys.exit(f"datagram {i} of {count}: {len(datagram)} bytes, not the expected {size} (index {struct.unpack('!I', datagram[:4])[0]})")
    print("ok", count)

def udp_burst_echo(host, port, count, size):
    count, size = int(count), int(size)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), 8 << 20)
    s.settimeout(3)
    for i in range(count):
        s.sendto(burst_datagram(i, size), (host, int(port)))
    echoes = set()
    while len(echoes) < count:
        try:
            echo = s.recv(65535)
        except socket.timeout:
            sys.exit(f"{len(echoes)} of {count} echoes came back")
        i = struct.unpack("!I", echo[:4])[0]
        if i >= count or echo != burst_datagram(i, size):
            sys.exit(f"a wrong echo of {len(echo)} bytes")
        echoes.add(i)
    print("ok", count)

def frag_flood(src, dst, count):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)  # IP_HDRINCL: we write the IPv4 header
    srcb, dstb, data = socket.inet_aton(src), socket.inet_aton(dst), bytes(1024)
    for i in range(int(count)):
        # Version/IHL, TOS, total length, ID, flags+offset (MF, offset 0), TTL, UDP, checksum (the kernel fills it), addresses.
        header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(data), 1 + i % 65535, 0x2000, 64, socket.IPPROTO_UDP, 0, srcb, dstb)
        s.sendto(header + data, (dst, 0))
        if i % 100 == 99:
            time.sleep(0.002)  # paced, so the guest's TAP queue does not drop them before the engine sees them
    print(count)

if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "udp-echo-server": udp_echo_server(*args)
    elif cmd == "udp-echo-client": udp_echo_client(*args)
    elif cmd == "blob-server": asyncio.run(blob_server(*args))
    elif cmd == "blob-clients": asyncio.run(blob_clients(*args))
    elif cmd == "paced-clients": paced_clients(*args)
    elif cmd == "reset-server": reset_server(*args)
    elif cmd == "syn-flood": syn_flood(*args)
    elif cmd == "whoami-server": whoami_server(*args)
    elif cmd == "whoami-client": whoami_client(*args)
    elif cmd == "full-queue-server": full_queue_server(*args)
    elif cmd == "udp-sizes-client": udp_sizes_client(*args)
    elif cmd == "frag-flood": frag_flood(*args)
    elif cmd == "udp-burst-server": udp_burst_server(*args)
    elif cmd == "udp-burst-client": udp_burst_client(*args)
    elif cmd == "udp-burst-echo": udp_burst_echo(*args)
    else: sys.exit(f"unknown command {cmd}")

#!/usr/bin/env python3
"""Small TCP load tools for the NAT bench (bench/nat.ts).

  tcpload.py rr-server  --port P          echo fixed-size messages, one connection at a time
  tcpload.py rr-client  --host H --port P [--count N] [--size B] [--warmup W]
  tcpload.py crr-server --port P          per connection: read 1 byte, answer 1 byte, wait for EOF
  tcpload.py crr-client --host H --port P [--count N]

rr: request/response over ONE connection with TCP_NODELAY; the client first
sends the message size (4 bytes, big-endian), the server acknowledges it by
echoing those 4 bytes, then every message comes back whole.
crr: N sequential connections, each connect / 1-byte request / 1-byte reply /
close; the reply proves the connection reached the far end.
Clients print one JSON object; they are bounded by counts and socket timeouts
(the bench adds a wall-clock limit).
"""
import argparse
import json
import socket
import time


def read_full(sock, view):
    """Fill `view` from `sock`; False on EOF."""
    done = 0
    while done < len(view):
        n = sock.recv_into(view[done:])
        if n == 0:
            return False
        done += n
    return True


def listener(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(1024)
    return s


def percentile(sorted_ns, p):
    i = min(len(sorted_ns) - 1, max(0, round(p / 100 * (len(sorted_ns) - 1))))
    return round(sorted_ns[i] / 1000, 1)


def rr_server(args):
    ls = listener(args.port)
    while True:
        conn, _ = ls.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            head = bytearray(4)
            if not read_full(conn, memoryview(head)):
                continue
            size = int.from_bytes(head, "big")
            conn.sendall(head)
            message = memoryview(bytearray(size))
            while read_full(conn, message):
                conn.sendall(message)
        except OSError:
            pass
        finally:
            conn.close()


def rr_client(args):
    sock = socket.create_connection((args.host, args.port), timeout=args.timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(args.size.to_bytes(4, "big"))
    if not read_full(sock, memoryview(bytearray(4))):
        raise SystemExit("server closed before the first echo")
    message = b"r" * args.size
    reply = memoryview(bytearray(args.size))
    for _ in range(args.warmup):
        sock.sendall(message)
        if not read_full(sock, reply):
            raise SystemExit("server closed during warm-up")
    clock = time.perf_counter_ns
    took = []
    start = clock()
    for _ in range(args.count):
        t = clock()
        sock.sendall(message)
        if not read_full(sock, reply):
            raise SystemExit("server closed")
        took.append(clock() - t)
    seconds = (clock() - start) / 1e9
    sock.close()
    took.sort()
    print(json.dumps({"count": args.count, "rtPerS": round(args.count / seconds, 1),
                      "p50Us": percentile(took, 50), "p99Us": percentile(took, 99)}))


def crr_server(args):
    ls = listener(args.port)
    while True:
        conn, _ = ls.accept()
        try:
            conn.settimeout(5)
            if conn.recv(1):
                conn.sendall(b"s")
                conn.recv(1)  # the client closes first
        except OSError:
            pass
        finally:
            conn.close()


def crr_client(args):
    clock = time.perf_counter_ns
    took, failed = [], 0
    start = clock()
    for _ in range(args.count):
        t = clock()
        try:
            with socket.create_connection((args.host, args.port), timeout=args.timeout) as sock:
                sock.sendall(b"c")
                if sock.recv(1) != b"s":
                    raise OSError("no reply")
            took.append(clock() - t)
        except OSError:
            failed += 1
    seconds = (clock() - start) / 1e9
    took.sort()
    print(json.dumps({"count": args.count, "ok": len(took), "failed": failed,
                      "connPerS": round(len(took) / seconds, 1),
                      "p50Us": percentile(took, 50) if took else None,
                      "p99Us": percentile(took, 99) if took else None}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["rr-server", "rr-client", "crr-server", "crr-client"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, default=10000)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--timeout", type=float, default=5.0)
    args = p.parse_args()
    {"rr-server": rr_server, "rr-client": rr_client,
     "crr-server": crr_server, "crr-client": crr_client}[args.mode](args)


if __name__ == "__main__":
    main()

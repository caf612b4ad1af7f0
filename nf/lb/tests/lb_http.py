#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""HTTP servers and clients for e2e_lb.sh.

  serve NAME PORT [PORT ...]      HTTP/1.1 server answering NAME, keep-alive
  many HOST PORT N [THREADS]      N short-lived connections, one GET each;
                                  prints {"counts": {name: n}, "errors": n}
  fixed HOST PORT SPORT N         N connections from source ports SPORT..;
                                  prints {"map": {sport: name}, "errors": n}
  long HOST PORT N READY GO OUT   N long-lived connections: a GET on each,
                                  names to READY; waits (<= 60 s) for file GO;
                                  a second GET on each, both rounds to OUT
Every socket has a 5 s timeout, so nothing waits forever.
"""
import json
import os
import socket
import socketserver
import struct
import sys
import threading
import time

TIMEOUT = 5.0


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        body = (self.server.name + "\n").encode()
        try:
            while True:
                line = self.rfile.readline()
                if not line:
                    return
                while True:  # headers up to the empty line
                    h = self.rfile.readline()
                    if not h or h in (b"\r\n", b"\n"):
                        break
                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                self.wfile.flush()
        except OSError:
            return


class Server(socketserver.ThreadingTCPServer):
    address_family = socket.AF_INET6
    allow_reuse_address = True
    daemon_threads = True

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def serve(name, ports):
    servers = []
    for p in ports:
        s = Server(("::", int(p)), Handler)
        s.name = name
        servers.append(s)
        threading.Thread(target=s.serve_forever, daemon=True).start()
    while True:
        time.sleep(3600)


def connect(host, port, sport=0):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    # RST on close: no TIME_WAIT, so a source port can be used again.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    if sport:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", sport))
    s.connect((host, port))
    return s


def get(s, f):
    s.sendall(b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n")
    status = f.readline()
    if not status.startswith(b"HTTP/1.1 200"):
        raise OSError("bad status %r" % status)
    length = 0
    while True:
        h = f.readline()
        if not h:
            raise OSError("connection closed in headers")
        if h in (b"\r\n", b"\n"):
            break
        if h.lower().startswith(b"content-length:"):
            length = int(h.split(b":")[1])
    return f.read(length).decode().strip()


def one(host, port, sport=0):
    s = connect(host, port, sport)
    try:
        f = s.makefile("rb")
        return get(s, f)
    finally:
        s.close()


def many(host, port, n, threads=8):
    counts, errors, lock = {}, [0], threading.Lock()
    todo = iter(range(n))

    def worker():
        while True:
            with lock:
                if next(todo, None) is None:
                    return
            try:
                name = one(host, port)
            except OSError:
                with lock:
                    errors[0] += 1
                continue
            with lock:
                counts[name] = counts.get(name, 0) + 1

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print(json.dumps({"counts": counts, "errors": errors[0]}))


def fixed(host, port, sport, n):
    m, errors = {}, 0
    for i in range(n):
        try:
            m[str(sport + i)] = one(host, port, sport + i)
        except OSError:
            errors += 1
    print(json.dumps({"map": m, "errors": errors}))


def long(host, port, n, ready, go, out):
    conns, before, after = [], [], []
    for _ in range(n):
        s = connect(host, port)
        conns.append((s, s.makefile("rb")))
        before.append(get(*conns[-1]))
    with open(ready, "w") as f:
        json.dump(before, f)
    deadline = time.time() + 60
    while not os.path.exists(go) and time.time() < deadline:
        time.sleep(0.05)
    for c in conns:
        try:
            after.append(get(*c))
        except OSError as e:
            after.append("error: %s" % e)
    with open(out, "w") as f:
        json.dump({"before": before, "after": after}, f)


def main(argv):
    cmd = argv[1]
    if cmd == "serve":
        serve(argv[2], argv[3:])
    elif cmd == "many":
        many(argv[2], int(argv[3]), int(argv[4]), int(argv[5]) if len(argv) > 5 else 8)
    elif cmd == "fixed":
        fixed(argv[2], int(argv[3]), int(argv[4]), int(argv[5]))
    elif cmd == "long":
        long(argv[2], int(argv[3]), int(argv[4]), argv[5], argv[6], argv[7])
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main(sys.argv)

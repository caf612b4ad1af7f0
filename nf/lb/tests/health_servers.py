#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Servers that health checks probe in the tests, one per argument
KIND@ADDR@PORT (ADDR may be IPv6), all in one process:
  http    a real HTTP server (http.server): GET /ok -> 200, /fail -> 500,
          /host/NAME -> 200 if the Host header is NAME else 400,
          /flip -> 200 and 500 in turn, /id -> 200 with the server's name
          (SERVER_NAME in the environment), anything else -> 404
  garbage answers a line that is not HTTP, then closes
  close   accepts and closes without a word
  slow    accepts, reads, and answers 200 after 30 s
Prints "ready" when every socket listens."""
import http.server
import os
import socket
import socketserver
import sys
import threading
import time

flip = [0]
name = os.environ.get("SERVER_NAME", "server")


class Handler(http.server.BaseHTTPRequestHandler):
    def answer(self, code, body=b"ok\n"):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/ok":
            self.answer(200)
        elif self.path == "/fail":
            self.answer(500)
        elif self.path.startswith("/host/"):
            want = self.path[len("/host/"):]
            self.answer(200 if self.headers.get("Host") == want else 400)
        elif self.path == "/flip":
            flip[0] ^= 1
            self.answer(200 if flip[0] else 500)
        elif self.path == "/id":
            self.answer(200, (name + "\n").encode())
        else:
            self.answer(404)

    def log_message(self, *args):
        pass


class Raw(socketserver.BaseRequestHandler):
    kind = ""

    def handle(self):
        if self.kind == "garbage":
            self.request.recv(4096)
            self.request.sendall(b"SSH-2.0-definitely-not-http\r\n")
        elif self.kind == "slow":
            self.request.recv(4096)
            time.sleep(30)
            self.request.sendall(b"HTTP/1.0 200 OK\r\n\r\n")
        # close: nothing


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def serve(kind, addr, port):
    if kind == "http":
        base, handler = http.server.ThreadingHTTPServer, Handler
    else:
        base = socketserver.ThreadingTCPServer
        handler = type("Raw_" + kind, (Raw,), {"kind": kind})
    cls = type("S", (base,), {"address_family": family(addr),
                              "allow_reuse_address": True,
                              "request_queue_size": 256,
                              # checks end with a reset: not an error
                              "handle_error": lambda *a: None,
                              "daemon_threads": True})
    srv = cls((addr, port), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()


for arg in sys.argv[1:]:
    kind, addr, port = arg.split("@")
    serve(kind, addr, int(port))
print("ready", flush=True)
while True:
    time.sleep(3600)

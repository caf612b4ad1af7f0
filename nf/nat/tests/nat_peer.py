# SPDX-License-Identifier: GPL-2.0
# Traffic ends for nf/nat/tests/e2e_nat.sh. Every mode prints one result
# line that the test compares between the sluice and the iptables gateway.
#   srv READY LOG            TCP 7000 (sha256 of the data + peer), UDP 7001
#                            (echo of the peer, logged to LOG); both families
#   web READY NAME           TCP 80: "NAME PEER-ADDRESS"
#   tcp HOST PORT NBYTES [PAUSE]  sends NBYTES (pausing PAUSE s halfway),
#                            prints "ok PEER" when the hash matches
#   udp HOST PORT            prints the peer address the server saw
#   udpmany HOST PORT BASE N N sockets bound to BASE..BASE+N-1, one datagram
#                            each (sent again while unanswered); prints how
#                            many got their own answer back
#   refused HOST PORT        UDP to a closed port: "refused" when the ICMP
#                            port unreachable came back to this socket
#   get HOST PORT            prints the line a web server answered
import hashlib, os, socket, sys, threading, time

DEADLINE = time.time() + 240  # never outlives a hung test for long


def family(host):
    return socket.AF_INET6 if ':' in host else socket.AF_INET


def peer(addr):
    a = addr[0]
    return a[7:] if a.startswith('::ffff:') else a


def listener(kind, port):
    s = socket.socket(socket.AF_INET6, kind)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('::', port))
    return s


def serve_tcp(s, handle):
    s.listen(256)
    s.settimeout(1)
    while time.time() < DEADLINE:
        try:
            c, addr = s.accept()
        except socket.timeout:
            continue
        threading.Thread(target=handle, args=(c, addr), daemon=True).start()


def hash_conn(c, addr):
    c.settimeout(10)
    try:
        n = int(c.recv(16).decode().strip())
        h, got = hashlib.sha256(), 0
        while got < n:
            d = c.recv(65536)
            if not d:
                break
            h.update(d)
            got += len(d)
        c.sendall(('%s %s\n' % (h.hexdigest(), peer(addr))).encode())
    except OSError:
        pass
    c.close()


def srv(ready, log):
    t = listener(socket.SOCK_STREAM, 7000)
    u = listener(socket.SOCK_DGRAM, 7001)
    threading.Thread(target=serve_tcp, args=(t, hash_conn), daemon=True).start()
    u.settimeout(1)
    with open(log, 'a') as lf:
        open(ready, 'w').write('ready\n')
        while time.time() < DEADLINE:
            try:
                d, addr = u.recvfrom(2048)
            except socket.timeout:
                continue
            lf.write('%s %d\n' % (peer(addr), addr[1]))
            lf.flush()
            try:
                u.sendto(d + b' ' + peer(addr).encode(), addr)
            except OSError:
                pass  # no route back (no NAT): the client sees a timeout


def web(ready, name):
    def answer(c, addr):
        try:
            c.sendall(('%s %s\n' % (name, peer(addr))).encode())
        except OSError:
            pass
        c.close()
    t = listener(socket.SOCK_STREAM, 80)
    open(ready, 'w').write('ready\n')
    serve_tcp(t, answer)


def tcp(host, port, n, pause=0.0):
    data = os.urandom(n)
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(b'%-15d\n' % n)
    s.sendall(data[:n // 2])
    time.sleep(pause)
    s.sendall(data[n // 2:])
    line = s.makefile().readline().split()
    ok = len(line) == 2 and line[0] == hashlib.sha256(data).hexdigest()
    print('ok %s' % line[1] if ok else 'bad %s' % ' '.join(line))


def udp(host, port):
    s = socket.socket(family(host), socket.SOCK_DGRAM)
    s.settimeout(3)
    s.sendto(b'hello', (host, port))
    try:
        d, _ = s.recvfrom(2048)
        print(d.decode().split()[1])
    except socket.timeout:
        print('timeout')


def udpmany(host, port, base, n):
    socks = []
    for i in range(n):
        s = socket.socket(family(host), socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(('', base + i))
        s.setblocking(False)
        socks.append(s)
    got, end, resend = set(), time.time() + 6, 0
    while len(got) < n and time.time() < end:
        if time.time() >= resend:  # the unanswered again, once a second
            for i, s in enumerate(socks):
                if i not in got:
                    s.sendto(b'%d' % i, (host, port))
            resend = time.time() + 1
        for i, s in enumerate(socks):
            try:
                d, _ = s.recvfrom(2048)
                if d.split()[0] == b'%d' % i:
                    got.add(i)
            except BlockingIOError:
                pass
        time.sleep(0.01)
    print(len(got))


def refused(host, port):
    s = socket.socket(family(host), socket.SOCK_DGRAM)
    s.settimeout(3)
    s.connect((host, port))
    s.send(b'anyone?')
    try:
        s.recv(100)
        print('answered')
    except ConnectionRefusedError:
        print('refused')
    except socket.timeout:
        print('timeout')


def get(host, port):
    try:
        s = socket.create_connection((host, port), timeout=5)
        print(s.makefile().readline().strip())
    except OSError as e:
        print('error %s' % e.__class__.__name__)


if __name__ == '__main__':
    a = sys.argv[1:]
    {'srv': lambda: srv(a[1], a[2]),
     'web': lambda: web(a[1], a[2]),
     'tcp': lambda: tcp(a[1], int(a[2]), int(a[3]), float(a[4]) if len(a) > 4 else 0),
     'udp': lambda: udp(a[1], int(a[2])),
     'udpmany': lambda: udpmany(a[1], int(a[2]), int(a[3]), int(a[4])),
     'refused': lambda: refused(a[1], int(a[2])),
     'get': lambda: get(a[1], int(a[2]))}[a[0]]()

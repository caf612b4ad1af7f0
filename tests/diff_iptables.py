#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Differential test: the sluice firewall against the kernel's iptables.

Two independent routers forward the same random packets from one sender
namespace to one receiver namespace:

    sender ns --sa-- in0 [router A: sluice firewall on in0 (XDP)] out0 --ra--+
              --sb-- in0 [router B: iptables/ip6tables FORWARD]   out0 --rb--+ receiver ns

Both routers forward IPv4 and IPv6 (default routes towards the receiver,
static neighbour entries). A seeded random rule set is loaded in sluice form on
A and translated to iptables-restore/ip6tables-restore input on B. Each packet
carries a unique tag in its payload; AF_PACKET sockets on the receiver tell
which packets each router forwarded (accept) or not (drop). Per packet, the
sluice verdict must equal the iptables verdict (and the verdict of a small
Python model of the rule semantics, which guards the harness itself); per
rule, sluice's packet counters must equal the sum of the iptables and
ip6tables counters of the rule's translation, and the default counter the
sum of the FORWARD policy counters.

Run through tests/diff_iptables.sh (which cleans up by name on exit).
"""
import argparse
import ctypes
import ipaddress
import json
import os
import random
import select
import socket
import struct
import subprocess
import sys
import time

import logging
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.layers.l2 import Ether  # noqa: E402
from scapy.layers.inet import IP, TCP, UDP, ICMP, IPOption_NOP  # noqa: E402
from scapy.layers.inet6 import (IPv6, ICMPv6Unknown, IPv6ExtHdrFragment,  # noqa: E402
                                IPv6ExtHdrDestOpt, IPv6ExtHdrHopByHop, PadN)
from scapy.packet import Raw  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SLUICE = os.environ.get("SLUICE", os.path.join(HERE, "..", "build", "sluice"))

CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
MAGIC = b"SLDT"

MAC_A_IN = "02:5d:0a:00:00:01"
MAC_B_IN = "02:5d:0b:00:00:01"
MAC_RA = "02:5d:0a:00:00:02"
MAC_RB = "02:5d:0b:00:00:02"
MAC_SA = "02:5d:0a:00:00:03"
MAC_SB = "02:5d:0b:00:00:03"

# Interface names inside the namespaces (each namespace is this test's own).
IF_IN, IF_OUT = "in0", "out0"

# Addresses packets use: unicast, forwarded by the routers, none of them the
# routers' own (10.99.x.x / fd00:99::/fd00:98::), and clustered so the prefix
# pool below overlaps them in many ways.
V4_ADDRS = ["10.1.2.3", "10.1.2.4", "10.1.2.200", "10.1.9.9", "10.1.255.254",
            "10.2.0.1", "10.2.77.5", "10.200.3.4", "172.16.0.5", "172.16.5.5",
            "172.31.255.254", "192.0.2.1", "192.0.2.77", "198.51.100.9",
            "203.0.113.250", "11.0.0.1", "10.1.2.127", "10.1.2.128", "10.1.2.0",
            "10.1.2.255", "10.127.255.255", "10.128.0.0", "126.255.255.254", "128.0.0.1",
            "192.0.2.63", "192.0.2.64", "192.0.2.127", "192.0.2.128", "223.255.255.254"]
V6_ADDRS = ["2001:db8:1:2::3", "2001:db8:1:2::4", "2001:db8:1:2:ffff::1",
            "2001:db8:1:3::1", "2001:db8:1:ffff::9", "2001:db8:2::1",
            "2001:db8:2:8000::1", "2001:db9::1", "fd00:10::1", "fd00:10:0:1::5",
            "fd00:11::2", "fd12:3456::1", "2600::1", "2001:db8:1:2::80",
            "2001:db8:1:2:0:ffff:ffff:ffff", "2001:db8:1:2:1::", "2001:db8:1:1:ffff:ffff:ffff:ffff",
            "2001:db8:2:7fff:ffff:ffff:ffff:ffff", "2001:db8:2:8000::", "8000::1",
            "7fff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", "2001:db8:1:2::2", "fd00:10::"]
V4_PREFIXES = ["0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24",
               "10.1.2.0/25", "10.1.2.3/32", "10.1.2.200/32", "10.2.0.0/16",
               "10.128.0.0/9", "172.16.0.0/12", "172.16.0.0/16", "192.0.2.0/24",
               "192.0.2.64/26", "198.51.100.0/24", "0.0.0.0/1", "128.0.0.0/1"]
V6_PREFIXES = ["::/0", "2001:db8::/32", "2001:db8:1::/48", "2001:db8:1:2::/64",
               "2001:db8:1:2::3/128", "2001:db8:1:2::/80", "2001:db8:2::/48",
               "2001:db8:2:8000::/49", "fd00::/8", "fd00:10::/32", "fd00:10::/64",
               "2000::/3", "8000::/1", "2001:db8:1:2::80/128"]
# Sources the routers route back towards the sender (import mode).
BACK4_NET, BACK6_NET = "10.76.0.0/14", "2001:db8:76::/47"
BACK4_ADDRS = ["10.77.0.1", "10.77.0.2", "10.77.1.200", "10.77.255.254", "10.78.3.4",
               "10.76.0.9", "10.79.255.1"]
BACK6_ADDRS = ["2001:db8:77::1", "2001:db8:77::2", "2001:db8:77:1::5", "2001:db8:76::9",
               "2001:db8:77:ffff::1"]
BACK4_PREFIXES = ["10.76.0.0/14", "10.77.0.0/16", "10.77.0.0/24", "10.77.0.2/32", "10.78.0.0/15"]
BACK6_PREFIXES = ["2001:db8:76::/47", "2001:db8:77::/48", "2001:db8:77::/64", "2001:db8:77::2/128"]
PORTS = [0, 1, 7, 22, 53, 79, 80, 81, 443, 1023, 1024, 1025, 5353, 8080,
         32767, 32768, 65534, 65535]
OTHER_PROTOS = [47, 132, 136, 253, 254, 99, 50]  # packets and rules
# With conntrack states compared: the protocols both track generically
# (the kernel's SCTP and UDP-Lite trackers check headers sluice does not).
CT_OTHER_PROTOS = [47, 253, 254, 99, 50]
RULE_PROTO_NUMS = [6, 17, 1, 58, 47, 132, 253, 50]
ICMP4_TYPES = [0, 3, 5, 8, 11, 12, 13, 14, 30, 42, 100, 200, 254]
ICMP6_TYPES = [1, 2, 3, 4, 100, 101, 127, 128, 129, 130, 133, 135, 136, 143, 200, 254]
TCP_FLAGS = ["fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr"]

libc = ctypes.CDLL(None, use_errno=True)


def setns(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, "setns %s: %s" % (path, os.strerror(e)))
    finally:
        os.close(fd)


def log(*a):
    print(*a, flush=True)


# ----------------------------------------------------------------- topology

class Topo:
    def __init__(self, rid):
        self.rid = rid
        self.ns_s = "dtS" + rid
        self.ns_a = "dtA" + rid
        self.ns_b = "dtB" + rid
        self.ns_r = "dtR" + rid
        self.all = [self.ns_s, self.ns_a, self.ns_b, self.ns_r]
        self.created = []

    def sh(self, ns, *cmd, check=True, inp=None, timeout=60):
        argv = ["nsenter", "--net=/run/netns/" + ns] + list(cmd)
        p = subprocess.run(argv, input=inp, capture_output=True, text=True,
                           timeout=timeout)
        if check and p.returncode != 0:
            raise RuntimeError("%s failed (%d): %s%s" % (" ".join(argv), p.returncode,
                                                         p.stdout, p.stderr))
        return p

    def sysctl(self, ns, key, val):
        self.sh(ns, "sysctl", "-q", "-w", "%s=%s" % (key, val))

    def setup(self):
        for ns in self.all:
            subprocess.run(["ip", "netns", "add", ns], check=True)
            self.created.append(ns)
            self.sh(ns, "ip", "link", "set", "lo", "up")
        # Sender and receiver send nothing of their own (no IPv6 autoconf,
        # router solicitations or MLD that would reach the firewall).
        for ns in (self.ns_s, self.ns_r):
            self.sysctl(ns, "net.ipv6.conf.default.disable_ipv6", 1)
            self.sysctl(ns, "net.ipv6.conf.all.disable_ipv6", 1)
        for ns in (self.ns_a, self.ns_b):
            self.sysctl(ns, "net.ipv4.conf.all.rp_filter", 0)
            self.sysctl(ns, "net.ipv4.conf.default.rp_filter", 0)
            self.sysctl(ns, "net.ipv4.ip_forward", 1)
            self.sysctl(ns, "net.ipv6.conf.all.forwarding", 1)
            self.sysctl(ns, "net.ipv6.conf.default.forwarding", 1)
            self.sysctl(ns, "net.ipv6.conf.default.accept_dad", 0)
            self.sysctl(ns, "net.ipv4.conf.all.send_redirects", 0)
            self.sysctl(ns, "net.ipv4.conf.default.send_redirects", 0)
        for ns, s_if, r_if, m_in, m_s, m_r in (
                (self.ns_a, "sa", "ra", MAC_A_IN, MAC_SA, MAC_RA),
                (self.ns_b, "sb", "rb", MAC_B_IN, MAC_SB, MAC_RB)):
            self.sh(ns, "ip", "link", "add", IF_IN, "address", m_in, "type", "veth",
                    "peer", "name", s_if, "address", m_s, "netns", self.ns_s)
            self.sh(ns, "ip", "link", "add", IF_OUT, "type", "veth",
                    "peer", "name", r_if, "address", m_r, "netns", self.ns_r)
            for dev in (IF_IN, IF_OUT):
                self.sysctl(ns, "net.ipv4.conf.%s.rp_filter" % dev, 0)
            self.sh(ns, "ip", "addr", "add", "10.99.0.1/30", "dev", IF_IN)
            self.sh(ns, "ip", "addr", "add", "10.99.1.1/30", "dev", IF_OUT)
            self.sh(ns, "ip", "addr", "add", "fd00:98::1/64", "dev", IF_IN, "nodad")
            self.sh(ns, "ip", "addr", "add", "fd00:99::1/64", "dev", IF_OUT, "nodad")
            self.sh(ns, "ip", "link", "set", IF_IN, "up")
            self.sh(ns, "ip", "link", "set", IF_OUT, "up")
            self.sh(ns, "ip", "neigh", "replace", "10.99.1.2", "lladdr", m_r,
                    "dev", IF_OUT, "nud", "permanent")
            self.sh(ns, "ip", "-6", "neigh", "replace", "fd00:99::2", "lladdr", m_r,
                    "dev", IF_OUT, "nud", "permanent")
            self.sh(ns, "ip", "route", "add", "default", "via", "10.99.1.2", "dev", IF_OUT)
            self.sh(ns, "ip", "-6", "route", "add", "default", "via", "fd00:99::2",
                    "dev", IF_OUT)
            self.sh(self.ns_s, "ip", "link", "set", s_if, "up")
            self.sh(self.ns_r, "ip", "link", "set", r_if, "up")
        # The receiver only observes (AF_PACKET sees frames before
        # netfilter): it answers nothing that could travel back through a
        # router's FORWARD chain.
        for tool in ("iptables-restore", "ip6tables-restore"):
            self.sh(self.ns_r, tool, inp="*raw\n:PREROUTING DROP [0:0]\nCOMMIT\n")
        # Sockets: senders in the sender ns, sniffers in the receiver ns.
        me = "/proc/self/ns/net"
        orig = os.open(me, os.O_RDONLY)
        try:
            setns("/run/netns/" + self.ns_s)
            self.tx = {}
            for k, dev in (("A", "sa"), ("B", "sb")):
                s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
                s.bind((dev, 0))
                self.tx[k] = s
            setns("/run/netns/" + self.ns_r)
            self.rx = {}
            for k, dev in (("A", "ra"), ("B", "rb")):
                s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW,
                                  socket.htons(ETH_P_ALL))
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 20)
                s.bind((dev, ETH_P_ALL))
                s.setblocking(False)
                self.rx[k] = s
        finally:
            if libc.setns(orig, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
            os.close(orig)

    def cleanup(self):
        for k in ("tx", "rx"):
            for s in getattr(self, k, {}).values():
                s.close()
        for ns in self.created:
            # sluice runs in the namespace under test (the rules) and in the senders'
            # namespace (XDP on sa/sb for the return path): its pins go too.
            if ns in (self.ns_a, self.ns_s):
                subprocess.run(["nsenter", "--net=/run/netns/" + ns, SLUICE, "reset"],
                               capture_output=True, timeout=60)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.created = []


# ----------------------------------------------------------------- rules

class Rule:
    """One rule; family 0 (both), 4 or 6."""

    def __init__(self):
        self.action = "accept"
        self.family = 0
        self.src = None  # (ip_network, neg)
        self.dst = None
        self.proto = None  # int
        self.proto_word = None  # how the sluice rule spells it
        self.sport = None  # (lo, hi)
        self.dport = None
        self.icmp_type = None
        self.tcp_flags = None  # (flags, mask) as ints
        self.tcp_text = None
        self.iif = None

    def sluice(self):
        w = [self.action]
        for k, v in (("src", self.src), ("dst", self.dst)):
            if v:
                w += [k, ("!" if v[1] else "") + str(v[0])]
        if self.proto is not None:
            w += ["proto", self.proto_word]
        for k, v in (("sport", self.sport), ("dport", self.dport)):
            if v:
                w += [k, str(v[0]) if v[0] == v[1] else "%d-%d" % v]
        if self.icmp_type is not None:
            w += ["icmp-type", str(self.icmp_type)]
        if self.tcp_flags:
            w += ["tcp-flags", self.tcp_text]
        if self.iif:
            w += ["iif", self.iif]
        return " ".join(w)

    def ipt(self, fam):
        w = ["-A", "FORWARD"]
        never = False
        for opt, v in (("-s", self.src), ("-d", self.dst)):
            if v and v[1] and v[0].prefixlen == 0:
                # iptables-nft refuses "! -s 0.0.0.0/0" (EINVAL): the rule
                # can never match; say so with a length no packet has.
                never = True
            elif v:
                w += (["!"] if v[1] else []) + [opt, str(v[0])]
        if never:
            w += ["-m", "length", "--length", "0"]
        if self.iif:
            w += ["-i", self.iif]
        if self.proto is not None:
            name = {6: "tcp", 17: "udp"}.get(self.proto)
            if self.proto == 1 and self.icmp_type is not None:
                name = "icmp"
            if self.proto == 58 and self.icmp_type is not None:
                name = "ipv6-icmp"
            w += ["-p", name or str(self.proto)]
            if self.proto in (6, 17) and (self.sport or self.dport or self.tcp_flags):
                w += ["-m", "tcp" if self.proto == 6 else "udp"]
                for opt, v in (("--sport", self.sport), ("--dport", self.dport)):
                    if v:
                        w += [opt, str(v[0]) if v[0] == v[1] else "%d:%d" % v]
                if self.tcp_flags:
                    # iptables names only FIN..URG (its ALL is 0x3f); the
                    # ECE and CWR bits of the mask go to the ecn match, after
                    # the tcp match has turned non-first fragments away.
                    flags, mask = self.tcp_flags
                    w += ["--tcp-flags", flag_names(mask & 0x3F), flag_names(flags & mask & 0x3F)]
                    ecn = []
                    for bit, opt in ((0x40, "--ecn-tcp-ece"), (0x80, "--ecn-tcp-cwr")):
                        if mask & bit:
                            ecn += ([] if flags & bit else ["!"]) + [opt]
                    if ecn:
                        w += ["-m", "ecn"] + ecn
            if self.icmp_type is not None:
                if fam == 4:
                    w += ["-m", "icmp", "--icmp-type", str(self.icmp_type)]
                else:
                    w += ["-m", "icmp6", "--icmpv6-type", str(self.icmp_type)]
        w += ["-j", self.action.upper()]
        return " ".join(w)

    def matches(self, p):
        """Reference semantics (iptables'), for the packet description p."""
        if self.family and self.family != p["fam"]:
            return False
        for v, a in ((self.src, p["src"]), (self.dst, p["dst"])):
            if v:
                inside = ipaddress.ip_address(a) in v[0]
                if inside == v[1]:
                    return False
        if self.iif and self.iif != IF_IN:
            return False
        if self.proto is not None and self.proto != p["proto"]:
            return False
        l4 = self.sport or self.dport or self.icmp_type is not None or self.tcp_flags
        if l4 and not p["l4"]:
            return False
        if self.sport and not self.sport[0] <= p["sport"] <= self.sport[1]:
            return False
        if self.dport and not self.dport[0] <= p["dport"] <= self.dport[1]:
            return False
        if self.icmp_type is not None and p["itype"] != self.icmp_type:
            return False
        if self.tcp_flags and (p["flags"] & self.tcp_flags[1]) != self.tcp_flags[0]:
            return False
        return True


def flag_names(bits):
    if bits == 0:
        return "NONE"
    return ",".join(f.upper() for i, f in enumerate(TCP_FLAGS[:6]) if bits & (1 << i))


def sluice_flags(bits, rnd):
    if bits == 0:
        return "none"
    if bits == 0xFF and rnd.random() < 0.5:
        return "all"
    return ",".join(f for i, f in enumerate(TCP_FLAGS) if bits & (1 << i))


def port_range(rnd):
    a = rnd.choice(PORTS) if rnd.random() < 0.7 else rnd.randrange(65536)
    if rnd.random() < 0.4:
        return (a, a)
    b = rnd.choice(PORTS) if rnd.random() < 0.7 else rnd.randrange(65536)
    return (min(a, b), max(a, b))


def gen_rule(rnd):
    r = Rule()
    r.action = rnd.choice(["accept", "drop"])
    fam = rnd.choice([0, 0, 4, 4, 6, 6])
    # Protocol first: icmp/icmpv6 fix the family.
    if rnd.random() < 0.7:
        choices = ["tcp", "udp", "tcp", "udp", "num"]
        if fam in (0, 4):
            choices.append("icmp")
        if fam in (0, 6):
            choices.append("icmpv6")
        c = rnd.choice(choices)
        if c == "num":
            r.proto = rnd.choice(RULE_PROTO_NUMS)
            r.proto_word = str(r.proto)
        else:
            r.proto = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58}[c]
            r.proto_word = c if rnd.random() < 0.8 or c.startswith("icmp") else str(r.proto)
            if c == "icmp":
                fam = r.family = 4
            elif c == "icmpv6":
                fam = r.family = 6
    if fam:
        pool = V4_PREFIXES if fam == 4 else V6_PREFIXES
        for k in ("src", "dst"):
            if rnd.random() < 0.45:
                setattr(r, k, (ipaddress.ip_network(rnd.choice(pool)), rnd.random() < 0.25))
        if r.src or r.dst:
            r.family = fam
    if r.proto in (6, 17):
        if rnd.random() < 0.4:
            r.sport = port_range(rnd)
        if rnd.random() < 0.4:
            r.dport = port_range(rnd)
    if r.proto == 6 and rnd.random() < 0.35:
        mask = rnd.choice([0x02 | 0x10, 0x02, 0x10, 0x01 | 0x02 | 0x04, 0xFF,
                           rnd.randrange(1, 256)])
        flags = mask & rnd.randrange(256)
        r.tcp_flags = (flags, mask)
        r.tcp_text = "%s/%s" % (sluice_flags(flags, rnd), sluice_flags(mask, rnd))
    # (icmp-type with "proto 1" on IPv6 has no ip6tables equivalent.)
    if (r.proto, r.family) in ((1, 4), (58, 6)) and rnd.random() < 0.6:
        # 255 is left out: iptables' --icmp-type 255 means "any type".
        types = ICMP4_TYPES if r.proto == 1 else ICMP6_TYPES
        r.icmp_type = rnd.choice(types) if rnd.random() < 0.8 else rnd.randrange(255)
    if rnd.random() < 0.1:
        r.iif = IF_IN if rnd.random() < 0.7 else IF_OUT
    return r


def gen_ruleset(rnd, nrules, default):
    rules = []
    while len(rules) < nrules:
        r = gen_rule(rnd)
        # Broad rules (nothing but a protocol or nothing at all) shadow the
        # rules after them: keep them rare so that most rules get hits.
        narrow = (r.src or r.dst or r.sport or r.dport or r.tcp_flags
                  or r.icmp_type is not None or r.iif == IF_OUT)
        keep = (0.3 if r.proto is not None else 0.03) * min(1.0, 40.0 / nrules)
        if not narrow and rnd.random() >= keep:
            continue
        rules.append(r)
    return rules, default


def sluice_text(rules, default):
    return "".join(r.sluice() + "\n" for r in rules) + "default %s\n" % default


def ipt_text(rules, default, fam):
    lines = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD %s [0:0]" % default.upper(),
             ":OUTPUT ACCEPT [0:0]"]
    idx = []  # sluice rule index (1-based) per iptables rule
    for i, r in enumerate(rules):
        if r.family in (0, fam):
            lines.append(r.ipt(fam))
            idx.append(i + 1)
    lines.append("COMMIT")
    return "\n".join(lines) + "\n", idx


# ----------------------------------------------------------------- packets

def gen_packet(rnd, nonce, seq, frags=True, back=0.0, ct=False):
    """Returns (frame bytes without Ethernet, description for the model).
    With probability back, the source is one the routers route back
    towards the sender (where REJECT answers go). With ct (conntrack
    states compared), the packet is a connection of its own: sources and
    destinations from disjoint pools and random ports, so that no later
    packet is its reply or continues it (see CT_NOTES)."""
    tag = MAGIC + struct.pack("!II", nonce, seq)
    fam = rnd.choice([4, 6])
    addrs = V4_ADDRS if fam == 4 else V6_ADDRS
    if ct:
        src, dst = rnd.choice(addrs[0::2]), rnd.choice(addrs[1::2])
    else:
        src, dst = rnd.choice(addrs), rnd.choice(addrs)
    if back and rnd.random() < back:
        src = rnd.choice(BACK4_ADDRS if fam == 4 else BACK6_ADDRS)
    if not ct and rnd.random() < 0.1:  # somewhere in the pools' neighbourhood
        base = ipaddress.ip_address(rnd.choice(addrs))
        src = str(ipaddress.ip_address(int(base) ^ rnd.randrange(1 << 8)))
    d = {"fam": fam, "src": src, "dst": dst, "l4": True, "sport": 0, "dport": 0,
         "itype": 0, "flags": 0}
    x = rnd.random()
    if x < 0.35:
        proto = 6
    elif x < 0.6:
        proto = 17
    elif x < 0.85:
        proto = 1 if fam == 4 else 58
    else:
        proto = rnd.choice((CT_OTHER_PROTOS if ct else OTHER_PROTOS) + [1 if fam == 6 else 58, 6, 17])
    d["proto"] = proto
    frag = rnd.random()
    nonfirst = frag < 0.08 and frags and not ct
    first = 0.08 <= frag < 0.13 and not ct
    pad = bytes(rnd.randrange(256) for _ in range(rnd.choice([0, 0, 3, 20])))
    if nonfirst:
        d["l4"] = False
        l4 = Raw(tag + pad)
    elif proto == 6:
        d["sport"] = rnd.choice(PORTS) if rnd.random() < 0.6 else rnd.randrange(65536)
        d["dport"] = rnd.choice(PORTS) if rnd.random() < 0.6 else rnd.randrange(65536)
        if ct:
            d["sport"] = rnd.randrange(1024, 65536)
        d["flags"] = rnd.randrange(256) if rnd.random() < 0.7 else rnd.choice([2, 0x12, 0x10, 0x11, 4])
        l4 = TCP(sport=d["sport"], dport=d["dport"], flags=d["flags"],
                 seq=rnd.randrange(1 << 32), ack=rnd.randrange(1 << 32),
                 window=rnd.randrange(65536),
                 options=[("MSS", 1400), ("NOP", None), ("NOP", None)] if rnd.random() < 0.1
                 else []) / Raw(tag + pad)
    elif proto == 17:
        d["sport"] = rnd.choice(PORTS) if rnd.random() < 0.6 else rnd.randrange(65536)
        d["dport"] = rnd.choice(PORTS) if rnd.random() < 0.6 else rnd.randrange(65536)
        if ct:
            d["sport"] = rnd.randrange(1024, 65536)
        l4 = UDP(sport=d["sport"], dport=d["dport"]) / Raw(tag + pad)
    elif proto == 1:
        d["itype"] = rnd.choice(ICMP4_TYPES) if rnd.random() < 0.7 else rnd.randrange(256)
        l4 = ICMP(type=d["itype"], code=rnd.choice([0, 0, 1, 3, rnd.randrange(256)])) / Raw(tag + pad)
    elif proto == 58:
        d["itype"] = rnd.choice(ICMP6_TYPES) if rnd.random() < 0.7 else rnd.randrange(256)
        l4 = ICMPv6Unknown(type=d["itype"], code=rnd.choice([0, 0, 1, 3, rnd.randrange(256)])) \
            / Raw(tag + pad)
    else:
        l4 = Raw(tag + pad)
    if fam == 4:
        ip = IP(src=src, dst=dst, ttl=64, proto=proto, id=rnd.randrange(65536))
        if nonfirst:
            ip.frag = rnd.randrange(2, 1000)  # 1 is hotdropped by iptables' tcp match
            ip.flags = rnd.choice([0, 1])
        elif first:
            ip.flags = 1
        if rnd.random() < 0.08:  # IP options: the L4 header moves
            ip.options = [IPOption_NOP()] * rnd.choice([4, 8])
        pkt = ip / l4
    else:
        ip = IPv6(src=src, dst=dst, hlim=64)
        pkt = ip
        if rnd.random() < 0.2:
            if rnd.random() < 0.5:
                pkt = pkt / IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\0" * rnd.choice([0, 2, 4]))])
            else:
                pkt = pkt / IPv6ExtHdrHopByHop(options=[PadN(optdata=b"\0" * rnd.choice([0, 2, 4]))])
        if nonfirst:
            pkt = pkt / IPv6ExtHdrFragment(nh=proto, offset=rnd.randrange(1, 1000),
                                           m=rnd.choice([0, 1]), id=rnd.randrange(1 << 32))
        elif first:
            pkt = pkt / IPv6ExtHdrFragment(nh=proto, offset=0, m=1, id=rnd.randrange(1 << 32))
        if proto not in (6, 17, 58) or nonfirst:
            # scapy only fills the next header for layers it knows.
            last = pkt.lastlayer()
            if not nonfirst and not first:
                last.nh = proto
        pkt = pkt / l4
    return bytes(pkt), d


def frame(eth_dst, eth_src, l3, fam):
    return (bytes.fromhex(eth_dst.replace(":", "")) + bytes.fromhex(eth_src.replace(":", ""))
            + struct.pack("!H", 0x0800 if fam == 4 else 0x86DD) + l3)


# ----------------------------------------------------------------- running

class Harness:
    def __init__(self, topo, args):
        self.t = topo
        self.args = args
        self.fails = 0
        self.nonce = random.SystemRandom().randrange(1 << 32)
        self.seq = 0
        self.tot_packets = 0
        self.tot_accept = 0
        self.tot_drop = 0
        sfx = "-legacy" if args.backend == "legacy" else ""
        self.tools = {"4r": "iptables%s-restore" % sfx, "6r": "ip6tables%s-restore" % sfx,
                      "4s": "iptables%s-save" % sfx, "6s": "ip6tables%s-save" % sfx}
        # nft's native tcp/udp/icmp matches (what iptables-nft emits) read
        # the L4 fields of non-first fragments from the fragment's payload,
        # where x_tables' matches never match: leave those out with nft.
        self.frags = args.backend == "legacy"

    def load(self, rules, default):
        st = sluice_text(rules, default)
        self.t.sh(self.t.ns_a, SLUICE, "firewall", "load", IF_IN, "-", inp=st)
        i4, idx4 = ipt_text(rules, default, 4)
        i6, idx6 = ipt_text(rules, default, 6)
        self.t.sh(self.t.ns_b, self.tools["4r"], inp=i4)
        self.t.sh(self.t.ns_b, self.tools["6r"], inp=i6)
        return st, i4, i6, idx4, idx6

    def counters(self, nrules, idx4, idx6):
        out = self.t.sh(self.t.ns_a, SLUICE, "-j", "firewall", "show", IF_IN).stdout
        j = json.loads(out)
        sl = {0: (j["default_packets"], j["default_bytes"])}
        for r in j["rules"]:
            sl[r["index"]] = (r["packets"], r["bytes"])
        ipt = {i: [0, 0] for i in range(nrules + 1)}
        for tool, idx in ((self.tools["4s"], idx4), (self.tools["6s"], idx6)):
            o = self.t.sh(self.t.ns_b, tool, "-c", "-t", "filter").stdout
            k = 0
            for line in o.splitlines():
                if line.startswith(":FORWARD "):
                    p, b = line.split("[")[1].rstrip("]").split(":")
                    ipt[0][0] += int(p)
                    ipt[0][1] += int(b)
                elif line.startswith("[") and " -A FORWARD " in line:
                    p, b = line[1:line.index("]")].split(":")
                    ipt[idx[k]][0] += int(p)
                    ipt[idx[k]][1] += int(b)
                    k += 1
            if k != len(idx):
                raise RuntimeError("%s shows %d FORWARD rules, loaded %d" % (tool, k, len(idx)))
        return sl, ipt

    def drain(self, want, seen):
        """Reads every frame waiting on the receivers; returns how many
        frames of this run's packets in want it found."""
        socks = {self.t.rx[k].fileno(): k for k in ("A", "B")}
        n = 0
        while True:
            r, _, _ = select.select(list(socks), [], [], 0)
            if not r:
                return n
            for fd in r:
                k = socks[fd]
                try:
                    data, addr = self.t.rx[k].recvfrom(65536)
                except BlockingIOError:
                    continue
                if addr[2] == PACKET_OUTGOING:
                    continue
                at = data.find(MAGIC)
                while at >= 0:
                    if len(data) >= at + 12:
                        nonce, seq = struct.unpack("!II", data[at + 4:at + 12])
                        if nonce == self.nonce and seq in want:
                            seen[k].add(seq)
                            n += 1
                            break
                    at = data.find(MAGIC, at + 1)

    def settle(self, want, seen, quiet, wait_max):
        """Drains until the receivers stay quiet for quiet seconds (bounded)."""
        fds = [self.t.rx[k].fileno() for k in ("A", "B")]
        fds += [so.fileno() for so in getattr(self, "back", {}).values()]
        deadline = time.time() + wait_max
        last = time.time()
        while time.time() < deadline:
            r, _, _ = select.select(fds, [], [], 0.05)
            if r:
                if self.drain(want, seen):
                    last = time.time()
            elif time.time() - last > quiet:
                break
        self.drain(want, seen)

    def send_and_observe(self, pkts, seen, want):
        """Sends pkts ((seq, l3 bytes, desc) each) to both routers, in bursts
        the veth rings absorb; records what the receivers got in seen."""
        burst = 64
        for i in range(0, len(pkts), burst):
            for seq, l3, d in pkts[i:i + burst]:
                self.t.tx["A"].send(frame(MAC_A_IN, MAC_SA, l3, d["fam"]))
                self.t.tx["B"].send(frame(MAC_B_IN, MAC_SB, l3, d["fam"]))
            self.drain(want, seen)
            time.sleep(0.002)
        self.settle(want, seen, self.args.quiet, self.args.wait_max)

    def make_packets(self, rnd, n, back=0.0, ct=False):
        out = []
        for _ in range(n):
            self.seq += 1
            l3, d = gen_packet(rnd, self.nonce, self.seq, self.frags, back, ct)
            out.append((self.seq, l3, d))
        return out

    def make_flows(self, rnd, npackets):
        """Connections (FlowGen) of about npackets packets in all."""
        def newtag():
            self.seq += 1
            return self.seq, MAGIC + struct.pack("!II", self.nonce, self.seq)

        ports = [0]

        def port():
            ports[0] += 1
            return CT_PORT0 + ports[0] % 25000

        g = FlowGen(rnd, newtag, port)
        flows, n = [], 0
        while n < npackets:
            f = g.flow()
            flows.append(f)
            n += len(f)
        return flows

    def run_set(self, label, seed, rules, default, pkts, expect=None):
        """Loads a rule set, sends pkts, compares. Returns True on success."""
        st, i4, i6, idx4, idx6 = self.load(rules, default)
        sl0, ipt0 = self.counters(len(rules), idx4, idx6)
        seen = {"A": set(), "B": set()}
        want = set(p[0] for p in pkts)
        chunk = self.args.chunk
        for i in range(0, len(pkts), chunk):
            self.send_and_observe(pkts[i:i + chunk], seen, want)
        if seen["A"] != seen["B"]:
            # Before calling it a mismatch, give late frames (a loaded
            # machine) one more second.
            self.settle(want, seen, 1.0, 3.0)
        sl1, ipt1 = self.counters(len(rules), idx4, idx6)

        bad = []
        exp_cnt = [0] * (len(rules) + 1)
        exp_bytes = [0] * (len(rules) + 1)
        n_acc = n_drop = 0
        for seq, l3, d in pkts:
            m = 0
            for i, r in enumerate(rules):
                if r.matches(d):
                    m = i + 1
                    break
            exp_cnt[m] += 1
            exp_bytes[m] += len(l3)
            model = (rules[m - 1].action if m else default) == "accept"
            a, b = seq in seen["A"], seq in seen["B"]
            if a != b or a != model:
                bad.append((seq, l3, d, a, b, model, m))
            if b:
                n_acc += 1
            else:
                n_drop += 1
        cbad = []
        for i in range(len(rules) + 1):
            sp = sl1.get(i, (0, 0))[0] - sl0.get(i, (0, 0))[0]
            sb = sl1.get(i, (0, 0))[1] - sl0.get(i, (0, 0))[1]
            ip_ = ipt1[i][0] - ipt0[i][0]
            ib = ipt1[i][1] - ipt0[i][1]
            name = "default" if i == 0 else "rule %d" % i
            # sluice counts the frame at XDP (Ethernet header included),
            # netfilter the IP packet: 14 bytes apart per packet.
            if sp != ip_ or sb != ib + 14 * ip_:
                cbad.append("%s: sluice %d pkts %d bytes, iptables %d pkts %d bytes "
                            "(+14/pkt = %d)" % (name, sp, sb, ip_, ib, ib + 14 * ip_))
            em = exp_cnt[i]
            if not bad and ip_ != em:
                cbad.append("%s: model expects %d packets, iptables counted %d"
                            % (name, em, ip_))
        if expect == "all" and n_acc != len(pkts):
            bad.append(("baseline", None, None, None, None, None, None))
        if expect == "none" and n_acc != 0:
            bad.append(("baseline", None, None, None, None, None, None))
        self.tot_packets += len(pkts)
        self.tot_accept += n_acc
        self.tot_drop += n_drop
        if not bad and not cbad:
            hit = sum(1 for c in exp_cnt[1:] if c)
            log("PASS: %s seed=%s rules=%d packets=%d (accepted %d, dropped %d, "
                "%d rules hit, %d to the default)"
                % (label, seed, len(rules), len(pkts), n_acc, n_drop, hit, exp_cnt[0]))
            return True
        self.fails += 1
        log("---- mismatch: %s seed=%s rules=%d packets=%d default=%s"
            % (label, seed, len(rules), len(pkts), default))
        log("-- sluice rule file:\n" + st.rstrip())
        log("-- iptables-restore:\n" + i4.rstrip())
        log("-- ip6tables-restore:\n" + i6.rstrip())
        shown = 0
        for seq, l3, d, a, b, model, m in bad:
            if seq == "baseline":
                log("baseline expectation '%s' not met: %d of %d accepted"
                    % (expect, n_acc, len(pkts)))
                continue
            if shown < self.args.show:
                fam = d["fam"]
                log("packet #%d: sluice=%s iptables=%s model=%s (first matching rule: %s)"
                    % (seq, "accept" if a else "drop", "accept" if b else "drop",
                       "accept" if model else "drop", m if m else "none, default"))
                log("  desc: %s" % json.dumps(d, sort_keys=True))
                log("  %s hex: %s" % ("IPv4" if fam == 4 else "IPv6", l3.hex()))
                log("  frame hex: %s" % frame(MAC_A_IN, MAC_SA, l3, fam).hex())
                shown += 1
        if len(bad) > shown:
            log("... %d mismatching packets in all" % len(bad))
        for c in cbad:
            log("counter mismatch: " + c)
        log("FAIL: %s seed=%s rules=%d packets=%d: %d packet mismatches, %d counter mismatches"
            % (label, seed, len(rules), len(pkts), len(bad), len(cbad)))
        return False


# ----------------------------------------------------------------- import mode
# Seeded random iptables-save files over the grammar `sluice iptables
# import` supports, loaded as they are on both routers: sluice imports the
# file, the kernel restores it. Only the kernel is the reference here.

ICMP4_NAMES = ["echo-request", "echo-reply", "destination-unreachable", "time-exceeded",
               "network-unreachable", "host-unreachable", "protocol-unreachable",
               "port-unreachable", "source-quench", "redirect", "parameter-problem",
               "timestamp-request", "timestamp-reply"]
ICMP6_NAMES = ["destination-unreachable", "no-route", "packet-too-big", "time-exceeded",
               "parameter-problem", "echo-request", "echo-reply", "router-solicitation",
               "neighbour-solicitation", "neighbour-advertisement"]
# -p by name (/etc/protocols), as iptables-save prints some of them.
RULE_PROTO_NAMES = ["esp", "sctp", "gre", "all"]


def ipt_ports(rnd, lst):
    out = []
    for _ in range(rnd.randint(1, 4) if lst else 1):
        lo, hi = port_range(rnd)
        if lo == hi:
            out.append(str(lo))
        elif not lst and lo == 0 and rnd.random() < 0.5:
            out.append(":%d" % hi)  # open ranges, as iptables takes them
        elif not lst and hi == 65535 and rnd.random() < 0.5:
            out.append("%d:" % lo)
        else:
            out.append("%d:%d" % (lo, hi))
    return ",".join(out)


def ipt_prefix(rnd, pfx):
    """A prefix as written in a file: IPv4 sometimes with a dotted mask."""
    net = ipaddress.ip_network(pfx)
    if net.version == 4 and rnd.random() < 0.15:
        return "%s/%s" % (net.network_address, net.netmask)
    return pfx


def xt_limit_credits(user):
    """xt_limit's user2credits() in its u32 arithmetic (HZ 250)."""
    user &= 0xFFFFFFFF
    if user > 0xFFFFFFFF // 32000:
        return (user // 10000 * 32000) & 0xFFFFFFFF
    return user * 32000 // 10000


def ipt_limit(rnd):
    """-m limit per hour or day: no token comes back during a run, so the
    verdicts do not depend on timing. Bursts where xt_limit's credit cap
    wraps (smaller than burst x cost, kept so) are in; those its overflow
    check refuses are not."""
    if rnd.random() < 0.1:
        return "-m limit"  # 3/hour, burst 5
    while True:
        n, per = rnd.randint(1, 5), rnd.choice([3600, 86400])
        b = rnd.randint(1, 8) if rnd.random() < 0.8 else rnd.randint(30, 45)
        avg = 10000 * per // n
        if xt_limit_credits(avg * b) >= xt_limit_credits(avg):
            return "-m limit --limit %d/%s --limit-burst %d" % (
                n, "hour" if per == 3600 else "day", b)


def neg(rnd, p=0.25):
    return "! " if rnd.random() < p else ""


CT_STATES = ["NEW", "ESTABLISHED", "RELATED", "INVALID"]


def ipt_ct_match(rnd):
    """-m conntrack --ctstate or -m state --state, one or two states."""
    pool = CT_STATES + (["UNTRACKED"] if rnd.random() < 0.2 else [])
    states = ",".join(rnd.sample(pool, rnd.choice([1, 1, 1, 2])))
    if rnd.random() < 0.5:
        return "-m conntrack %s--ctstate %s" % (neg(rnd, 0.15), states)
    return "-m state %s--state %s" % (neg(rnd, 0.15), states)


def ipt_gen_rule(rnd, fam, chain, users, depth, ct=False):
    w = []
    pool = V4_PREFIXES if fam == 4 else V6_PREFIXES
    addrs = V4_ADDRS if fam == 4 else V6_ADDRS
    back = BACK4_PREFIXES if fam == 4 else BACK6_PREFIXES
    for opt in ("-s", "-d"):
        if rnd.random() < 0.35:
            pick = pool + back if opt == "-s" else pool
            pfx = rnd.choice(pick)
            n = neg(rnd)
            if n and pfx.endswith("/0"):
                n = ""  # iptables-nft refuses "! -s 0.0.0.0/0"
            if not n and rnd.random() < 0.15:
                # A list: iptables-restore makes a rule of each address
                # (sources outer), each with its own counter.
                pfx = ",".join(rnd.choice(pick) for _ in range(rnd.randint(2, 3)))
            w.append("%s%s %s" % (n, opt, ",".join(ipt_prefix(rnd, p) for p in pfx.split(","))))
    if any("," in x for x in w):
        # iptables refuses "!" on either address when one is a list.
        w = [x[2:] if x.startswith("! ") else x for x in w]
    if rnd.random() < 0.12:
        w.append("%s-i %s" % (neg(rnd), rnd.choice([IF_IN, IF_OUT, "in+", "ou+", "+"])))
    if chain != "INPUT" and rnd.random() < 0.08:
        w.append("%s-o %s" % (neg(rnd, 0.3), rnd.choice([IF_IN, IF_OUT, "out+"])))
    proto = None
    x = rnd.random()
    if x < 0.35:
        proto = "tcp"
    elif x < 0.6:
        proto = "udp"
    elif x < 0.75:
        proto = "icmp" if fam == 4 else "ipv6-icmp"
    elif x < 0.79:
        proto = str(rnd.choice(RULE_PROTO_NUMS))
    elif x < 0.82:
        proto = rnd.choice(RULE_PROTO_NAMES)
    if proto:
        # "! -p all" is refused by iptables ("would never match").
        w.append("%s-p %s" % (neg(rnd, 0.1) if proto != "all" else "", proto))
    if proto in ("tcp", "udp") and not w[-1].startswith("!"):
        if rnd.random() < 0.5:
            # -m tcp may be left out: -p tcp loads it (not so in iptables-save).
            m = ["-m", proto] if rnd.random() < 0.85 else []
            if rnd.random() < 0.5:
                m.append("%s--sport %s" % (neg(rnd), ipt_ports(rnd, False)))
            if rnd.random() < 0.6:
                m.append("%s--dport %s" % (neg(rnd), ipt_ports(rnd, False)))
            if proto == "tcp" and rnd.random() < 0.4:
                if rnd.random() < 0.4:
                    m.append("%s--syn" % neg(rnd))
                else:
                    mask = rnd.randrange(1, 64)
                    comp = mask & rnd.randrange(64)
                    m.append("%s--tcp-flags %s %s" % (neg(rnd), flag_names(mask), flag_names(comp)))
            if m:
                w.append(" ".join(m))
        elif rnd.random() < 0.5:
            opt = rnd.choice(["--dports", "--sports", "--ports"])
            w.append("-m multiport %s%s %s" % (neg(rnd, 0.2), opt, ipt_ports(rnd, True)))
    if proto in ("icmp", "ipv6-icmp") and not w[-1].startswith("!") and rnd.random() < 0.6:
        types = ICMP4_TYPES if fam == 4 else ICMP6_TYPES
        t = str(rnd.choice(types))
        if rnd.random() < 0.15:
            t = rnd.choice(ICMP4_NAMES + ["any"] if fam == 4 else ICMP6_NAMES)
        elif rnd.random() < 0.2:
            t += "/%d" % rnd.choice([0, 1, 3])
        if fam == 4:
            w.append("-m icmp %s--icmp-type %s" % (neg(rnd, 0.15), t))
        else:
            w.append("-m icmp6 %s--icmpv6-type %s" % (neg(rnd, 0.15), t))
    if rnd.random() < 0.12:
        a, b = sorted([ipaddress.ip_address(rnd.choice(addrs)), ipaddress.ip_address(rnd.choice(addrs))])
        w.append("-m iprange %s--%s-range %s-%s" % (neg(rnd), rnd.choice(["src", "dst"]), a, b))
    if chain != "OUTPUT" and rnd.random() < 0.05:
        # SENDER: the sender's MAC on each router (they differ).
        w.append("-m mac %s--mac-source %s" % (neg(rnd, 0.5), rnd.choice(["SENDER", "02:00:00:00:00:01"])))
    if rnd.random() < 0.05:
        w.append('-m comment --comment "rule %d"' % rnd.randrange(1000))
    if ct and rnd.random() < 0.35:
        w.append(ipt_ct_match(rnd))
    if rnd.random() < 0.05:
        # Per hour: no token comes back during a run, so the verdicts do
        # not depend on timing: the first `burst` matching packets pass.
        w.append(ipt_limit(rnd))
    x = rnd.random()
    callable_ = [u for u in users if u[1] > depth]
    if callable_ and x < 0.25:
        w.append("%s %s" % ("-g" if rnd.random() < 0.2 else "-j", rnd.choice(callable_)[0]))
    elif x < 0.3 and (chain not in ("INPUT", "FORWARD", "OUTPUT") or rnd.random() < 0.15):
        w.append("-j RETURN")  # in a built-in chain: its policy
    elif x < 0.35:
        w.append('-j LOG --log-prefix "sl%d "' % rnd.randrange(100))
    elif x < 0.38:
        pass  # no target: the rule only counts
    elif x < 0.5:
        types = REJECT4 if fam == 4 else REJECT6
        tcp = proto == "tcp" and "! -p tcp" not in " ".join(w)
        t = rnd.choice(types + (["tcp-reset"] * 3 if tcp else []))
        if rnd.random() < 0.2:
            t = REJECT_ALIASES.get((fam, t), t)
        w.append("-j REJECT" + ("" if rnd.random() < 0.15 else " --reject-with " + t))
    else:
        w.append("-j " + rnd.choice(["ACCEPT", "DROP"]))
    return "-A %s %s" % (chain, " ".join(w))


REJECT4 = ["icmp-net-unreachable", "icmp-host-unreachable", "icmp-port-unreachable",
           "icmp-proto-unreachable", "icmp-net-prohibited", "icmp-host-prohibited",
           "icmp-admin-prohibited"]
REJECT6 = ["icmp6-no-route", "icmp6-adm-prohibited", "icmp6-addr-unreachable",
           "icmp6-port-unreachable"]
# iptables' short names (libipt_REJECT, libip6t_REJECT).
REJECT_ALIASES = {(4, "icmp-net-unreachable"): "net-unreach",
                  (4, "icmp-host-unreachable"): "host-unreach",
                  (4, "icmp-port-unreachable"): "port-unreach",
                  (4, "icmp-proto-unreachable"): "proto-unreach",
                  (4, "icmp-net-prohibited"): "net-prohib",
                  (4, "icmp-host-prohibited"): "host-prohib",
                  (4, "icmp-admin-prohibited"): "admin-prohib",
                  (4, "tcp-reset"): "tcp-rst",
                  (6, "icmp6-no-route"): "no-route",
                  (6, "icmp6-adm-prohibited"): "adm-prohibited",
                  (6, "icmp6-addr-unreachable"): "addr-unreach",
                  (6, "icmp6-port-unreachable"): "port-unreach"}


def ipt_gen_file(rnd, fam, nrules, ct=False):
    nusers = rnd.randint(0, 3)
    users = [("U%d" % i, i + 1) for i in range(nusers)]
    pol = rnd.choice(["ACCEPT", "DROP"])
    lines = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD %s [0:0]" % pol, ":OUTPUT ACCEPT [0:0]"]
    lines += [":%s - [0:0]" % u for u, _ in users]
    chains = [("FORWARD", 0)] + users
    body = []
    for _ in range(nrules):
        c, depth = rnd.choice(chains) if rnd.random() < 0.5 else chains[0]
        body.append(ipt_gen_rule(rnd, fam, c, users, depth, ct))
    if ct:
        # The stateful firewall's usual lines, somewhere in FORWARD.
        idioms = ["-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                  "-A FORWARD -m state --state ESTABLISHED -j ACCEPT",
                  "-A FORWARD -m conntrack --ctstate INVALID -j DROP",
                  "-A FORWARD -m state --state NEW -j " + rnd.choice(["ACCEPT", "DROP"]),
                  "-A FORWARD -m conntrack ! --ctstate NEW,ESTABLISHED -j "
                  + rnd.choice(["ACCEPT", "DROP"])]
        for ln in rnd.sample(idioms, rnd.randint(1, 3)):
            body.insert(rnd.randrange(len(body) + 1) if rnd.random() < 0.7 else 0, ln)
    lines += body
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def parse_save(text):
    """Counters of an iptables-save -c output: policies by chain, rules in order."""
    pol, rules = {}, []
    for line in text.splitlines():
        if line.startswith(":"):
            name, _, cnt = line[1:].split(" ", 2)
            p, b = cnt.strip("[]").split(":")
            pol[name] = (int(p), int(b))
        elif line.startswith("["):
            p, b = line[1:line.index("]")].split(":")
            rules.append((int(p), int(b), line[line.index("]") + 2:]))
    return pol, rules


# ----------------------------------------------------------------- flows
# Connections for the conntrack-state comparison (--ct). Each flow is a
# list of steps ("o": from the originator, a source routed back towards
# the sender; "r": its reply from the receiver's side), sent one step per
# round, every originator step of a round before every reply step, so
# that both routers see each flow's packets in order. TCP sequence and
# acknowledgement numbers are right (the kernel tracks windows, sluice
# does not: the generator stays in the window).
CT_NOTES = """Differences the conntrack generator leaves out:
- no IP fragments: the kernel reassembles before tracking;
- TCP stays within the windows (sluice does no window tracking);
- no SCTP or UDP-Lite (the kernel's trackers check their headers);
- stateless random packets use disjoint source and destination pools and
  random ports, so that none continues or answers a connection (their
  random TCP sequence numbers would be out of the kernel's window)."""

CT_PORT0 = 40000  # flows' originator ports: CT_PORT0 + n, unique in a run


def flow_l3(fam, src, dst, proto, l4):
    if fam == 4:
        return bytes(IP(src=src, dst=dst, ttl=64, proto=proto, id=0) / l4)
    return bytes(IPv6(src=src, dst=dst, hlim=64, nh=proto) / l4)


def icmp_error(rnd, fam, src, dst, quoted, tag):
    """An ICMP error from src to dst quoting the IP header and the first 8
    bytes of the L4 header of quoted (L3 bytes), then our tag."""
    if fam == 4:
        inner = quoted[:(quoted[0] & 15) * 4 + 8]
        t = rnd.choice([3, 3, 11, 12, 4])
        code = rnd.choice([0, 1, 3, 13]) if t == 3 else 0
        l4 = ICMP(type=t, code=code) / Raw(inner + tag)
        return flow_l3(4, src, dst, 1, l4), t
    inner = quoted[:48]
    t = rnd.choice([1, 1, 2, 3, 4])
    l4 = ICMPv6Unknown(type=t, code=rnd.choice([0, 1, 3, 4]) if t == 1 else 0) / \
        Raw(b"\0\0\x05\x00" + inner + tag)
    return flow_l3(6, src, dst, 58, l4), t


class FlowGen:
    def __init__(self, rnd, newtag, port):
        self.rnd = rnd
        self.newtag = newtag  # () -> (seq, tag bytes)
        self.port = port  # () -> a fresh originator port

    def pad(self):
        return bytes(self.rnd.randrange(256) for _ in range(self.rnd.choice([0, 4, 20])))

    def flow(self):
        rnd = self.rnd
        fam = rnd.choice([4, 6])
        addrs = V4_ADDRS if fam == 4 else V6_ADDRS
        o = rnd.choice(BACK4_ADDRS if fam == 4 else BACK6_ADDRS)
        r = rnd.choice(addrs[1::2])
        kind = rnd.choice(["tcp"] * 5 + ["udp"] * 2 + ["echo", "other", "stray"])
        steps = getattr(self, "f_" + kind)(fam, o, r)
        # An ICMP error quoting one of the flow's packets: RELATED, in the
        # other direction; sometimes to the wrong address (INVALID).
        if len(steps) > 1 and rnd.random() < 0.3:
            at = rnd.randrange(1, len(steps))
            side, l3, d = steps[rnd.randrange(at)]
            q = {"o": (r, o), "r": (o, r)}[side]
            esrc = q[0] if rnd.random() < 0.7 else rnd.choice(addrs[1::2] if side == "o" else
                                                               (BACK4_ADDRS if fam == 4 else BACK6_ADDRS))
            edst = q[1]
            if side == "o" and rnd.random() < 0.15:
                edst = rnd.choice(BACK4_ADDRS if fam == 4 else BACK6_ADDRS)
            seq, tag = self.newtag()
            el3, t = icmp_error(rnd, fam, esrc, edst, l3, tag)
            steps.insert(at, ("r" if side == "o" else "o", el3,
                              {"fam": fam, "seq": seq, "kind": "icmp-error", "type": t,
                               "quotes": d["seq"], "src": esrc, "dst": edst}))
        return steps

    def f_tcp(self, fam, o, r):
        rnd = self.rnd
        sp, dp = self.port(), rnd.choice(PORTS[1:] + [rnd.randrange(1, 65536)])
        nxt = {"o": rnd.randrange(1 << 32), "r": rnd.randrange(1 << 32)}
        steps = []

        def pkt(side, flags, seq=None, ack=None, adv=True):
            n, tag = self.newtag()
            pay = tag + self.pad()
            other = "r" if side == "o" else "o"
            src, dst = (o, r) if side == "o" else (r, o)
            ps, pd = (sp, dp) if side == "o" else (dp, sp)
            sq = nxt[side] if seq is None else seq
            ak = (nxt[other] if "A" in flags else 0) if ack is None else ack
            l4 = TCP(sport=ps, dport=pd, flags=flags, seq=sq & 0xFFFFFFFF,
                     ack=ak & 0xFFFFFFFF, window=65535) / Raw(pay)
            if adv:
                nxt[side] = sq + len(pay) + ("S" in flags) + ("F" in flags)
            steps.append((side, flow_l3(fam, src, dst, 6, l4),
                          {"fam": fam, "seq": n, "kind": "tcp", "flags": flags, "src": src,
                           "dst": dst, "sport": ps, "dport": pd}))

        def handshake():
            nxt["o"] = rnd.randrange(1 << 32)
            nxt["r"] = rnd.randrange(1 << 32)
            pkt("o", "S")
            pkt("r", "SA")
            pkt("o", "A")

        def close():
            first = rnd.choice("or")
            last = "r" if first == "o" else "o"
            pkt(first, "FA")
            if rnd.random() < 0.5:
                pkt(last, "A")
                pkt(last, "PA")
            pkt(last, "FA")
            pkt(first, "A")

        how = rnd.choice(["full", "full", "rst", "refused", "unanswered", "midstream",
                          "reopen", "stray"])
        if how == "midstream":  # picked up by an ACK (nf_conntrack_tcp_loose)
            pkt("o", "PA")
            pkt("r", "PA")
            pkt("o", "A")
            return steps
        if how == "stray":  # no SYN: INVALID in both
            pkt(rnd.choice("or"), rnd.choice(["SA", "FA", "R", "RA", "F", "SF", "FPU"]))
            pkt(rnd.choice("or"), rnd.choice(["A", "PA"]))
            return steps
        if how == "unanswered":
            isn = nxt["o"]
            pkt("o", "S")
            for _ in range(rnd.randint(0, 2)):
                pkt("o", "S", seq=isn)
            return steps
        if how == "refused":
            pkt("o", "S")
            pkt("r", "RA", seq=0)
            if rnd.random() < 0.5:
                handshake()
            return steps
        handshake()
        for _ in range(rnd.randint(0, 3)):
            pkt(rnd.choice("or"), "PA")
        if how == "rst":
            side = rnd.choice("or")
            pkt(side, rnd.choice(["R", "RA"]), adv=False)
            if rnd.random() < 0.5:
                pkt(rnd.choice("or"), "A")  # after the reset
            return steps
        close()
        if how == "reopen":  # a SYN on TIME_WAIT opens a new connection
            handshake()
            pkt("o", "PA")
        return steps

    def f_udp(self, fam, o, r):
        rnd = self.rnd
        sp, dp = self.port(), rnd.choice(PORTS[1:] + [rnd.randrange(1, 65536)])
        steps = []
        for side in ["o"] + [rnd.choice("oorr") for _ in range(rnd.randint(0, 4))]:
            n, tag = self.newtag()
            src, dst = (o, r) if side == "o" else (r, o)
            ps, pd = (sp, dp) if side == "o" else (dp, sp)
            steps.append((side, flow_l3(fam, src, dst, 17, UDP(sport=ps, dport=pd) / Raw(tag + self.pad())),
                          {"fam": fam, "seq": n, "kind": "udp", "src": src, "dst": dst,
                           "sport": ps, "dport": pd}))
        return steps

    def f_echo(self, fam, o, r):
        rnd = self.rnd
        ident = self.port()
        req, rep = (8, 0) if fam == 4 else (128, 129)
        steps = []
        seqs = ["o", "r"] * rnd.randint(1, 2)
        if rnd.random() < 0.2:
            seqs = ["r", "o"]  # a reply nobody asked for: INVALID
        for i, side in enumerate(seqs):
            n, tag = self.newtag()
            src, dst = (o, r) if side == "o" else (r, o)
            t = req if side == "o" else rep
            if fam == 4:
                l4 = ICMP(type=t, id=ident, seq=i) / Raw(tag + self.pad())
                l3 = flow_l3(4, src, dst, 1, l4)
            else:
                l4 = ICMPv6Unknown(type=t, code=0) / Raw(struct.pack("!HH", ident, i) + tag + self.pad())
                l3 = flow_l3(6, src, dst, 58, l4)
            steps.append((side, l3, {"fam": fam, "seq": n, "kind": "echo", "type": t,
                                     "src": src, "dst": dst, "id": ident}))
        return steps

    def f_other(self, fam, o, r):
        rnd = self.rnd
        # Generic tracking is by addresses only: a fresh pair per flow.
        o = self.fresh_addr(fam)
        proto = rnd.choice(CT_OTHER_PROTOS)
        steps = []
        for side in ["o"] + [rnd.choice("or") for _ in range(rnd.randint(0, 3))]:
            n, tag = self.newtag()
            src, dst = (o, r) if side == "o" else (r, o)
            steps.append((side, flow_l3(fam, src, dst, proto, Raw(tag + self.pad())),
                          {"fam": fam, "seq": n, "kind": "proto %d" % proto, "src": src, "dst": dst}))
        return steps

    def f_stray(self, fam, o, r):
        """An ICMP error quoting a packet of no connection: INVALID."""
        rnd = self.rnd
        sp = self.port()
        q = flow_l3(fam, o, r, 17, UDP(sport=sp, dport=53) / Raw(b"x" * 8))
        n, tag = self.newtag()
        l3, t = icmp_error(rnd, fam, r, o, q, tag)
        return [("r", l3, {"fam": fam, "seq": n, "kind": "icmp-error (no flow)", "type": t})]

    def fresh_addr(self, fam):
        n = self.port() - CT_PORT0
        if fam == 4:
            return str(ipaddress.ip_address("10.78.0.0") + n)
        return str(ipaddress.ip_address("2001:db8:77:ff::") + n)


def router_made(data):
    """Whether a frame comes from a router itself (an ICMP error it sent),
    not from the sender: such frames quote a tag but are no verdict."""
    if len(data) >= 34 and data[12:14] == b"\x08\x00":
        return data[26:28] == bytes([10, 99])
    if len(data) >= 54 and data[12:14] == b"\x86\xdd":
        return data[22:25] == bytes.fromhex("fd0000") and data[25] in (0x98, 0x99)
    return False


def answer_of(data, nonce):
    """A REJECT answer (ICMP error or TCP reset) as a comparable tuple, or None."""
    if len(data) < 14:
        return None
    eth = data[12:14]
    if eth == b"\x08\x00" and len(data) >= 34:
        ihl = (data[14] & 15) * 4
        proto, l4 = data[23], 14 + ihl
        src, dst = socket.inet_ntop(socket.AF_INET, data[26:30]), socket.inet_ntop(socket.AF_INET, data[30:34])
        icmp_err = proto == 1 and len(data) >= l4 + 8 and data[l4] == 3
    elif eth == b"\x86\xdd" and len(data) >= 54:
        proto, l4 = data[20], 54
        src, dst = socket.inet_ntop(socket.AF_INET6, data[22:38]), socket.inet_ntop(socket.AF_INET6, data[38:54])
        icmp_err = proto == 58 and len(data) >= l4 + 8 and data[l4] == 1
    else:
        return None
    if icmp_err:
        at = data.find(MAGIC, l4)
        if at < 0 or len(data) < at + 12:
            return ("icmp", src, dst, data[l4], data[l4 + 1], None)
        n, seq = struct.unpack("!II", data[at + 4:at + 12])
        return ("icmp", src, dst, data[l4], data[l4 + 1], seq if n == nonce else None)
    if proto == 6 and len(data) >= l4 + 20 and data[l4 + 13] & 4:
        sp, dp, sq, ak = struct.unpack("!HHII", data[l4:l4 + 12])
        return ("rst", src, dst, sp, dp, sq, ak, data[l4 + 13])
    return None


class ImportHarness(Harness):
    def __init__(self, topo, args):
        super().__init__(topo, args)
        t = topo
        # Sources in BACK*_NET route back towards the sender: REJECT
        # answers to them go there, on both routers alike.
        for ns, mac in ((t.ns_a, MAC_SA), (t.ns_b, MAC_SB)):
            t.sh(ns, "ip", "neigh", "replace", "10.99.0.2", "lladdr", mac, "dev", IF_IN,
                 "nud", "permanent")
            t.sh(ns, "ip", "-6", "neigh", "replace", "fd00:98::2", "lladdr", mac, "dev", IF_IN,
                 "nud", "permanent")
            t.sh(ns, "ip", "route", "add", BACK4_NET, "via", "10.99.0.2", "dev", IF_IN)
            t.sh(ns, "ip", "-6", "route", "add", BACK6_NET, "via", "fd00:98::2", "dev", IF_IN)
        # XDP_TX on a veth (sluice's REJECT answers) reaches the peer only
        # when the peer runs XDP too: an accept-all firewall on the
        # sender's ends, on both, so that both paths are alike.
        for dev in ("sa", "sb"):
            t.sh(t.ns_s, SLUICE, "firewall", "load", dev, "-", inp="accept\n")
        # The kernel answers every REJECT, not a rate-limited few.
        t.sysctl(t.ns_b, "net.ipv4.icmp_ratelimit", 0)
        t.sysctl(t.ns_b, "net.ipv6.icmp.ratelimit", 0)
        t.sysctl(t.ns_b, "net.ipv4.icmp_msgs_per_sec", 1000000)
        t.sysctl(t.ns_b, "net.ipv4.icmp_msgs_burst", 1000000)
        me = os.open("/proc/self/ns/net", os.O_RDONLY)
        try:
            setns("/run/netns/" + t.ns_s)
            self.back = {}
            for k, dev in (("A", "sa"), ("B", "sb")):
                so = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
                so.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
                so.bind((dev, ETH_P_ALL))
                so.setblocking(False)
                self.back[k] = so
            # Replies (--ct) leave from the receiver's side.
            setns("/run/netns/" + t.ns_r)
            self.rtx = {}
            for k, dev in (("A", "ra"), ("B", "rb")):
                so = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
                so.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
                so.bind((dev, 0))
                self.rtx[k] = so
        finally:
            if libc.setns(me, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
            os.close(me)
        self.out_mac = {}
        for k, ns in (("A", t.ns_a), ("B", t.ns_b)):
            j = json.loads(t.sh(ns, "ip", "-j", "link", "show", IF_OUT).stdout)
            self.out_mac[k] = j[0]["address"]
        self.answers = {"A": [], "B": []}
        self.tot_counters = 0
        self.tot_sets = 0
        self.tot_bad = 0  # packet, answer and counter mismatches
        self.rwant = set()  # replies (--ct): seen when they reach the sender

    def drain(self, want, seen):
        n = 0
        for k in ("A", "B"):
            while True:
                try:
                    data, addr = self.back[k].recvfrom(65536)
                except BlockingIOError:
                    break
                if addr[2] == PACKET_OUTGOING:
                    continue
                if self.rwant and not router_made(data):
                    at = data.find(MAGIC)
                    if at >= 0 and len(data) >= at + 12:
                        nonce, seq = struct.unpack("!II", data[at + 4:at + 12])
                        if nonce == self.nonce and seq in self.rwant:
                            seen[k].add(seq)
                            n += 1
                            continue
                a = answer_of(data, self.nonce)
                if a:
                    self.answers[k].append(a)
        socks = {self.t.rx[k].fileno(): k for k in ("A", "B")}
        while True:
            r, _, _ = select.select(list(socks), [], [], 0)
            if not r:
                return n
            for fd in r:
                k = socks[fd]
                try:
                    data, addr = self.t.rx[k].recvfrom(65536)
                except BlockingIOError:
                    continue
                if addr[2] == PACKET_OUTGOING or router_made(data):
                    continue
                at = data.find(MAGIC)
                if at >= 0 and len(data) >= at + 12:
                    nonce, seq = struct.unpack("!II", data[at + 4:at + 12])
                    if nonce == self.nonce and seq in want:
                        seen[k].add(seq)
                        n += 1

    def load_files(self, f4, f6):
        a4, a6 = f4.replace("SENDER", MAC_SA), f6.replace("SENDER", MAC_SA)
        f4, f6 = f4.replace("SENDER", MAC_SB), f6.replace("SENDER", MAC_SB)
        self.t.sh(self.t.ns_a, SLUICE, "iptables", "import", "-4", "--dev", IF_IN,
                  "--dev", IF_OUT, "-", inp=a4)
        self.t.sh(self.t.ns_a, SLUICE, "iptables", "import", "-6", "-", inp=a6)
        self.t.sh(self.t.ns_b, self.tools["4r"], inp=f4)
        self.t.sh(self.t.ns_b, self.tools["6r"], inp=f6)

    def save_all(self):
        out = {}
        for fam in (4, 6):
            a = self.t.sh(self.t.ns_a, SLUICE, "iptables", "save", "-%d" % fam, "-c").stdout
            b = self.t.sh(self.t.ns_b, self.tools["%ds" % fam], "-c", "-t", "filter").stdout
            out[fam] = (parse_save(a), parse_save(b))
        return out

    def ct_states(self):
        """Packets sluice's conntrack classified, by state, since the last
        call (both routers see the same packets; sluice says which state)."""
        p = self.t.sh(self.t.ns_a, SLUICE, "-j", "conntrack", "stats", check=False)
        now = {}
        if p.returncode == 0:
            for inst in json.loads(p.stdout):
                for k in ("new", "established", "related", "invalid", "untracked"):
                    now[k] = now.get(k, 0) + inst.get(k, 0)
        last = getattr(self, "ct_last", {})
        self.ct_last = now
        return {k: v - last.get(k, 0) for k, v in now.items()}

    def ct_flush(self):
        """Empties both conntrack tables: every rule set starts afresh."""
        self.t.sh(self.t.ns_a, SLUICE, "conntrack", "flush", check=False)
        for f in ("ipv4", "ipv6"):
            self.t.sh(self.t.ns_b, "conntrack", "-F", "-f", f, check=False)

    def send_reply_phase(self, steps, seen, want):
        """Sends replies from the receiver's side; what the routers forward
        reaches the sender (drain)."""
        for i in range(0, len(steps), 64):
            for seq, l3, d in steps[i:i + 64]:
                for k in ("A", "B"):
                    self.rtx[k].send(frame(self.out_mac[k], MAC_RA if k == "A" else MAC_RB,
                                           l3, d["fam"]))
            self.drain(want, seen)
            time.sleep(0.002)
        self.settle(want, seen, self.args.quiet, self.args.wait_max)

    def send_flows(self, pkts, flows, seen, want):
        """Round k sends step k of every live flow (originator steps, then
        once the routers are quiet, reply steps) and a share of the
        stateless packets. Returns the packets sent."""
        rounds = max((len(f) for f in flows), default=0) or 1
        share = (len(pkts) + rounds - 1) // rounds
        live = list(range(len(flows)))
        sent = []
        for k in range(rounds):
            orig = list(pkts[k * share:(k + 1) * share])
            rep = []
            for i in live:
                if k < len(flows[i]):
                    side, l3, d = flows[i][k]
                    (orig if side == "o" else rep).append((d["seq"], l3, d))
            # Interleave the flows' originator steps with the stateless
            # packets (limit buckets see one order on both routers).
            self.rwant = set(p[0] for p in rep) | {-1}
            if orig:
                self.send_and_observe(orig, seen, want)
            if rep:
                self.send_reply_phase(rep, seen, want)
            if seen["A"] != seen["B"]:
                self.settle(want, seen, 1.0, 3.0)
            sent += orig + rep
            live = [i for i in live if k + 1 < len(flows[i])]
        self.rwant = set()
        return sent

    def run_files(self, label, seed, f4, f6, pkts, flows=None):
        self.load_files(f4, f6)
        if flows is not None:
            self.ct_flush()
        before = self.save_all()
        seen = {"A": set(), "B": set()}
        want = set(p[0] for p in pkts)
        if flows is not None:
            want |= set(st[2]["seq"] for f in flows for st in f)
            pkts = self.send_flows(pkts, flows, seen, want)
        else:
            for i in range(0, len(pkts), self.args.chunk):
                self.send_and_observe(pkts[i:i + self.args.chunk], seen, want)
        if seen["A"] != seen["B"]:
            self.settle(want, seen, 1.0, 3.0)
        after = self.save_all()
        if flows is not None and os.environ.get("CTDUMP"):  # debugging
            with open(os.environ["CTDUMP"] + ".%s" % seed, "w") as fd:
                fd.write(self.t.sh(self.t.ns_a, SLUICE, "conntrack", "list", check=False).stdout)
                for f in ("ipv4", "ipv6"):
                    fd.write(self.t.sh(self.t.ns_b, "conntrack", "-L", "-f", f, check=False).stdout)
                for fl in flows:
                    fd.write("FLOW %s\n" % json.dumps([(st[0], st[2]) for st in fl]))
                fd.write("SEEN_A %s\nSEEN_B %s\n" % (sorted(seen["A"]), sorted(seen["B"])))
        bad = [(seq, l3, d) for seq, l3, d in pkts if (seq in seen["A"]) != (seq in seen["B"])]
        cbad = []
        # Only answers to sources routed back towards the sender compare:
        # the kernel sends the others out by its route (to the receiver),
        # sluice back out the interface the packet came in by.
        nets = [ipaddress.ip_network(BACK4_NET), ipaddress.ip_network(BACK6_NET)]
        ans = {k: sorted((a for a in self.answers[k]
                          if any(ipaddress.ip_address(a[2]) in n for n in nets
                                 if n.version == ipaddress.ip_address(a[2]).version)),
                         key=repr) for k in ("A", "B")}
        self.answers = {"A": [], "B": []}
        n_ans = len(ans["B"])
        self.tot_answers += n_ans
        if ans["A"] != ans["B"]:
            only_a = [a for a in ans["A"] if a not in ans["B"]]
            only_b = [b for b in ans["B"] if b not in ans["A"]]
            cbad.append("REJECT answers differ: %d from sluice, %d from the kernel; "
                        "only sluice: %s; only kernel: %s"
                        % (len(ans["A"]), n_ans, only_a[:5], only_b[:5]))
            bydesc = {seq: (l3, d) for seq, l3, d in pkts}
            for a in (only_a + only_b)[:self.args.show]:
                if a[0] == "icmp" and a[-1] in bydesc:
                    l3, d = bydesc[a[-1]]
                    cbad.append("  packet #%d: %s hex=%s" % (a[-1], json.dumps(d, sort_keys=True),
                                                            l3.hex()))
        nrules = 0
        for fam in (4, 6):
            (pa0, ra0), (pb0, rb0) = before[fam]
            (pa1, ra1), (pb1, rb1) = after[fam]
            if len(ra1) != len(rb1):
                cbad.append("IPv%d: sluice shows %d rules, the kernel %d" % (fam, len(ra1), len(rb1)))
                continue
            nrules += len(ra1)
            self.tot_counters += len(ra1) + 1
            for i in range(len(ra1)):
                da = (ra1[i][0] - ra0[i][0], ra1[i][1] - ra0[i][1])
                db = (rb1[i][0] - rb0[i][0], rb1[i][1] - rb0[i][1])
                if da != db:
                    cbad.append("IPv%d rule %d (%s): sluice %s, kernel %s"
                                % (fam, i + 1, rb1[i][2], da, db))
            for ch in ("FORWARD",):
                da = (pa1[ch][0] - pa0[ch][0], pa1[ch][1] - pa0[ch][1])
                db = (pb1[ch][0] - pb0[ch][0], pb1[ch][1] - pb0[ch][1])
                if da != db:
                    cbad.append("IPv%d %s policy: sluice %s, kernel %s" % (fam, ch, da, db))
        n_acc = len(seen["B"])
        self.tot_packets += len(pkts)
        self.tot_accept += n_acc
        self.tot_drop += len(pkts) - n_acc
        self.tot_sets += 1
        self.tot_bad += len(bad) + len(cbad)
        if not bad and not cbad:
            log("PASS: %s seed=%s rules=%d packets=%d (accepted %d, dropped %d, "
                "%d REJECT answers)" % (label, seed, nrules, len(pkts), n_acc,
                                        len(pkts) - n_acc, n_ans))
            return True
        self.fails += 1
        log("---- mismatch: %s seed=%s" % (label, seed))
        log("-- IPv4 file:\n" + f4.rstrip())
        log("-- IPv6 file:\n" + f6.rstrip())
        for seq, l3, d in bad[:self.args.show]:
            log("packet #%d: sluice=%s kernel=%s desc=%s hex=%s"
                % (seq, "accept" if seq in seen["A"] else "drop",
                   "accept" if seq in seen["B"] else "drop", json.dumps(d, sort_keys=True), l3.hex()))
        for c in cbad[:40]:
            log("counter mismatch: " + c)
        log("FAIL: %s seed=%s: %d packet mismatches, %d counter mismatches"
            % (label, seed, len(bad), len(cbad)))
        return False


def main_import(args, topo):
    first = args.seed if args.seed is not None else 1
    t0 = time.time()
    h = ImportHarness(topo, args)
    h.tot_answers = 0
    nct = nfixed = 0
    states = {}
    # Address lists: one rule per address for iptables-restore (a packet
    # in two of them counts, logs, calls the chain and takes limit tokens
    # twice), with the other rules a packet goes on to.
    rnd = random.Random(434343)
    hdr = ("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
           ":U0 - [0:0]\n")
    body = ("-A FORWARD -s {a},{b},{back} -d {c},{a}\n"
            "-A FORWARD -s {a},{b} -j U0\n"
            "-A FORWARD -d {c},{a} -j LOG --log-prefix \"dup \"\n"
            "-A FORWARD -s {backh},{back} -p udp -m limit --limit 1/hour --limit-burst 3 -j ACCEPT\n"
            "-A FORWARD -s {back},{backh} -p udp -j REJECT --reject-with {rej}\n"
            "-A FORWARD -p tcp -s {backh},{back},{b} -j REJECT --reject-with {rst}\n"
            "-A U0 -p tcp\n-A U0 -d {c} -j DROP\n-A U0 -j RETURN\nCOMMIT\n")
    f4 = hdr + body.format(a="10.0.0.0/8", b="10.1.0.0/255.255.0.0", c="192.0.2.0/24",
                           back="10.76.0.0/14", backh="10.77.0.0/16",
                           rej="host-prohib", rst="tcp-rst")
    f6 = hdr + body.format(a="2001:db8::/32", b="2001:db8:1::/48", c="fd00::/8",
                           back="2001:db8:76::/47", backh="2001:db8:77::/48",
                           rej="adm-prohibited", rst="tcp-reset")
    h.run_files("import-addr-lists", 0, f4, f6, h.make_packets(rnd, 600, back=0.5))
    # Limits: iptables' defaults (-m limit alone: 3/hour, burst 5) and caps
    # xt_limit's u32 arithmetic wraps (1/day burst 3 lets one packet by,
    # 1/hour burst 40 two, 2/day burst 6 two).
    f = hdr + ("-A FORWARD -p udp -m limit -j ACCEPT\n"
               "-A FORWARD -p tcp -m limit --limit 1/day --limit-burst 3 -j ACCEPT\n"
               "-A FORWARD -p tcp -m limit --limit 1/hour --limit-burst 40 -j ACCEPT\n"
               "-A FORWARD -m limit --limit 2/day --limit-burst 6 -j ACCEPT\n"
               "-A FORWARD -j DROP\nCOMMIT\n")
    h.run_files("import-limit-defaults-wraps", 0, f, f, h.make_packets(rnd, 400))
    nfixed += 2
    if args.ct != "off" and not args.ct_probe:
        # Fixed sets first: whatever one state decides. (With NEW dropped,
        # replies must not pass as ESTABLISHED: a dropped packet leaves no
        # entry behind.)
        rnd = random.Random(424242)
        for st in ("NEW", "INVALID"):
            f = ("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                 "-A FORWARD -m conntrack --ctstate %s -j DROP\nCOMMIT\n" % st)
            pk = h.make_packets(rnd, 100, ct=True)
            flows = h.make_flows(rnd, 300)
            h.run_files("import-ct-drop-%s" % st.lower(), 0, f, f, pk, flows)
            nfixed += 1
        # A tcp-reset answer closes the connection it answers (the
        # kernel's nf_send_reset -> nf_ct_set_closing): the packets after
        # it find the connection in CLOSE.
        f = ("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
             "-A FORWARD -m conntrack --ctstate NEW\n"
             "-A FORWARD -m conntrack --ctstate INVALID\n"
             "-A FORWARD -p tcp --tcp-flags SYN,RST,FIN,ACK ACK -m conntrack "
             "--ctstate ESTABLISHED -j REJECT --reject-with tcp-reset\nCOMMIT\n")
        pk = h.make_packets(rnd, 100, ct=True)
        flows = h.make_flows(rnd, 300)
        h.run_files("import-ct-reset-closes", 0, f, f, pk, flows)
        nfixed += 1
    for s in range(first, first + args.seeds):
        rnd = random.Random(1000003 * s + 7)
        n = rnd.randint(1, 4 * args.rules) if args.soak or args.vary else args.rules
        # --ct half: even seeds compare conntrack states (flows, no
        # fragments), odd ones stateless packets with fragments.
        ct = args.ct == "all" or (args.ct == "half" and s % 2 == 0)
        f4 = ipt_gen_file(rnd, 4, n, ct)
        f6 = ipt_gen_file(rnd, 6, n, ct)
        if ct and args.ct_probe:
            # Debugging: one state decides every verdict.
            f4 = f6 = ("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n"
                       ":OUTPUT ACCEPT [0:0]\n-A FORWARD -m conntrack --ctstate %s -j DROP\n"
                       "COMMIT\n" % args.ct_probe)
        if ct:
            pk = h.make_packets(rnd, args.packets * 2 // 5, ct=True)
            flows = h.make_flows(rnd, args.packets - len(pk))
            h.ct_states()  # counts from here on
            h.run_files("import-ct", s, f4, f6, pk, flows)
            nct += 1
            for k, v in h.ct_states().items():
                states[k] = states.get(k, 0) + v
        else:
            pk = h.make_packets(rnd, args.packets, back=0.4)
            h.run_files("import", s, f4, f6, pk)
    # Verdicts: each packet's accept/drop, and each REJECT answer (its
    # ICMP type and code or TCP reset, the packet it quotes). Counters:
    # packets and bytes of every rule and of the FORWARD policy.
    log("diff import: %d random rule sets (%d with conntrack states) and %d fixed ones, "
        "%d packets compared (%d accepted, %d dropped, %d REJECT answers), "
        "%d counters compared, %d failing sets, %.1f s"
        % (args.seeds, nct, nfixed, h.tot_packets, h.tot_accept, h.tot_drop, h.tot_answers,
           h.tot_counters, h.fails, time.time() - t0))
    log("diff import totals: sets %d, packets %d, verdicts compared %d, counters compared %d, "
        "mismatches %d" % (h.tot_sets, h.tot_packets, h.tot_packets + h.tot_answers,
                           h.tot_counters, h.tot_bad))
    log("diff import: %d passed, %d failed" % (h.tot_sets - h.fails, h.fails))
    if nct:
        log("diff import: conntrack states sluice gave in the conntrack sets: %s"
            % ", ".join("%s %d" % kv for kv in sorted(states.items())))
    if h.tot_packets == 0 or h.tot_accept == 0 or h.tot_drop == 0 or h.tot_answers == 0:
        log("FAIL: diff import vacuous run")
        return 1
    missing = [st for st in ("new", "established", "related", "invalid")
               if nct and not states.get(st)]
    if missing:
        log("FAIL: diff import: no packet was %s" % ", ".join(missing))
        return 1
    return 1 if h.fails else 0



def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--id", required=True, help="unique suffix of namespace names")
    ap.add_argument("--seeds", type=int, default=10, help="rule sets (one seed each)")
    ap.add_argument("--rules", type=int, default=40, help="rules per set")
    ap.add_argument("--packets", type=int, default=400, help="packets per set")
    ap.add_argument("--seed", type=int, default=None, help="first seed (default 1)")
    ap.add_argument("--soak", action="store_true",
                    help="at least 200 rule sets x 5000 packets (1,000,000 packets), "
                    "rule counts varying from 1 to 4x --rules")
    ap.add_argument("--backend", choices=["legacy", "nft"], default="legacy",
                    help="iptables flavour of the reference router (default legacy: "
                    "x_tables, the classic match semantics)")
    ap.add_argument("--chunk", type=int, default=2000)
    ap.add_argument("--quiet", type=float, default=0.15)
    ap.add_argument("--wait-max", type=float, default=5.0)
    ap.add_argument("--vary", action="store_true",
                    help="rule counts from 1 to 4x --rules, as --soak (to split a soak)")
    ap.add_argument("--import", dest="imp", action="store_true",
                    help="random iptables-save files: sluice iptables import vs iptables-restore")
    ap.add_argument("--show", type=int, default=10, help="mismatching packets to print")
    ap.add_argument("--ct-probe", metavar="STATE",
                    help="debugging: every --ct rule set drops STATE, accepts the rest")
    ap.add_argument("--ct", choices=["off", "half", "all"], default="half",
                    help="import: rule sets with conntrack states and connections "
                    "(half: every even seed)")
    args = ap.parse_args()
    if args.soak:
        args.seeds, args.packets = max(args.seeds, 200), max(args.packets, 5000)
    first = args.seed if args.seed is not None else 1
    t0 = time.time()
    topo = Topo(args.id)
    try:
        topo.setup()
        if args.imp:
            return main_import(args, topo)
        h = Harness(topo, args)
        # Baselines: the harness delivers everything when nothing drops, and
        # nothing when everything drops; rules that match everything count.
        rnd = random.Random(0)
        pk = h.make_packets(rnd, max(200, min(args.packets, 1000)))
        ok = h.run_set("baseline-accept-all", 0, [], "accept", pk, expect="all")
        ok &= h.run_set("baseline-drop-all", 0, [], "drop", pk, expect="none")
        r1 = Rule()
        r1.action = "drop"
        ok &= h.run_set("baseline-drop-rule", 0, [r1], "accept", pk, expect="none")
        if not ok:
            log("FAIL: diff baselines failed; the harness cannot be trusted")
            return 1
        base = (h.tot_packets, h.tot_accept, h.tot_drop)
        for s in range(first, first + args.seeds):
            rnd = random.Random(s)
            default = "accept" if s % 2 else "drop"
            n = rnd.randint(1, 4 * args.rules) if args.soak else args.rules
            rules, default = gen_ruleset(rnd, n, default)
            pk = h.make_packets(rnd, args.packets)
            h.run_set("diff", s, rules, default, pk)
        n, acc, drop = (h.tot_packets - base[0], h.tot_accept - base[1],
                        h.tot_drop - base[2])
        log("diff: %d rule sets, %d packets compared (%d accepted, %d dropped), "
            "%d failing sets, %.1f s" % (args.seeds, n, acc, drop, h.fails, time.time() - t0))
        if n == 0 or acc == 0 or drop == 0:
            log("FAIL: diff vacuous run: packets=%d accepted=%d dropped=%d" % (n, acc, drop))
            return 1
        return 1 if h.fails else 0
    finally:
        topo.cleanup()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # noqa: BLE001 - report any harness error as a FAIL
        import traceback
        traceback.print_exc()
        log("FAIL: diff harness error: %s" % e)
        sys.exit(1)

#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Writes the rule set of one benchmark configuration to stdout.

usage: rules.py SYSTEM SCENARIO N

SCENARIO last:    N-1 rules that match none of the generated traffic, then
                  the rule that drops it (N rules in all).
SCENARIO nomatch: N rules that match none of the traffic; the default
                  (policy) drops it.
SCENARIO pass:    (sluice only) N rules that match none of the traffic and
                  default accept: a chain member that lets the traffic through
                  (the chain-length scenario).
SCENARIO lb:      N virtual services (UDP, VIP 10.95.1.0 + i, port 80), each
                  with 10 backends (10.90.0.0/16, port 8080) in NAT mode:
                  sluice-lb (ipvsadm-save -n lines for `sluice lb restore`,
                  Maglev), ipt-dnat (iptables-nft nat table as kube-proxy
                  writes it: a service chain per VIP, `-m statistic --mode
                  random --probability 1/(10-k)` to each endpoint chain, DNAT),
                  nft-numgen (nftables: a verdict map VIP . port -> service
                  chain, `dnat ip to numgen random mod 10 map {i : addr . port}`).
Scenarios for sluice-ipt (the iptables import, issue #5) are those of
iptables-input: the same file, imported with `sluice iptables import`.
The non-matching rules are the ones a blocklist would hold: drop UDP from
172.16.H.L/32 (one address per rule, H.L = the rule's index) to port
1000 + index % 5000. Traffic comes from 10.78.0.0/16 to 10.77.0.2:7777.
"""
import sys

MATCH_SRC = "10.78.0.0/16"
DPORT = 7777
XDP_FILTER_MAX = 10000  # max_entries of its filter_ipv4 map (xdp-tools 1.3)


def nonmatching(n):
    for i in range(n):
        yield "172.16.%d.%d" % (i >> 8, i & 255), 1000 + i % 5000


LB_BACKENDS = 10
LB_VIP0 = (10 << 24) | (95 << 16) | (1 << 8)  # 10.95.1.0
LB_PORT, LB_RPORT = 80, 8080


def ip4(v):
    return "%d.%d.%d.%d" % (v >> 24, (v >> 16) & 255, (v >> 8) & 255, v & 255)


def lb_services(n):
    """(vip, [backend addresses]) for service i: backends 10.90.x.y."""
    for i in range(n):
        j = i * LB_BACKENDS
        yield ip4(LB_VIP0 + i), ["10.90.%d.%d" % ((j + k) >> 8, (j + k) & 255)
                                 for k in range(LB_BACKENDS)]


def lb_rules(system, n):
    out = sys.stdout.write
    if system == "sluice-lb":
        for vip, bes in lb_services(n):
            out("-A -u %s:%d -s mh\n" % (vip, LB_PORT))
            for b in bes:
                out("-a -u %s:%d -r %s:%d -m -w 1\n" % (vip, LB_PORT, b, LB_RPORT))
    elif system == "ipt-dnat":
        out("*nat\n:PREROUTING ACCEPT [0:0]\n:SB-SERVICES - [0:0]\n")
        body = []
        for i, (vip, bes) in enumerate(lb_services(n)):
            svc = "SB-SVC-%d" % i
            out(":%s - [0:0]\n" % svc)
            body.append("-A SB-SERVICES -d %s/32 -p udp -m udp --dport %d -j %s\n"
                        % (vip, LB_PORT, svc))
            for k, b in enumerate(bes):
                sep = "SB-SEP-%d-%d" % (i, k)
                out(":%s - [0:0]\n" % sep)
                left = LB_BACKENDS - k
                if left > 1:
                    body.append("-A %s -m statistic --mode random --probability %.11f -j %s\n"
                                % (svc, 1.0 / left, sep))
                else:
                    body.append("-A %s -j %s\n" % (svc, sep))
                body.append("-A %s -p udp -m udp -j DNAT --to-destination %s:%d\n"
                            % (sep, b, LB_RPORT))
        out("-A PREROUTING -j SB-SERVICES\n")
        out("".join(body))
        out("COMMIT\n")
    elif system == "nft-numgen":
        out("table ip sbench {\n")
        svcs = list(lb_services(n))
        for i, (vip, bes) in enumerate(svcs):
            out(" chain svc%d {\n  meta l4proto udp dnat ip to numgen random mod %d map { %s }\n }\n"
                % (i, LB_BACKENDS, ", ".join("%d : %s . %d" % (k, b, LB_RPORT)
                                             for k, b in enumerate(bes))))
        out(" map services {\n  type ipv4_addr . inet_service : verdict\n")
        out("  elements = { %s }\n }\n" % ", ".join(
            "%s . %d : jump svc%d" % (vip, LB_PORT, i) for i, (vip, _) in enumerate(svcs)))
        out(" chain pre {\n  type nat hook prerouting priority dstnat; policy accept;\n"
            "  ip daddr . udp dport vmap @services\n }\n")
        out("}\n")
    else:
        sys.exit("scenario lb: systems sluice-lb, ipt-dnat, nft-numgen")


def main():
    system, scenario, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if scenario == "lb":
        if not 1 <= n <= 6000:
            sys.exit("lb: N must be 1..6000 services")
        lb_rules(system, n)
        return
    if scenario not in ("last", "nomatch", "pass"):
        sys.exit("scenario must be last, nomatch, pass or lb")
    if system == "sluice-ipt":
        system = "iptables-input"  # the same file, imported
    if scenario == "pass":
        if system != "sluice":
            sys.exit("scenario pass is for sluice only")
        for a, p in nonmatching(int(sys.argv[3])):
            sys.stdout.write("drop src %s/32 proto udp dport %d\n" % (a, p))
        sys.stdout.write("default accept\n")
        return
    if not 1 <= n <= 65536:
        sys.exit("N must be 1..65536")
    last = scenario == "last"
    k = n - 1 if last else n
    out = sys.stdout.write

    if system == "sluice":
        for a, p in nonmatching(k):
            out("drop src %s/32 proto udp dport %d\n" % (a, p))
        if last:
            out("drop src %s proto udp dport %d\n" % (MATCH_SRC, DPORT))
        out("default %s\n" % ("accept" if last else "drop"))
    elif system in ("iptables-raw", "iptables-legacy", "iptables-input"):
        table, chain = ("filter", "INPUT") if system == "iptables-input" \
            else ("raw", "PREROUTING")
        out("*%s\n:%s %s [0:0]\n" % (table, chain, "ACCEPT" if last else "DROP"))
        for a, p in nonmatching(k):
            out("-A %s -s %s/32 -p udp -m udp --dport %d -j DROP\n" % (chain, a, p))
        if last:
            out("-A %s -s %s -p udp -m udp --dport %d -j DROP\n" % (chain, MATCH_SRC, DPORT))
        out("COMMIT\n")
    elif system == "nft-chain":
        out("table inet sbench {\n chain pre {\n"
            "  type filter hook prerouting priority raw; policy accept;\n")
        for a, p in nonmatching(k):
            out("  ip saddr %s udp dport %d drop\n" % (a, p))
        if last:
            out("  ip saddr %s udp dport %d counter drop\n" % (MATCH_SRC, DPORT))
        else:
            out("  counter drop\n")  # the default, with a counter
        out(" }\n}\n")
    elif system == "nft-set":
        # One set lookup whatever N: the N rules become N set elements.
        out("table inet sbench {\n set blk {\n  type ipv4_addr; flags interval;\n")
        elems = ["%s" % a for a, _ in nonmatching(k)]
        if last:
            elems.append(MATCH_SRC)
        out("  elements = { %s }\n }\n" % ", ".join(elems))
        out(" chain pre {\n  type filter hook prerouting priority raw; policy accept;\n")
        if last:
            out("  ip saddr @blk udp dport %d counter drop\n" % DPORT)
        else:
            out("  ip saddr @blk udp dport %d drop\n  counter drop\n" % DPORT)
        out(" }\n}\n")
    elif system == "ipset":
        # ipset restore file; run.sh adds the iptables rule using it.
        out("create sbench hash:net family inet hashsize 1024 maxelem 131072\n")
        for a, _ in nonmatching(k):
            out("add sbench %s/32\n" % a)
        if last:
            out("add sbench %s\n" % MATCH_SRC)
    elif system == "xdp-filter":
        # bpftool batch lines for xdp-filter's pinned maps: source addresses
        # (value: MAP_FLAG_SRC = 1) and, for "last", the destination port
        # (MAP_FLAG_DST | MAP_FLAG_UDP = 2 | 8). xdp-filter drops on any hit.
        mp = "/sys/fs/bpf/xdp-filter"
        if k > XDP_FILTER_MAX:
            sys.exit("xdp-filter holds at most %d IPv4 addresses" % XDP_FILTER_MAX)
        for a, _ in nonmatching(k):
            b = a.split(".")
            out("map update pinned %s/filter_ipv4 key %s value 1 0 0 0 0 0 0 0\n"
                % (mp, " ".join(b)))
        if last:
            # The port array is indexed by the port in network byte order.
            out("map update pinned %s/filter_ports key %d %d 0 0 value 10 0 0 0 0 0 0 0\n"
                % (mp, DPORT >> 8, DPORT & 255))
    else:
        sys.exit("unknown system " + system)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Writes an N-rule iptables-save filter table (IPv4) that both
`sluice iptables import` and iptables-restore accept, for the bench.

Rules are FORWARD DROP rules on distinct /32 sources in 10.200.0.0/16 and
up with varied ports, none matching the bench traffic unless --match is
given (then the last rule matches --src). Policy ACCEPT.

Usage: bench/ipt_rules.py N [--policy ACCEPT|DROP] [--seed S] > rules.v4
       sluice iptables import --dev DEV rules.v4
       iptables-restore < rules.v4
"""
import argparse
import random


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("n", type=int)
    ap.add_argument("--policy", default="ACCEPT", choices=["ACCEPT", "DROP"])
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rnd = random.Random(args.seed)
    out = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD %s [0:0]" % args.policy,
           ":OUTPUT ACCEPT [0:0]"]
    for i in range(args.n):
        a = 10 * 2**24 + 200 * 2**16 + i  # 10.200.0.0 + i
        src = "%d.%d.%d.%d" % (a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255)
        kind = rnd.random()
        if kind < 0.5:
            out.append("-A FORWARD -s %s/32 -p udp -m udp --dport %d -j DROP"
                       % (src, rnd.randrange(1, 65536)))
        elif kind < 0.8:
            out.append("-A FORWARD -s %s/32 -p tcp -m tcp --dport %d -j DROP"
                       % (src, rnd.randrange(1, 65536)))
        else:
            out.append("-A FORWARD -s %s/32 -j DROP" % src)
    out.append("COMMIT")
    print("\n".join(out))


if __name__ == "__main__":
    main()

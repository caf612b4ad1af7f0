#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Differential test of `sluice iptables import` against iptables-restore:
# seeded random iptables-save files (user chains, goto, RETURN, negations,
# multiport, iprange, interface wildcards, TCP flags, ICMP types, MAC,
# limit, LOG, comments) loaded as they are on a sluice router and on a
# netfilter router; every verdict and every rule counter compared.
# Usage: tests/diff_iptables_import.sh [--seeds N] [--rules N] [--packets N]
#                                      [--seed FIRST] [--soak]
HERE=$(cd "$(dirname "$0")" && pwd)
args=(--seeds 8 --rules 30 --packets 400)
for a in "$@"; do [ "$a" = --soak ] && args=(--rules 40); done
exec "$HERE/diff_iptables.sh" --import "${args[@]}" "$@"

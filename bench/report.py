#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Turns the raw slices of bench/run.sh into README.md, data files and plots.

Per configuration (system, scenario, N): the median and min-max over pairs
of B's CPU ns per packet, and of the ratio B/A computed pair by pair, where A
is the bare XDP drop reference measured in the same pair. A pair whose A is
more than 30 % off its session's median A is discarded (session: the run that
measured it, column `session` of raw.tsv; rows without one form one session), as is a pair whose
checks failed (B counted nothing, counters disagree, packets reached UDP)."""
import argparse
import csv
import os
import platform
import statistics
import subprocess

ORDER = ["sluice", "sluice-ipt", "xdp-filter", "nft-set", "ipset", "iptables-raw",
         "iptables-input", "iptables-legacy", "nft-chain"]
DESC = {
    "sluice": "sluice firewall (XDP root + firewall NF, decision tree)",
    "sluice-ipt": "sluice iptables import of the iptables-input file (`sluice iptables import --dev DEV FILE`)",
    "xdp-fwd": "XDP forwarding floor: MAC rewrite and DEVMAP redirect to the sink's side, no parsing or lookup (the least any XDP forwarder costs here)",
    "fwd-plain": "kernel forwarding, no filtering or NAT (an XDP pass program gives the veth NAPI)",
    "sluice-obs": "kernel forwarding + sluice flow monitor (XDP ingress) + HTTP parsing for port 80 (TC ingress)",
    "sluice-fm": "kernel forwarding + sluice flow monitor (XDP ingress) alone",
    "sluice-http": "kernel forwarding + HTTP parsing for port 80 (TC ingress) alone (fwd-plain's XDP pass program gives the veth NAPI)",
    "sluice-router": "sluice router NF (XDP ingress, FIB lookup, redirect to the sink's side), nothing else",
    "sluice-router-obs": "sluice router NF behind the flow monitor (XDP ingress), HTTP parsing for port 80 at TC ingress (redirected packets never reach TC)",
    "sluice-lb": "sluice load balancer (XDP), Maglev, NAT mode (`sluice lb restore` of ipvsadm-save lines), forwarding its NAT packets itself (`sluice lb forward on`: FIB lookup, XDP redirect); router NF for the rest",
    "sluice-lb-rt": "sluice-lb with `lb forward off`: the LB rewrites, the router NF forwards (FIB lookup, XDP redirect)",
    "ipt-dnat": "iptables-nft nat table as kube-proxy writes it (statistic random to DNAT endpoints) + conntrack",
    "nft-numgen": "nftables: verdict map VIP . port -> service chain, dnat to numgen random mod 10 map + conntrack",
    "sluice-ctnat": "sluice conntrack (DB ingress, DC egress) + sluice masquerade on DC egress, kernel forwarding",
    "nf-ctnat": "netfilter conntrack + iptables-nft MASQUERADE on DC, kernel forwarding",
    "xdp-filter": "xdp-filter (xdp-tools): hash lookups of addresses/ports",
    "nft-set": "nftables, one rule with an interval set of N elements",
    "ipset": "iptables-nft raw PREROUTING -m set, ipset hash:net of N",
    "iptables-raw": "iptables-nft, N rules in raw PREROUTING",
    "iptables-input": "iptables-nft, N rules in filter INPUT",
    "iptables-legacy": "iptables-legacy, N rules in raw PREROUTING",
    "nft-chain": "nftables, N rules in a prerouting chain (priority raw)",
    "xdp-parse": "XDP parse-and-drop (limit: parse Ethernet/IP/L4, drop)",
    "xdp-drop": "bare XDP drop (limit, and the reference A)",
}


def read_tsv(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return list(csv.DictReader(f, delimiter="\t"))


def fmt(x, nd=0):
    if x is None:
        return "-"
    if nd == 0:
        return "{:,.0f}".format(x)
    return "{:,.{}f}".format(x, nd)


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True,
                              text=True, timeout=10).stdout.strip()
    except Exception:
        return ""


def machine(date=None):
    model = sh("lscpu | sed -n 's/^Model name: *//p'")
    return [
        "CPU: %s, %s CPUs online (%s)" % (model, os.cpu_count(),
                                         sh("lscpu | sed -n 's/^Hypervisor vendor: *//p'") or "bare metal"),
        "Kernel: %s (%s)" % (platform.release(), platform.machine()),
        "OS: %s" % sh(". /etc/os-release && echo $PRETTY_NAME"),
        "Peers: %s; %s; %s; %s" % (sh("iptables-nft --version"),
                                    sh("nft --version"),
                                    sh("dpkg-query -W -f='xdp-tools ${Version}' xdp-tools 2>/dev/null"),
                                    sh("ipset --version 2>/dev/null | head -1")),
        "Date: %s" % (date or sh("date -u +'%Y-%m-%d %H:%M UTC'")),
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--mode", default="quick")
    ap.add_argument("--cmd", default="")
    ap.add_argument("--settings", default="")
    ap.add_argument("--elapsed", type=int, default=0)
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--chain-rules", default="")
    ap.add_argument("--date", help="date of the run (when regenerating a report)")
    ap.add_argument("--note", action="append", default=[],
                    help="extra line for 'Machine and command'")
    a = ap.parse_args()
    out = a.out

    raw = read_tsv(os.path.join(out, "raw.tsv"))
    status = read_tsv(os.path.join(out, "status.tsv"))
    progrun = read_tsv(os.path.join(out, "progrun.tsv"))

    a_all = [float(r["A_ns"]) for r in raw if float(r["A_ns"]) > 0]
    a_med = statistics.median(a_all) if a_all else None
    sess_a = {}
    for r in raw:
        if float(r["A_ns"]) > 0:
            sess_a.setdefault(r.get("session") or "", []).append(float(r["A_ns"]))
    sess_med = {k: statistics.median(v) for k, v in sess_a.items()}
    a_pps = [float(r["A_pps"]) for r in raw if float(r["A_pps"]) > 0]
    steal = [float(r["steal_pct"]) for r in raw]

    # configuration -> stats
    cfg = {}
    discarded = 0
    for r in raw:
        key = (r["system"], r["scenario"], int(r["n"]))
        c = cfg.setdefault(key, {"b": [], "ratio": [], "pps": [], "bad": 0,
                                 "off": []})
        an, bn = float(r["A_ns"]), float(r["B_ns"])
        if r["ok"] != "1" or an <= 0 or bn <= 0:
            c["bad"] += 1
            discarded += 1
            continue
        am = sess_med.get(r.get("session") or "")
        if am and abs(an - am) > 0.3 * am:
            c["off"].append((bn, bn / an, float(r["B_pps"])))
            c["bad"] += 1
            discarded += 1
            continue
        c["b"].append(bn)
        c["ratio"].append(bn / an)
        c["pps"].append(float(r["B_pps"]))
    stats = {}
    flagged = set()
    for key, c in cfg.items():
        if not c["b"] and c["off"]:
            # Every pair's reference was off: keep them, flagged.
            flagged.add(key)
            for bn, ra, pps in c["off"]:
                c["b"].append(bn)
                c["ratio"].append(ra)
                c["pps"].append(pps)
        if not c["b"]:
            continue
        stats[key] = dict(
            med=statistics.median(c["b"]), lo=min(c["b"]), hi=max(c["b"]),
            rmed=statistics.median(c["ratio"]), rlo=min(c["ratio"]),
            rhi=max(c["ratio"]), pps=statistics.median(c["pps"]),
            pairs=len(c["b"]), bad=c["bad"])
    skipped = {(s["system"], s["scenario"], int(s["n"])): s["status"]
               for s in status if s["status"] != "ok"}
    loads = {(s["system"], s["scenario"], int(s["n"])): s["load_s"]
             for s in status if s["status"] == "ok"}

    sizes = sorted({k[2] for k in list(stats) + list(skipped)
                    if k[0] != "xdp-parse" and k[1] in ("last", "nomatch")})
    # Extra systems of scenario last (sluice-ipt) still go through ORDER.
    systems = [s for s in ORDER if any(k[0] == s and k[1] in ("last", "nomatch")
                                       for k in list(stats) + list(skipped))]
    chain_ks = sorted({k[2] for k in list(stats) + list(skipped) if k[1] == "chain"})

    L = []
    w = L.append
    title = {"full": "full suite", "quick": "quick subset", "smoke": "smoke run"}
    w("# sluice benchmarks: firewall scaling (%s)\n" % title.get(a.mode, a.mode))
    w("Generated by `bench/report.py` from the run's raw data (`raw.tsv`, "
      "`status.tsv`, `progrun.tsv` in this folder). Method: "
      "`bench/README.md`.\n")
    w("## Machine and command\n")
    for m in machine(a.date):
        w("- " + m)
    w("- Command: `%s`" % a.cmd)
    w("- Settings: %s; run took %d s" % (a.settings, a.elapsed))
    for n in a.note:
        w("- " + n)
    if steal:
        w("- Steal time on the receiving CPU during slices: median %.1f %%, max %.1f %%"
          % (statistics.median(steal), max(steal)))
    w("")
    w("## What is measured\n")
    w("64-byte UDP/IPv4 frames (10.78.0.0/16 -> 10.77.0.2:7777, many flows) "
      "generated by `BPF_PROG_RUN` with live frames into a veth; the receiving "
      "veth's NAPI thread is threaded and pinned to its own CPU (split mode). "
      "**Figure: CPU ns per packet of the receiving NAPI thread** "
      "(schedstat run time, steal excluded) divided by the packets the "
      "receiving program counted. Each configuration is run as A/B pairs "
      "(A B B A ...), A being a bare XDP drop on an identical veth in the "
      "same namespace; the ratio B/A is taken pair by pair. Values: median "
      "[min-max] over pairs. Every slice checks that B counted packets, that "
      "all of them were dropped by the system under test (its own counters), "
      "and that none reached the UDP layer (/proc/net/snmp).\n")
    w("Scenarios: **last** = N-1 rules that match nothing, then the rule that "
      "drops the traffic (N rules in all); **nomatch** = N rules that match "
      "nothing and a default/policy drop. For set-based systems (nft-set, "
      "ipset, xdp-filter) the N rules are N set/map elements.\n")
    if a_med:
        w("Reference A (bare XDP drop): median %s ns/packet over all slices "
          "(%s Mpps wall clock, sanity only). %d pair(s) discarded (reference "
          "> 30 %% off the session median, or failed checks).\n"
          % (fmt(a_med), fmt(statistics.median(a_pps) / 1e6, 2), discarded))

    for sc in ("last", "nomatch"):
        rows = [s for s in systems if any(k[0] == s and k[1] == sc
                                          for k in list(stats) + list(skipped))]
        if not rows:
            continue
        w("## Scenario %s: CPU ns per packet, median [min-max]\n" % sc)
        w("| system | " + " | ".join("N = {:,}".format(n) for n in sizes) + " |")
        w("|---|" + "---|" * len(sizes))
        for s in rows:
            cells = []
            for n in sizes:
                k = (s, sc, n)
                if k in stats:
                    t = stats[k]
                    cells.append("%s [%s-%s]%s" % (fmt(t["med"]), fmt(t["lo"]), fmt(t["hi"]),
                                                   " (†)" if k in flagged else ""))
                elif k in skipped:
                    cells.append(skipped[k])
                else:
                    cells.append("not run")
            w("| %s | %s |" % (s, " | ".join(cells)))
        for lim in ("xdp-parse",):
            k = (lim, "last", 1)
            if k in stats:
                t = stats[k]
                w("| %s (limit, any N) | %s |" % (lim, " | ".join(
                    ["%s [%s-%s]" % (fmt(t["med"]), fmt(t["lo"]), fmt(t["hi"]))] * len(sizes))))
        if a_med:
            w("| xdp-drop (limit = A) | %s |" % " | ".join([fmt(a_med)] * len(sizes)))
        if any(k[1] == sc and k[0] in rows for k in flagged):
            w("\n(†) every pair of this cell had its reference more than 30 % "
              "off the session median; shown anyway, trust it less.")
        w("")
        w("### Scenario %s: ratio to bare XDP drop (B/A per pair), median [min-max]\n" % sc)
        w("| system | " + " | ".join("N = {:,}".format(n) for n in sizes) + " |")
        w("|---|" + "---|" * len(sizes))
        for s in rows:
            cells = []
            for n in sizes:
                k = (s, sc, n)
                if k in stats:
                    t = stats[k]
                    cells.append("%s [%s-%s]" % (fmt(t["rmed"], 2), fmt(t["rlo"], 2), fmt(t["rhi"], 2)))
                else:
                    cells.append("-")
            w("| %s | %s |" % (s, " | ".join(cells)))
        w("")
        if "sluice" in rows:
            w("### Scenario %s: each peer relative to sluice (median B ns of peer / sluice)\n" % sc)
            w("| system | " + " | ".join("N = {:,}".format(n) for n in sizes) + " |")
            w("|---|" + "---|" * len(sizes))
            for s in rows:
                if s == "sluice":
                    continue
                cells = []
                for n in sizes:
                    p, q = stats.get((s, sc, n)), stats.get(("sluice", sc, n))
                    cells.append("%s x" % fmt(p["med"] / q["med"], 2) if p and q else "-")
                w("| %s | %s |" % (s, " | ".join(cells)))
            w("")
        w("Wall-clock packets per second received by B (sanity check only; "
          "slow systems are limited by their own cost, fast ones by the "
          "generator and the shared host):\n")
        w("| system | " + " | ".join("N = {:,}".format(n) for n in sizes) + " |")
        w("|---|" + "---|" * len(sizes))
        for s in rows:
            w("| %s | %s |" % (s, " | ".join(
                fmt(stats[(s, sc, n)]["pps"]) if (s, sc, n) in stats else "-"
                for n in sizes)))
        w("")

    if chain_ks:
        w("## Scenario chain: CPU ns per packet vs K\n")
        w("K sluice firewall instances on the receiving veth's ingress chain "
          "(`sluice firewall load DEV FILE --name sbchainI`, then `sluice chain "
          "set DEV ingress sbchain1 ... sbchainK`). Instances 1..K-1 hold %s "
          "non-matching rules (the blocklist rules of scenario last) and "
          "accept by default; instance K holds the same rules, then the rule "
          "that drops the traffic. Every packet thus traverses all K. Checks "
          "per slice: the fewest packets any instance counted (the last "
          "one's) is the packet count, all of them were dropped (by the last "
          "instance: drops of all instances summed), none reached UDP. "
          "Same A/B pairs as above; the reference A is the bare XDP drop; "
          "the ratio B/A is taken pair by pair; the increment is the median B "
          "minus the median B at K = 1, divided by K - 1.\n"
          % (a.chain_rules or "a few"))
        w("| K | CPU ns per packet, median [min-max] | ratio to bare XDP drop, median [min-max] | ns per extra NF | pairs | B pps (sanity) |")
        w("|---|---|---|---|---|---|")
        base = stats.get(("sluice", "chain", 1))
        for kk in chain_ks:
            k = ("sluice", "chain", kk)
            if k in stats:
                t = stats[k]
                inc = "%s" % fmt((t["med"] - base["med"]) / (kk - 1)) if base and kk > 1 else "-"
                w("| %d | %s [%s-%s]%s | %s [%s-%s] | %s | %d%s | %s |" % (
                    kk, fmt(t["med"]), fmt(t["lo"]), fmt(t["hi"]),
                    " (†)" if k in flagged else "",
                    fmt(t["rmed"], 2), fmt(t["rlo"], 2), fmt(t["rhi"], 2), inc,
                    t["pairs"], " (%d discarded)" % t["bad"] if t["bad"] else "",
                    fmt(t["pps"])))
            else:
                w("| %d | %s | - | - | - | - |" % (kk, skipped.get(k, "not run")))
        if any(k[1] == "chain" for k in flagged):
            w("\n(†) every pair of this cell had its reference more than 30 % "
              "off the session median; shown anyway, trust it less.")
        sessions = sorted({r.get("session") or "" for r in raw if r["scenario"] == "chain"})
        if len(sess_med) > 1:
            w("\nReference A of the session(s) that measured this scenario: %s ns/packet (median)."
              % ", ".join(fmt(sess_med[x]) for x in sessions if x in sess_med))
        w("")

    fwd_desc = {
        "lb": ("Load balancing", "UDP to %s virtual services (10.95.1.0 + i, port 80; "
               "flows spread over all of them), 10 backends each, DNAT to the backend "
               "and forwarded to the sink. 10,000 long-lived flows: after a flow's first "
               "packet the kernel peers pay conntrack only (their NAT rules run once per "
               "connection), so the number of services barely matters to them",
               ["sluice-lb", "ipt-dnat", "nft-numgen"], "sluice-lb"),
        "lb-new": ("Load balancing, new connections", "The services of scenario lb (%s, "
                   "10 backends each), but nearly every packet opens a new flow (a "
                   "random UDP 5-tuple out of 2^31, a new generator seed each slice): "
                   "the kernel peers run their NAT rules (kube-proxy's chain walk, "
                   "nftables' verdict map) and create a conntrack entry (the table "
                   "full: evicting an unreplied one) per packet; sluice schedules "
                   "through the service's Maglev table and records the flow and its "
                   "reply path in its LRU flow table",
                   ["sluice-lb", "ipt-dnat", "nft-numgen"], "sluice-lb"),
        "ctnat": ("Connection tracking + NAT", "UDP 10.78.0.0/16 -> 10.99.0.2:7777 forwarded "
                  "to the sink with source NAT (masquerade) on the way out",
                  ["fwd-plain", "sluice-ctnat", "nf-ctnat"], "sluice-ctnat"),
        "obs": ("Observability overhead", "UDP 10.78.0.0/16 -> 10.99.0.2:80 forwarded to "
                "the sink, with and without the flow monitor (every packet updates its "
                "flow record) and the HTTP monitor on port 80 (a TC chain of httpmon "
                "ignores non-TCP packets: the TC root lets them go after its chain "
                "lookup); sluice-router-obs is to be read against sluice-router",
                ["fwd-plain", "sluice-obs", "sluice-fm", "sluice-http", "sluice-router",
                 "sluice-router-obs"], "fwd-plain"),
    }
    for sc, (title_, what, order, base) in fwd_desc.items():
        ks = sorted(k for k in list(stats) + list(skipped) if k[1] == sc)
        if not ks:
            continue
        n_ = ks[0][2]
        w("## Scenario %s: %s\n" % (sc, title_))
        w((what % fmt(n_) if "%s" in what else what) + ". Figure: CPU ns of the receiving NAPI thread per "
          "packet that reached the sink (receive, the system, routing, transmit). "
          "Checks per slice: the sink received packets, none reached the DUT's UDP "
          "layer, sluice dropped none. *rate vs %s* = median ns of %s / median ns "
          "of the system: the packet rate relative to it.\n" % (base, base))
        w("| system | CPU ns per packet, median [min-max] | ratio to bare XDP drop | rate vs %s | pairs | B pps (sanity) |" % base)
        w("|---|---|---|---|---|---|")
        b = stats.get((base, sc, n_))
        for sname in order + sorted({k[0] for k in ks} - set(order)):
            k = (sname, sc, n_)
            if k in stats:
                t = stats[k]
                w("| %s | %s [%s-%s]%s | %s [%s-%s] | %s | %d%s | %s |" % (
                    sname, fmt(t["med"]), fmt(t["lo"]), fmt(t["hi"]),
                    " (†)" if k in flagged else "",
                    fmt(t["rmed"], 2), fmt(t["rlo"], 2), fmt(t["rhi"], 2),
                    "%.2f x" % (b["med"] / t["med"]) if b else "-",
                    t["pairs"], " (%d discarded)" % t["bad"] if t["bad"] else "",
                    fmt(t["pps"])))
            elif k in skipped:
                w("| %s | %s | - | - | - | - |" % (sname, skipped[k]))
        w("")

    if any(k[0] == "sluice-ipt" for k in stats):
        ipt_sizes = sorted({k[2] for k in stats if k[0] == "sluice-ipt" and k[1] == "last"})
        w("## iptables import: peers relative to `sluice iptables import` (scenario last)\n")
        w("The iptables-input rule file (N rules in filter INPUT, the last one "
          "dropping the traffic) imported into sluice, against the same file in "
          "iptables-nft and the nftables set. Cells: median ns of the peer / median "
          "ns of sluice-ipt (how many times more CPU per packet the peer spends). "
          "Flatness: sluice-ipt at N / at the smallest N.\n")
        w("| | " + " | ".join("N = {:,}".format(n) for n in ipt_sizes) + " |")
        w("|---|" + "---|" * len(ipt_sizes))
        q0 = stats.get(("sluice-ipt", "last", ipt_sizes[0]))
        for peer in ("iptables-input", "iptables-raw", "nft-set"):
            cells = []
            for n in ipt_sizes:
                p, q = stats.get((peer, "last", n)), stats.get(("sluice-ipt", "last", n))
                cells.append("%s x" % fmt(p["med"] / q["med"], 2) if p and q else "-")
            w("| %s / sluice-ipt | %s |" % (peer, " | ".join(cells)))
        w("| sluice-ipt flatness | %s |" % " | ".join(
            "%.2f x" % (stats[("sluice-ipt", "last", n)]["med"] / q0["med"])
            if q0 and ("sluice-ipt", "last", n) in stats else "-" for n in ipt_sizes))
        w("")

    if loads and systems:
        w("## Load times (seconds, scenario last)\n")
        w("| system | " + " | ".join("N = {:,}".format(n) for n in sizes) + " |")
        w("|---|" + "---|" * len(sizes))
        for s in systems:
            w("| %s | %s |" % (s, " | ".join(loads.get((s, "last", n), "-") for n in sizes)))
        w("")

    if progrun:
        w("## BPF_PROG_RUN cost of the sluice XDP root + firewall (ns per packet)\n")
        w("Repeat mode (`sbench progrun`): the pinned root program `root_xdp` "
          "run with `ctx_in.ingress_ifindex` of the interface holding the "
          "firewall chain, one packet (one flow, hot caches) repeated; "
          "min / median / max over runs, interleaved in the same process with "
          "a bare XDP parse-and-drop program. *match* = the last rule drops the "
          "packet (dport 7777); *nomatch* = no rule matches (dport 7778, "
          "default accept: XDP_PASS).\n")
        w("| rules N | packet | program | verdict | min | median | max | median / parse-drop |")
        w("|---|---|---|---|---|---|---|---|")
        ref = {}
        for r in progrun:
            if r["program"] == "xdp-parse-drop":
                ref[(r["n"], r["packet"])] = float(r["ns_median"])
        for r in progrun:
            base = ref.get((r["n"], r["packet"]))
            w("| {:,} | {} | {} | {} | {} | **{}** | {} | {} |".format(
                int(r["n"]), r["packet"], r["program"], r["verdict"],
                r["ns_min"], r["ns_median"], r["ns_max"],
                "%.1f x" % (float(r["ns_median"]) / base) if base else "-"))
        w("")

    plots = []
    if not a.no_plots and stats:
        plots = make_plots(out, stats, systems, sizes, a_med)
    for p, cap in plots:
        w("![%s](%s)\n" % (cap, p))

    w("## Systems\n")
    for s in systems + ["xdp-parse", "xdp-drop"]:
        w("- **%s**: %s" % (s, DESC.get(s, s)))
    w("")
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write("\n".join(L) + "\n")
    print("\n".join(L))


def make_plots(out, stats, systems, sizes, a_med):
    plots = []
    for sc in ("last", "nomatch"):
        series = [s for s in systems if any(k[0] == s and k[1] == sc for k in stats)]
        if not series:
            continue
        dat = os.path.join(out, "scaling-%s.dat" % sc)
        with open(dat, "w") as f:
            for i, s in enumerate(series):
                f.write("# %s\n" % s)
                for n in sizes:
                    t = stats.get((s, sc, n))
                    if t:
                        f.write("%d %.1f %.1f %.1f\n" % (n, t["med"], t["lo"], t["hi"]))
                f.write("\n\n")
        png = "scaling-%s.png" % sc
        gp = os.path.join(out, "scaling-%s.gp" % sc)
        lines = []
        for i, s in enumerate(series):
            lines.append("'%s' index %d using 1:2:3:4 with yerrorlines title '%s'"
                         % (os.path.basename(dat), i, s))
        for lim in ("xdp-parse",):
            t = stats.get((lim, "last", 1))
            if t:
                lines.append("%.1f with lines dt 2 title '%s (limit)'" % (t["med"], lim))
        if a_med:
            lines.append("%.1f with lines dt 3 title 'bare XDP drop (limit)'" % a_med)
        with open(gp, "w") as f:
            f.write("set terminal pngcairo size 1000,650 noenhanced\n" if has_cairo()
                    else "set terminal png size 1000,650 noenhanced\n")
            f.write("set output '%s'\n" % png)
            lo = min([t["lo"] for k, t in stats.items() if k[1] == sc] + [a_med or 1e9])
            f.write("set logscale xy\nset grid\nset key top left\n")
            f.write("set yrange [%d:*]\n" % max(1, int(lo * 0.6)))
            f.write("set xlabel 'rules (N)'\nset ylabel 'CPU ns per packet (receiver)'\n")
            f.write("set title 'Firewall scaling, scenario %s (median, min-max over pairs)'\n" % sc)
            f.write("set xrange [0.7:%d]\n" % (max(sizes) * 1.5))
            f.write("plot " + ", \\\n     ".join(lines) + "\n")
        r = subprocess.run(["gnuplot", os.path.basename(gp)], cwd=out,
                           capture_output=True, text=True)
        if r.returncode == 0:
            plots.append((png, "CPU ns per packet vs rules, scenario " + sc))
        else:
            print("gnuplot failed: " + r.stderr)
    return plots


_cairo = None


def has_cairo():
    global _cairo
    if _cairo is None:
        r = subprocess.run(["gnuplot", "-e", "set terminal pngcairo"],
                           capture_output=True, text=True)
        _cairo = r.returncode == 0 and not r.stderr.strip()
    return _cairo


if __name__ == "__main__":
    main()

// SPDX-License-Identifier: GPL-2.0
/* The root's way to a chain, with BPF_PROG_RUN through the real roots of a
 * private network namespace: the direct-mapped sl_chain_cache follows every
 * change of sl_chains (set, swap, removal), a packet runs the chain it
 * holds, and an entry being written (seq odd), an entry of another
 * interface (a collision) or a free entry sends the root to sl_chains.
 * Per-instance counters and the root's (slot 0) are checked per packet. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "sluice.h"
#include "firewall.h"
#include "check.h"
#include "fw_text.h"
#include "pktbuild.h"

#define DEV "slpp0"
#define PEER "slpp1"
#define DEV2 "slpp2" /* its ifindex collides with DEV's in the cache */
#define PEER2 "slpp3"
#define FPASS "ppass" /* default accept: the packet goes on */
#define FDROP "pdrop" /* default drop */

#define XDP_DROP_RC 1
#define XDP_PASS_RC 2

static struct sl_ctx *ctx;
static int ifindex, ifindex2, cache_fd;

static __u32 slot_of(const char *name)
{
	struct sl_instance inst;

	return sl_instance_get(ctx, name, &inst) ? 0 : inst.slot;
}

static struct sl_nf_stats stats_of(__u32 slot)
{
	struct sl_nf_stats st = {};
	__u64 drops[SL_DROP_MAX];

	sl_slot_stats(ctx, slot, &st, drops);
	return st;
}

/* One UDP packet through the XDP root as if received on ifi. */
static int run_xdp(int ifi)
{
	struct pkt_spec spec = { .family = 4, .src = "10.0.0.1", .dst = "10.0.0.2",
				 .proto = 17, .sport = 1000, .dport = 2000 };
	uint8_t pkt[512];
	size_t len = pkt_build(&spec, pkt);
	struct xdp_md xmd = { .data_end = len, .ingress_ifindex = ifi };
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt, .data_size_in = len,
		    .ctx_in = &xmd, .ctx_size_in = sizeof(xmd));
	int fd = sl_obj_get(sl_base(ctx), "root_xdp"), err;

	if (fd < 0)
		return -1000;
	err = bpf_prog_test_run_opts(fd, &opts);
	close(fd);
	return err ? -1000 : (int)opts.retval;
}

static int set_chain(const char *dev, const char *a, const char *b)
{
	const char *names[2] = { a, b };

	return sl_chain_set(ctx, dev, SL_HOOK_XDP, names, !a ? 0 : !b ? 1 : 2);
}

static struct sl_chain_cached entry_of(int ifi)
{
	__u32 idx = SL_CHAIN_CACHE_INDEX(ifi, SL_HOOK_XDP);
	struct sl_chain_cached c = {};

	bpf_map_lookup_elem(cache_fd, &idx, &c);
	return c;
}

static void put_entry(int ifi, const struct sl_chain_cached *c)
{
	__u32 idx = SL_CHAIN_CACHE_INDEX(ifi, SL_HOOK_XDP);

	bpf_map_update_elem(cache_fd, &idx, c, BPF_ANY);
}

/* The entry of DEV holds exactly the chain given, seq even. */
static bool entry_holds(int ifi, __u32 len, __u32 s0, __u32 s1)
{
	struct sl_chain_cached c = entry_of(ifi);

	if (!len)
		return !(c.seq & 1) && !c.tag && !c.len;
	return !(c.seq & 1) && c.tag == (__u32)ifi && c.len == len &&
	       c.slots[0] == s0 && (len < 2 || c.slots[1] == s1);
}

static void run_cache(void)
{
	__u32 sp = slot_of(FPASS), sd = slot_of(FDROP), seq;
	struct sl_nf_stats p0 = stats_of(sp), d0 = stats_of(sd), r0 = stats_of(0);
	struct sl_nf_stats p1, d1, r1;
	struct sl_chain_cached c;
	int err;

	err = set_chain(DEV, FPASS, FDROP);
	if (!check_report(!err, "chain set " FPASS " " FDROP, err ? sl_errmsg() : NULL))
		return;
	CHECK(entry_holds(ifindex, 2, sp, sd), "cache: the entry holds the chain set");
	CHECK(run_xdp(ifindex) == XDP_DROP_RC, "cache: the packet runs both and is dropped");
	p1 = stats_of(sp);
	d1 = stats_of(sd);
	r1 = stats_of(0);
	CHECK(p1.packets == p0.packets + 1 && p1.passed == p0.passed &&
	      p1.dropped == p0.dropped, "counters: the first NF saw it and let it on");
	CHECK(d1.packets == d0.packets + 1 && d1.dropped == d0.dropped + 1,
	      "counters: the second NF saw it and dropped it");
	CHECK(r1.packets == r0.packets + 1 && r1.bytes > r0.bytes,
	      "counters: the root counted it once");

	seq = entry_of(ifindex).seq;
	err = set_chain(DEV, FPASS, NULL);
	check_report(!err, "chain swap to " FPASS " alone", err ? sl_errmsg() : NULL);
	CHECK(entry_holds(ifindex, 1, sp, 0) && entry_of(ifindex).seq == seq + 2,
	      "cache: a swap rewrites the entry (seq + 2, even)");
	CHECK(run_xdp(ifindex) == XDP_PASS_RC, "cache: the packet runs the new chain");

	/* An entry being written: odd seq, contents not to be trusted. */
	c = entry_of(ifindex);
	c.seq |= 1;
	c.slots[0] = sd;
	put_entry(ifindex, &c);
	CHECK(run_xdp(ifindex) == XDP_PASS_RC,
	      "fallback: an entry being written (seq odd) is not used");
	/* An entry of another interface (its tag). */
	c.seq++;
	c.tag = ifindex + 1;
	put_entry(ifindex, &c);
	CHECK(run_xdp(ifindex) == XDP_PASS_RC,
	      "fallback: an entry tagged with another interface is not used");
	/* A free entry. */
	memset(&c, 0, sizeof(c));
	put_entry(ifindex, &c);
	CHECK(run_xdp(ifindex) == XDP_PASS_RC, "fallback: a free entry sends the root to sl_chains");
	err = set_chain(DEV, FPASS, NULL);
	CHECK(!err && entry_holds(ifindex, 1, sp, 0), "cache: a later set fills a free entry again");

	/* Two interfaces on one entry: the first keeps it. */
	err = set_chain(DEV2, FDROP, NULL);
	check_report(!err, "chain set on " DEV2 " (same cache entry)", err ? sl_errmsg() : NULL);
	CHECK(entry_holds(ifindex, 1, sp, 0), "collision: the entry stays " DEV "'s");
	CHECK(run_xdp(ifindex) == XDP_PASS_RC, "collision: " DEV " runs its chain");
	CHECK(run_xdp(ifindex2) == XDP_DROP_RC, "collision: " DEV2 " runs its chain (sl_chains)");

	/* Removal frees the entry; the interface without chain is untouched. */
	err = set_chain(DEV, NULL, NULL);
	CHECK(!err && entry_holds(ifindex, 0, 0, 0), "cache: removing the chain frees the entry");
	CHECK(run_xdp(ifindex2) == XDP_DROP_RC, "collision: " DEV2 " still runs its chain");
	err = set_chain(DEV2, FDROP, FPASS);
	CHECK(!err && entry_holds(ifindex2, 2, sd, sp), "cache: a free entry goes to the next writer");
	CHECK(run_xdp(ifindex2) == XDP_DROP_RC, "cache: " DEV2 " runs its chain from the cache");
}

int main(void)
{
	char cmd[256];
	int err;

	if (unshare(CLONE_NEWNET)) {
		printf("FAIL: cannot create a network namespace: %s\n", strerror(errno));
		return 1;
	}
	/* No IPv6 on the links: the peer's router solicitations and DAD
	 * would reach the root between two counter readings. */
	if (system("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1") ||
	    system("ip link add " DEV " type veth peer name " PEER " && ip link set " DEV
		   " up && ip link set " PEER " up")) {
		printf("FAIL: cannot create the test interfaces\n");
		return 1;
	}
	ifindex = sl_ifindex(DEV);
	/* (ifindex * 3 + hook) mod 1024 is the same for ifindex + 1024. */
	ifindex2 = ifindex + SL_CHAIN_CACHE_SIZE;
	snprintf(cmd, sizeof(cmd), "ip link add " DEV2 " index %d type veth peer name " PEER2
		 " && ip link set " DEV2 " up && ip link set " PEER2 " up", ifindex2);
	if (ifindex < 0 || system(cmd) || sl_ifindex(DEV2) != ifindex2) {
		printf("FAIL: cannot create the test interfaces\n");
		return 1;
	}
	err = sl_open(&ctx, SL_OPEN_WRITE);
	if (!check_report(!err, "open state", err ? sl_errmsg() : NULL))
		return check_exit();
	cache_fd = sl_obj_get(sl_base(ctx), "sl_chain_cache");
	err = cache_fd < 0 ? cache_fd : 0;
	err = err ?: fw_load_text(ctx, FPASS, "default accept\n");
	err = err ?: fw_load_text(ctx, FDROP, "default drop\n");
	if (check_report(!err, "load the firewalls", err ? sl_errmsg() : NULL))
		run_cache();
	if (cache_fd >= 0)
		close(cache_fd);
	sl_reset(ctx);
	sl_close(ctx);
	return check_exit();
}

// SPDX-License-Identifier: GPL-2.0
/* Chains: which instances run, in order, on an interface and hook; and the
 * links that attach the root program there. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "internal.h"

/* Missing from Debian 12's UAPI headers (Linux 6.1). */
#ifndef BPF_TCX_INGRESS
#define BPF_TCX_INGRESS 46
#define BPF_TCX_EGRESS 47
#endif

static void link_pin_name(__u32 ifindex, enum sl_hook hook, char *buf,
			  size_t len)
{
	snprintf(buf, len, "link_%u_%s", ifindex, sl_hook_name(hook));
}

/* Whether a live link of ours attaches the root program there. A link
 * whose interface went away stays pinned but reports no interface. */
static bool link_alive(struct sl_ctx *ctx, __u32 ifindex, enum sl_hook hook)
{
	struct bpf_link_info info = {};
	__u32 len = sizeof(info);
	char name[64], path[PATH_MAX];
	bool alive;
	int fd;

	link_pin_name(ifindex, hook, name, sizeof(name));
	snprintf(path, sizeof(path), "%s/%s", ctx->base, name);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return false;
	/* XDP and TCX links both report the interface first in their union. */
	alive = !bpf_obj_get_info_by_fd(fd, &info, &len) && info.xdp.ifindex == ifindex;
	close(fd);
	return alive;
}

static void link_detach(struct sl_ctx *ctx, __u32 ifindex, enum sl_hook hook)
{
	char name[64], path[PATH_MAX];

	link_pin_name(ifindex, hook, name, sizeof(name));
	snprintf(path, sizeof(path), "%s/%s", ctx->base, name);
	unlink(path); /* the last reference: the kernel detaches the link */
}

static int link_attach(struct sl_ctx *ctx, const char *dev, __u32 ifindex,
		       enum sl_hook hook)
{
	static const enum bpf_attach_type types[SL_HOOK_MAX] = {
		[SL_HOOK_XDP] = BPF_XDP,
		[SL_HOOK_TC_IN] = BPF_TCX_INGRESS,
		[SL_HOOK_TC_OUT] = BPF_TCX_EGRESS,
	};
	char name[64];
	int fd, err;

	if (link_alive(ctx, ifindex, hook))
		return 0;
	link_detach(ctx, ifindex, hook); /* a dead link's pin, if any */
	fd = bpf_link_create(ctx->root_fd[hook], ifindex, types[hook], NULL);
	if (fd < 0) {
		if (errno == EBUSY || errno == EEXIST)
			return sl_err(-errno, "%s already has another XDP program attached",
				      dev);
		return sl_err(-errno, "cannot attach to %s %s: %s", dev,
			      sl_hook_name(hook), strerror(errno));
	}
	link_pin_name(ifindex, hook, name, sizeof(name));
	err = sl_pin(ctx->base, name, fd);
	close(fd); /* the pin keeps the link */
	return err;
}

/* Kinds of packet (enum sl_ignore) that an NF type passes on at TC
 * without looking, whatever its configuration: the HTTP monitor looks at
 * TCP only. Types not listed ignore nothing. */
static const struct {
	const char *type;
	__u32 ignore;
} tc_ignores[] = {
	{ "httpmon", SL_IGN_NONIP | SL_IGN_UDP | SL_IGN_ICMP | SL_IGN_OTHER },
};

struct ignore_walk {
	const struct sl_chain *chain;
	__u32 ignore; /* AND over the instances found */
	__u32 found; /* slots of the chain matched */
};

static int ignore_cb(const struct sl_instance *inst, void *arg)
{
	struct ignore_walk *w = arg;
	__u32 ign = 0;

	for (size_t t = 0; t < sizeof(tc_ignores) / sizeof(tc_ignores[0]); t++)
		if (!strcmp(inst->type, tc_ignores[t].type))
			ign = tc_ignores[t].ignore;
	for (__u32 i = 0; i < w->chain->len; i++) {
		if (w->chain->slots[i] == inst->slot) {
			w->ignore &= ign;
			w->found++;
		}
	}
	return 0;
}

/* What every instance of a TC chain ignores; 0 at XDP, or when an
 * instance cannot be read (the root then looks at every packet). */
static __u32 chain_ignore(struct sl_ctx *ctx, enum sl_hook hook,
			  const struct sl_chain *chain)
{
	struct ignore_walk w = { .chain = chain, .ignore = ~0u };

	if (hook == SL_HOOK_XDP || sl_instance_foreach(ctx, ignore_cb, &w) ||
	    w.found != chain->len)
		return 0;
	return w.ignore;
}

/* sl_chain_cache (bpf/root/root.bpf.c) follows sl_chains. An entry is
 * rewritten in three updates, each a plain copy by the kernel: seq made odd
 * with the contents unchanged, then the new contents with seq still odd,
 * then seq made even. A reader that saw seq even and unchanged around its
 * copy read one version; one that saw it odd asks sl_chains. Ours only
 * when free or tagged with our interface. */
static bool chain_cache_read(struct sl_ctx *ctx, __u32 ifindex,
			     enum sl_hook hook, struct sl_chain_cached *c)
{
	__u32 idx = SL_CHAIN_CACHE_INDEX(ifindex, hook);

	if (ctx->chain_cache_fd < 0 ||
	    bpf_map_lookup_elem(ctx->chain_cache_fd, &idx, c))
		return false;
	return !c->tag || c->tag == ifindex;
}

/* Step one, before sl_chains changes: packets ask sl_chains meanwhile (and
 * for good if we stop half-way). */
static void chain_cache_hold(struct sl_ctx *ctx, __u32 ifindex,
			     enum sl_hook hook)
{
	__u32 idx = SL_CHAIN_CACHE_INDEX(ifindex, hook);
	struct sl_chain_cached c;

	if (!chain_cache_read(ctx, ifindex, hook, &c) || (c.seq & 1))
		return;
	c.seq++;
	bpf_map_update_elem(ctx->chain_cache_fd, &idx, &c, BPF_ANY);
}

/* Steps two and three: the entry becomes what sl_chains holds now. */
static void chain_cache_sync(struct sl_ctx *ctx, __u32 ifindex,
			     enum sl_hook hook)
{
	struct sl_chain_key key = { .ifindex = ifindex, .hook = hook };
	__u32 idx = SL_CHAIN_CACHE_INDEX(ifindex, hook);
	struct sl_chain_cached c;
	struct sl_chain chain;
	__u32 seq;

	if (!chain_cache_read(ctx, ifindex, hook, &c))
		return;
	seq = c.seq | 1;
	memset(&c, 0, sizeof(c));
	c.seq = seq;
	if (!bpf_map_lookup_elem(ctx->chains_fd, &key, &chain) && chain.len &&
	    chain.len <= SL_CHAIN_MAX) {
		c.tag = ifindex;
		c.len = chain.len;
		c.ignore = chain.ignore;
		memcpy(c.slots, chain.slots, sizeof(c.slots));
	}
	if (bpf_map_update_elem(ctx->chain_cache_fd, &idx, &c, BPF_ANY))
		return; /* seq stays odd: packets keep asking sl_chains */
	c.seq = seq + 1;
	bpf_map_update_elem(ctx->chain_cache_fd, &idx, &c, BPF_ANY);
}

static int chain_set_idx(struct sl_ctx *ctx, const char *dev, __u32 ifindex,
			 enum sl_hook hook, const struct sl_chain *in)
{
	struct sl_chain_key key = { .ifindex = ifindex, .hook = hook };
	struct sl_chain c = *in, *chain = &c;
	int err = 0;

	chain_cache_hold(ctx, ifindex, hook);
	if (!chain->len) {
		link_detach(ctx, ifindex, hook);
		bpf_map_delete_elem(ctx->chains_fd, &key);
		goto out;
	}
	chain->ignore = chain_ignore(ctx, hook, chain);
	/* One update of a hash entry: packets see the old chain or the new,
	 * with what it ignores. */
	if (bpf_map_update_elem(ctx->chains_fd, &key, chain, BPF_ANY)) {
		err = sl_err(-errno, "cannot update the chain of %s: %s", dev,
			     strerror(errno));
		goto out;
	}
	err = link_attach(ctx, dev, ifindex, hook);
	if (err)
		bpf_map_delete_elem(ctx->chains_fd, &key);
out:
	chain_cache_sync(ctx, ifindex, hook);
	return err;
}

int sl_chain_set(struct sl_ctx *ctx, const char *dev, enum sl_hook hook,
		 const char *const *names, int n)
{
	struct sl_chain chain = {};
	struct sl_instance inst;
	int ifindex, err;

	if (hook >= SL_HOOK_MAX)
		return sl_err(-EINVAL, "bad hook %d", hook);
	if (n > SL_CHAIN_MAX)
		return sl_err(-E2BIG, "a chain holds at most %d instances",
			      SL_CHAIN_MAX);
	ifindex = sl_ifindex(dev);
	if (ifindex < 0)
		return ifindex;
	for (int i = 0; i < n; i++) {
		err = sl_instance_get(ctx, names[i], &inst);
		if (err)
			return err;
		for (int j = 0; j < i; j++)
			if (!strcmp(names[i], names[j]))
				return sl_err(-EINVAL, "instance '%s' appears twice in the chain",
					      names[i]);
		chain.slots[chain.len++] = inst.slot;
	}
	return chain_set_idx(ctx, dev, ifindex, hook, &chain);
}

int sl_chain_get(struct sl_ctx *ctx, const char *dev, enum sl_hook hook,
		 struct sl_chain *chain)
{
	struct sl_chain_key key = { .hook = hook };
	int ifindex = sl_ifindex(dev);

	if (ifindex < 0)
		return ifindex;
	key.ifindex = ifindex;
	if (bpf_map_lookup_elem(ctx->chains_fd, &key, chain) ||
	    !link_alive(ctx, ifindex, hook)) {
		memset(chain, 0, sizeof(*chain));
		return sl_err(-ENOENT, "no chain on %s %s", dev,
			      sl_hook_name(hook));
	}
	return 0;
}

int sl_chain_ensure(struct sl_ctx *ctx, const char *dev, enum sl_hook hook,
		    const char *name)
{
	struct sl_chain chain;
	struct sl_instance inst;
	int err = sl_instance_get(ctx, name, &inst);

	if (err)
		return err;
	if (sl_chain_get(ctx, dev, hook, &chain) == -ENODEV)
		return -ENODEV;
	for (__u32 i = 0; i < chain.len; i++)
		if (chain.slots[i] == inst.slot)
			return 0;
	if (chain.len >= SL_CHAIN_MAX)
		return sl_err(-E2BIG, "the chain of %s %s is full (%d instances)",
			      dev, sl_hook_name(hook), SL_CHAIN_MAX);
	chain.slots[chain.len++] = inst.slot;
	return chain_set_idx(ctx, dev, sl_ifindex(dev), hook, &chain);
}

/* Visits the chains whose interface still exists. */
int sl_chain_foreach(struct sl_ctx *ctx, sl_chain_cb cb, void *arg)
{
	struct sl_chain_key key, next;
	struct sl_chain chain;
	void *prev = NULL;
	int err;

	while (!bpf_map_get_next_key(ctx->chains_fd, prev, &next)) {
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(ctx->chains_fd, &key, &chain) ||
		    !link_alive(ctx, key.ifindex, key.hook))
			continue;
		err = cb(key.ifindex, key.hook, &chain, arg);
		if (err)
			return err;
	}
	return 0;
}

int sl_chain_prune(struct sl_ctx *ctx)
{
	struct sl_chain_key key, next, dead[64];
	void *prev = NULL;
	int n = 0;

	while (!bpf_map_get_next_key(ctx->chains_fd, prev, &next) && n < 64) {
		key = next;
		prev = &key;
		if (!link_alive(ctx, key.ifindex, key.hook))
			dead[n++] = key;
	}
	/* Deleted after the walk: deleting while iterating restarts it. */
	for (int i = 0; i < n; i++) {
		link_detach(ctx, dead[i].ifindex, dead[i].hook);
		chain_cache_hold(ctx, dead[i].ifindex, dead[i].hook);
		bpf_map_delete_elem(ctx->chains_fd, &dead[i]);
		chain_cache_sync(ctx, dead[i].ifindex, dead[i].hook);
	}
	return n;
}

int sl_chain_check(struct sl_ctx *ctx, const char *dev, enum sl_hook hook,
		   const char *name)
{
	struct sl_chain chain;
	struct sl_instance inst;
	bool known = !sl_instance_get(ctx, name, &inst);
	__u32 prog_id = 0;
	int ifindex = sl_ifindex(dev), err;

	if (ifindex < 0)
		return ifindex;
	err = sl_chain_get(ctx, dev, hook, &chain);
	if (err && err != -ENOENT)
		return err;
	for (__u32 i = 0; known && i < chain.len; i++)
		if (chain.slots[i] == inst.slot)
			return 0;
	if (chain.len >= SL_CHAIN_MAX)
		return sl_err(-E2BIG, "the chain of %s %s is full (%d instances)",
			      dev, sl_hook_name(hook), SL_CHAIN_MAX);
	/* An interface has one XDP program: ours, or someone else's. */
	if (hook == SL_HOOK_XDP && !link_alive(ctx, ifindex, hook) &&
	    !bpf_xdp_query_id(ifindex, 0, &prog_id) && prog_id)
		return sl_err(-EBUSY, "%s already has another XDP program attached (id %u)",
			      dev, prog_id);
	return 0;
}

static int slot_used_cb(__u32 ifindex, enum sl_hook hook,
			const struct sl_chain *chain, void *arg)
{
	__u32 slot = *(__u32 *)arg;

	for (__u32 i = 0; i < chain->len && i < SL_CHAIN_MAX; i++)
		if (chain->slots[i] == slot)
			return 1;
	return 0;
}

bool sl_slot_in_use(struct sl_ctx *ctx, __u32 slot)
{
	return sl_chain_foreach(ctx, slot_used_cb, &slot) == 1;
}

int sl_reset(struct sl_ctx *ctx)
{
	/* Chains are not read here: state made by another version of
	 * sluice may have another layout. */
	return sl_state_remove(ctx->base);
}

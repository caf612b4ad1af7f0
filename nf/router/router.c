// SPDX-License-Identifier: GPL-2.0
/* Router NF control code: load an instance, put it on a chain, read its
 * counters. The instance has no configuration: routes and neighbours are
 * the kernel's (ip route, ip neigh), read by bpf_fib_lookup per packet, so
 * a route change takes effect for the next packet. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "router.h"
#include "router.skel.h"

int rt_load(struct sl_ctx *ctx, const char *name)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = sl_base(ctx));
	struct router_bpf *skel;
	struct sl_instance inst;
	char stage[PATH_MAX];
	int err;

	if (!sl_instance_get(ctx, name, &inst)) {
		if (strcmp(inst.type, RT_TYPE))
			return sl_err(-EEXIST, "instance '%s' exists and is a %s, not a %s",
				      name, inst.type, RT_TYPE);
		return 0;
	}
	err = sl_instance_prepare(ctx, name, RT_TYPE, &inst);
	if (err)
		return err;
	skel = router_bpf__open_opts(&opts);
	if (!skel)
		return sl_err(-errno, "cannot open the router BPF object: %s",
			      strerror(errno));
	skel->rodata->rt_slot = inst.slot;
	err = router_bpf__load(skel);
	if (err) {
		err = sl_err(err, "cannot load the router BPF program: %s", strerror(-err));
		goto out;
	}
	err = sl_instance_stage_dir(ctx, &inst, stage, sizeof(stage));
	err = err ?: sl_pin(stage, "stats", bpf_map__fd(skel->maps.rt_stats));
	err = err ?: sl_pin(stage, "prog_xdp", bpf_program__fd(skel->progs.router_xdp));
	err = err ?: sl_pin(stage, "prog_tc", bpf_program__fd(skel->progs.router_tc));
	err = err ?: sl_instance_commit(ctx, &inst, bpf_program__fd(skel->progs.router_xdp),
					bpf_program__fd(skel->progs.router_tc));
	if (err)
		sl_pin_dir_remove(stage);
out:
	router_bpf__destroy(skel);
	return err;
}

int rt_attach(struct sl_ctx *ctx, const char *name, const char *dev,
	      enum sl_hook hook)
{
	struct sl_instance inst;
	bool existed = !sl_instance_get(ctx, name, &inst);
	int err;

	if (hook == SL_HOOK_TC_OUT)
		return sl_err(-EINVAL, "a router forwards what arrives: hook ingress or tc-ingress, not egress");
	err = sl_chain_check(ctx, dev, hook, name);
	err = err ?: rt_load(ctx, name);
	err = err ?: sl_chain_ensure(ctx, dev, hook, name);
	/* Remove only what this call created (a refused name created nothing). */
	if (err && !existed && !sl_instance_get(ctx, name, &inst)) {
		char msg[256];

		snprintf(msg, sizeof(msg), "%s", sl_errmsg());
		if (sl_instance_delete(ctx, name))
			sl_err(err, "%s (instance '%s' left behind: %s)", msg, name,
			       sl_errmsg());
		else
			sl_err(err, "%s", msg);
	}
	return err;
}

static int rt_forwarded(struct sl_ctx *ctx, const struct sl_instance *inst,
			__u64 *forwarded)
{
	struct sl_nf_stats st;
	__u64 drops[SL_DROP_MAX];
	int err = sl_slot_stats(ctx, inst->slot, &st, drops);

	*forwarded = st.redirected;
	return err;
}

int rt_stats_read(struct sl_ctx *ctx, const char *name, struct rt_stats *out)
{
	int ncpu = libbpf_num_possible_cpus(), dir, fd, err = 0;
	struct sl_instance inst;
	struct rt_stats *per;
	__u32 zero = 0;

	if (sl_instance_get(ctx, name, &inst))
		return sl_err(-ENOENT, "no instance '%s'", name);
	if (strcmp(inst.type, RT_TYPE))
		return sl_err(-EINVAL, "instance '%s' is a %s, not a %s", name,
			      inst.type, RT_TYPE);
	if (ncpu <= 0)
		return sl_err(-EIO, "cannot count CPUs");
	dir = sl_instance_open_dir(ctx, name);
	if (dir < 0)
		return dir;
	fd = sl_obj_get_at(dir, "stats");
	close(dir);
	if (fd < 0)
		return fd;
	per = calloc(ncpu, sizeof(*per));
	if (!per) {
		close(fd);
		return sl_err(-ENOMEM, "out of memory");
	}
	memset(out, 0, sizeof(*out));
	if (bpf_map_lookup_elem(fd, &zero, per)) {
		err = sl_err(-errno, "reading the counters of '%s': %s", name, strerror(errno));
	} else {
		/* Forwarded = redirected: the BPF side counts it once, in the
		 * instance's pipeline counters (router.bpf.c: rt_count). */
		err = rt_forwarded(ctx, &inst, &out->forwarded);
		for (int i = 0; i < ncpu && !err; i++) {
			out->local += per[i].local;
			out->no_neigh += per[i].no_neigh;
			out->frag_needed += per[i].frag_needed;
			out->ttl_expired += per[i].ttl_expired;
			out->unroutable += per[i].unroutable;
			out->other += per[i].other;
		}
	}
	free(per);
	close(fd);
	return err;
}

// SPDX-License-Identifier: GPL-2.0
/* NF instances: a name, a type and a tail-call slot, registered in the
 * pinned sl_instances map; each instance's own maps and programs are pinned
 * under nf/<name>/. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "internal.h"

static int name_key(const char *name, char key[SL_NAME_MAX])
{
	size_t len = strlen(name);

	if (!len || len >= SL_NAME_MAX)
		return sl_err(-EINVAL, "instance name '%s' must have 1 to %d characters",
			      name, SL_NAME_MAX - 1);
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		/* bpffs refuses '.' in names; '@' marks our staging folders. */
		if (!(c == '-' || c == '_' || (c >= '0' && c <= '9') ||
		      (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
			return sl_err(-EINVAL, "instance name '%s': use letters, digits, '-' and '_'",
				      name);
	}
	memset(key, 0, SL_NAME_MAX);
	memcpy(key, name, len);
	return 0;
}

int sl_instance_get(struct sl_ctx *ctx, const char *name,
		    struct sl_instance *inst)
{
	char key[SL_NAME_MAX];
	int err = name_key(name, key);

	if (err)
		return err;
	if (bpf_map_lookup_elem(ctx->instances_fd, key, inst))
		return sl_err(-ENOENT, "no instance '%s'", name);
	return 0;
}

int sl_instance_foreach(struct sl_ctx *ctx, sl_instance_cb cb, void *arg)
{
	char key[SL_NAME_MAX], next[SL_NAME_MAX];
	struct sl_instance inst;
	void *prev = NULL;
	int err;

	while (!bpf_map_get_next_key(ctx->instances_fd, prev, next)) {
		memcpy(key, next, sizeof(key));
		prev = key;
		if (bpf_map_lookup_elem(ctx->instances_fd, key, &inst))
			continue;
		err = cb(&inst, arg);
		if (err)
			return err;
	}
	return 0;
}

static int mark_slot(const struct sl_instance *inst, void *arg)
{
	unsigned char *used = arg;

	if (inst->slot < SL_MAX_SLOTS)
		used[inst->slot] = 1;
	return 0;
}

int sl_instance_prepare(struct sl_ctx *ctx, const char *name, const char *type,
			struct sl_instance *inst)
{
	unsigned char used[SL_MAX_SLOTS] = { 1 }; /* slot 0 is the root's */
	int err = sl_instance_get(ctx, name, inst);

	if (!err) {
		if (strcmp(inst->type, type))
			return sl_err(-EEXIST, "instance '%s' exists and is a %s, not a %s",
				      name, inst->type, type);
		return 0;
	}
	if (err != -ENOENT)
		return err;
	memset(inst, 0, sizeof(*inst));
	snprintf(inst->name, sizeof(inst->name), "%s", name);
	snprintf(inst->type, sizeof(inst->type), "%s", type);
	sl_instance_foreach(ctx, mark_slot, used);
	for (__u32 s = 1; s < SL_MAX_SLOTS; s++) {
		if (!used[s]) {
			inst->slot = s;
			return 0;
		}
	}
	return sl_err(-ENOSPC, "no free slot: at most %d instances", SL_MAX_SLOTS - 1);
}

int sl_instance_dir(struct sl_ctx *ctx, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/nf/%s", ctx->base, name);
	return 0;
}

int sl_instance_stage_dir(struct sl_ctx *ctx, const struct sl_instance *inst,
			  char *buf, size_t len)
{
	char nf[PATH_MAX];

	snprintf(nf, sizeof(nf), "%s/nf", ctx->base);
	if (mkdir(nf, 0700) && errno != EEXIST)
		return sl_err(-errno, "cannot create %s: %s", nf, strerror(errno));
	snprintf(buf, len, "%s/%s@new", nf, inst->name);
	sl_pin_dir_remove(buf); /* left over from an interrupted load */
	if (mkdir(buf, 0700))
		return sl_err(-errno, "cannot create %s: %s", buf, strerror(errno));
	return 0;
}

/* Zeroes a per-CPU counter entry, so a reused slot starts from nothing. */
static void zero_percpu(int map_fd, __u32 key, size_t value_size)
{
	int ncpu = libbpf_num_possible_cpus();
	size_t sz = ((value_size + 7) & ~7UL) * (ncpu > 0 ? ncpu : 1);
	void *zero = calloc(1, sz);

	if (zero) {
		bpf_map_update_elem(map_fd, &key, zero, BPF_ANY);
		free(zero);
	}
}

int sl_instance_commit(struct sl_ctx *ctx, const struct sl_instance *inst,
		       int prog_xdp_fd, int prog_tc_fd)
{
	char key[SL_NAME_MAX], dir[PATH_MAX], stage[PATH_MAX];
	struct sl_instance cur;
	bool is_new = sl_instance_get(ctx, inst->name, &cur) == -ENOENT;
	int err = name_key(inst->name, key);

	if (err)
		return err;
	if (is_new) {
		zero_percpu(ctx->nf_stats_fd, inst->slot, sizeof(struct sl_nf_stats));
		for (__u32 r = 0; r < SL_DROP_MAX; r++)
			zero_percpu(ctx->drops_fd, SL_DROP_INDEX(inst->slot, r),
				    sizeof(__u64));
	}
	/* The switch: one prog-array update per program type. */
	if (bpf_map_update_elem(ctx->progs_xdp_fd, &inst->slot, &prog_xdp_fd, BPF_ANY) ||
	    bpf_map_update_elem(ctx->progs_tc_fd, &inst->slot, &prog_tc_fd, BPF_ANY))
		return sl_err(-errno, "cannot switch in instance '%s': %s",
			      inst->name, strerror(errno));

	snprintf(dir, sizeof(dir), "%s/nf/%s", ctx->base, inst->name);
	snprintf(stage, sizeof(stage), "%s/nf/%s@new", ctx->base, inst->name);
	/* One exchange: a reader finds the old folder or the new, never none. */
	if (renameat2(AT_FDCWD, stage, AT_FDCWD, dir, RENAME_EXCHANGE)) {
		if (errno != ENOENT || rename(stage, dir))
			return sl_err(-errno, "cannot move %s into place: %s", stage,
				      strerror(errno));
	}
	sl_pin_dir_remove(stage); /* now the previous generation */
	if (bpf_map_update_elem(ctx->instances_fd, key, inst, BPF_ANY))
		return sl_err(-errno, "cannot register instance '%s': %s",
			      inst->name, strerror(errno));
	return 0;
}

int sl_instance_delete(struct sl_ctx *ctx, const char *name)
{
	char key[SL_NAME_MAX], dir[PATH_MAX];
	struct sl_instance inst;
	int err = sl_instance_get(ctx, name, &inst);

	if (err)
		return err;
	if (sl_slot_in_use(ctx, inst.slot))
		return sl_err(-EBUSY, "instance '%s' is in a chain; remove it from the chain first",
			      name);
	name_key(name, key);
	bpf_map_delete_elem(ctx->progs_xdp_fd, &inst.slot);
	bpf_map_delete_elem(ctx->progs_tc_fd, &inst.slot);
	bpf_map_delete_elem(ctx->instances_fd, key);
	sl_instance_dir(ctx, name, dir, sizeof(dir));
	sl_pin_dir_remove(dir);
	return 0;
}

int sl_slot_stats(struct sl_ctx *ctx, __u32 slot, struct sl_nf_stats *st,
		  __u64 drops[SL_DROP_MAX])
{
	int ncpu = libbpf_num_possible_cpus();
	struct sl_nf_stats *per = calloc(ncpu, sizeof(*per));
	__u64 *cnt = calloc(ncpu, sizeof(*cnt));
	int err = 0;

	memset(st, 0, sizeof(*st));
	memset(drops, 0, sizeof(__u64) * SL_DROP_MAX);
	if (!per || !cnt) {
		err = sl_err(-ENOMEM, "out of memory");
		goto out;
	}
	if (bpf_map_lookup_elem(ctx->nf_stats_fd, &slot, per)) {
		err = sl_err(-errno, "cannot read counters of slot %u", slot);
		goto out;
	}
	for (int c = 0; c < ncpu; c++) {
		st->packets += per[c].packets;
		st->bytes += per[c].bytes;
		st->passed += per[c].passed;
		st->redirected += per[c].redirected;
		st->dropped += per[c].dropped;
	}
	for (__u32 r = 0; r < SL_DROP_MAX; r++) {
		__u32 idx = SL_DROP_INDEX(slot, r);

		if (bpf_map_lookup_elem(ctx->drops_fd, &idx, cnt))
			continue;
		for (int c = 0; c < ncpu; c++)
			drops[r] += cnt[c];
	}
out:
	free(per);
	free(cnt);
	return err;
}

int sl_instance_open_dir(struct sl_ctx *ctx, const char *name)
{
	char dir[PATH_MAX];
	int fd;

	sl_instance_dir(ctx, name, dir, sizeof(dir));
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return sl_err(-errno, "cannot open %s: %s", dir, strerror(errno));
	return fd;
}

int sl_obj_get_at(int dir_fd, const char *name)
{
	char path[64];

	/* bpf_obj_get takes a path: reach the pin through the open folder,
	 * so every object comes from the same generation. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", dir_fd);
	return sl_obj_get(path, name);
}

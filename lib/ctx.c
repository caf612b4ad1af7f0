// SPDX-License-Identifier: GPL-2.0
/* Opening the state of a network namespace: bpffs, the writer lock, the root
 * programs and the shared maps; errors and libbpf's messages. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "internal.h"
#include "root.skel.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif
#define SL_BPF_FS_MAGIC 0xcafe4a11

static __thread char errbuf[512];
static bool verbose;

const char *sl_errmsg(void)
{
	return errbuf[0] ? errbuf : "unknown error";
}

int sl_err(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errbuf, sizeof(errbuf), fmt, ap);
	va_end(ap);
	return err;
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt,
			va_list ap)
{
	if (!verbose && level != LIBBPF_WARN)
		return 0;
	if (!verbose)
		return 0; /* failures reach the user through sl_errmsg() */
	return vfprintf(stderr, fmt, ap);
}

void sl_set_verbose(bool v)
{
	verbose = v;
}

static const char *const hook_names[SL_HOOK_MAX] = {
	[SL_HOOK_XDP] = "ingress",
	[SL_HOOK_TC_IN] = "tc-ingress",
	[SL_HOOK_TC_OUT] = "egress",
};

int sl_hook_parse(const char *name, enum sl_hook *hook)
{
	for (int i = 0; i < SL_HOOK_MAX; i++) {
		if (!strcmp(name, hook_names[i])) {
			*hook = i;
			return 0;
		}
	}
	return sl_err(-EINVAL,
		      "unknown hook '%s' (ingress, tc-ingress or egress)", name);
}

const char *sl_hook_name(enum sl_hook hook)
{
	return hook < SL_HOOK_MAX ? hook_names[hook] : "?";
}

int sl_pin(const char *dir, const char *name, int fd)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (bpf_obj_pin(fd, path))
		return sl_err(-errno, "cannot pin %s: %s", path, strerror(errno));
	return 0;
}

int sl_obj_get(const char *dir, const char *name)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return sl_err(-errno, "cannot open %s: %s", path,
			      strerror(errno));
	return fd;
}

int sl_pins_check(const char *base, struct bpf_object *obj)
{
	struct bpf_map_info info;
	struct bpf_map *map;
	char what[64];

	bpf_object__for_each_map(map, obj) {
		const char *path = bpf_map__pin_path(map);
		__u32 len = sizeof(info), want, have;
		int fd;

		if (!path)
			continue;
		fd = bpf_obj_get(path);
		if (fd < 0)
			continue; /* not pinned yet: this load creates it */
		memset(&info, 0, sizeof(info));
		if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
			close(fd);
			continue; /* not a map: the load reports it */
		}
		close(fd);
		if (info.type != bpf_map__type(map)) {
			snprintf(what, sizeof(what), "type");
			want = bpf_map__type(map), have = info.type;
		} else if (info.key_size != bpf_map__key_size(map)) {
			snprintf(what, sizeof(what), "key size");
			want = bpf_map__key_size(map), have = info.key_size;
		} else if (info.value_size != bpf_map__value_size(map)) {
			snprintf(what, sizeof(what), "value size");
			want = bpf_map__value_size(map), have = info.value_size;
		} else if (bpf_map__max_entries(map) &&
			   info.max_entries != bpf_map__max_entries(map)) {
			snprintf(what, sizeof(what), "size");
			want = bpf_map__max_entries(map), have = info.max_entries;
		} else if (info.map_flags != bpf_map__map_flags(map)) {
			snprintf(what, sizeof(what), "flags");
			want = bpf_map__map_flags(map), have = info.map_flags;
		} else {
			continue;
		}
		return sl_err(-ESTALE,
			      "the state pinned in %s was made by another version "
			      "of sluice (map %s: %s %u there, %u in this one); "
			      "'sluice reset' starts afresh (it detaches sluice "
			      "in this network namespace), or use the sluice "
			      "that made it", base, bpf_map__name(map), what,
			      have, want);
	}
	return 0;
}

/* The shared maps the root programs pinned must have this build's layout:
 * the NF programs and this library read and write them. */
static int root_pins_check(const char *base)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = base);
	struct root_bpf *skel = root_bpf__open_opts(&opts);
	int err;

	if (!skel)
		return sl_err(-errno, "cannot open the root BPF object: %s",
			      strerror(errno));
	err = sl_pins_check(base, skel->obj);
	root_bpf__destroy(skel);
	return err;
}

/* sl_instances is made here, not by the root object: its own check. */
static int instances_check(struct sl_ctx *ctx)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(ctx->instances_fd, &info, &len))
		return sl_err(-errno, "cannot read the instance map: %s",
			      strerror(errno));
	if (info.value_size == sizeof(struct sl_instance))
		return 0;
	return sl_err(-ESTALE,
		      "the state pinned in %s was made by another version of "
		      "sluice (map sl_instances: value size %u there, %zu in "
		      "this one); 'sluice reset' starts afresh (it detaches "
		      "sluice in this network namespace), or use the sluice "
		      "that made it", ctx->base, info.value_size,
		      sizeof(struct sl_instance));
}

int sl_state_remove(const char *base)
{
	static const char *const locks[] = { "", ".events", ".obs", ".evcfg" };
	const char *ns = strrchr(base, '/') + 1;
	char path[PATH_MAX];

	/* Removing the pins detaches too: the link pins are the last
	 * references to the links. The namespace's lock files go too, or
	 * they pile up in /run: the caller holds the writer lock, and a
	 * writer that opened the old file meanwhile finds no state and
	 * starts afresh. */
	for (size_t i = 0; i < sizeof(locks) / sizeof(locks[0]); i++) {
		snprintf(path, sizeof(path), SL_RUN_DIR "/%s%s.lock", ns,
			 locks[i]);
		unlink(path);
	}
	return sl_pin_dir_remove(base);
}

int sl_pin_dir_remove(const char *dir)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' &&
		    (!de->d_name[1] || !strcmp(de->d_name, "..")))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (de->d_type == DT_DIR)
			sl_pin_dir_remove(path);
		else
			unlink(path);
	}
	closedir(d);
	return rmdir(dir) ? -errno : 0;
}

static int ensure_bpffs(void)
{
	struct statfs st;

	if (!statfs(SL_BPFFS, &st) && st.f_type == SL_BPF_FS_MAGIC)
		return 0;
	if (mount("bpf", SL_BPFFS, "bpf", 0, "mode=0700"))
		return sl_err(-errno, "no BPF filesystem at %s and cannot mount one: %s",
			      SL_BPFFS, strerror(errno));
	return 0;
}

static int netns_cookie(__u64 *cookie)
{
	socklen_t len = sizeof(*cookie);
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	int err = 0;

	if (fd < 0)
		return sl_err(-errno, "socket: %s", strerror(errno));
	if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, cookie, &len))
		err = sl_err(-errno, "cannot identify the network namespace: %s",
			     strerror(errno));
	close(fd);
	return err;
}

static int take_lock(__u64 cookie)
{
	char path[PATH_MAX];
	int fd;

	if (mkdir(SL_RUN_DIR, 0700) && errno != EEXIST)
		return sl_err(-errno, "cannot create %s: %s", SL_RUN_DIR,
			      strerror(errno));
	snprintf(path, sizeof(path), SL_RUN_DIR "/netns-%llu.lock",
		 (unsigned long long)cookie);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return sl_err(-errno, "cannot open lock %s: %s", path,
			      strerror(errno));
	if (flock(fd, LOCK_EX)) {
		close(fd);
		return sl_err(-errno, "cannot take lock %s: %s", path,
			      strerror(errno));
	}
	return fd;
}

static const char *const root_pins[SL_HOOK_MAX] = {
	[SL_HOOK_XDP] = "root_xdp",
	[SL_HOOK_TC_IN] = "root_tc_in",
	[SL_HOOK_TC_OUT] = "root_tc_out",
};

/* Loads the root programs, creating the shared maps pinned by name. */
static int create_state(struct sl_ctx *ctx)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = ctx->base);
	struct root_bpf *skel;
	int err, fd;

	if (mkdir(SL_PIN_ROOT, 0700) && errno != EEXIST)
		return sl_err(-errno, "cannot create %s: %s", SL_PIN_ROOT,
			      strerror(errno));
	if (mkdir(ctx->base, 0700) && errno != EEXIST)
		return sl_err(-errno, "cannot create %s: %s", ctx->base,
			      strerror(errno));
	skel = root_bpf__open_opts(&opts);
	if (!skel)
		return sl_err(-errno, "cannot open the root BPF object: %s",
			      strerror(errno));
	err = root_bpf__load(skel);
	if (err) {
		err = sl_err(err, "cannot load the root BPF programs (%s); is BPF "
			     "available and are you root?", strerror(-err));
		goto out;
	}
	fd = bpf_map_create(BPF_MAP_TYPE_HASH, "sl_instances", SL_NAME_MAX,
			    sizeof(struct sl_instance), SL_MAX_SLOTS, NULL);
	if (fd < 0) {
		err = sl_err(-errno, "cannot create the instance map: %s",
			     strerror(errno));
		goto out;
	}
	err = sl_pin(ctx->base, "sl_instances", fd);
	close(fd);
	if (err)
		goto out;
	/* Root programs are pinned last: their presence marks complete state. */
	err = sl_pin(ctx->base, root_pins[SL_HOOK_TC_IN],
		     bpf_program__fd(skel->progs.sluice_tc_in));
	err = err ?: sl_pin(ctx->base, root_pins[SL_HOOK_TC_OUT],
			    bpf_program__fd(skel->progs.sluice_tc_out));
	err = err ?: sl_pin(ctx->base, root_pins[SL_HOOK_XDP],
			    bpf_program__fd(skel->progs.sluice_xdp));
out:
	root_bpf__destroy(skel);
	if (err)
		sl_pin_dir_remove(ctx->base); /* no half-made state left behind */
	return err;
}

const char *sl_base(const struct sl_ctx *ctx)
{
	return ctx->base;
}

int sl_map_fd(struct sl_ctx *ctx, const char *name)
{
	if (!strcmp(name, "sl_chains"))
		return ctx->chains_fd;
	if (!strcmp(name, "sl_instances"))
		return ctx->instances_fd;
	if (!strcmp(name, "sl_progs_xdp"))
		return ctx->progs_xdp_fd;
	if (!strcmp(name, "sl_progs_tc"))
		return ctx->progs_tc_fd;
	if (!strcmp(name, "sl_nf_stats"))
		return ctx->nf_stats_fd;
	if (!strcmp(name, "sl_drops"))
		return ctx->drops_fd;
	return sl_err(-ENOENT, "no shared map %s", name);
}

void sl_close(struct sl_ctx *ctx)
{
	if (!ctx)
		return;
	int *fds[] = { &ctx->chains_fd,	 &ctx->instances_fd, &ctx->progs_xdp_fd,
		       &ctx->progs_tc_fd, &ctx->nf_stats_fd,  &ctx->drops_fd,
		       &ctx->chain_cache_fd };

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (*fds[i] >= 0)
			close(*fds[i]);
	for (int h = 0; h < SL_HOOK_MAX; h++)
		if (ctx->root_fd[h] >= 0)
			close(ctx->root_fd[h]);
	if (ctx->lock_fd >= 0)
		close(ctx->lock_fd); /* releases the lock */
	free(ctx);
}

int sl_open(struct sl_ctx **out, unsigned int flags)
{
	struct sl_ctx *ctx;
	char path[PATH_MAX];
	__u64 cookie;
	int err;

	*out = NULL;
	libbpf_set_print(libbpf_print);
	if (geteuid() != 0)
		return sl_err(-EPERM, "sluice needs root (CAP_BPF and CAP_NET_ADMIN)");
	err = netns_cookie(&cookie);
	if (err)
		return err;
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return sl_err(-ENOMEM, "out of memory");
	ctx->lock_fd = ctx->chains_fd = ctx->instances_fd = -1;
	ctx->progs_xdp_fd = ctx->progs_tc_fd = ctx->nf_stats_fd = -1;
	ctx->drops_fd = ctx->chain_cache_fd = -1;
	for (int h = 0; h < SL_HOOK_MAX; h++)
		ctx->root_fd[h] = -1;
	snprintf(ctx->base, sizeof(ctx->base), SL_PIN_ROOT "/netns-%llu",
		 (unsigned long long)cookie);

	if (flags & SL_OPEN_WRITE) {
		err = ensure_bpffs();
		if (err)
			goto fail;
		ctx->lock_fd = take_lock(cookie);
		if (ctx->lock_fd < 0) {
			err = ctx->lock_fd;
			goto fail;
		}
	}
	snprintf(path, sizeof(path), "%s/%s", ctx->base, root_pins[SL_HOOK_XDP]);
	if (access(path, F_OK)) {
		if (!(flags & SL_OPEN_WRITE)) {
			err = sl_err(-ENOENT, "no sluice state in this network namespace");
			goto fail;
		}
		/* A half-made folder (a crash while creating) is made again. */
		sl_pin_dir_remove(ctx->base);
		err = create_state(ctx);
		if (err)
			goto fail;
	} else if (!(flags & SL_OPEN_RESET)) {
		err = root_pins_check(ctx->base);
		if (err)
			goto fail;
	}
	for (int h = 0; h < SL_HOOK_MAX; h++) {
		ctx->root_fd[h] = sl_obj_get(ctx->base, root_pins[h]);
		if (ctx->root_fd[h] < 0) {
			err = ctx->root_fd[h];
			goto fail;
		}
	}
	struct {
		int *fd;
		const char *name;
	} maps[] = {
		{ &ctx->chains_fd, "sl_chains" },
		{ &ctx->instances_fd, "sl_instances" },
		{ &ctx->progs_xdp_fd, "sl_progs_xdp" },
		{ &ctx->progs_tc_fd, "sl_progs_tc" },
		{ &ctx->nf_stats_fd, "sl_nf_stats" },
		{ &ctx->drops_fd, "sl_drops" },
	};
	for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
		*maps[i].fd = sl_obj_get(ctx->base, maps[i].name);
		if (*maps[i].fd < 0) {
			err = *maps[i].fd;
			goto fail;
		}
	}
	if (!(flags & SL_OPEN_RESET)) {
		err = instances_check(ctx);
		if (err)
			goto fail;
	}
	snprintf(path, sizeof(path), "%s/sl_chain_cache", ctx->base);
	ctx->chain_cache_fd = bpf_obj_get(path); /* optional: see internal.h */
	if ((flags & (SL_OPEN_WRITE | SL_OPEN_RESET)) == SL_OPEN_WRITE)
		sl_chain_prune(ctx);
	*out = ctx;
	return 0;
fail:
	sl_close(ctx);
	return err;
}

const char *sl_drop_reason_name(unsigned int reason)
{
	switch (reason) {
#define SL_DROP_NAME(name, num, text)                                          \
	case num:                                                              \
		return text;
		SL_DROP_REASONS(SL_DROP_NAME)
#undef SL_DROP_NAME
	default:
		return NULL;
	}
}

int sl_ifindex(const char *dev)
{
	unsigned int idx = if_nametoindex(dev);

	if (!idx)
		return sl_err(-ENODEV, "no interface '%s' in this network namespace",
			      dev);
	return idx;
}

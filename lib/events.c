// SPDX-License-Identifier: GPL-2.0
/* Events from the data plane: the pinned ring buffer sl_events, its
 * configuration sl_evcfg and counters sl_evstats (declared in
 * bpf/include/pipeline.h), and a reader decoding each record. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "internal.h"
#include "events.h"
#include "observe.h"

/* Opens a pinned map of the events; state made before events existed has
 * none until an NF is loaded again. */
static int events_map(struct sl_ctx *ctx, const char *name)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", sl_base(ctx), name);
	fd = bpf_obj_get(path);
	if (fd < 0 && errno == ENOENT)
		return sl_err(-ENOENT, "no %s: this state was made by a sluice without "
			      "events; loading an NF again adds them (root programs "
			      "report drops only after 'sluice reset')", name);
	if (fd < 0)
		return sl_err(-errno, "cannot open %s: %s", path, strerror(errno));
	return fd;
}

int sl_events_config(struct sl_ctx *ctx, __u32 drop_sample)
{
	int fd = events_map(ctx, "sl_evcfg"), err;

	if (fd < 0)
		return fd;
	err = sl_evcfg_update(ctx, fd, 0, 0, &drop_sample);
	close(fd);
	return err;
}

int sl_events_get_config(struct sl_ctx *ctx, __u32 *drop_sample)
{
	struct sl_evcfg cfg;
	__u32 zero = 0;
	int fd = events_map(ctx, "sl_evcfg"), err = 0;

	if (fd < 0)
		return fd;
	if (bpf_map_lookup_elem(fd, &zero, &cfg))
		err = sl_err(-errno, "cannot read sl_evcfg: %s", strerror(errno));
	else
		*drop_sample = cfg.drop_sample;
	close(fd);
	return err;
}

int sl_events_stats(struct sl_ctx *ctx, struct sl_events_stats *st)
{
	int ncpu = libbpf_num_possible_cpus();
	struct sl_evstats *v;
	__u32 zero = 0;
	int fd, err = 0;

	memset(st, 0, sizeof(*st));
	if (ncpu < 0)
		return sl_err(ncpu, "cannot count CPUs");
	fd = events_map(ctx, "sl_evstats");
	if (fd < 0)
		return fd;
	v = calloc(ncpu, sizeof(*v));
	if (!v) {
		close(fd);
		return sl_err(-ENOMEM, "out of memory");
	}
	if (bpf_map_lookup_elem(fd, &zero, v)) {
		err = sl_err(-errno, "cannot read sl_evstats: %s", strerror(errno));
	} else {
		for (int i = 0; i < ncpu; i++) {
			st->emitted += v[i].emitted;
			st->lost += v[i].lost;
		}
	}
	free(v);
	close(fd);
	return err;
}

const char *sl_event_type_name(unsigned int type)
{
	switch (type) {
	case SL_EVENT_DROP:
		return "drop";
	case SL_EVENT_LOG:
		return "log";
	case SL_EVENT_HEALTH:
		return "health";
	case SL_EVENT_ANOMALY:
		return "anomaly";
	case SL_EVENT_PATH:
		return "path";
	default:
		return "unknown";
	}
}

static const char *proto_name(const struct sl_event *e, char *buf, size_t len)
{
	if (!e->family)
		return "";
	switch (e->ip_proto) {
	case IPPROTO_TCP:
		return "tcp";
	case IPPROTO_UDP:
		return "udp";
	case IPPROTO_ICMP:
		return "icmp";
	case IPPROTO_ICMPV6:
		return "icmpv6";
	default:
		snprintf(buf, len, "%u", e->ip_proto);
		return buf;
	}
}

static __u64 clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* Wall-clock minus monotonic time, to date events. */
static __s64 realtime_offset(void)
{
	return (__s64)(clock_ns(CLOCK_REALTIME) - clock_ns(CLOCK_MONOTONIC));
}

struct slot_query {
	__u32 slot;
	char *name;
};

static int slot_cb(const struct sl_instance *inst, void *arg)
{
	struct slot_query *q = arg;

	if (inst->slot != q->slot)
		return 0;
	snprintf(q->name, SL_NAME_MAX, "%s", inst->name);
	return 1;
}

/* Decodes all but the instance name and the date. */
static void decode_fields(const struct sl_event *e, struct sl_event_view *v)
{
	static __thread char protobuf[8];
	int af = e->family == 6 ? AF_INET6 : AF_INET;

	memset(v, 0, sizeof(*v));
	v->raw = e;
	v->type = sl_event_type_name(e->type);
	v->hook = sl_hook_name(e->hook);
	v->reason = sl_drop_reason_name(e->reason);
	if (!v->reason)
		v->reason = "unknown";
	v->proto = proto_name(e, protobuf, sizeof(protobuf));
	if (!if_indextoname(e->ifindex, v->dev))
		snprintf(v->dev, sizeof(v->dev), "if%u", e->ifindex);
	if (e->family) {
		inet_ntop(af, e->saddr, v->src, sizeof(v->src));
		inet_ntop(af, e->daddr, v->dst, sizeof(v->dst));
	}
}

static void name_slot(struct sl_ctx *ctx, __u32 slot, char name[SL_NAME_MAX])
{
	struct slot_query q = { .slot = slot, .name = name };

	if (!slot) {
		snprintf(name, SL_NAME_MAX, "root");
		return;
	}
	if (sl_instance_foreach(ctx, slot_cb, &q) != 1)
		snprintf(name, SL_NAME_MAX, "slot-%u", slot);
}

/* A path-policy event: the policy's name stands as its reason. */
static void path_fields(struct sl_ctx *ctx, const struct sl_event *e,
			struct sl_event_view *v)
{
	v->trace_id = e->trace_id;
	if (sl_path_policy_name(ctx, e->policy, v->policy) || !v->policy[0])
		snprintf(v->policy, sizeof(v->policy), "policy-%u", e->policy);
	v->reason = v->policy;
}

/* A LOG event: the rule's prefix stands as its reason. */
static void log_fields(const struct sl_event *e, struct sl_event_view *v)
{
	memcpy(v->prefix, e->data, SL_EVENT_LOG_PREFIX - 1);
	v->prefix[SL_EVENT_LOG_PREFIX - 1] = '\0';
	v->reason = v->prefix;
}

void sl_event_decode(struct sl_ctx *ctx, const struct sl_event *raw,
		     struct sl_event_view *view)
{
	decode_fields(raw, view);
	name_slot(ctx, raw->slot, view->instance);
	if (raw->type == SL_EVENT_PATH)
		path_fields(ctx, raw, view);
	if (raw->type == SL_EVENT_LOG)
		log_fields(raw, view);
	view->realtime_ns = raw->ts_ns + realtime_offset();
}

/* Instance names by slot, read again on a miss or when stale. */
struct sl_slot_names {
	struct sl_ctx *ctx;
	char (*names)[SL_NAME_MAX];
	__u64 names_at;
};

static int fill_names(const struct sl_instance *inst, void *arg)
{
	struct sl_slot_names *n = arg;

	if (inst->slot < SL_MAX_SLOTS)
		snprintf(n->names[inst->slot], SL_NAME_MAX, "%s", inst->name);
	return 0;
}

static void refresh_names(struct sl_slot_names *n)
{
	memset(n->names, 0, SL_MAX_SLOTS * sizeof(n->names[0]));
	sl_instance_foreach(n->ctx, fill_names, n);
	n->names_at = clock_ns(CLOCK_MONOTONIC);
}

struct sl_slot_names *sl_slot_names_new(struct sl_ctx *ctx)
{
	struct sl_slot_names *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->names = calloc(SL_MAX_SLOTS, sizeof(n->names[0]));
	if (!n->names) {
		free(n);
		return NULL;
	}
	n->ctx = ctx;
	refresh_names(n);
	return n;
}

void sl_slot_names_free(struct sl_slot_names *n)
{
	if (!n)
		return;
	free(n->names);
	free(n);
}

void sl_slot_name(struct sl_slot_names *n, __u32 slot, char name[SL_NAME_MAX])
{
	/* Slots are reused after a delete: names older than a second are
	 * read again, and so is a slot not seen before. */
	bool stale = clock_ns(CLOCK_MONOTONIC) - n->names_at > 1000000000ULL;

	if (!slot) {
		snprintf(name, SL_NAME_MAX, "root");
		return;
	}
	if (slot >= SL_MAX_SLOTS) {
		snprintf(name, SL_NAME_MAX, "slot-%u", slot);
		return;
	}
	if (stale || !n->names[slot][0])
		refresh_names(n);
	if (n->names[slot][0])
		memcpy(name, n->names[slot], SL_NAME_MAX);
	else
		snprintf(name, SL_NAME_MAX, "slot-%u", slot);
}

struct sl_events {
	struct sl_ctx *ctx;
	struct ring_buffer *rb;
	int map_fd;
	int lock_fd;
	sl_event_cb cb;
	void *arg;
	__s64 rt_offset;
	struct sl_slot_names *names;
};

static int ring_cb(void *arg, void *data, size_t size)
{
	struct sl_events *ev = arg;
	struct sl_event e = {};
	struct sl_event_view v;

	/* Records written by an older layout are shorter: missing fields
	 * read as zero; a newer, longer layout is read as far as known. */
	if (size < offsetof(struct sl_event, data))
		return 0;
	memcpy(&e, data, size < sizeof(e) ? size : sizeof(e));
	if (e.cap_len > SL_EVENT_SNAPLEN)
		e.cap_len = SL_EVENT_SNAPLEN;
	if (e.type != SL_EVENT_DROP && e.type != SL_EVENT_PATH && e.type != SL_EVENT_LOG)
		return 0; /* no other type is written yet */
	decode_fields(&e, &v);
	sl_slot_name(ev->names, e.slot, v.instance);
	if (e.type == SL_EVENT_PATH)
		path_fields(ev->ctx, &e, &v);
	if (e.type == SL_EVENT_LOG)
		log_fields(&e, &v);
	v.realtime_ns = e.ts_ns + ev->rt_offset;
	return ev->cb(&v, ev->arg);
}

/* Opens and locks /run/sluice/<namespace>.<what>.lock (flock flags). */
static int ns_lock(struct sl_ctx *ctx, const char *what, int flags)
{
	const char *base = strrchr(sl_base(ctx), '/');
	char path[PATH_MAX];
	int fd;

	if (mkdir(SL_RUN_DIR, 0700) && errno != EEXIST)
		return sl_err(-errno, "cannot create %s: %s", SL_RUN_DIR,
			      strerror(errno));
	snprintf(path, sizeof(path), SL_RUN_DIR "/%s.%s.lock",
		 base ? base + 1 : "netns", what);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return sl_err(-errno, "cannot open lock %s: %s", path,
			      strerror(errno));
	if (flock(fd, flags)) {
		int err = errno;

		close(fd);
		if (err == EWOULDBLOCK)
			return sl_err(-EBUSY, "another process is reading the %s "
				      "of this namespace (lock %s)",
				      !strcmp(what, "obs") ? "capture or trace records" :
				      "events", path);
		return sl_err(-err, "cannot take lock %s: %s", path,
			      strerror(err));
	}
	return fd;
}

/* One reader per namespace and ring: a ring has a single consumer
 * position. what names the ring ("events", "obs"). */
int sl_reader_lock(struct sl_ctx *ctx, const char *what)
{
	return ns_lock(ctx, what, LOCK_EX | LOCK_NB);
}

int sl_evcfg_update(struct sl_ctx *ctx, int fd, __u32 obs_set,
		    __u32 obs_clear, const __u32 *drop_sample)
{
	struct sl_evcfg cfg;
	__u32 zero = 0;
	int lock = ns_lock(ctx, "evcfg", LOCK_EX), err = 0;

	if (lock < 0)
		return lock;
	/* A failed read must not write obs = 0 and turn a session off. */
	if (bpf_map_lookup_elem(fd, &zero, &cfg))
		err = sl_err(-errno, "cannot read sl_evcfg: %s", strerror(errno));
	if (!err) {
		cfg.obs = (cfg.obs & ~obs_clear) | obs_set;
		if (drop_sample)
			cfg.drop_sample = *drop_sample;
		if (bpf_map_update_elem(fd, &zero, &cfg, BPF_ANY))
			err = sl_err(-errno, "cannot write sl_evcfg: %s",
				     strerror(errno));
	}
	close(lock);
	return err;
}

int sl_events_open(struct sl_ctx *ctx, sl_event_cb cb, void *arg,
		   struct sl_events **out)
{
	struct sl_events *ev;
	int err;

	*out = NULL;
	ev = calloc(1, sizeof(*ev));
	if (!ev)
		return sl_err(-ENOMEM, "out of memory");
	ev->names = sl_slot_names_new(ctx);
	if (!ev->names) {
		free(ev);
		return sl_err(-ENOMEM, "out of memory");
	}
	ev->ctx = ctx;
	ev->cb = cb;
	ev->arg = arg;
	ev->map_fd = -1;
	ev->rt_offset = realtime_offset();
	ev->lock_fd = sl_reader_lock(ctx, "events");
	if (ev->lock_fd < 0) {
		err = ev->lock_fd;
		goto fail;
	}
	ev->map_fd = events_map(ctx, "sl_events");
	if (ev->map_fd < 0) {
		err = ev->map_fd;
		goto fail;
	}
	ev->rb = ring_buffer__new(ev->map_fd, ring_cb, ev, NULL);
	if (!ev->rb) {
		err = sl_err(-errno, "cannot map the event ring: %s",
			     strerror(errno));
		goto fail;
	}
	*out = ev;
	return 0;
fail:
	sl_events_close(ev);
	return err;
}

int sl_events_poll(struct sl_events *ev, int timeout_ms)
{
	int n;

	/* With no wait, read the ring directly: a wakeup may not have been
	 * signalled yet for records just written. */
	if (timeout_ms == 0)
		n = ring_buffer__consume(ev->rb);
	else
		n = ring_buffer__poll(ev->rb, timeout_ms);
	if (n == -EINTR)
		return 0;
	if (n < 0 && n != -ECANCELED)
		sl_err(n, "cannot read events: %s", strerror(-n));
	return n;
}

int sl_events_fd(struct sl_events *ev)
{
	return ring_buffer__epoll_fd(ev->rb);
}

void sl_events_close(struct sl_events *ev)
{
	if (!ev)
		return;
	ring_buffer__free(ev->rb);
	if (ev->map_fd >= 0)
		close(ev->map_fd);
	if (ev->lock_fd >= 0)
		close(ev->lock_fd);
	sl_slot_names_free(ev->names);
	free(ev);
}

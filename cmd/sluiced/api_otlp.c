// SPDX-License-Identifier: GPL-2.0
/* The OTLP job: with --otlp-endpoint URL, drains the namespace's httpmon
 * span ring (http_spans) and queues each span for the exporter, whose own
 * thread POSTs batches to URL/v1/traces. A slow or absent collector costs
 * dropped spans (counted), never a stalled reader. Only one process may
 * read the ring: the daemon with --otlp-endpoint, or `sluice http spans`. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "sluice.h"
#include "httpmon.h"
#include "sluiced.h"
#include "api_otlp.h"

static const char *endpoint;
static pthread_mutex_t exp_lock = PTHREAD_MUTEX_INITIALIZER;
static struct otlp_exporter *exporter;
static char names[SL_MAX_SLOTS][SL_NAME_MAX];

int api_otlp_set_endpoint(const char *url)
{
	if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
		return -EINVAL;
	endpoint = url;
	return 0;
}

bool api_otlp_stats(struct otlp_stats *st)
{
	bool on;

	pthread_mutex_lock(&exp_lock);
	on = exporter;
	if (on)
		otlp_exporter_stats(exporter, st);
	pthread_mutex_unlock(&exp_lock);
	return on;
}

static int on_span(void *arg, void *data, size_t size)
{
	struct http_span sp = {};

	memcpy(&sp, data, size < sizeof(sp) ? size : sizeof(sp));
	otlp_exporter_push(exporter, &sp, names);
	return 0;
}

static __u32 map_id(int fd)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);

	return bpf_obj_get_info_by_fd(fd, &info, &len) ? 0 : info.id;
}

/* Reads the slot names and checks the ring is still the pinned one (a
 * reset and a new httpmon make a new ring): *rb is replaced if not. */
static void refresh(struct ring_buffer **rb, __u32 *ring_id)
{
	struct sl_ctx *ctx;
	int fd;

	if (sl_open(&ctx, 0))
		return; /* no state here yet */
	httpmon_slot_names(ctx, names);
	fd = httpmon_spans_fd(ctx);
	sl_close(ctx);
	if (fd < 0)
		return;
	if (*rb && map_id(fd) == *ring_id) {
		close(fd);
		return;
	}
	ring_buffer__free(*rb);
	*ring_id = map_id(fd);
	*rb = ring_buffer__new(fd, on_span, NULL, NULL);
	close(fd); /* the ring buffer keeps its own mappings */
	if (*rb)
		logm(LOG_LVL_INFO, "otlp: reading spans of ring %u for %s", *ring_id, endpoint);
}

static void *otlp_job(void *arg)
{
	struct ring_buffer *rb = NULL;
	struct otlp_exporter *e;
	__u32 ring_id = 0;
	int tick = 0;

	if (!endpoint)
		return NULL;
	e = otlp_exporter_new(endpoint);
	if (!e) {
		logm(LOG_LVL_ERROR, "otlp: %s", sl_errmsg());
		return NULL;
	}
	pthread_mutex_lock(&exp_lock);
	exporter = e;
	pthread_mutex_unlock(&exp_lock);
	while (!api_stopping) {
		if (tick++ % 5 == 0)
			refresh(&rb, &ring_id);
		if (rb)
			ring_buffer__poll(rb, 200);
		else
			usleep(200 * 1000);
	}
	ring_buffer__free(rb);
	pthread_mutex_lock(&exp_lock);
	exporter = NULL;
	pthread_mutex_unlock(&exp_lock);
	/* Stopping: a POST under way gets 0.5 s, as jobs end within ~1 s. */
	otlp_exporter_free(e, 500);
	return NULL;
}

API_JOB(otlp_job_reg, "otlp", otlp_job);

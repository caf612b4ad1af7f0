/* SPDX-License-Identifier: GPL-2.0 */
/* Span records of httpmon as OpenTelemetry spans, sent over OTLP/HTTP with
 * the JSON encoding (POST ENDPOINT/v1/traces), in batches, from a bounded
 * queue that drops (and counts) rather than wait for a slow collector. */
#ifndef SLUICE_OTLP_H
#define SLUICE_OTLP_H

#include <stddef.h>
#include "sluice.h"
#include "httpmon_abi.h"

/* Spans waiting to be sent at most; spans per POST at most. */
#define OTLP_QUEUE_MAX 4096
#define OTLP_BATCH_MAX 256

struct otlp_stats {
	__u64 queued; /* spans accepted into the queue */
	__u64 sent; /* spans in POSTs the collector accepted (2xx) */
	__u64 dropped; /* spans refused: queue full */
	__u64 failed; /* spans in POSTs that failed (collector down, non-2xx) */
	__u64 posts; /* POSTs made */
};

/* Writes one span as an OTLP JSON span object (a new random span id; the
 * traceparent's parent; kind SERVER when the request came in at TC ingress,
 * CLIENT at egress). names maps slots to instance names (SL_MAX_SLOTS
 * entries, or NULL). Returns the length, or -ENOSPC when buf is short. */
int otlp_span_json(const struct http_span *sp, char (*names)[SL_NAME_MAX],
		   char *buf, size_t len);

struct otlp_exporter;
/* Starts the sender thread for endpoint ("http://host:port", the path
 * /v1/traces is added). NULL with errno and a message on failure. */
struct otlp_exporter *otlp_exporter_new(const char *endpoint);
/* Encodes and queues a span; never waits. -ENOBUFS when dropped. */
int otlp_exporter_push(struct otlp_exporter *e, const struct http_span *sp,
		       char (*names)[SL_NAME_MAX]);
void otlp_exporter_stats(struct otlp_exporter *e, struct otlp_stats *st);
/* Waits until the queue is empty or timeout_ms passed; 0 when empty. */
int otlp_exporter_flush(struct otlp_exporter *e, int timeout_ms);
/* Stops the sender (a POST under way ends within timeout_ms) and frees. */
void otlp_exporter_free(struct otlp_exporter *e, int timeout_ms);

#endif

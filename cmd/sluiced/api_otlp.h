/* SPDX-License-Identifier: GPL-2.0 */
/* sluiced's OTLP span export (api_otlp.c): the job that drains httpmon's
 * span ring and sends the spans to the collector given by --otlp-endpoint. */
#ifndef SLUICED_API_OTLP_H
#define SLUICED_API_OTLP_H

#include <stdbool.h>
#include "otlp.h"

/* Sets the collector (before the jobs start); -EINVAL when url is not an
 * http:// or https:// URL. Without one the job does nothing. */
int api_otlp_set_endpoint(const char *url);
/* The exporter's counters; false when no export runs. */
bool api_otlp_stats(struct otlp_stats *st);

#endif

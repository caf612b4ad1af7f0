/* SPDX-License-Identifier: GPL-2.0 */
/* Router NF control code: the forwarding fast path on the kernel's FIB. */
#ifndef SLUICE_ROUTER_H
#define SLUICE_ROUTER_H

#include "sluice.h"
#include "router_abi.h"

#define RT_TYPE "router"

/* Creates instance name unless it exists (an existing router is kept). */
int rt_load(struct sl_ctx *ctx, const char *name);
/* Loads name (as rt_load) and appends it to dev's hook chain (ingress or
 * tc-ingress: the router forwards what arrives). Checked before anything
 * changes; a new instance that cannot join is removed again. */
int rt_attach(struct sl_ctx *ctx, const char *name, const char *dev,
	      enum sl_hook hook);
/* The instance's counters, summed over CPUs. */
int rt_stats_read(struct sl_ctx *ctx, const char *name, struct rt_stats *st);

#endif

/* SPDX-License-Identifier: GPL-2.0 */
/* libsluice internals shared by its own files. */
#ifndef SLUICE_INTERNAL_H
#define SLUICE_INTERNAL_H

#include "sluice.h"

struct sl_ctx {
	char base[128]; /* pin folder of this namespace */
	int lock_fd; /* held while writing, -1 for readers */
	int chains_fd;
	int chain_cache_fd; /* -1: state made before the cache existed */
	int instances_fd;
	int progs_xdp_fd;
	int progs_tc_fd;
	int nf_stats_fd;
	int drops_fd;
	int root_fd[SL_HOOK_MAX];
};

/* Takes the per-namespace reader lock of a ring ("events", "obs"); returns
 * its fd, or -EBUSY while another process holds it. */
int sl_reader_lock(struct sl_ctx *ctx, const char *what);

/* Read-modify-write of sl_evcfg (map fd) under a per-namespace lock:
 * event sampling, capture and trace sessions and policy watching each
 * change their own part, and must not undo each other's. Sets obs_set,
 * clears obs_clear, and sets drop_sample unless it is NULL. */
int sl_evcfg_update(struct sl_ctx *ctx, int fd, __u32 obs_set,
		    __u32 obs_clear, const __u32 *drop_sample);

/* Removes a namespace's pin folder base and its lock files (the caller
 * holds its writer lock): what sl_reset() and sl_gc() do. */
int sl_state_remove(const char *base);

#endif

/* SPDX-License-Identifier: GPL-2.0 */
/* Conntrack NF control code: instances, their options, the connection
 * table read back (conntrack -L style), flush and counters.
 *
 * For other NFs (the firewall's ctstate match): a conntrack instance
 * placed before them in a chain sets sl_meta.ct_state (one SL_CT_* bit)
 * and sl_meta.ct_dir for every IP packet. To get one there:
 *
 *	err = ct_instance_ensure(ctx, CT_DEFAULT_NAME);
 *	err = err ?: ct_chain_first(ctx, dev, hook, CT_DEFAULT_NAME);
 *
 * One instance may sit on many interfaces and hooks: they share its table,
 * so both directions of a routed connection meet in the same entry. */
#ifndef SLUICE_CONNTRACK_H
#define SLUICE_CONNTRACK_H

#include <stdbool.h>
#include <stddef.h>
#include "sluice.h"
#include "conntrack_abi.h"

#define CT_TYPE "conntrack"
/* The instance `sluice conntrack attach` uses unless told otherwise. */
#define CT_DEFAULT_NAME "ct"

/* Options of a new instance; zero fields take the defaults. */
struct ct_options {
	__u32 max_entries; /* table size; CT_DEFAULT_MAX */
	struct ct_config cfg; /* timeouts (0: kernel default), flags, gc period */
	bool cfg_set; /* cfg.flags is meant as given (else CT_CFG_LOOSE) */
};

/* The defaults: the kernel's timeouts and nf_conntrack_tcp_loose=1. */
void ct_config_default(struct ct_config *cfg);

/* Creates instance name with its table and starts its in-kernel sweep;
 * -EEXIST when it exists. */
int ct_create(struct sl_ctx *ctx, const char *name, const struct ct_options *opt);
/* Creates name with default options unless it exists (then 0: an existing
 * instance keeps its table and options; another NF type is -EEXIST). */
int ct_instance_ensure(struct sl_ctx *ctx, const char *name);
/* Puts instance name first in the chain of dev/hook (moving it there if it
 * is further down), keeping the others in order: conntrack must see the
 * packet before the NFs that read ct_state. */
int ct_chain_first(struct sl_ctx *ctx, const char *dev, enum sl_hook hook,
		   const char *name);
/* Both: creates name if needed and puts it first on dev/hook; a refusal
 * leaves no new instance behind. */
int ct_attach(struct sl_ctx *ctx, const char *dev, enum sl_hook hook,
	      const char *name);
/* Removes name from the chain of dev/hook (-ENOENT when not there). */
int ct_chain_remove(struct sl_ctx *ctx, const char *dev, enum sl_hook hook,
		    const char *name);

/* Reads or replaces the options of a live instance (timeouts, flags, gc
 * period); the table stays. */
int ct_config_read(struct sl_ctx *ctx, const char *name, struct ct_config *cfg);
int ct_config_write(struct sl_ctx *ctx, const char *name, const struct ct_config *cfg);
/* Parses "NAME=SECONDS" (names as in ct_timeout_name) into cfg. */
int ct_timeout_parse(const char *arg, struct ct_config *cfg);
const char *ct_timeout_name(unsigned int idx); /* NULL for unused indexes */

/* One live connection as read back. */
struct ct_conn {
	struct ct_key key;
	struct ct_entry e;
	__u64 remaining_ns;
	/* The original direction's tuple, from the originator. */
	int orig; /* key endpoint that opened it */
};

typedef int (*ct_conn_cb)(const struct ct_conn *c, void *arg);
/* Visits the live (not expired) connections of instance name. */
int ct_foreach(struct sl_ctx *ctx, const char *name, ct_conn_cb cb, void *arg);
/* Removes every entry; *n, when asked, gets how many. */
int ct_flush(struct sl_ctx *ctx, const char *name, __u64 *n);
/* Sums the per-CPU counters; *entries, when asked, gets the live entries. */
int ct_stats_read(struct sl_ctx *ctx, const char *name, struct ct_stats *st,
		  __u64 *entries);

/* Names: "tcp", "udp", "icmp", "icmpv6" or the protocol's name. */
const char *ct_proto_name(__u8 proto, char *buf, size_t len);
const char *ct_tcp_state_name(unsigned int state);
/* The connection in `conntrack -L` form (without the trailing newline). */
int ct_conn_format(const struct ct_conn *c, char *buf, size_t len);
/* Endpoint i of the original direction as text, i 0 source, 1 destination. */
void ct_conn_addr(const struct ct_conn *c, int i, char *buf, size_t len);

#endif

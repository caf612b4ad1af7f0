/* SPDX-License-Identifier: GPL-2.0 */
/* iptables-save rule sets on the firewall NF: parsed, checked, compiled
 * into blocks of flat rules (firewall_abi.h) and loaded as one instance;
 * printed back in iptables-save form with their counters. */
#ifndef SLUICE_IPTABLES_H
#define SLUICE_IPTABLES_H

#include <stdio.h>
#include "sluice.h"
#include "firewall.h"

#define IPT_INSTANCE "iptables"
#define IPT_TYPE "iptables"

/* A parsed iptables-save filter table of one family (4 or 6). */
struct ipt_table;

/* Parses iptables-save (or ip6tables-save) output. family 0 guesses it
 * from the file (its header comment or its addresses). Anything not
 * supported is refused with "NAME:LINE: what (in 'rule')". */
int ipt_parse(FILE *f, const char *name, int family, struct ipt_table **out);
void ipt_table_free(struct ipt_table *t);
int ipt_table_family(const struct ipt_table *t);
__u32 ipt_table_rules(const struct ipt_table *t);

/* Loads the table, replacing the loaded table of its family and keeping
 * the other family's (and its counters); attaches the instance at
 * ingress (INPUT, FORWARD) and egress (OUTPUT) of each of devs. With no
 * devs the instance must already be attached somewhere. */
int ipt_load(struct sl_ctx *ctx, const struct ipt_table *t,
	     const char *const *devs, int ndevs, __u32 *nentries);

/* Prints the loaded table of family in iptables-save form; with counters,
 * every rule gets its [packets:bytes]. */
int ipt_save(struct sl_ctx *ctx, int family, bool counters, FILE *out);

/* Detaches and deletes the instance (both families). */
int ipt_flush(struct sl_ctx *ctx);

#endif

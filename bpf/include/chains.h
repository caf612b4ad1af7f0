/* SPDX-License-Identifier: GPL-2.0 */
/* The chains of NF slots per interface and hook, as libsluice writes them
 * (pinned by name): read by the root programs, and by an NF that must
 * know where else it runs (conntrack at egress). */
#ifndef SLUICE_CHAINS_H
#define SLUICE_CHAINS_H

#include "sluice_abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct sl_chain_key);
	__type(value, struct sl_chain);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_chains SEC(".maps");

#endif

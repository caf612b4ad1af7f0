/* SPDX-License-Identifier: GPL-2.0 */
/* A pcapng writer (the IETF pcapng draft): one section header, one
 * interface description per interface seen (with its name, nanosecond
 * timestamps), one enhanced packet block per packet with an optional
 * comment. Read by tshark, tcpdump and Wireshark. */
#ifndef SLUICE_PCAPNG_H
#define SLUICE_PCAPNG_H

#include <stddef.h>
#include <linux/types.h>

struct sl_pcapng;

/* Creates (truncates) path and writes the section header; "-" is stdout. */
int sl_pcapng_open(const char *path, __u32 snaplen, struct sl_pcapng **out);
/* Writes one packet seen on ifindex (its interface block first, once).
 * ts_ns: wall-clock time; comment may be NULL. */
int sl_pcapng_packet(struct sl_pcapng *p, __u32 ifindex, __u64 ts_ns,
		     const void *data, __u32 cap_len, __u32 orig_len,
		     const char *comment);
/* Flushes and closes; returns 0 or the first write error. */
int sl_pcapng_close(struct sl_pcapng *p);

#endif

/* SPDX-License-Identifier: GPL-2.0 */
/* Packet builder for golden-packet tests: Ethernet (optional VLAN), IPv4 or
 * IPv6 (optional hop-by-hop header, fragments), TCP/UDP/ICMP/ICMPv6, with
 * correct checksums. Also hex and pcap dumps, to replay a failing case. */
#ifndef SLUICE_TEST_PKTBUILD_H
#define SLUICE_TEST_PKTBUILD_H

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define PKT_MAX 512

struct pkt_spec {
	int family; /* 4 or 6; 0: an ARP frame */
	const char *src, *dst;
	uint8_t proto;
	uint16_t sport, dport;
	uint8_t tcp_flags;
	uint8_t icmp_type, icmp_code;
	uint16_t vlan; /* 0: none */
	bool v6_hopopts; /* an IPv6 hop-by-hop header before L4 */
	uint16_t frag_offset; /* in 8-byte units; non-zero: a later fragment */
	bool more_frags;
	int truncate; /* >0: cut the frame to this many bytes */
	int payload; /* bytes of payload after L4 */
};

static const uint8_t mac_one[6] = { 0x02, 0, 0, 0, 0, 0x01 };
static const uint8_t mac_two[6] = { 0x02, 0, 0, 0, 0, 0x02 };

static inline uint32_t csum_add(uint32_t sum, const void *data, size_t len)
{
	const uint8_t *p = data;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (p[i] << 8) | p[i + 1];
	if (len & 1)
		sum += p[len - 1] << 8;
	return sum;
}

static inline uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons(~sum & 0xffff);
}

static inline void put16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v & 0xff;
}

/* Builds the frame into buf (PKT_MAX bytes); returns its length. */
static inline size_t pkt_build(const struct pkt_spec *s, uint8_t *buf)
{
	uint8_t *p = buf, *l3, *l4;
	uint8_t saddr[16] = {}, daddr[16] = {};
	size_t l4len, alen = s->family == 6 ? 16 : 4;
	uint8_t l4proto = s->proto;
	uint32_t sum;

	memset(buf, 0, PKT_MAX);
	memcpy(p, mac_two, 6);
	memcpy(p + 6, mac_one, 6);
	p += 12;
	if (s->vlan) {
		put16(p, 0x8100);
		put16(p + 2, s->vlan);
		p += 4;
	}
	if (!s->family) { /* ARP request */
		put16(p, 0x0806);
		p += 2;
		put16(p, 1), put16(p + 2, 0x0800), p[4] = 6, p[5] = 4, put16(p + 6, 1);
		return p + 28 - buf;
	}
	put16(p, s->family == 4 ? 0x0800 : 0x86dd);
	p += 2;
	inet_pton(s->family == 4 ? AF_INET : AF_INET6, s->src, saddr);
	inet_pton(s->family == 4 ? AF_INET : AF_INET6, s->dst, daddr);
	l3 = p;
	p += s->family == 4 ? 20 : 40;
	if (s->family == 6 && s->v6_hopopts) {
		p[0] = s->proto; /* next header; hdrlen 0: 8 bytes */
		p[2] = 1; /* PadN option filling the rest */
		p[3] = 4;
		p += 8;
	}
	if (s->family == 6 && (s->frag_offset || s->more_frags)) {
		p[0] = s->proto;
		put16(p + 2, (s->frag_offset << 3) | s->more_frags);
		p[4] = 0x12, p[7] = 0x34; /* identification */
		p += 8;
	}
	l4 = p;
	if (s->frag_offset) {
		l4len = 8 + s->payload; /* bytes of some later fragment */
	} else if (s->proto == 6) {
		put16(l4, s->sport), put16(l4 + 2, s->dport);
		l4[12] = 5 << 4;
		l4[13] = s->tcp_flags;
		put16(l4 + 14, 65535);
		l4len = 20 + s->payload;
	} else if (s->proto == 17) {
		put16(l4, s->sport), put16(l4 + 2, s->dport);
		l4len = 8 + s->payload;
		put16(l4 + 4, l4len);
	} else if (s->proto == 1 || s->proto == 58) {
		l4[0] = s->icmp_type;
		l4[1] = s->icmp_code;
		l4len = 8 + s->payload;
	} else {
		l4len = 8 + s->payload;
	}
	for (int i = 0; i < s->payload; i++)
		l4[l4len - s->payload + i] = 'a' + i % 26;

	if (s->family == 4) {
		l3[0] = 0x45;
		put16(l3 + 2, 20 + l4len);
		put16(l3 + 4, 0x1234);
		put16(l3 + 6, (s->more_frags ? 0x2000 : 0) | s->frag_offset);
		l3[8] = 64;
		l3[9] = s->proto;
		memcpy(l3 + 12, saddr, 4);
		memcpy(l3 + 16, daddr, 4);
		sum = csum_add(0, l3, 20);
		memcpy(l3 + 10, &(uint16_t){ csum_fold(sum) }, 2);
	} else {
		l3[0] = 0x60;
		put16(l3 + 4, (l4 - l3 - 40) + l4len);
		l3[6] = s->v6_hopopts ? 0 : (s->frag_offset || s->more_frags) ? 44 : s->proto;
		l3[7] = 64;
		memcpy(l3 + 8, saddr, 16);
		memcpy(l3 + 24, daddr, 16);
	}
	/* L4 checksum over the pseudo-header (not for later fragments). */
	if (!s->frag_offset && (l4proto == 6 || l4proto == 17 || l4proto == 58 || l4proto == 1)) {
		uint8_t pseudo[40] = {};
		int off = l4proto == 6 ? 16 : l4proto == 17 ? 6 : 2;

		sum = 0;
		if (l4proto != 1) {
			memcpy(pseudo, saddr, alen);
			memcpy(pseudo + alen, daddr, alen);
			if (s->family == 4) {
				pseudo[9] = l4proto;
				put16(pseudo + 10, l4len);
				sum = csum_add(0, pseudo, 12);
			} else {
				put16(pseudo + 34, l4len);
				pseudo[39] = l4proto;
				sum = csum_add(0, pseudo, 40);
			}
		}
		sum = csum_add(sum, l4, l4len);
		memcpy(l4 + off, &(uint16_t){ csum_fold(sum) }, 2);
	}
	p = l4 + l4len;
	if (s->truncate > 0 && s->truncate < p - buf)
		return s->truncate;
	return p - buf;
}

static inline void pkt_hex(FILE *f, const uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		fprintf(f, "%02x%s", buf[i], (i + 1) % 32 ? "" : "\n");
	fprintf(f, "\n");
}

/* Appends a packet to a pcap file (created with its header if new). */
static inline void pkt_pcap(const char *path, const uint8_t *buf, size_t len)
{
	FILE *f = fopen(path, "ab");
	uint32_t rec[4] = { 0, 0, (uint32_t)len, (uint32_t)len };

	if (!f)
		return;
	if (ftell(f) == 0) {
		uint32_t hdr[6] = { 0xa1b2c3d4, 0x00040002, 0, 0, 65535, 1 };

		fwrite(hdr, sizeof(hdr), 1, f);
	}
	fwrite(rec, sizeof(rec), 1, f);
	fwrite(buf, len, 1, f);
	fclose(f);
}

#endif

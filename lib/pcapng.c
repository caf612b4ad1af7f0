// SPDX-License-Identifier: GPL-2.0
/* A pcapng writer: section header, interface blocks, enhanced packets. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include "sluice.h"
#include "pcapng.h"

#define BT_SHB 0x0A0D0D0A
#define BT_IDB 0x00000001
#define BT_EPB 0x00000006
#define BYTE_ORDER_MAGIC 0x1A2B3C4D
#define LINKTYPE_ETHERNET 1
#define OPT_END 0
#define OPT_COMMENT 1
#define OPT_SHB_USERAPPL 4
#define OPT_IF_NAME 2
#define OPT_IF_TSRESOL 9
#define TSRESOL_NS 9 /* timestamps in units of 10^-9 s */
/* Interfaces given a block so far; more than this is refused. */
#define PCAPNG_MAX_IFACES 256

struct sl_pcapng {
	FILE *f;
	bool close_f;
	int err;
	__u32 snaplen;
	__u32 nifaces;
	__u32 ifindex[PCAPNG_MAX_IFACES];
};

static __u32 pad4(size_t n)
{
	return (4 - (n & 3)) & 3;
}

static void put(struct sl_pcapng *p, const void *buf, size_t len)
{
	if (!p->err && len && fwrite(buf, 1, len, p->f) != len)
		p->err = -errno ?: -EIO;
}

static void put32(struct sl_pcapng *p, __u32 v)
{
	put(p, &v, 4);
}

static void put16(struct sl_pcapng *p, __u16 v)
{
	put(p, &v, 2);
}

static void put_pad(struct sl_pcapng *p, size_t len)
{
	static const __u8 zero[4];

	put(p, zero, pad4(len));
}

/* Bytes one option of len value bytes takes. */
static __u32 opt_size(size_t len)
{
	return 4 + len + pad4(len);
}

static void put_opt(struct sl_pcapng *p, __u16 code, const void *v, size_t len)
{
	put16(p, code);
	put16(p, len);
	put(p, v, len);
	put_pad(p, len);
}

static void put_opt_end(struct sl_pcapng *p)
{
	put16(p, OPT_END);
	put16(p, 0);
}

static void write_shb(struct sl_pcapng *p)
{
	static const char app[] = "sluice capture";
	__u32 len = 28 + opt_size(strlen(app)) + 4;

	put32(p, BT_SHB);
	put32(p, len);
	put32(p, BYTE_ORDER_MAGIC);
	put16(p, 1); /* major */
	put16(p, 0); /* minor */
	put32(p, 0xffffffff); /* section length unknown (-1, 64 bits) */
	put32(p, 0xffffffff);
	put_opt(p, OPT_SHB_USERAPPL, app, strlen(app));
	put_opt_end(p);
	put32(p, len);
}

static void write_idb(struct sl_pcapng *p, __u32 ifindex)
{
	char name[IF_NAMESIZE + 8];
	__u8 tsresol = TSRESOL_NS;
	__u32 len;

	if (!if_indextoname(ifindex, name))
		snprintf(name, sizeof(name), "if%u", ifindex);
	len = 20 + opt_size(strlen(name)) + opt_size(1) + 4;
	put32(p, BT_IDB);
	put32(p, len);
	put16(p, LINKTYPE_ETHERNET);
	put16(p, 0);
	put32(p, p->snaplen);
	put_opt(p, OPT_IF_NAME, name, strlen(name));
	put_opt(p, OPT_IF_TSRESOL, &tsresol, 1);
	put_opt_end(p);
	put32(p, len);
}

/* The interface id of ifindex, writing its block on first sight. */
static int iface_id(struct sl_pcapng *p, __u32 ifindex)
{
	for (__u32 i = 0; i < p->nifaces; i++)
		if (p->ifindex[i] == ifindex)
			return i;
	if (p->nifaces == PCAPNG_MAX_IFACES)
		return sl_err(-E2BIG, "pcapng: more than %d interfaces",
			      PCAPNG_MAX_IFACES);
	write_idb(p, ifindex);
	p->ifindex[p->nifaces] = ifindex;
	return p->nifaces++;
}

int sl_pcapng_open(const char *path, __u32 snaplen, struct sl_pcapng **out)
{
	struct sl_pcapng *p = calloc(1, sizeof(*p));

	*out = NULL;
	if (!p)
		return sl_err(-ENOMEM, "out of memory");
	if (!strcmp(path, "-")) {
		p->f = stdout;
	} else {
		p->f = fopen(path, "wb");
		p->close_f = true;
	}
	if (!p->f) {
		int err = -errno;

		free(p);
		return sl_err(err, "cannot create %s: %s", path, strerror(-err));
	}
	p->snaplen = snaplen;
	write_shb(p);
	/* On disk now: a file being written is a valid (empty) capture. */
	if (fflush(p->f) && !p->err)
		p->err = -errno;
	if (p->err) {
		int err = p->err;

		sl_pcapng_close(p);
		return sl_err(err, "cannot write %s: %s", path, strerror(-err));
	}
	*out = p;
	return 0;
}

int sl_pcapng_packet(struct sl_pcapng *p, __u32 ifindex, __u64 ts_ns,
		     const void *data, __u32 cap_len, __u32 orig_len,
		     const char *comment)
{
	size_t clen = comment ? strlen(comment) : 0;
	int id = iface_id(p, ifindex);
	__u32 len;

	if (id < 0)
		return id;
	if (clen > 0xfff0)
		clen = 0xfff0;
	len = 28 + cap_len + pad4(cap_len) + 4;
	if (clen)
		len += opt_size(clen) + 4;
	put32(p, BT_EPB);
	put32(p, len);
	put32(p, id);
	put32(p, ts_ns >> 32);
	put32(p, ts_ns & 0xffffffff);
	put32(p, cap_len);
	put32(p, orig_len);
	put(p, data, cap_len);
	put_pad(p, cap_len);
	if (clen) {
		put_opt(p, OPT_COMMENT, comment, clen);
		put_opt_end(p);
	}
	put32(p, len);
	/* A pipe's reader (tshark -r -) sees each packet as it comes. */
	if (!p->close_f && fflush(p->f) && !p->err)
		p->err = -errno;
	if (p->err)
		return sl_err(p->err, "cannot write the capture file: %s",
			      strerror(-p->err));
	return 0;
}

int sl_pcapng_close(struct sl_pcapng *p)
{
	int err;

	if (!p)
		return 0;
	if (fflush(p->f) && !p->err)
		p->err = -errno;
	if (p->close_f && fclose(p->f) && !p->err)
		p->err = -errno;
	err = p->err;
	free(p);
	if (err)
		return sl_err(err, "cannot write the capture file: %s",
			      strerror(-err));
	return 0;
}

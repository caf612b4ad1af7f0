/* SPDX-License-Identifier: GPL-2.0 */
/* L4 load balancer NF control code (instance type "lb"): virtual services
 * with weighted backends, Maglev / rr / wrr scheduling, NAT or direct
 * server return (IP-in-IP, same-L2 MAC rewrite).
 *
 * Every call follows libsluice's conventions: 0 or -errno, a message in
 * sl_errmsg(), and a failed call changes nothing. Writers need a context
 * opened with SL_OPEN_WRITE (the writer lock); readers (lb_list) do not.
 * The instance is created (its program loaded, nothing attached) by the
 * first lb_service_add() or lb_attach(); inst NULL means LB_DEFAULT_NAME.
 *
 * For the health checker: lb_list() gives every service with its backends
 * (address, port, weight, up); lb_backend_set_up() marks one backend up or
 * down. A down backend gets no new flows (as weight 0) but keeps its
 * configured weight; flows already on it keep it (like a drained one). The
 * change rebuilds the service's table aside and switches it with one map
 * update. Backends start up. Setting the state it already has is a no-op
 * that returns 0; an unknown service or backend is -ENOENT. */
#ifndef SLUICE_LB_H
#define SLUICE_LB_H

#include <stdio.h>
#include "sluice.h"
#include "lb_abi.h"

#define LB_TYPE "lb"
#define LB_DEFAULT_NAME "lb"

/* A virtual service: family 4 or 6, proto IPPROTO_TCP or IPPROTO_UDP, port
 * in host order, addr in network order (IPv4 in the first 4 bytes, the
 * rest zero). */
struct lb_service_key {
	__u8 family;
	__u8 proto;
	__u16 port;
	__u8 addr[16];
};

/* A backend of a service, same conventions; port 0 means "the service's
 * port" when adding (as ipvsadm -r RIP without a port). The family must be
 * the service's. */
struct lb_backend_addr {
	__u8 family;
	__u8 pad;
	__u16 port;
	__u8 addr[16];
};

struct lb_service_conf {
	__u8 sched; /* enum lb_sched */
	__u32 mh_size; /* Maglev M (a prime <= LB_MH_MAX); 0: LB_MH_DEFAULT */
};

struct lb_backend_conf {
	__u8 fwd; /* enum lb_fwd */
	__u32 weight; /* 0: drained, no new flows */
};

/* Counters as listed: summed over CPUs. */
struct lb_stats {
	__u64 pkts_in, bytes_in, pkts_out, bytes_out, conns;
};

struct lb_backend_info {
	struct lb_backend_addr addr;
	struct lb_backend_conf conf;
	bool up; /* health state */
	__u32 id; /* as in sl_meta.lb_backend */
	struct lb_stats stats;
};

struct lb_service_info {
	struct lb_service_key key;
	struct lb_service_conf conf;
	__u32 id;
	struct lb_stats stats;
	__u32 nbackends;
	struct lb_backend_info *backends;
};

/* A whole configuration: services in the order listed, each with its
 * backends. Also the model restore and single edits work on. */
struct lb_conf {
	__u32 n;
	struct lb_service_info *svcs;
};

void lb_conf_free(struct lb_conf *conf);

/* Creates the instance when absent (loads its program; attaches nothing). */
int lb_create(struct sl_ctx *ctx, const char *inst);

int lb_service_add(struct sl_ctx *ctx, const char *inst,
		   const struct lb_service_key *svc,
		   const struct lb_service_conf *conf);
int lb_service_edit(struct sl_ctx *ctx, const char *inst,
		    const struct lb_service_key *svc,
		    const struct lb_service_conf *conf);
int lb_service_del(struct sl_ctx *ctx, const char *inst,
		   const struct lb_service_key *svc);

int lb_backend_add(struct sl_ctx *ctx, const char *inst,
		   const struct lb_service_key *svc,
		   const struct lb_backend_addr *be,
		   const struct lb_backend_conf *conf);
int lb_backend_edit(struct sl_ctx *ctx, const char *inst,
		    const struct lb_service_key *svc,
		    const struct lb_backend_addr *be,
		    const struct lb_backend_conf *conf);
int lb_backend_del(struct sl_ctx *ctx, const char *inst,
		   const struct lb_service_key *svc,
		   const struct lb_backend_addr *be);
int lb_backend_set_up(struct sl_ctx *ctx, const char *inst,
		      const struct lb_service_key *svc,
		      const struct lb_backend_addr *be, bool up);

/* Removes every service (ipvsadm -C). */
int lb_clear(struct sl_ctx *ctx, const char *inst);

/* Reads every service, backend and counter. -ENOENT: no such instance. */
int lb_list(struct sl_ctx *ctx, const char *inst, struct lb_conf *out);

/* Makes conf the whole configuration: services and backends not in it are
 * removed, the others added or changed; unchanged backends keep their ids,
 * counters and flows. Checked in full before anything changes. */
int lb_apply(struct sl_ctx *ctx, const char *inst, const struct lb_conf *conf);

/* Puts the instance (created if needed) on dev's XDP ingress (hook
 * SL_HOOK_XDP) or TC ingress (SL_HOOK_TC_IN); lb_detach takes it off. */
int lb_attach(struct sl_ctx *ctx, const char *inst, const char *dev,
	      enum sl_hook hook);
int lb_detach(struct sl_ctx *ctx, const char *inst, const char *dev);

/* Forgets every flow (as conntrack -F): established connections are
 * scheduled again by their next packet; NAT replies of forgotten flows
 * are no longer translated. Returns the number of flows removed. */
int lb_flush_flows(struct sl_ctx *ctx, const char *inst);

/* Backends of an IPIP service run an lb instance with decap on (where
 * the kernel has no ipip/ip6tnl device): IP-in-IP packets (4in4, 6in6)
 * arriving where it is attached lose their outer header. */
int lb_set_decap(struct sl_ctx *ctx, const char *inst, bool on);
int lb_get_decap(struct sl_ctx *ctx, const char *inst, bool *on);

/* With forward on, NAT packets (to backends and replies to clients) leave
 * by redirect after a FIB and neighbour lookup, as the router NF would
 * send them, without the router's run (nor the kernel's forwarding path:
 * netfilter's FORWARD hooks do not see them). What the FIB cannot finish
 * goes on to the next NF or the kernel. Off by default. */
int lb_set_forward(struct sl_ctx *ctx, const char *inst, bool on);
int lb_get_forward(struct sl_ctx *ctx, const char *inst, bool *on);

/* ---- parsing and formatting (CLI, restore, tests) ------------------- */

/* "10.0.0.1:80", "[2001:db8::1]:80", "10.0.0.1" (port 0 when optional). */
int lb_parse_endpoint(const char *s, bool need_port, __u8 *family,
		      __u8 addr[16], __u16 *port);
/* The same back; IPv6 in brackets when a port follows. */
void lb_format_endpoint(__u8 family, const __u8 addr[16], __u16 port,
			char *buf, size_t len);
int lb_sched_parse(const char *s, __u8 *sched);
const char *lb_sched_name(__u8 sched);
const char *lb_fwd_name(__u8 fwd); /* ipvsadm's: Masq, Tunnel, Route */

/* One ipvsadm operation: cmd is 'A', 'E', 'D' (service), 'a', 'e', 'd'
 * (backend) or 'C' (clear). Options not given keep their defaults (add:
 * scheduler mh, forwarding -g as ipvsadm, weight 1) or, for -E/-e, the
 * current values. */
struct lb_op {
	char cmd;
	struct lb_service_key svc;
	struct lb_service_conf sconf;
	bool has_sched, has_mh_size;
	struct lb_backend_addr be;
	struct lb_backend_conf bconf;
	bool has_fwd, has_weight;
};

/* Parses ipvsadm's words (argv holds only options, no program name):
 * -A|-E|-D -t|-u VIP:PORT [-s mh|rr|wrr] [--mh-size M],
 * -a|-e|-d -t|-u VIP:PORT -r RIP[:PORT] [-m|-g|-i] [-w WEIGHT], -C.
 * Unknown options are refused with their name. */
int lb_op_parse(int argc, char **argv, struct lb_op *op);
/* Applies op to conf in memory; refuses what ipvsadm refuses (a service
 * that exists or not, a backend twice, ...), conf unchanged on error. */
int lb_op_apply(struct lb_conf *conf, const struct lb_op *op);

/* Reads the configuration, applies op to it and writes the result (what
 * the CLI does for each ipvsadm command). */
int lb_op_commit(struct sl_ctx *ctx, const char *inst, const struct lb_op *op);

/* Parses `ipvsadm-save -n` output (-A/-E/-a/-e/-d/-D/-C lines, comments)
 * and applies it on top of conf, in memory. Errors name the line. */
int lb_restore_parse(FILE *f, const char *name, struct lb_conf *conf);

/* ---- Maglev (exposed for the tests) --------------------------------- */

/* Fills table[0..m) with indexes into names/weights (n entries; weight 0
 * entries get nothing), as Maglev's population with weighted turns. m must
 * be prime. Returns 0, or -EINVAL when no entry has a weight. */
int lb_maglev_build(const char *const *names, const __u32 *weights, __u32 n,
		    __u32 m, __u32 *table);

#endif

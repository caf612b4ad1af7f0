// SPDX-License-Identifier: GPL-2.0
/* sbench: the C half of the sluice benchmark harness (bench/run.sh drives it).
 *
 *   sbench gen -i DEV -s SECONDS [-f FLOWS] [-S SEED] [-p udp4|udp6|tcp4]
 *              [-c CPU] [-d DPORT] [--dmac MAC] [--smac MAC]
 *              [--src A] [--dst A] [--ndst N]   (--ndst: flow f goes to dst + f % N)
 *       One long BPF_PROG_RUN call with BPF_F_TEST_XDP_LIVE_FRAMES, stopped
 *       by a timer signal; frames are counted inside the BPF program.
 *       Prints: frames=N seconds=T mpps=R
 *   sbench attach -i DEV -P drop|parse|pass|fwd -m PINDIR [-d DPORT] [-o OUTDEV]
 *       Attaches a receiving-side XDP program (native mode) and pins its
 *       counter at PINDIR/cnt.
 *   sbench count PINPATH              Prints the sum of a per-CPU counter.
 *   sbench progrun -i DEV [-P PINNED_PROG] [-n REPEAT] [-r RUNS]
 *              [-p udp4|udp6|tcp4] [-d DPORT] [--src A] [--dst A]
 *       BPF_PROG_RUN repeat mode (ns per packet) of a pinned XDP program
 *       with ctx_in.ingress_ifindex = DEV, interleaved with a bare
 *       parse-and-drop program loaded here; prints min/median/max per run.
 *   sbench netns-cookie               Prints the cookie of the current netns.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <bpf/btf.h>
#include <stdarg.h>

#ifndef BPF_F_TEST_XDP_LIVE_FRAMES
#define BPF_F_TEST_XDP_LIVE_FRAMES (1U << 1)
#endif
#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

static const char *objdir = NULL;

static void die(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "sbench: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *obj_path(const char *name)
{
	static char buf[4400];
	char self[4096];
	ssize_t n;

	if (objdir) {
		snprintf(buf, sizeof(buf), "%s/%s", objdir, name);
		return buf;
	}
	/* Objects sit next to the binary. */
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0)
		die("readlink: %s", strerror(errno));
	self[n] = 0;
	*strrchr(self, '/') = 0;
	snprintf(buf, sizeof(buf), "%s/%s", self, name);
	return buf;
}


/* Sets a const volatile global of obj (before load), found by name in the
 * BTF of its .rodata section. */
static void set_rodata_bytes(struct bpf_object *obj, const char *name,
			     const void *val, size_t len);

static void set_rodata(struct bpf_object *obj, const char *name,
		       uint64_t val)
{
	set_rodata_bytes(obj, name, &val, 0); /* little endian: low bytes */
}

/* len 0: the variable's own size (from a uint64_t). */
static void set_rodata_bytes(struct bpf_object *obj, const char *name,
			     const void *val, size_t len)
{
	struct bpf_map *map = bpf_object__find_map_by_name(obj, ".rodata");
	struct btf *btf = bpf_object__btf(obj);
	const struct btf_var_secinfo *vs;
	const struct btf_type *sec;
	uint8_t *data;
	size_t sz;
	int id;

	if (!map || !btf)
		die("no .rodata or BTF in object");
	data = (uint8_t *)bpf_map__initial_value(map, &sz);
	id = btf__find_by_name_kind(btf, ".rodata", BTF_KIND_DATASEC);
	if (!data || id < 0)
		die("no .rodata data");
	sec = btf__type_by_id(btf, id);
	vs = btf_var_secinfos(sec);
	for (int i = 0; i < btf_vlen(sec); i++, vs++) {
		const struct btf_type *var = btf__type_by_id(btf, vs->type);

		if (strcmp(btf__name_by_offset(btf, var->name_off), name))
			continue;
		if (vs->offset + vs->size > sz || len > vs->size)
			die("bad .rodata layout");
		memcpy(data + vs->offset, val, len ? len : vs->size);
		return;
	}
	die("no variable %s in .rodata", name);
}

/* ---- packet templates -------------------------------------------------- */

enum { MODE_UDP4, MODE_UDP6, MODE_TCP4 };

struct pkt_opts {
	int mode;
	uint16_t sport, dport;
	const char *src, *dst;
	uint8_t smac[6], dmac[6];
};

static int parse_mode(const char *s)
{
	if (!strcmp(s, "udp4"))
		return MODE_UDP4;
	if (!strcmp(s, "udp6"))
		return MODE_UDP6;
	if (!strcmp(s, "tcp4"))
		return MODE_TCP4;
	die("unknown packet type '%s' (udp4, udp6, tcp4)", s);
}

static void parse_mac(const char *s, uint8_t *mac)
{
	unsigned int b[6];

	if (sscanf(s, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4],
		   &b[5]) != 6)
		die("bad MAC '%s'", s);
	for (int i = 0; i < 6; i++)
		mac[i] = b[i];
}

static uint32_t csum_add(uint32_t s, const void *p, size_t len)
{
	const uint8_t *b = p;

	for (size_t i = 0; i + 1 < len; i += 2)
		s += (b[i] << 8) | b[i + 1];
	if (len & 1)
		s += b[len - 1] << 8;
	return s;
}

static uint16_t csum_fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return ~s & 0xffff;
}

/* Builds the template frame for flow 0; returns its length. The low 16
 * bits of the source address are zero and the source port is 1024. */
static size_t build_pkt(const struct pkt_opts *o, uint8_t *buf, uint16_t *l4c)
{
	struct ethhdr *eth = (void *)buf;
	size_t len;

	memset(buf, 0, 128);
	memcpy(eth->h_dest, o->dmac, 6);
	memcpy(eth->h_source, o->smac, 6);
	*l4c = 0;
	if (o->mode == MODE_UDP6) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		struct udphdr *udp = (void *)(ip6 + 1);
		uint16_t plen = sizeof(*udp) + 2;
		uint32_t s = 0;

		eth->h_proto = htons(ETH_P_IPV6);
		ip6->version = 6;
		ip6->payload_len = htons(plen);
		ip6->nexthdr = IPPROTO_UDP;
		ip6->hop_limit = 64;
		if (inet_pton(AF_INET6, o->src, &ip6->saddr) != 1 ||
		    inet_pton(AF_INET6, o->dst, &ip6->daddr) != 1)
			die("bad IPv6 address '%s' or '%s'", o->src, o->dst);
		ip6->saddr.s6_addr[14] = ip6->saddr.s6_addr[15] = 0;
		udp->source = htons(o->sport);
		udp->dest = htons(o->dport);
		udp->len = htons(plen);
		s = csum_add(s, &ip6->saddr, 32);
		s += plen + IPPROTO_UDP;
		s = csum_add(s, udp, plen);
		udp->check = htons(csum_fold(s));
		if (!udp->check)
			udp->check = 0xffff;
		*l4c = udp->check;
		len = sizeof(*eth) + sizeof(*ip6) + plen; /* 64 */
	} else {
		struct iphdr *ip = (void *)(eth + 1);
		uint16_t l4len;

		eth->h_proto = htons(ETH_P_IP);
		ip->version = 4;
		ip->ihl = 5;
		ip->ttl = 64;
		if (inet_pton(AF_INET, o->src, &ip->saddr) != 1 ||
		    inet_pton(AF_INET, o->dst, &ip->daddr) != 1)
			die("bad IPv4 address '%s' or '%s'", o->src, o->dst);
		((uint8_t *)&ip->saddr)[2] = ((uint8_t *)&ip->saddr)[3] = 0;
		if (o->mode == MODE_TCP4) {
			struct tcphdr *tcp = (void *)(ip + 1);
			uint32_t s = 0;

			l4len = sizeof(*tcp);
			ip->protocol = IPPROTO_TCP;
			tcp->source = htons(o->sport);
			tcp->dest = htons(o->dport);
			tcp->seq = htonl(0x12345678);
			tcp->doff = 5;
			tcp->syn = 1;
			tcp->window = htons(64240);
			s = csum_add(s, &ip->saddr, 8);
			s += IPPROTO_TCP + l4len;
			s = csum_add(s, tcp, l4len);
			tcp->check = htons(csum_fold(s));
			*l4c = tcp->check;
		} else {
			struct udphdr *udp = (void *)(ip + 1);

			l4len = sizeof(*udp) + 18;
			ip->protocol = IPPROTO_UDP;
			udp->source = htons(o->sport);
			udp->dest = htons(o->dport);
			udp->len = htons(l4len);
			udp->check = 0;
		}
		ip->tot_len = htons(sizeof(*ip) + l4len);
		ip->check = htons(csum_fold(csum_add(0, ip, sizeof(*ip))));
		len = sizeof(*eth) + sizeof(*ip) + l4len;
		if (len < 60)
			len = 60; /* 64 bytes on the wire with the FCS */
	}
	return len;
}

/* ---- gen --------------------------------------------------------------- */

static volatile sig_atomic_t stop;
static void on_alarm(int sig)
{
	(void)sig;
	stop = 1;
}

static uint64_t percpu_sum(int fd)
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t vals[ncpu > 0 ? ncpu : 1], sum = 0;
	uint32_t zero = 0;

	if (ncpu <= 0 || bpf_map_lookup_elem(fd, &zero, vals))
		die("reading counter: %s", strerror(errno));
	for (int i = 0; i < ncpu; i++)
		sum += vals[i];
	return sum;
}

static void pin_cpu(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		die("sched_setaffinity(%d): %s", cpu, strerror(errno));
	setpriority(PRIO_PROCESS, 0, -20);
}

static struct option pkt_longopts[] = {
	{ "smac", required_argument, NULL, 1 },
	{ "dmac", required_argument, NULL, 2 },
	{ "src", required_argument, NULL, 3 },
	{ "dst", required_argument, NULL, 4 },
	{ "objdir", required_argument, NULL, 5 },
	{ "ndst", required_argument, NULL, 6 },
	{}
};

static int cmd_gen(int argc, char **argv)
{
	struct pkt_opts po = { .mode = MODE_UDP4, .sport = 1024, .dport = 7777,
			       .src = NULL, .dst = NULL };
	const char *dev = NULL;
	double secs = 2;
	uint32_t flows = 1, seed = 1, ndst = 1;
	int cpu = -1, opt, ifindex, prog_fd, frames_fd, tx_fd, err;
	uint16_t l4c;
	uint8_t pkt[128];
	size_t len;
	struct bpf_object *obj;
	struct bpf_program *prog;
	struct sigaction sa = { .sa_handler = on_alarm };
	struct itimerval it = {};
	double t0, t1;
	uint64_t n;

	parse_mac("02:00:00:00:00:01", po.smac);
	parse_mac("02:00:00:00:00:02", po.dmac);
	while ((opt = getopt_long(argc, argv, "i:s:f:S:p:c:d:", pkt_longopts,
				  NULL)) != -1) {
		switch (opt) {
		case 'i': dev = optarg; break;
		case 's': secs = atof(optarg); break;
		case 'f': flows = strtoul(optarg, NULL, 0); break;
		case 'S': seed = strtoul(optarg, NULL, 0); break;
		case 'p': po.mode = parse_mode(optarg); break;
		case 'c': cpu = atoi(optarg); break;
		case 'd': po.dport = atoi(optarg); break;
		case 1: parse_mac(optarg, po.smac); break;
		case 2: parse_mac(optarg, po.dmac); break;
		case 3: po.src = optarg; break;
		case 4: po.dst = optarg; break;
		case 5: objdir = optarg; break;
		case 6: ndst = strtoul(optarg, NULL, 0); break;
		default: die("gen: bad option");
		}
	}
	if (!dev)
		die("gen: need -i DEV");
	if (secs <= 0 || secs > 3600)
		die("gen: seconds must be in (0, 3600]");
	if (!po.src)
		po.src = po.mode == MODE_UDP6 ? "fd00:78::" : "10.78.0.0";
	if (!po.dst)
		po.dst = po.mode == MODE_UDP6 ? "fd00:77::2" : "10.77.0.2";
	ifindex = if_nametoindex(dev);
	if (!ifindex)
		die("gen: no device %s", dev);
	len = build_pkt(&po, pkt, &l4c);
	pin_cpu(cpu);

	obj = bpf_object__open_file(obj_path("gen.bpf.o"), NULL);
	if (!obj)
		die("gen: open gen.bpf.o: %s", strerror(errno));
	set_rodata(obj, "nflows", flows ? flows : 1);
	set_rodata(obj, "seed", seed);
	set_rodata(obj, "mode", po.mode);
	set_rodata(obj, "sport0", po.sport);
	set_rodata(obj, "saddr_lo0", 0);
	set_rodata(obj, "l4_csum0", l4c);
	if (ndst < 1 || ndst > 65536 || (ndst > 1 && po.mode == MODE_UDP6))
		die("gen: --ndst must be 1..65536 (IPv4 only)");
	set_rodata(obj, "ndst", ndst);
	set_rodata_bytes(obj, "tmpl", pkt, 60); /* every template is at least 60 bytes */
	{
		struct in_addr d;

		inet_pton(AF_INET, po.mode == MODE_UDP6 ? "0.0.0.0" : po.dst, &d);
		set_rodata(obj, "daddr_lo0", ntohl(d.s_addr) & 0xffff);
	}
	err = bpf_object__load(obj);
	if (err)
		die("gen: load: %s", strerror(-err));
	prog = bpf_object__find_program_by_name(obj, "gen_xdp");
	prog_fd = bpf_program__fd(prog);
	tx_fd = bpf_object__find_map_fd_by_name(obj, "tx");
	frames_fd = bpf_object__find_map_fd_by_name(obj, "frames");
	{
		uint32_t zero = 0, v = ifindex;

		if (bpf_map_update_elem(tx_fd, &zero, &v, 0))
			die("gen: devmap: %s", strerror(errno));
	}

	sigaction(SIGALRM, &sa, NULL);
	it.it_value.tv_sec = (time_t)secs;
	it.it_value.tv_usec = (suseconds_t)((secs - (time_t)secs) * 1e6);
	t0 = now();
	setitimer(ITIMER_REAL, &it, NULL);
	while (!stop) {
		struct xdp_md ctx_in = { .data_end = len };
		LIBBPF_OPTS(bpf_test_run_opts, o,
			    .data_in = pkt,
			    .data_size_in = len,
			    .ctx_in = &ctx_in,
			    .ctx_size_in = sizeof(ctx_in),
			    .repeat = 1U << 30,
			    .flags = BPF_F_TEST_XDP_LIVE_FRAMES);

		err = bpf_prog_test_run_opts(prog_fd, &o);
		if (err && errno != EINTR)
			die("gen: BPF_PROG_RUN: %s", strerror(errno));
	}
	t1 = now();
	n = percpu_sum(frames_fd);
	printf("frames=%llu seconds=%.3f mpps=%.3f\n", (unsigned long long)n,
	       t1 - t0, n / (t1 - t0) / 1e6);
	bpf_object__close(obj);
	return 0;
}

/* ---- attach / count ---------------------------------------------------- */

static int cmd_attach(int argc, char **argv)
{
	const char *dev = NULL, *kind = "drop", *pindir = NULL, *out = NULL;
	char path[4096], pname[32];
	int opt, ifindex, err, dport = 7777;
	struct bpf_object *obj;
	struct bpf_program *prog;

	while ((opt = getopt_long(argc, argv, "i:P:m:d:o:", pkt_longopts, NULL)) != -1) {
		switch (opt) {
		case 'i': dev = optarg; break;
		case 'o': out = optarg; break;
		case 'P': kind = optarg; break;
		case 'm': pindir = optarg; break;
		case 'd': dport = atoi(optarg); break;
		case 5: objdir = optarg; break;
		default: die("attach: bad option");
		}
	}
	if (!dev || !pindir)
		die("attach: need -i DEV and -m PINDIR");
	ifindex = if_nametoindex(dev);
	if (!ifindex)
		die("attach: no device %s", dev);
	snprintf(pname, sizeof(pname), "dut_%s", kind);
	obj = bpf_object__open_file(obj_path("dut.bpf.o"), NULL);
	if (!obj)
		die("attach: open dut.bpf.o: %s", strerror(errno));
	set_rodata(obj, "drop_dport", dport);
	bpf_object__for_each_program(prog, obj)
		bpf_program__set_autoload(prog, !strcmp(bpf_program__name(prog), pname));
	prog = bpf_object__find_program_by_name(obj, pname);
	if (!prog)
		die("attach: unknown program '%s' (drop, parse, pass, fwd)", kind);
	err = bpf_object__load(obj);
	if (err)
		die("attach: load: %s", strerror(-err));
	if (!strcmp(kind, "fwd")) {
		__u32 zero = 0, oif = out ? if_nametoindex(out) : 0;

		if (!oif)
			die("attach: -P fwd needs -o OUTDEV (a device here)");
		if (bpf_map_update_elem(bpf_map__fd(bpf_object__find_map_by_name(obj, "fwd_tx")),
					&zero, &oif, 0))
			die("attach: fwd_tx: %s", strerror(errno));
	}
	snprintf(path, sizeof(path), "%s/cnt", pindir);
	unlink(path);
	err = bpf_map__pin(bpf_object__find_map_by_name(obj, "cnt"), path);
	if (err)
		die("attach: pin %s: %s", path, strerror(-err));
	err = bpf_xdp_attach(ifindex, bpf_program__fd(prog), XDP_FLAGS_DRV_MODE, NULL);
	if (err)
		die("attach: XDP on %s: %s", dev, strerror(-err));
	bpf_object__close(obj);
	return 0;
}

static int cmd_count(int argc, char **argv)
{
	int fd;

	if (argc < 2)
		die("count: need PINPATH");
	fd = bpf_obj_get(argv[1]);
	if (fd < 0)
		die("count: %s: %s", argv[1], strerror(errno));
	printf("%llu\n", (unsigned long long)percpu_sum(fd));
	return 0;
}

static int cmd_cookie(void)
{
	uint64_t cookie;
	socklen_t l = sizeof(cookie);
	int s = socket(AF_INET, SOCK_DGRAM, 0);

	if (s < 0 || getsockopt(s, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &l))
		die("netns cookie: %s", strerror(errno));
	printf("%llu\n", (unsigned long long)cookie);
	return 0;
}

/* ---- progrun ----------------------------------------------------------- */

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static const char *xdp_act(unsigned int r)
{
	static const char *n[] = { "ABORTED", "DROP", "PASS", "TX", "REDIRECT" };

	return r < 5 ? n[r] : "?";
}

static int cmd_progrun(int argc, char **argv)
{
	struct pkt_opts po = { .mode = MODE_UDP4, .sport = 1024, .dport = 7777 };
	const char *dev = NULL, *pinned = NULL, *label = "pinned";
	unsigned int repeat = 1000000, runs = 7, ifindex;
	int opt;
	int fds[2], nprog, err;
	const char *names[2];
	double res[2][64];
	unsigned int rets[2] = {};
	uint8_t pkt[128];
	uint16_t l4c;
	size_t len;
	struct bpf_object *obj;
	struct bpf_program *prog;
	struct option lo[] = {
		{ "src", required_argument, NULL, 3 },
		{ "dst", required_argument, NULL, 4 },
		{ "objdir", required_argument, NULL, 5 },
	{ "ndst", required_argument, NULL, 6 },
		{ "label", required_argument, NULL, 6 },
		{}
	};

	parse_mac("02:00:00:00:00:01", po.smac);
	parse_mac("02:00:00:00:00:02", po.dmac);
	while ((opt = getopt_long(argc, argv, "i:P:n:r:p:d:c:", lo, NULL)) != -1) {
		switch (opt) {
		case 'i': dev = optarg; break;
		case 'P': pinned = optarg; break;
		case 'n': repeat = strtoul(optarg, NULL, 0); break;
		case 'r': runs = strtoul(optarg, NULL, 0); break;
		case 'p': po.mode = parse_mode(optarg); break;
		case 'd': po.dport = atoi(optarg); break;
		case 'c': pin_cpu(atoi(optarg)); break;
		case 3: po.src = optarg; break;
		case 4: po.dst = optarg; break;
		case 5: objdir = optarg; break;
		case 6: label = optarg; break;
		default: die("progrun: bad option");
		}
	}
	if (!dev)
		die("progrun: need -i DEV");
	if (runs < 1 || runs > 64)
		die("progrun: runs must be 1..64");
	ifindex = if_nametoindex(dev);
	if (!ifindex)
		die("progrun: no device %s", dev);
	if (!po.src)
		po.src = po.mode == MODE_UDP6 ? "fd00:78::" : "10.78.0.0";
	if (!po.dst)
		po.dst = po.mode == MODE_UDP6 ? "fd00:77::2" : "10.77.0.2";
	len = build_pkt(&po, pkt, &l4c);

	obj = bpf_object__open_file(obj_path("dut.bpf.o"), NULL);
	if (!obj)
		die("progrun: open dut.bpf.o: %s", strerror(errno));
	bpf_object__for_each_program(prog, obj)
		bpf_program__set_autoload(prog, !strcmp(bpf_program__name(prog), "dut_parse"));
	set_rodata(obj, "drop_dport", po.dport);
	err = bpf_object__load(obj);
	if (err)
		die("progrun: load: %s", strerror(-err));
	nprog = 0;
	fds[nprog] = bpf_program__fd(bpf_object__find_program_by_name(obj, "dut_parse"));
	names[nprog++] = "xdp-parse-drop";
	if (pinned) {
		fds[nprog] = bpf_obj_get(pinned);
		if (fds[nprog] < 0)
			die("progrun: %s: %s", pinned, strerror(errno));
		names[nprog++] = label;
	}
	for (unsigned int r = 0; r < runs; r++) {
		for (int p = 0; p < nprog; p++) {
			struct xdp_md ctx_in = { .data_end = len,
						 .ingress_ifindex = ifindex };
			uint8_t out[256];
			LIBBPF_OPTS(bpf_test_run_opts, o,
				    .data_in = pkt,
				    .data_size_in = len,
				    .data_out = out,
				    .data_size_out = sizeof(out),
				    .ctx_in = &ctx_in,
				    .ctx_size_in = sizeof(ctx_in),
				    .repeat = repeat);

			err = bpf_prog_test_run_opts(fds[p], &o);
			if (err)
				die("progrun: BPF_PROG_RUN %s: %s", names[p], strerror(errno));
			res[p][r] = o.duration; /* average ns per run */
			rets[p] = o.retval;
		}
	}
	for (int p = 0; p < nprog; p++) {
		qsort(res[p], runs, sizeof(double), cmp_dbl);
		printf("prog=%s verdict=%s repeat=%u runs=%u ns_min=%.1f ns_median=%.1f ns_max=%.1f\n",
		       names[p], xdp_act(rets[p]), repeat, runs, res[p][0],
		       res[p][runs / 2], res[p][runs - 1]);
	}
	bpf_object__close(obj);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: sbench gen|attach|count|progrun|netns-cookie ...\n");
		return 2;
	}
	libbpf_set_print(NULL);
	if (!strcmp(argv[1], "gen"))
		return cmd_gen(argc - 1, argv + 1);
	if (!strcmp(argv[1], "attach"))
		return cmd_attach(argc - 1, argv + 1);
	if (!strcmp(argv[1], "count"))
		return cmd_count(argc - 1, argv + 1);
	if (!strcmp(argv[1], "progrun"))
		return cmd_progrun(argc - 1, argv + 1);
	if (!strcmp(argv[1], "netns-cookie"))
		return cmd_cookie();
	die("unknown command '%s'", argv[1]);
}

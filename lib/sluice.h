/* SPDX-License-Identifier: GPL-2.0 */
/* libsluice: the one C API behind the CLI, the daemon and the CNI plugin.
 *
 * Conventions: functions return 0 or -errno and leave a one-line message for
 * sl_errmsg(); a failed call changes no state. State lives pinned under
 * /sys/fs/bpf/sluice/netns-<cookie>/, one folder per network namespace. */
#ifndef SLUICE_H
#define SLUICE_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>
#include "sluice_abi.h"

#define SL_BPFFS "/sys/fs/bpf"
#define SL_PIN_ROOT SL_BPFFS "/sluice"
#define SL_RUN_DIR "/run/sluice"

/* Errors: the message of the last failure in this thread. */
const char *sl_errmsg(void);
/* Records a message and returns err (a negative errno). */
int sl_err(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sends libbpf's own messages to stderr only when verbose. */
void sl_set_verbose(bool verbose);

struct sl_ctx;

enum sl_open_flags {
	SL_OPEN_WRITE = 1 << 0, /* take the writer lock; create state if absent */
	/* With SL_OPEN_WRITE: accept state pinned by another version of
	 * sluice, only to remove it with sl_reset(). */
	SL_OPEN_RESET = 1 << 1,
};

/* Opens the state of the current network namespace. Without SL_OPEN_WRITE
 * and without state, returns -ENOENT. */
int sl_open(struct sl_ctx **ctx, unsigned int flags);
void sl_close(struct sl_ctx *ctx);
/* The pin folder of this namespace's state. */
const char *sl_base(const struct sl_ctx *ctx);
/* Removes every chain, link, instance and pin of this namespace. */
int sl_reset(struct sl_ctx *ctx);
/* Removes the state of network namespaces that no longer exist (see
 * lib/gc.c for how that is decided), calling cb for each folder removed,
 * or that would be with dry_run. Returns 0 or the first error. */
typedef int (*sl_gc_cb)(const char *dir, unsigned long long cookie, void *arg);
int sl_gc(bool dry_run, sl_gc_cb cb, void *arg);

/* Hooks by name: "ingress" (XDP), "tc-ingress", "egress" (TC). */
int sl_hook_parse(const char *name, enum sl_hook *hook);
const char *sl_hook_name(enum sl_hook hook);

/* Instances: named, configured copies of an NF, each owning a slot. */
struct sl_instance {
	char name[SL_NAME_MAX];
	char type[16];
	__u32 slot;
};
int sl_instance_get(struct sl_ctx *ctx, const char *name,
		    struct sl_instance *inst);
/* Returns the existing instance of that name and type, or reserves a free
 * slot for a new one (registered by sl_instance_commit). */
int sl_instance_prepare(struct sl_ctx *ctx, const char *name, const char *type,
			struct sl_instance *inst);
/* Switches the instance's programs into its slot and its pins into place:
 * pins were written by the NF under sl_instance_stage_dir(). */
int sl_instance_commit(struct sl_ctx *ctx, const struct sl_instance *inst,
		       int prog_xdp_fd, int prog_tc_fd);
int sl_instance_stage_dir(struct sl_ctx *ctx, const struct sl_instance *inst,
			  char *buf, size_t len);
int sl_instance_dir(struct sl_ctx *ctx, const char *name, char *buf,
		    size_t len);
/* Opens an instance's pin folder; pins opened through it with
 * sl_obj_get_at() all belong to one generation (a reload swaps folders).
 * -ENOENT means a reload removed it meanwhile: open again. */
int sl_instance_open_dir(struct sl_ctx *ctx, const char *name);
int sl_obj_get_at(int dir_fd, const char *name);
/* Deletes an instance that no chain uses. */
int sl_instance_delete(struct sl_ctx *ctx, const char *name);
typedef int (*sl_instance_cb)(const struct sl_instance *inst, void *arg);
int sl_instance_foreach(struct sl_ctx *ctx, sl_instance_cb cb, void *arg);
/* Sums the per-CPU counters of a slot (slot 0: the root programs). */
int sl_slot_stats(struct sl_ctx *ctx, __u32 slot, struct sl_nf_stats *st,
		  __u64 drops[SL_DROP_MAX]);
const char *sl_drop_reason_name(unsigned int reason);

/* Chains: the instances run on a port and hook, in order. Setting a chain
 * attaches the root program if needed; an empty chain detaches it. The
 * switch is one map update: a packet sees the old chain or the new one. */
int sl_chain_set(struct sl_ctx *ctx, const char *dev, enum sl_hook hook,
		 const char *const *names, int n);
int sl_chain_get(struct sl_ctx *ctx, const char *dev, enum sl_hook hook,
		 struct sl_chain *chain);
typedef int (*sl_chain_cb)(__u32 ifindex, enum sl_hook hook,
			   const struct sl_chain *chain, void *arg);
int sl_chain_foreach(struct sl_ctx *ctx, sl_chain_cb cb, void *arg);
/* Whether sl_chain_ensure() of that instance would succeed, changing
 * nothing: checked before loading a new instance, so a refused load leaves
 * no instance behind. */
int sl_chain_check(struct sl_ctx *ctx, const char *dev, enum sl_hook hook,
		   const char *name);
/* Removes chains whose interface is gone (done by every writer's open). */
int sl_chain_prune(struct sl_ctx *ctx);
/* Appends an instance to a chain unless it is already there. */
int sl_chain_ensure(struct sl_ctx *ctx, const char *dev, enum sl_hook hook,
		    const char *name);
/* Whether some chain runs the instance in slot. */
bool sl_slot_in_use(struct sl_ctx *ctx, __u32 slot);

/* Helpers shared by NF control code. */
int sl_ifindex(const char *dev); /* > 0, or a negative errno with message */
int sl_pin_dir_remove(const char *dir);
int sl_map_fd(struct sl_ctx *ctx, const char *name); /* a shared map */
/* Pins fd at dir/name (fails if the path exists); opens a pin. */
int sl_pin(const char *dir, const char *name, int fd);
int sl_obj_get(const char *dir, const char *name);
struct bpf_object;
/* Before an object is loaded: fails with a message that names the map and
 * says what to do when a map it shares by name is pinned under base with
 * another layout (state made by another version of sluice), which the
 * kernel would otherwise refuse with a bare "parameter mismatch". */
int sl_pins_check(const char *base, struct bpf_object *obj);

#endif

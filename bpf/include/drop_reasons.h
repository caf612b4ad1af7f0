/* SPDX-License-Identifier: GPL-2.0 */
/* One drop-reason taxonomy for every NF, shared by BPF and user space.
 * BPF code returns -SL_DROP_xxx; the pipeline counts it per instance.
 * Add new reasons at the end (the numbers are part of pinned state). */
#ifndef SLUICE_DROP_REASONS_H
#define SLUICE_DROP_REASONS_H

#define SL_DROP_REASONS(X)                                                     \
	X(SL_DROP_UNKNOWN, 0, "unknown")                                       \
	X(SL_DROP_MALFORMED_L2, 1, "malformed-l2")                             \
	X(SL_DROP_MALFORMED_L3, 2, "malformed-l3")                             \
	X(SL_DROP_MALFORMED_L4, 3, "malformed-l4")                             \
	X(SL_DROP_FW_RULE, 4, "firewall-rule")                                 \
	X(SL_DROP_FW_POLICY, 5, "firewall-policy")                             \
	X(SL_DROP_NF_STATE, 6, "nf-state-missing")                             \
	X(SL_DROP_REDIRECT_FAILED, 7, "redirect-failed")                       \
	X(SL_DROP_CT_INVALID, 8, "conntrack-invalid")                          \
	X(SL_DROP_NAT_NO_PORT, 9, "nat-no-port")                               \
	X(SL_DROP_LB_NO_BACKEND, 10, "lb-no-backend")                          \
	X(SL_DROP_REJECT, 11, "rejected")                                      \
	X(SL_DROP_RATE_LIMIT, 12, "rate-limit")                                \
	X(SL_DROP_ENCAP_FAILED, 13, "encap-failed")

enum sl_drop_reason {
#define SL_DROP_ENUM(name, num, text) name = num,
	SL_DROP_REASONS(SL_DROP_ENUM)
#undef SL_DROP_ENUM
	SL_DROP_MAX = 16, /* room to grow without resizing pinned maps */
};

#endif

/* SPDX-License-Identifier: GPL-2.0 */
/* Test helper: loads firewall instance name from rules in sluice's own
 * syntax, given as text, through the production parser and loader. */
#ifndef SLUICE_TESTS_FW_TEXT_H
#define SLUICE_TESTS_FW_TEXT_H

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "sluice.h"
#include "firewall.h"

static inline int fw_load_text(struct sl_ctx *ctx, const char *name,
			       const char *text)
{
	struct fw_ruleset rs;
	FILE *f = fmemopen((void *)text, strlen(text), "r");
	int err;

	if (!f)
		return -errno;
	err = fw_ruleset_parse_stream(f, name, &rs);
	fclose(f);
	if (err)
		return err;
	err = fw_load(ctx, name, &rs, NULL);
	fw_ruleset_free(&rs);
	return err;
}

#endif

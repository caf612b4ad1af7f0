// SPDX-License-Identifier: GPL-2.0
/* libFuzzer target for the declarative configuration loader (lib/config.c):
 * parse only, no kernel state. Whatever parses must also write back (as
 * YAML and as JSON) into a document that parses to the same configuration,
 * and writing that again must give the same bytes.
 *   make fuzz [FUZZ_TIME=60]   (build/fuzz/fuzz_config, corpus fuzz/corpus/config) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "config.h"

static char *write_doc(const struct sl_config *cfg, bool json, size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);

	if (!f)
		abort();
	if (sl_config_write(cfg, f, json)) {
		/* Only a rule too long to print may fail; none is. */
		fprintf(stderr, "write failed: %s\n", sl_errmsg());
		abort();
	}
	fclose(f);
	return buf;
}

static void round_trip(const struct sl_config *cfg, bool json)
{
	struct sl_config *back = NULL;
	size_t len, len2;
	char *doc = write_doc(cfg, json, &len), *again;

	if (sl_config_parse(doc, len, "written", &back)) {
		fprintf(stderr, "written document does not parse: %s\n---\n%s---\n",
			sl_errmsg(), doc);
		abort();
	}
	again = write_doc(back, json, &len2);
	if (len != len2 || memcmp(doc, again, len)) {
		fprintf(stderr, "round trip changed the document:\n---\n%s---\n%s---\n", doc, again);
		abort();
	}
	if (back->nfws != cfg->nfws || back->nchains != cfg->nchains)
		abort();
	free(again);
	free(doc);
	sl_config_free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sl_config *cfg = NULL;

	if (sl_config_parse((const char *)data, size, "fuzz", &cfg)) {
		if (cfg || !*sl_errmsg())
			abort(); /* an error returns nothing and says why */
		return 0;
	}
	round_trip(cfg, false);
	round_trip(cfg, true);
	sl_config_free(cfg);
	return 0;
}

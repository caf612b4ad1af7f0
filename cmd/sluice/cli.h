/* SPDX-License-Identifier: GPL-2.0 */
/* The command table of the CLI. The core commands live in main.c; an NF's
 * commands live in their own file (cmd/sluice/cmd_<nf>.c) and register with
 * CLI_COMMAND, which puts a pointer in the section sl_cli_cmds that main()
 * adds to the top-level table. */
#ifndef SLUICE_CLI_H
#define SLUICE_CLI_H

#include <stdbool.h>

struct cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *usage;
	bool group; /* has subcommands, which handle -h themselves */
};

#define CLI_COMMAND(var, name, fn, usage, group)                               \
	static const struct cmd var = { name, fn, usage, group };              \
	static const struct cmd *const var##_ptr                               \
		__attribute__((used, section("sl_cli_cmds"))) = &var

/* Runs the command named argv[0] from table (NULL-terminated); prints the
 * table as usage when the name is unknown or "help". */
int cli_dispatch(const struct cmd *table, const char *prefix, int argc,
		 char **argv);
/* Prints sl_errmsg() and returns 1 (a failed command). */
int cli_fail(int err);
/* Prints msg and returns 2 (bad usage). */
int cli_bad_usage(const char *msg);

#endif

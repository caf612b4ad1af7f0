/* SPDX-License-Identifier: GPL-2.0 */
/* sluice: the CLI's way to sluiced. Commands that change state go through
 * the daemon when one serves this network namespace on the socket, and
 * straight through libsluice (under the same writer lock) otherwise; the
 * result and the messages are the same either way. */
#ifndef SLUICE_CLIENT_H
#define SLUICE_CLIENT_H

#include <stdbool.h>
#include <jansson.h>

/* From the command line and the environment: --socket PATH or
 * SLUICE_SOCKET (default /run/sluice/sluiced.sock); --no-daemon or
 * SLUICE_NO_DAEMON=1 forces direct mode; verbose says which mode. */
void cl_setup(const char *socket_path, bool no_daemon, bool verbose);

/* Whether writes go to the daemon: its socket answers and it serves this
 * network namespace. Decided once, on first use. */
bool cl_daemon(void);

/* Sends one request (body may be NULL; it is not consumed). Returns 0 on a
 * 2xx answer, with the decoded answer in *reply when reply is given (NULL
 * for an empty one). Otherwise prints "sluice: ERROR" as direct mode
 * prints errors and returns 1. */
int cl_call(const char *method, const char *path, json_t *body, json_t **reply);

/* Sends one request with a body of len bytes of type ctype (body may be
 * NULL). Returns 0 when the daemon answered, whatever the status, with the
 * status in *status and the decoded answer in *reply (NULL when empty or
 * not JSON; the caller drops it). Otherwise prints why and returns 1. */
int cl_request(const char *method, const char *path, const char *ctype,
	       const char *body, size_t len, int *status, json_t **reply);

/* Prints the error of a non-2xx answer as cl_call() does. */
void cl_print_error(int status, json_t *reply);

/* The daemon refuses request bodies larger than this (sluiced's
 * API_BODY_MAX). */
#define CL_BODY_MAX (16u << 20)

/* Appends s to buf percent-encoded as one URL path segment or query value. */
void cl_escape(char *buf, size_t len, const char *s);

#endif

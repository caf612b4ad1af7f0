/* SPDX-License-Identifier: GPL-2.0 */
/* One print API for text and JSON, as iproute2's json_print: each call
 * names the JSON key and the text format; the mode picks which is used. */
#ifndef SLUICE_OUT_H
#define SLUICE_OUT_H

#include <stdbool.h>
#include <linux/types.h>

void out_init(bool json);
bool out_json(void);
/* key is ignored inside arrays and for the outermost value. */
void out_open_obj(const char *key);
void out_close_obj(void);
void out_open_arr(const char *key);
void out_close_arr(void);
/* fmt prints in text mode (NULL: nothing); key names the JSON member. */
void out_str(const char *key, const char *fmt, const char *v);
void out_u64(const char *key, const char *fmt, __u64 v);
void out_bool(const char *key, const char *fmt, bool v);
/* Text-mode only. */
void out_text(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Ends the document (a newline after JSON). */
void out_done(void);

#endif

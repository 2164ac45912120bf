/* SPDX-License-Identifier: MIT */
/* JSON string quoting, for micd's replies and the stats it writes. */
#ifndef MIC_LIB_JSON_H
#define MIC_LIB_JSON_H

#include <stddef.h>

/* Gives s quoted and escaped as a JSON string to put, in pieces. */
void json_quote(const char *s, void (*put)(void *ctx, const char *p, size_t n), void *ctx);

#endif

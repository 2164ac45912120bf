/* SPDX-License-Identifier: MIT */
#include <stdio.h>

#include "json.h"

void json_quote(const char *s, void (*put)(void *ctx, const char *p, size_t n), void *ctx)
{
	put(ctx, "\"", 1);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		char esc[8];
		if (ch == '"' || ch == '\\')
			put(ctx, esc, (size_t)snprintf(esc, sizeof(esc), "\\%c", ch));
		else if (ch < 0x20)
			put(ctx, esc, (size_t)snprintf(esc, sizeof(esc), "\\u%04x", ch));
		else
			put(ctx, s, 1);
	}
	put(ctx, "\"", 1);
}

/* SPDX-License-Identifier: MIT */
/*
 * The tag micd's epoll loop keeps for every fd it watches, its own and the
 * cards': the loop calls fn(ctx) and needs to know nothing else, so a new
 * kind of fd brings its handler instead of a new branch in the loop.
 */
#ifndef MIC_HOST_WATCH_H
#define MIC_HOST_WATCH_H

struct host_watch {
	void (*fn)(void *ctx);
	void *ctx;
};

#endif

#ifndef POSTERN_RATELIMIT_H
#define POSTERN_RATELIMIT_H

/* Event counters per key over fixed windows, shared by every process
 * (DATA/ratelimit.lmdb, not fsynced: losing counts in a crash is fine).
 * Submission uses it for the per-user message rate ([smtp] rate_limit). */

#include <stdbool.h>
#include <time.h>

struct ratelimit;

int ratelimit_open(const char *data_dir, const char *run_as, struct ratelimit **rl_r,
		   const char **error_r);
void ratelimit_close(struct ratelimit **rl);
/* How many events key had in the window that holds now (window seconds). */
unsigned ratelimit_count(struct ratelimit *rl, const char *key, int window, time_t now);
/* Counts one event for key. */
void ratelimit_hit(struct ratelimit *rl, const char *key, int window, time_t now);

#endif

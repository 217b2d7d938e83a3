#ifndef POSTERN_CONNLIMIT_H
#define POSTERN_CONNLIMIT_H

/* Connection counts shared by all workers (an anonymous shared mapping
 * made by the master before it forks). Each worker writes only its own
 * row, so a worker that dies cannot leave counts behind: the master
 * clears the dead worker's row. Per-address counts are kept in hash
 * buckets (two addresses in one bucket share a count: conservative). */

#include <stdbool.h>
#include <stddef.h>

struct connlimit;

struct connlimit *connlimit_create(int slots);
/* Counts one more connection from ip for slot, unless the server total
 * reached max_total or this address reached max_per_ip. */
bool connlimit_acquire(struct connlimit *cl, int slot, const char *ip, int max_total,
		       int max_per_ip, unsigned int *bucket_r, const char **reason_r);
void connlimit_release(struct connlimit *cl, int slot, unsigned int bucket);
void connlimit_clear_slot(struct connlimit *cl, int slot);
int connlimit_slots(const struct connlimit *cl);

#endif

#ifndef POSTERN_SERVICES_H
#define POSTERN_SERVICES_H

/* The per-process handles every session needs: opened in each worker
 * after the fork and the privilege drop (LMDB environments must be), and
 * handed to sessions through conn_services(). core only carries the
 * pointers; the types belong to their modules. */

struct auth_db;
struct store;
struct queue;
struct ratelimit;
struct offload;

struct services {
	struct auth_db *auth;
	struct store *store;
	struct queue *queue;
	struct ratelimit *ratelimit;
	/* workers only (NULL elsewhere: do the work inline): threads for
	 * password hashing, see core/offload.h */
	struct offload *offload;
	/* this child's ends of its two socketpairs with the auth process
	 * (lookups, sessions), -1 when there is none: child_init takes them */
	int auth_fd[2];
};

#endif

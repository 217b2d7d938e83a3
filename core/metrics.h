#ifndef POSTERN_METRICS_H
#define POSTERN_METRICS_H

/* Counters shared by every process of `postern serve`: one small file,
 * DATA/metrics.shm, that the master creates and maps (MAP_SHARED) before
 * it forks, so every child writes into the same pages. Counters are
 * atomic adds and survive the death of the process that counted;
 * gauges of open connections are kept per worker slot (each worker
 * writes only its row, the master clears a dead worker's row, as in
 * core/connlimit.c). `postern status` maps the same file read-only.
 *
 * Like logging, counting is process-wide: a call in a process that has
 * no mapping (the admin CLI) does nothing. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "core/buf.h"
#include "core/config.h"

/* The protocols whose logins are counted (auth's service names). */
enum metrics_proto { METRICS_SMTP, METRICS_IMAP, METRICS_POP3, METRICS_PROTO_COUNT };
/* The children the master restarts. */
enum metrics_child { METRICS_WORKER, METRICS_RELAY, METRICS_WEB, METRICS_AUTH, METRICS_CHILD_COUNT };

enum metric {
	/* per listener kind: add the enum listener_kind */
	METRIC_CONNECTIONS = 0,
	METRIC_CONNECTIONS_REFUSED = METRIC_CONNECTIONS + LISTEN_COUNT,
	METRIC_TLS_HANDSHAKES = METRIC_CONNECTIONS_REFUSED + LISTEN_COUNT,
	METRIC_TLS_FAILURES = METRIC_TLS_HANDSHAKES + LISTEN_COUNT,
	/* per protocol: add the enum metrics_proto */
	METRIC_LOGINS_OK = METRIC_TLS_FAILURES + LISTEN_COUNT,
	METRIC_LOGINS_FAILED = METRIC_LOGINS_OK + METRICS_PROTO_COUNT,
	/* per child kind: add the enum metrics_child */
	METRIC_RESTARTS = METRIC_LOGINS_FAILED + METRICS_PROTO_COUNT,
	/* messages acknowledged to an SMTP client (the 250 after DATA/BDAT) */
	METRIC_MESSAGES_ACCEPTED = METRIC_RESTARTS + METRICS_CHILD_COUNT,
	/* per recipient: into a mailbox here (any path), or taken by the next hop */
	METRIC_DELIVERED_LOCAL,
	METRIC_DELIVERED_REMOTE,
	/* the relay's results, one per recipient per attempt */
	METRIC_RELAY_SENT,
	METRIC_RELAY_DEFERRED,
	METRIC_RELAY_BOUNCED,
	/* recipients failed for good by expiry (no attempt reports them) */
	METRIC_EXPIRED,
	METRIC_COUNT
};

/* The master, once, before forking: makes DATA/metrics.shm (a new file
 * renamed into place: a reader never sees it half made) with a row per
 * worker slot, and maps it for this process and its children. */
int metrics_setup(const char *data_dir, const char *run_as, int slots, const char **error_r);

void metrics_count(enum metric m);
void metrics_count_listener(enum metric base, enum listener_kind kind);
/* service: auth's name for the protocol ("smtp", "imap", "pop"). */
void metrics_login(const char *service, bool ok);
/* The relay's result for one recipient: an SMTP code (2xx, 4xx, 5xx);
 * local: delivered through the store here (counted there). */
void metrics_relay_result(int code, bool local);
/* Open connections of a listener in this worker's slot: +1 / -1. */
void metrics_connection_open(int slot, enum listener_kind kind, int delta);
/* The master: a dead child's slot starts again from zero. */
void metrics_clear_slot(int slot);
/* The master: expiry of the certificate it serves (0 = unknown). */
void metrics_set_certificate_expiry(time_t not_after);

/* ---- reading ---- */

struct metrics;
/* This process's mapping (serve's children), NULL when none. */
const struct metrics *metrics_current(void);
/* Maps DATA/metrics.shm read-only (`postern status`); -1 with a reason
 * when there is none or it is not ours. */
int metrics_attach(const char *data_dir, const struct metrics **m_r, const char **error_r);
void metrics_detach(const struct metrics **m);

uint64_t metrics_value(const struct metrics *m, enum metric id);
/* Open connections of a listener, summed over the worker slots. */
uint64_t metrics_open_connections(const struct metrics *m, enum listener_kind kind);
pid_t metrics_master_pid(const struct metrics *m);
time_t metrics_started(const struct metrics *m);
time_t metrics_certificate_expiry(const struct metrics *m);
/* Whether the master that made the file still runs. */
bool metrics_server_running(const struct metrics *m);

const char *metrics_proto_name(enum metrics_proto p);
const char *metrics_child_name(enum metrics_child c);

/* The queue's state, found by the caller (relay/queue.h). */
struct metrics_queue {
	bool known;
	uint64_t messages;
	time_t oldest_arrival;     /* 0 when empty */
};

/* Prometheus text exposition format (version 0.0.4) of everything, with
 * the listeners cfg configures (every kind when cfg is NULL). */
void metrics_render(const struct metrics *m, const struct config *cfg,
		    const struct metrics_queue *queue, time_t now, struct buf *out);

#endif

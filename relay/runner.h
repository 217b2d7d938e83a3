#ifndef POSTERN_RELAY_RUNNER_H
#define POSTERN_RELAY_RUNNER_H

/* The queue runner's state, shared by relay.c (the process: scans,
 * timers, the backlog, batched removals, expiry, start and stop) and
 * attempt.c (one delivery attempt of one message: local recipients,
 * SMTP transactions, results). Private to relay/. */

#include <sys/time.h>

#include "relay/relay-private.h"

#define RELAY_SMARTHOST_KEY "[smarthost]"
/* RFC 5321 4.5.3.1.8: servers must take 100 recipients per transaction */
#define RELAY_RCPTS_PER_TRANSACTION 100

struct relay_msg {
	struct relay_msg *next;
	struct queue_entry entry;
	int jobs;                /* SMTP transactions in flight */
	/* per recipient, what this attempt did that may need a DSN: an
	 * enum dsn_action + 1 (failed, delivered, relayed), 0 = nothing */
	unsigned char *outcome;
};

struct relay_job {
	struct relay_job *next;
	struct relay *r;
	struct relay_msg *msg;
	char dest[256];          /* domain, or RELAY_SMARTHOST_KEY */
	size_t *index;           /* into msg->entry.rcpts */
	struct smtp_client_rcpt *rcpts;
	size_t count;
	struct relay_addr *addrs;
	size_t addr_count;
	struct timeval started;
	struct relay_dns_lookup *lookup;
	struct relay_mtasts_lookup *sts_lookup;
	/* both answers are in before the client starts */
	bool dns_done, sts_done;
	int dns_status;
	char dns_error[300];
	struct relay_mtasts_policy sts;   /* mode none when there is no policy */
	struct smtp_client *client;
};

struct down_host {
	struct down_host *next;
	char ip[64];
	time_t until;
};

struct relay {
	const struct config *cfg;
	struct services *svc;
	struct event_base *base;
	struct relay_dns *dns;
	SSL_CTX *tls_ctx;
	SSL_CTX *smarthost_tls_ctx;    /* verifies, unless smarthost_tls_verify = no */
	SSL_CTX *verify_tls_ctx;       /* DANE and MTA-STS peers (MX mode) */
	struct relay_mtasts *mtasts;   /* with [relay] mta_sts */
	char *auth_user, *auth_pass;
	char smarthost[256];
	int smarthost_port;
	struct event *notify_ev, *timer_ev, *scan_ev, *term_ev, *drain_ev, *lock_ev;
	struct event *quit_ev;         /* waits for the QUITs of relay_drained() */
	int quit_waits;
	struct relay_msg *msgs;
	struct relay_job *jobs;
	int job_count;
	struct smtp_client *clients;   /* every live client, QUIT included */
	/* due messages the limits held back, in arrival order: the end of
	 * an attempt starts the next of them without a whole scan */
	char (*backlog)[QUEUE_ID_LEN + 1];
	size_t backlog_count, backlog_cap;
	bool backlog_draining;
	/* messages whose every recipient has its answer, removed together
	 * once the loop has run the current batch of callbacks (one durable
	 * commit for many; until then scans skip them) */
	char (*finished)[QUEUE_ID_LEN + 1];
	int *finished_attempts;
	size_t finished_count, finished_cap;
	struct event *finished_ev;
	time_t wake;                   /* when the timer fires */
	struct down_host *down;
	int lock_fd;
	bool stopping;
};


/* attempt.c */
/* Starts an attempt for a due message; false when the concurrency limits
 * say not now. */
bool attempt_start(struct relay *r, const struct queue_entry *entry);
/* Is the message in an attempt now? */
bool attempt_in_flight(struct relay *r, const char *id);
/* Abandons every attempt (at exit): their recipients stay pending. */
void attempt_abandon_all(struct relay *r);

/* relay.c */
void relay_save_entry(struct relay *r, const struct queue_entry *e);
void relay_send_dsn(struct relay *r, const struct queue_entry *e, const bool *which,
		    enum dsn_action action);
/* e has an answer for every recipient: its record goes in the next batch. */
void relay_finished(struct relay *r, const struct queue_entry *e);
/* An attempt ended: start messages the limits held back. */
void relay_attempt_ended(struct relay *r);
/* Draining is over (no job left): kept connections say QUIT, then the
 * loop ends (after their answers, at most a second). */
void relay_drained(struct relay *r);
void relay_wake_at(struct relay *r, time_t t);
/* A copy of an entry (its strings too). */
int relay_entry_dup(const struct queue_entry *src, struct queue_entry *dst);
size_t relay_pending_count(const struct queue_entry *e);

#endif

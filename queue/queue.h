#ifndef POSTERN_QUEUE_H
#define POSTERN_QUEUE_H

/* The outbound queue (queue/): one spool file per message in
 * DATA/queue/ID plus one record in DATA/queue.lmdb holding the envelope,
 * the DSN parameters and each recipient's state. Submission writes it
 * (queue_writer_*: spool written and fsynced, renamed, directory fsynced,
 * record committed durably, only then success, so a 250 is never lost);
 * the relay process and `postern queue` read and update it.
 *
 * A record without its spool file cannot happen through this API; a
 * spool file without a record (a crash between the rename and the
 * commit) was never acknowledged and is removed by queue_recover(). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define QUEUE_ID_LEN 16

struct queue;
struct queue_writer;

enum queue_rcpt_state {
	QUEUE_RCPT_PENDING,   /* to be tried (again) */
	QUEUE_RCPT_DONE,      /* delivered (2xx) */
	QUEUE_RCPT_FAILED,    /* permanent failure or expiry: bounced */
};

/* DSN NOTIFY bits, the same values as submission's smtp_notify. */
#define QUEUE_NOTIFY_NEVER   (1u << 0)
#define QUEUE_NOTIFY_SUCCESS (1u << 1)
#define QUEUE_NOTIFY_FAILURE (1u << 2)
#define QUEUE_NOTIFY_DELAY   (1u << 3)

enum queue_ret { QUEUE_RET_UNSET, QUEUE_RET_FULL, QUEUE_RET_HDRS };
enum queue_body { QUEUE_BODY_UNSET, QUEUE_BODY_7BIT, QUEUE_BODY_8BITMIME, QUEUE_BODY_BINARYMIME };

struct queue_rcpt {
	char *address;           /* "local@domain" */
	char *orcpt;             /* "rfc822;addr" or NULL */
	unsigned int notify;     /* QUEUE_NOTIFY_* or 0 (default) */
	bool local;              /* a hosted mailbox: retried through the store */
	enum queue_rcpt_state state;
	int attempts;
	char *last_error;        /* last reply or reason, NULL when none */
	char *last_host;         /* host that answered it, NULL when none */
	/* the TLS of that connection: "TLSv1.3 SUITE verified=yes auth=dane"
	 * (auth: dane, mta-sts, smarthost or none; "none verified=no
	 * auth=none" in clear), NULL when no host answered */
	char *last_tls;
};

struct queue_entry {
	char id[QUEUE_ID_LEN + 1];
	char *sender;            /* "" for the null sender */
	char *envid;             /* NULL when absent */
	enum queue_ret ret;
	enum queue_body body;
	bool smtputf8;
	char *user;              /* who submitted it (AUTH), NULL for inbound */
	time_t arrival;
	time_t next_attempt;
	time_t last_attempt;     /* 0 = never tried */
	int attempts;
	bool delay_warned;       /* the delay DSN went out */
	uint64_t size;
	/* header fields intake's filters put on top of the copies: every
	 * copy's (Authentication-Results: a local retry writes them too) and
	 * the remote copies' (DKIM-Signature); NULL when none. The relay
	 * sends prepend, then prepend_remote, then the spool file. */
	char *prepend;
	char *prepend_remote;
	struct queue_rcpt *rcpts;
	size_t rcpt_count;
};

/* Opens (creating) DATA/queue.lmdb and DATA/queue/, given to run_as when
 * running as root. One per process, after fork. */
int queue_open(const char *data_dir, const char *run_as, struct queue **q_r,
	       const char **error_r);
void queue_close(struct queue **q);

/* Writing one message: begin, write the bytes (streamed to a temp file),
 * commit with its envelope. entry->id, arrival and next_attempt are set by
 * commit (arrival/next_attempt = now); the rest comes from entry. */
int queue_writer_begin(struct queue *q, struct queue_writer **w_r, const char **error_r);
int queue_writer_write(struct queue_writer *w, const void *data, size_t len,
		       const char **error_r);
/* The temp file being written (to read it back before the commit). */
const char *queue_writer_path(const struct queue_writer *w);
/* Begins with an existing complete file instead (hard-linked, same file
 * system as data_dir): no bytes are copied. */
int queue_writer_begin_link(struct queue *q, const char *path, struct queue_writer **w_r,
			    const char **error_r);
int queue_writer_commit(struct queue_writer *w, struct queue_entry *entry,
			const char **error_r);
/* Abandons an uncommitted message (removes its temp file); frees. */
void queue_writer_free(struct queue_writer **w);

/* 1 found, 0 not found, -1 error. The entry is freed with queue_entry_free. */
int queue_entry_get(struct queue *q, const char *id, struct queue_entry *entry_r,
		    const char **error_r);
/* Rewrites the record (durably). */
int queue_entry_update(struct queue *q, const struct queue_entry *entry,
		       const char **error_r);
/* Rewrites the record only when it still exists (the relay, after a
 * delivery attempt: `postern queue delete` may have removed it meanwhile).
 * 1 rewritten, 0 gone, -1 error. */
int queue_entry_replace(struct queue *q, const struct queue_entry *entry,
			const char **error_r);
/* Removes the records of ids[0..n) in one transaction (one durable
 * commit), then their spool files. */
int queue_entries_remove(struct queue *q, const char *const *ids, size_t n,
			 const char **error_r);
/* Removes record and spool file. */
int queue_entry_remove(struct queue *q, const char *id, const char **error_r);
void queue_entry_free(struct queue_entry *entry);
/* Calls fn for every entry in id (= arrival) order; fn returns 0 to go on. */
int queue_list(struct queue *q, int (*fn)(const struct queue_entry *entry, void *ctx),
	       void *ctx, const char **error_r);
/* How many messages the queue holds and the arrival of the oldest (0
 * when empty), from one read snapshot without parsing every record. */
int queue_stats(struct queue *q, uint64_t *messages_r, time_t *oldest_r, const char **error_r);
/* Path of the spool file of id (malloc'ed). */
char *queue_spool_path(struct queue *q, const char *id);
/* Where the message in an open spool file starts for another hop: after
 * the Return-Path: line submission puts in front of a message it also
 * stored (final delivery, RFC 5321 4.4), 0 when there is none. */
off_t queue_spool_body_start(int fd);
/* Removes spool files that have no record and temp files left by a crash. */
int queue_recover(struct queue *q, const char **error_r);

/* For the relay process only: its commits (results, removals, bounces)
 * sync the data but leave the meta page to the next sync
 * (MDB_NOMETASYNC). A crash of the machine may then undo its last
 * commit: the message is tried again (a duplicate, never a loss: a
 * bounce is committed before the removal of what it reports on); the
 * database stays intact, and commits by other processes (acknowledged
 * mail) stay fully synced. Saves one of the two syncs per commit. */
void queue_relay_sync_mode(struct queue *q);

/* Wake-up: queue_kick() after a change makes queue_notify_fd() (inotify)
 * readable in every process watching; queue_notify_consume() drains it. */
void queue_kick(struct queue *q);
int queue_notify_fd(struct queue *q);
void queue_notify_consume(struct queue *q);

/* Serialization, exposed for tests. */
char *queue_entry_serialize(const struct queue_entry *entry, size_t *len_r);
int queue_entry_parse(const char *data, size_t len, struct queue_entry *entry_r);

#endif

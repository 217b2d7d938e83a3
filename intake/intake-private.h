#ifndef POSTERN_INTAKE_PRIVATE_H
#define POSTERN_INTAKE_PRIVATE_H

/* Shared by the files of intake/ only: intake.c (jobs, recipients,
 * results), message.c (the bytes: line ends, the header block, the file),
 * finish.c (the verdict, the filters' end steps, delivery), filter.c
 * (the chain). */

#include "intake/intake.h"
#include "core/core.h"

#include <stdbool.h>
#include <stdint.h>

struct queue_writer;
struct store_delivery;

#define INTAKE_MAX_FILTERS 16

/* One distinct final destination: a hosted account or a remote address. */
struct intake_target {
	char *address;
	bool local;
	size_t rcpt;                 /* the first recipient that led here */
	/* results of the local delivery */
	int store_result;            /* 0 or a store error */
	char *store_error;
	uint32_t uid;
	bool queued;                 /* handed to the queue (remote, or a local retry) */
};

struct intake_rcpt {
	char *address;
	unsigned int notify;
	char *orcpt;
	size_t *targets;             /* indices into job->targets */
	size_t target_count;
	struct intake_status result;
};

/* Problems found in the bytes (message.c). */
enum {
	BYTES_BARE_LF = 1 << 0,
	BYTES_BARE_CR = 1 << 1,
	BYTES_LINE_TOO_LONG = 1 << 2,
	BYTES_TOO_BIG = 1 << 3,
	BYTES_HEADER_TOO_BIG = 1 << 4,
	BYTES_NUL = 1 << 5,          /* noted; not a refusal */
};

struct intake_filter_run;
struct offload_job;

struct intake {
	struct services *sv;
	const struct config *cfg;
	struct pool *pool;
	struct intake_envelope env;  /* strings in pool */
	char id[32];

	struct intake_rcpt *rcpts;
	size_t rcpt_count, rcpt_cap;
	struct intake_target *targets;
	size_t target_count, target_cap;
	size_t local_count, remote_count;

	/* the bytes (message.c) */
	bool started;                /* the first byte came: output and filters open */
	bool raw;                    /* passed on untouched (relay retries) */
	bool normalize;              /* bare CR/LF become CRLF instead of a refusal */
	bool binary_body;            /* BINARYMIME: no line rules in the body */
	bool line_limit;             /* 998 octets a line (SMTP origins) */
	uint64_t max_size;           /* 0 = none */
	uint64_t size;               /* bytes taken */
	unsigned int errors;         /* BYTES_* */
	bool pending_cr;
	size_t line_len;
	/* the header block, held until it ends */
	bool in_body;
	uint64_t header_size;        /* as received, every field */
	struct buf pending_line;     /* a header line not complete yet */
	struct buf field;            /* the field being read */
	struct buf kept;             /* complete fields that stay */
	int received_count;
	bool has_date, has_message_id;
	int from_fields;
	struct buf from_values;      /* every From: value, '\n' between */
	/* the output: a store delivery (hosted recipients, nothing to put
	 * above the message later), else a queue spool file */
	struct store_delivery *delivery;
	struct queue_writer *spool;
	bool aside;                  /* written to the spool; stored copies made at the end */
	char out[65536];
	size_t out_len;
	const char *write_error;     /* first failure (pool string) */
	bool write_nospace;

	/* filters (filter.c) */
	struct intake_filter_run *run;

	/* the end (finish.c) */
	struct intake_status status;
	char queue_id[24];
	struct offload_job *offload_job;   /* the filters' end steps, running */
	intake_done_fn *done;
	void *done_ctx;
	bool ended;
};

/* intake.c */
void intake_status_ok(struct intake_status *st);
/* From a filter's "5.7.1 reason" (REJECT or TEMPFAIL code). */
void intake_status_from_reply(struct intake_status *st, enum intake_code code,
			      const char *reply);

/* message.c */
void message_start(struct intake *job);
/* "Return-Path: <sender>\r\n" */
void message_return_path(const struct intake *job, struct buf *out);
/* Flushes what is held: a header block that never ended, a last CR. */
void message_finish(struct intake *job);
/* Writes to the output file (buffered); errors are remembered. */
void message_out(struct intake *job, const char *data, size_t len);
int message_out_flush(struct intake *job);
void message_free(struct intake *job);

/* filter.c: the chain for one job */
struct intake_filter_run *filter_run_new(struct intake *job);
bool filter_run_active(const struct intake_filter_run *run);
/* Does any active filter want to change the stored copies (not remote-only)? */
bool filter_run_touches_stored(const struct intake_filter_run *run);
bool filter_run_header(struct intake_filter_run *run, const char *field, size_t len);
void filter_run_header_end(struct intake_filter_run *run);
void filter_run_body(struct intake_filter_run *run, const char *data, size_t len);
/* RFC5322.From's domain for the end steps (NULL: none or several). */
void filter_run_set_from_domain(struct intake_filter_run *run, const char *domain);
const char *filter_run_from_domain(const struct intake_filter_run *run);
/* The end steps, in order; may block (a thread's work). */
void filter_run_end(struct intake_filter_run *run, const char *from_domain);
const struct intake_verdict *filter_run_verdict(const struct intake_filter_run *run);
void filter_run_free(struct intake_filter_run **run);

/* finish.c */
void finish_deliver(struct intake *job, const struct intake_verdict *v);
/* Stops waiting for the filters' thread (the run goes with it). */
void intake_cancel(struct intake *job);

#endif

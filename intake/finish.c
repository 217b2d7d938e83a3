/* The end of a message: the checks' verdict, the filters' end steps (in a
 * thread when they may block), then delivery: hosted recipients through
 * the store, remote ones (and hosted ones to retry) into the queue, all
 * durable before done() says so. */
#include "intake/intake-private.h"
#include "auth/auth.h"
#include "core/metrics.h"
#include "core/offload.h"
#include "core/services.h"
#include "mail/mail.h"
#include "queue/queue.h"
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void end_done(struct intake *job)
{
	job->ended = true;
	job->offload_job = NULL;
	intake_done_fn *done = job->done;
	job->done = NULL;
	if (done != NULL)
		done(job->done_ctx, job);
}

static void fail(struct intake *job, enum intake_code code)
{
	intake_status_set(&job->status, job->cfg, code, NULL);
	for (size_t i = 0; i < job->rcpt_count; i++)
		job->rcpts[i].result = job->status;
	message_free(job);   /* nothing is kept */
}

/* ---- the checks at the end of the bytes -------------------------------- */

/* The single From: mailbox's domain, lowercased, or "" (DMARC's
 * RFC5322.From; several or none give none). */
static void from_domain(const struct intake *job, char *out, size_t size)
{
	out[0] = '\0';
	if (job->from_fields == 1)
		mail_single_domain(buf_str(&job->from_values), out, size);
}

/* Submission: every From: address must be the user's (RFC 6409 6.1 for
 * the envelope; the header is checked the same way so that the login
 * cannot be walked around). */
static enum intake_code from_policy(const struct intake *job)
{
	if (job->from_fields == 0)
		return INTAKE_OK;
	if (job->from_fields > 1)
		return INTAKE_FROM_UNPARSABLE;
	struct mail_addrs list;
	mail_address_parse(buf_str(&job->from_values), &list);
	enum intake_code code = INTAKE_OK;
	size_t mailboxes = 0;
	if (!list.clean || list.count > INTAKE_MAX_FROM_ADDRESSES)
		code = INTAKE_FROM_UNPARSABLE;
	for (size_t i = 0; i < list.count && code == INTAKE_OK; i++) {
		const struct mail_addr *a = &list.items[i];
		if (a->kind != MAIL_ADDR_MAILBOX)
			continue;
		mailboxes++;
		struct buf spec = BUF_INIT;
		mail_addr_spec(a, &spec);
		if (!auth_sender_allowed(job->sv->auth, job->env.user, buf_str(&spec)))
			code = INTAKE_FROM_NOT_OWNED;
		buf_free(&spec);
	}
	if (code == INTAKE_OK && mailboxes == 0)
		code = INTAKE_FROM_UNPARSABLE;
	mail_addrs_free(&list);
	if (code == INTAKE_FROM_NOT_OWNED)
		log_info("event=sender-rejected reason=header-from-mismatch");
	return code;
}

static enum intake_code checks(const struct intake *job)
{
	if (job->write_error != NULL) {
		log_error("event=message-write-failed error=\"%s\"", job->write_error);
		return job->write_nospace ? INTAKE_NO_SPACE : INTAKE_LOCAL_ERROR;
	}
	if (job->errors & BYTES_TOO_BIG)
		return INTAKE_TOO_BIG;
	if (job->errors & BYTES_HEADER_TOO_BIG)
		return INTAKE_HEADER_TOO_BIG;
	if (job->errors & (BYTES_BARE_LF | BYTES_BARE_CR))
		return INTAKE_BARE_NEWLINE;
	if (job->errors & BYTES_LINE_TOO_LONG)
		return INTAKE_LINE_TOO_LONG;
	enum intake_origin o = job->env.origin;
	if ((o == INTAKE_SUBMISSION || o == INTAKE_INBOUND || o == INTAKE_LOCAL ||
	     o == INTAKE_INJECT) &&
	    job->received_count > job->cfg->smtp_max_received)
		return INTAKE_LOOP;
	if (o == INTAKE_SUBMISSION)
		return from_policy(job);
	return INTAKE_OK;
}

/* ---- the filters' end steps -------------------------------------------- */

static void filters_work(void *arg)
{
	struct intake_filter_run *run = arg;
	filter_run_end(run, filter_run_from_domain(run));
}

static void filters_release(void *arg)
{
	struct intake_filter_run *run = arg;
	filter_run_free(&run);
}

static void after_filters(struct intake *job)
{
	static const struct intake_verdict none;
	const struct intake_verdict *v = job->run != NULL ? filter_run_verdict(job->run) : &none;
	if (v->action == INTAKE_REJECT || v->action == INTAKE_DEFER) {
		enum intake_code code = v->action == INTAKE_REJECT ? INTAKE_FILTER_REJECT :
				       INTAKE_FILTER_TEMPFAIL;
		intake_status_from_reply(&job->status, code, v->reply);
		for (size_t i = 0; i < job->rcpt_count; i++)
			job->rcpts[i].result = job->status;
		log_info("event=message-refused id=%s by=filter reply=\"%d %s %s\"", job->id,
			 job->status.reply, job->status.enhanced, job->status.text);
		message_free(job);
	} else {
		finish_deliver(job, v);
	}
	end_done(job);
}

static void filters_done(void *ctx, void *arg)
{
	struct intake *job = ctx;
	(void)arg;   /* job->run: the job keeps owning it */
	after_filters(job);
}

void intake_end(struct intake *job, struct offload *o, intake_done_fn *done, void *ctx)
{
	job->done = done;
	job->done_ctx = ctx;
	message_finish(job);
	message_out_flush(job);
	enum intake_code code = checks(job);
	if (code != INTAKE_OK) {
		fail(job, code);
		log_info("event=message-refused id=%s reply=\"%d %s %s\"", job->id,
			 job->status.reply, job->status.enhanced, job->status.text);
		end_done(job);
		return;
	}
	if (filter_run_active(job->run)) {
		char domain[256];
		from_domain(job, domain, sizeof(domain));
		filter_run_set_from_domain(job->run, domain[0] != '\0' ? domain : NULL);
		if (o != NULL) {
			job->offload_job = offload_submit(o, filters_work, filters_done,
							  filters_release, job->run, job);
			return;
		}
		filters_work(job->run);
	}
	after_filters(job);
}

void intake_cancel(struct intake *job)
{
	if (job->offload_job != NULL) {
		/* the thread may still be in the filters: the run is theirs now */
		offload_cancel(job->offload_job);
		job->offload_job = NULL;
		job->run = NULL;
	}
}

/* ---- delivery ---------------------------------------------------------- */

/* The stored copies of a message kept aside: Return-Path, what the
 * filters put on top, then the message as received. */
static int copy_aside(struct intake *job, const struct intake_verdict *v,
		      struct store_delivery **d_r, const char **error_r)
{
	const char *path = queue_writer_path(job->spool);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*error_r = "cannot read the message back";
		return -1;
	}
	struct store_delivery *d = NULL;
	struct buf top = BUF_INIT;
	message_return_path(job, &top);
	buf_append(&top, buf_str(&v->prepend), v->prepend.len);
	int r = store_delivery_begin(job->sv->store, &d, error_r);
	if (r == 0)
		r = store_delivery_write(d, top.data, top.len, error_r);
	buf_free(&top);
	char chunk[65536];
	while (r == 0) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*error_r = "cannot read the message back";
			r = -1;
		}
		if (n <= 0)
			break;
		r = store_delivery_write(d, chunk, (size_t)n, error_r);
	}
	close(fd);
	if (r < 0) {
		store_delivery_free(&d);
		return r;
	}
	*d_r = d;
	return 0;
}

/* Hosted recipients get the message through the store now. */
static void deliver_local(struct intake *job, const struct intake_verdict *v)
{
	size_t n = 0;
	struct store_recipient *sr = xcalloc(job->local_count + 1, sizeof(*sr));
	size_t *idx = xcalloc(job->local_count + 1, sizeof(*idx));
	const char *folder = v->folder != NULL ? v->folder : job->env.mailbox;
	for (size_t i = 0; i < job->target_count; i++) {
		struct intake_target *t = &job->targets[i];
		if (!t->local)
			continue;
		/* the quota as the account database says it now */
		struct store_account *acct;
		const char *error;
		if (store_account_open(job->sv->store, t->address, &acct, &error) == 0) {
			intake_quota_refresh(job->sv, acct, t->address);
			store_account_close(&acct);
		}
		sr[n].address = t->address;
		sr[n].mailbox = folder;
		idx[n++] = i;
	}
	const char *error = NULL;
	struct store_delivery *d = job->delivery;
	int r = 0;
	if (job->aside)
		r = copy_aside(job, v, &d, &error);
	else if (v->prepend.len > 0)
		log_warn("event=filter-fields-lost id=%s reason=\"a remote-only filter added "
			 "fields for stored copies\"", job->id);
	if (r == 0 && d != NULL)
		store_delivery_commit(d, sr, n);
	for (size_t k = 0; k < n; k++) {
		struct intake_target *t = &job->targets[idx[k]];
		t->store_result = r < 0 || d == NULL ? STORE_ERR_INTERNAL : sr[k].result;
		const char *why = r < 0 || d == NULL ? error : sr[k].error;
		t->store_error = why != NULL ? xstrdup(why) : NULL;
		t->uid = sr[k].uid;
		if (t->store_result != 0)
			log_warn("event=local-delivery-failed account=%s error=\"%s\"", t->address,
				 why != NULL ? why : "");
	}
	if (job->aside)
		store_delivery_free(&d);
	free(sr);
	free(idx);
}

static bool retries_locally(const struct intake *job)
{
	return job->env.origin == INTAKE_SUBMISSION || job->env.origin == INTAKE_INBOUND ||
	       job->env.origin == INTAKE_REPORT;
}

static bool wants_queue(const struct intake *job, const struct intake_target *t)
{
	if (!t->local || job->env.origin == INTAKE_INJECT)
		return true;
	return t->store_result != 0 && retries_locally(job);
}

static enum queue_body queue_body_of(enum intake_body b)
{
	switch (b) {
	case INTAKE_BODY_7BIT: return QUEUE_BODY_7BIT;
	case INTAKE_BODY_8BITMIME: return QUEUE_BODY_8BITMIME;
	case INTAKE_BODY_BINARYMIME: return QUEUE_BODY_BINARYMIME;
	case INTAKE_BODY_UNSET: break;
	}
	return QUEUE_BODY_UNSET;
}

/* Remote recipients, and hosted ones to retry, into the queue. 1 queued,
 * 0 nothing to queue, -1 failed. */
static int enqueue(struct intake *job, const struct intake_verdict *v)
{
	struct queue_entry e;
	const char *error;
	memset(&e, 0, sizeof(e));
	e.rcpts = xcalloc(job->target_count + 1, sizeof(*e.rcpts));
	for (size_t i = 0; i < job->target_count; i++) {
		const struct intake_target *t = &job->targets[i];
		if (!wants_queue(job, t))
			continue;
		const struct intake_rcpt *r = &job->rcpts[t->rcpt];
		struct queue_rcpt *q = &e.rcpts[e.rcpt_count++];
		q->address = t->address;
		q->notify = r->notify;
		/* RFC 3461 4.2: what the client named, for Original-Recipient;
		 * the address as given when an alias led elsewhere */
		q->orcpt = r->orcpt;
		if (q->orcpt == NULL && ascii_strcasecmp(r->address, t->address) != 0)
			q->orcpt = pool_printf(job->pool, "rfc822;%s", r->address);
		q->local = t->local;
		q->state = QUEUE_RCPT_PENDING;
	}
	if (e.rcpt_count == 0) {
		free(e.rcpts);
		return 0;
	}
	e.sender = (char *)job->env.sender;
	e.envid = (char *)job->env.envid;
	e.ret = job->env.ret == INTAKE_RET_FULL ? QUEUE_RET_FULL :
		job->env.ret == INTAKE_RET_HDRS ? QUEUE_RET_HDRS : QUEUE_RET_UNSET;
	e.body = queue_body_of(job->env.body);
	e.smtputf8 = job->env.smtputf8;
	e.user = (char *)job->env.user;
	/* a spool file written as such holds the message without what the
	 * filters put on top: the record keeps it for every later copy (a
	 * linked store file has neither, and starts with a Return-Path the
	 * relay skips; a retry wrote the record's fields into its file) */
	if (job->delivery == NULL && v->prepend.len > 0)
		e.prepend = (char *)buf_str(&v->prepend);
	if (v->prepend_remote.len > 0)
		e.prepend_remote = (char *)buf_str(&v->prepend_remote);
	int ret = -1;
	if (job->spool == NULL &&
	    queue_writer_begin_link(job->sv->queue, store_delivery_file(job->delivery),
				    &job->spool, &error) < 0) {
		log_error("event=queue-failed error=\"%s\"", error);
	} else if (queue_writer_commit(job->spool, &e, &error) < 0) {
		log_error("event=queue-failed error=\"%s\"", error);
	} else {
		snprintf(job->queue_id, sizeof(job->queue_id), "%s", e.id);
		for (size_t i = 0; i < job->target_count; i++)
			job->targets[i].queued = wants_queue(job, &job->targets[i]);
		ret = 1;
	}
	free(e.rcpts);
	return ret;
}

static enum intake_code store_code(int result)
{
	if (result == STORE_ERR_OVERQUOTA)
		return INTAKE_OVER_QUOTA;
	if (result == STORE_ERR_NOSPACE)
		return INTAKE_NO_SPACE;
	if (result == STORE_ERR_NOTFOUND)
		return INTAKE_UNKNOWN_USER;
	return INTAKE_LOCAL_ERROR;
}

/* Each recipient: OK when one of its targets has the message or it is
 * queued for it; else why its first target failed. */
static void rcpt_results(struct intake *job)
{
	for (size_t i = 0; i < job->rcpt_count; i++) {
		struct intake_rcpt *r = &job->rcpts[i];
		const struct intake_target *failed = NULL;
		bool ok = false;
		for (size_t k = 0; k < r->target_count; k++) {
			const struct intake_target *t = &job->targets[r->targets[k]];
			if (t->queued || (t->local && t->store_result == 0))
				ok = true;
			else if (failed == NULL)
				failed = t;
		}
		if (ok || failed == NULL)
			intake_status_ok(&r->result);
		else
			intake_status_set(&r->result, job->cfg, store_code(failed->store_result),
					  failed->local ? failed->store_error : NULL);
	}
}

void finish_deliver(struct intake *job, const struct intake_verdict *v)
{
	size_t local_ok = 0, overquota = 0, nospace = 0, remote = 0;
	bool inject = job->env.origin == INTAKE_INJECT;
	if (job->local_count > 0 && !inject)
		deliver_local(job, v);
	for (size_t i = 0; i < job->target_count; i++) {
		const struct intake_target *t = &job->targets[i];
		if (!t->local || inject)
			remote++;
		else if (t->store_result == 0)
			local_ok++;
		else if (t->store_result == STORE_ERR_OVERQUOTA)
			overquota++;
		else if (t->store_result == STORE_ERR_NOSPACE)
			nospace++;
	}
	/* nothing delivered and nothing to queue: the sender keeps the message */
	if (remote == 0 && local_ok == 0) {
		fail(job, overquota == job->local_count ? INTAKE_OVER_QUOTA :
			  nospace > 0 ? INTAKE_NO_SPACE : INTAKE_LOCAL_ERROR);
		rcpt_results(job);
		return;
	}
	int queued = enqueue(job, v);
	if (queued < 0) {
		/* the sender will send again: better twice than never */
		fail(job, errno == ENOSPC || errno == EDQUOT ? INTAKE_NO_SPACE :
			  INTAKE_LOCAL_ERROR);
		return;
	}
	rcpt_results(job);
	intake_status_ok(&job->status);
	metrics_count(METRIC_MESSAGES_ACCEPTED);
	log_info("event=message-accepted id=%s queue-id=%s from=<%s> size=%llu rcpts=%zu "
		 "local=%zu remote=%zu retry-local=%zu",
		 job->id, queued > 0 ? job->queue_id : "-", job->env.sender,
		 (unsigned long long)job->size, job->rcpt_count, local_ok, remote,
		 job->local_count - local_ok);
}

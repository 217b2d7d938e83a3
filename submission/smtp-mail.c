/* The mail transaction: MAIL, RCPT, DATA and BDAT (RFC 5321 3.3, RFC 3030).
 * SMTP keeps the session's policy (login before MAIL on submission, the
 * per-user rate, the error budget); everything about the message itself
 * (recipients, relay policy, quota, the bytes, the header checks, where
 * it goes) is intake's, which answers in protocol-neutral statuses that
 * are turned into replies here. */
#include "submission/smtp-private.h"
#include "core/ratelimit.h"
#include "core/services.h"
#include "intake/intake.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void smtp_txn_abort(struct smtp_session *s)
{
	struct smtp_txn *t = s->txn;
	if (t == NULL)
		return;
	intake_free(&t->job);
	pool_free(&t->pool);
	free(t);
	s->txn = NULL;
}

/* "550 5.1.1 Recipient address rejected: user unknown" */
static const char *status_reply(struct smtp_session *s, const struct intake_status *st)
{
	return pool_printf(s->cmd_pool, "%d %s %s", st->reply, st->enhanced, st->text);
}

static enum intake_body body_of(enum smtp_body b)
{
	switch (b) {
	case SMTP_BODY_7BIT: return INTAKE_BODY_7BIT;
	case SMTP_BODY_8BITMIME: return INTAKE_BODY_8BITMIME;
	case SMTP_BODY_BINARYMIME: return INTAKE_BODY_BINARYMIME;
	case SMTP_BODY_UNSET: break;
	}
	return INTAKE_BODY_UNSET;
}

void smtp_cmd_mail(struct smtp_session *s, const char *args)
{
	const struct config *cfg = conn_config(s->conn);
	struct services *sv = conn_services(s->conn);
	const char *reply;
	if (s->txn != NULL) {
		smtp_error(s, "503 5.5.1 Error: nested MAIL command");
		return;
	}
	if (smtp_is_submission(s) && s->user == NULL) {
		smtp_error(s, "530 5.7.0 Authentication required");
		return;
	}
	if (smtp_is_submission(s) && cfg->smtp_rate_limit > 0 &&
	    ratelimit_count(sv->ratelimit, s->user, 3600, time(NULL)) >=
	    (unsigned)cfg->smtp_rate_limit) {
		log_info("event=rate-limited limit=%d/h", cfg->smtp_rate_limit);
		smtp_reply(s, "450 4.7.1 Error: message rate limit exceeded, try again later");
		return;
	}
	struct smtp_txn *t = xcalloc(1, sizeof(*t));
	t->pool = pool_new(4096);
	if (smtp_parse_mail(args, t->pool, &t->sender, &t->params, &reply) < 0) {
		pool_free(&t->pool);
		free(t);
		smtp_error(s, reply);
		return;
	}
	if (t->params.has_size && t->params.size > cfg->smtp_max_message_size) {
		pool_free(&t->pool);
		free(t);
		smtp_reply(s, "552 5.3.4 Message size exceeds fixed maximum message size");
		return;
	}
	struct intake_envelope env = {
		.origin = smtp_is_submission(s) ? INTAKE_SUBMISSION : INTAKE_INBOUND,
		.sender = t->sender.address,
		.user = s->user,
		.helo = s->helo,
		.remote_ip = conn_remote_ip(s->conn),
		.tls = conn_is_tls(s->conn) ? conn_tls_description(s->conn) : NULL,
		.esmtp = s->esmtp,
		.body = body_of(t->params.body),
		.smtputf8 = t->params.smtputf8,
		.envid = t->params.envid,
		.ret = t->params.ret == SMTP_RET_FULL ? INTAKE_RET_FULL :
		       t->params.ret == SMTP_RET_HDRS ? INTAKE_RET_HDRS : INTAKE_RET_UNSET,
		.declared_size = t->params.has_size ? t->params.size : 0,
	};
	struct intake_status st;
	if (intake_begin(sv, cfg, &env, &t->job, &st) < 0) {
		pool_free(&t->pool);
		free(t);
		smtp_reply(s, status_reply(s, &st));
		return;
	}
	s->txn = t;
	smtp_set_state(s, SMTP_STATE_MAIL);
	smtp_reply(s, "250 2.1.0 Ok");
}

/* An unknown recipient counts as an error, as a bad command does: after a
 * few the answers come slowly, then the session ends (harvesting). */
static void rcpt_unknown(struct smtp_session *s, const char *reply)
{
	if (++s->errors >= SMTP_MAX_ERRORS) {
		log_info("event=rcpt-harvesting unknown=%d", s->errors);
		smtp_reply(s, reply);
		smtp_reply(s, "421 4.7.0 Too many errors, closing connection");
		conn_close(s->conn, "too-many-errors");
		return;
	}
	smtp_reply(s, reply);
	if (s->errors > SMTP_SOFT_ERRORS)
		conn_pause_for(s->conn, SMTP_ERROR_DELAY_MS);
}

void smtp_cmd_rcpt(struct smtp_session *s, const char *args)
{
	const struct config *cfg = conn_config(s->conn);
	struct smtp_txn *t = s->txn;
	const char *reply;
	if (t == NULL) {
		smtp_error(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (t->started) {
		smtp_error(s, "503 5.5.1 Error: the message has begun");
		return;
	}
	struct smtp_path path;
	struct smtp_rcpt_params params;
	if (smtp_parse_rcpt(args, t->pool, &path, &params, &reply) < 0) {
		smtp_error(s, reply);
		return;
	}
	if (path.utf8 && !t->params.smtputf8) {
		smtp_reply(s, "553 5.6.7 Non-ASCII recipient address needs SMTPUTF8");
		return;
	}
	const char *address = path.address;
	if (path.postmaster)   /* RFC 5321 4.5.1: <Postmaster> is always accepted */
		address = pool_printf(t->pool, "postmaster@%s", cfg->hostname);
	struct intake_rcpt_params p = { params.notify, params.orcpt };
	struct intake_status st;
	if (intake_add_rcpt(t->job, address, &p, &st) < 0) {
		if (st.code == INTAKE_UNKNOWN_USER || st.code == INTAKE_NO_TARGET)
			rcpt_unknown(s, status_reply(s, &st));
		else
			smtp_reply(s, status_reply(s, &st));
		return;
	}
	t->rcpt_count++;
	smtp_reply(s, "250 2.1.5 Ok");
}

/* ---- the message ---- */

static void decoded_write(void *ctx, const char *data, size_t len)
{
	struct smtp_txn *t = ctx;
	intake_write(t->job, data, len);
}

void smtp_cmd_data(struct smtp_session *s, const char *args)
{
	struct smtp_txn *t = s->txn;
	if (args != NULL) {
		smtp_error(s, "501 5.5.4 Syntax: DATA takes no parameters");
		return;
	}
	if (t == NULL) {
		smtp_error(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (t->bdat) {
		smtp_error(s, "503 5.5.1 Error: DATA after BDAT");
		return;
	}
	if (t->params.body == SMTP_BODY_BINARYMIME) {
		smtp_error(s, "503 5.5.1 Error: BINARYMIME needs BDAT");
		return;
	}
	if (t->rcpt_count == 0) {
		smtp_error(s, "554 5.5.1 Error: no valid recipients");
		return;
	}
	if (!intake_open(t->job)) {
		smtp_txn_abort(s);
		smtp_set_state(s, SMTP_STATE_READY);
		smtp_reply(s, "451 4.3.0 Error: cannot store the message now");
		return;
	}
	t->started = true;
	smtp_data_init(&t->dec, decoded_write, t);
	smtp_set_state(s, SMTP_STATE_DATA);
	smtp_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

/* intake has the verdict: the reply, and back to no transaction. */
static void message_done(void *ctx, struct intake *job)
{
	struct smtp_session *s = ctx;
	const struct config *cfg = conn_config(s->conn);
	const struct intake_status *st = intake_result(job);
	char reply[400];
	if (st->code == INTAKE_OK) {
		const char *qid = intake_queue_id(job);
		snprintf(reply, sizeof(reply), "250 2.0.0 Ok: queued as %s",
			 qid[0] != '\0' ? qid : intake_id(job));
		if (s->user != NULL && cfg->smtp_rate_limit > 0)
			ratelimit_hit(conn_services(s->conn)->ratelimit, s->user, 3600, time(NULL));
	} else {
		snprintf(reply, sizeof(reply), "%d %s %s", st->reply, st->enhanced, st->text);
	}
	smtp_reply(s, reply);
	smtp_txn_abort(s);
	smtp_set_state(s, SMTP_STATE_READY);
	conn_resume_input(s->conn);
}

/* The end of the message: intake decides (its filters may take a moment,
 * in a thread); input waits meanwhile. */
static void txn_finish(struct smtp_session *s)
{
	smtp_set_state(s, SMTP_STATE_WAIT);
	conn_pause_input(s->conn);
	intake_end(s->txn->job, conn_services(s->conn)->offload, message_done, s);
}

void smtp_cmd_bdat(struct smtp_session *s, const char *args)
{
	struct smtp_txn *t = s->txn;
	const struct config *cfg = conn_config(s->conn);
	char *end = NULL;
	unsigned long long size = args != NULL ? strtoull(args, &end, 10) : 0;
	bool last = false;
	if (args == NULL || end == args || args[0] == '-' || (*end != '\0' && *end != ' ') ||
	    size > ((unsigned long long)1 << 40)) {
		/* the chunk's length is unknown: no way to stay in step */
		smtp_reply(s, "501 5.5.4 Syntax: BDAT size [LAST]; closing connection");
		conn_close(s->conn, "bad-bdat");
		return;
	}
	if (*end == ' ') {
		while (*end == ' ')
			end++;
		if (ascii_strcasecmp(end, "LAST") != 0) {
			smtp_reply(s, "501 5.5.4 Syntax: BDAT size [LAST]; closing connection");
			conn_close(s->conn, "bad-bdat");
			return;
		}
		last = true;
	}
	if (t == NULL) {
		/* the chunk still arrives: read it into nothing, then answer */
		t = s->txn = xcalloc(1, sizeof(*t));
		t->pool = pool_new(1024);
		t->bdat_refusal = "503 5.5.1 Error: need MAIL command";
	} else if (t->rcpt_count == 0 && t->bdat_refusal == NULL) {
		t->bdat_refusal = "554 5.5.1 Error: no valid recipients";
	} else if (!t->bdat && t->started) {
		t->bdat_refusal = "503 5.5.1 Error: BDAT after DATA";
	}
	t->bdat = true;
	if (t->bdat_refusal == NULL && !t->started) {
		t->started = true;
		if (!intake_open(t->job))
			t->bdat_refusal = "451 4.3.0 Error: cannot store the message now";
	}
	t->bdat_total += size;
	if (t->bdat_refusal == NULL && t->bdat_total > cfg->smtp_max_message_size)
		t->bdat_refusal = "552 5.3.4 Message size exceeds fixed maximum message size";
	t->bdat_remaining = size;
	t->bdat_last = last;
	smtp_set_state(s, SMTP_STATE_BDAT);
}

static void bdat_chunk_done(struct smtp_session *s)
{
	struct smtp_txn *t = s->txn;
	if (t->bdat_refusal != NULL) {
		/* a refused chunk ends the transaction (RFC 3030 2) */
		const char *reply = t->bdat_refusal;
		smtp_txn_abort(s);
		smtp_set_state(s, s->state == SMTP_STATE_INIT ? SMTP_STATE_INIT : SMTP_STATE_READY);
		smtp_error(s, reply);
		return;
	}
	if (t->bdat_last) {
		txn_finish(s);
		return;
	}
	char line[96];
	snprintf(line, sizeof(line), "250 2.0.0 %llu octets received",
		 (unsigned long long)t->bdat_total);
	smtp_set_state(s, SMTP_STATE_MAIL);
	smtp_reply(s, line);
}

bool smtp_mail_input(struct smtp_session *s, struct evbuffer *in)
{
	struct smtp_txn *t = s->txn;
	size_t avail = evbuffer_get_length(in);
	if (s->state == SMTP_STATE_BDAT) {
		if (t->bdat_remaining > 0) {
			if (avail == 0)
				return false;
			size_t n = avail < t->bdat_remaining ? avail : (size_t)t->bdat_remaining;
			struct evbuffer_iovec vec[8];
			int nvec = evbuffer_peek(in, (ev_ssize_t)n, NULL, vec, 8);
			size_t done = 0;
			for (int i = 0; i < nvec && i < 8 && done < n; i++) {
				size_t len = vec[i].iov_len < n - done ? vec[i].iov_len : n - done;
				if (t->bdat_refusal == NULL)
					intake_write(t->job, vec[i].iov_base, len);
				done += len;
			}
			evbuffer_drain(in, done);
			t->bdat_remaining -= done;
			if (t->bdat_remaining > 0)
				return evbuffer_get_length(in) > 0;
		}
		bdat_chunk_done(s);
		return true;
	}
	/* DATA */
	if (avail == 0)
		return false;
	struct evbuffer_iovec vec[8];
	int nvec = evbuffer_peek(in, -1, NULL, vec, 8);
	size_t consumed = 0;
	bool done = false;
	for (int i = 0; i < nvec && i < 8 && !done; i++)
		consumed += smtp_data_feed(&t->dec, vec[i].iov_base, vec[i].iov_len, &done);
	evbuffer_drain(in, consumed);
	if (!done)
		return evbuffer_get_length(in) > 0;
	txn_finish(s);
	return true;
}

/* The mail transaction: MAIL, RCPT, DATA and BDAT (RFC 5321 3.3, RFC 3030),
 * with the submission policy (RFC 6409) and the inbound MX policy. */
#include "submission/smtp-private.h"
#include "auth/auth.h"
#include "core/ratelimit.h"
#include "queue/queue.h"
#include "store/store.h"

#include <errno.h>
#include <event2/buffer.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void smtp_txn_abort(struct smtp_session *s)
{
	struct smtp_txn *t = s->txn;
	if (t == NULL)
		return;
	store_delivery_free(&t->delivery);
	queue_writer_free(&t->spool);
	smtp_message_free(&t->msg);
	pool_free(&t->pool);
	free(t);
	s->txn = NULL;
}

static void txn_new_id(char *id, size_t size)
{
	unsigned char rnd[6];
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		fatal("event=rand-failed");
	snprintf(id, size, "%02X%02X%02X%02X%02X%02X", rnd[0], rnd[1], rnd[2], rnd[3], rnd[4],
		 rnd[5]);
}

void smtp_cmd_mail(struct smtp_session *s, const char *args)
{
	const struct config *cfg = conn_config(s->conn);
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
	    ratelimit_count(conn_services(s->conn)->ratelimit, s->user, 3600, time(NULL)) >=
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
	/* submission: only the user's own addresses (RFC 6409 6.1) */
	if (smtp_is_submission(s) && t->sender.address[0] != '\0' &&
	    !auth_sender_allowed(conn_services(s->conn)->auth, s->user, t->sender.address)) {
		char line[600];
		snprintf(line, sizeof(line),
			 "553 5.7.1 Sender address rejected: not owned by user %s", s->user);
		log_info("event=sender-rejected reason=login-mismatch");
		pool_free(&t->pool);
		free(t);
		smtp_reply(s, line);
		return;
	}
	txn_new_id(t->id, sizeof(t->id));
	s->txn = t;
	smtp_set_state(s, SMTP_STATE_MAIL);
	smtp_reply(s, "250 2.1.0 Ok");
}

static void rcpt_add_target(struct smtp_txn *t, struct smtp_rcpt *r, const char *address,
			    bool local)
{
	char ***list = local ? &r->local : &r->remote;
	size_t *count = local ? &r->local_count : &r->remote_count;
	char **grown = pool_alloc(t->pool, (*count + 1) * sizeof(char *));
	if (*count > 0)
		memcpy(grown, *list, *count * sizeof(char *));
	grown[(*count)++] = pool_strdup(t->pool, address);
	*list = grown;
	if (local)
		t->local_total++;
	else
		t->remote_total++;
}

/* Quota at RCPT time, so an over-quota mailbox is refused per recipient
 * rather than after DATA for everyone. The limit lives in the account
 * database (postern user quota); the store enforces the copy it is given
 * here, kept in step at each delivery. */
static const char *rcpt_check_quota(struct smtp_session *s, const char *account)
{
	struct services *sv = conn_services(s->conn);
	struct store_account *acct;
	struct auth_user user;
	const char *error;
	uint64_t used, limit;
	if (auth_user_lookup(sv->auth, account, &user) != 1)
		return NULL;
	if (store_account_open(sv->store, account, &acct, &error) < 0)
		return NULL;   /* delivery will tell */
	int r = store_account_get_quota(acct, &used, &limit, &error);
	if (r == 0 && limit != user.quota &&
	    store_account_set_quota(acct, user.quota, &error) < 0)
		log_warn("event=quota-sync-failed account=%s error=\"%s\"", account, error);
	store_account_close(&acct);
	uint64_t incoming = s->txn->params.has_size ? s->txn->params.size : 0;
	if (r < 0 || user.quota == 0 || used + incoming <= user.quota)
		return NULL;
	return conn_config(s->conn)->smtp_quota_full_tempfail ?
		"452 4.2.2 Mailbox full" : "552 5.2.2 Mailbox full";
}

void smtp_cmd_rcpt(struct smtp_session *s, const char *args)
{
	const struct config *cfg = conn_config(s->conn);
	struct services *sv = conn_services(s->conn);
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
	if (t->rcpt_count >= (size_t)cfg->smtp_max_recipients) {
		smtp_reply(s, "452 4.5.3 Error: too many recipients");
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
	const char *at = strrchr(address, '@');
	bool local_domain = at != NULL && auth_domain_is_local(sv->auth, at + 1);

	if (!local_domain) {
		if (!smtp_is_submission(s)) {
			smtp_reply(s, "554 5.7.1 Relay access denied");
			return;
		}
		if (cfg->relay_mode == RELAY_NONE) {
			smtp_reply(s, "554 5.7.1 Relay access denied: this server delivers only locally");
			return;
		}
		/* the relay has no BDAT: binary content could only bounce later */
		if (t->params.body == SMTP_BODY_BINARYMIME) {
			smtp_reply(s, "554 5.6.3 BINARYMIME cannot be relayed to other servers");
			return;
		}
	}

	if (t->rcpt_count == t->rcpt_cap) {
		size_t cap = t->rcpt_cap == 0 ? 4 : t->rcpt_cap * 2;
		struct smtp_rcpt *grown = pool_alloc(t->pool, cap * sizeof(*grown));
		if (t->rcpt_count > 0)
			memcpy(grown, t->rcpts, t->rcpt_count * sizeof(*grown));
		t->rcpts = grown;
		t->rcpt_cap = cap;
	}
	struct smtp_rcpt *r = &t->rcpts[t->rcpt_count];
	memset(r, 0, sizeof(*r));
	r->address = pool_strdup(t->pool, address);
	r->params = params;

	if (!local_domain) {
		rcpt_add_target(t, r, address, false);
	} else {
		struct auth_recipients list = { NULL, 0 };
		const char *error = NULL;
		int found = auth_resolve_recipient(sv->auth, address, &list, &error);
		if (found == 0) {
			smtp_reply(s, "550 5.1.1 Recipient address rejected: user unknown");
			return;
		}
		if (found < 0) {
			log_warn("event=rcpt-lookup-failed error=\"%s\"", error != NULL ? error : "");
			smtp_reply(s, "451 4.3.0 Temporary failure looking up the recipient");
			return;
		}
		for (size_t i = 0; i < list.count; i++) {
			if (list.items[i].local) {
				const char *full = rcpt_check_quota(s, list.items[i].address);
				if (full != NULL && list.count == 1) {
					auth_recipients_free(&list);
					smtp_reply(s, full);
					return;
				}
			} else if (cfg->relay_mode == RELAY_NONE) {
				continue;   /* an alias's outside target, with relaying off */
			}
			rcpt_add_target(t, r, list.items[i].address, list.items[i].local);
		}
		auth_recipients_free(&list);
		if (r->local_count + r->remote_count == 0) {
			smtp_reply(s, "550 5.1.1 Recipient address rejected: no deliverable target");
			return;
		}
	}
	t->rcpt_count++;
	smtp_reply(s, "250 2.1.5 Ok");
}

/* ---- the message ---- */

static void txn_write(void *ctx, const char *data, size_t len)
{
	struct smtp_txn *t = ctx;
	const char *error;
	if (t->write_error != NULL)
		return;
	int r;
	if (t->delivery != NULL && (r = store_delivery_write(t->delivery, data, len, &error)) < 0) {
		t->write_error = pool_strdup(t->pool, error);
		t->write_nospace = r == STORE_ERR_NOSPACE;
	} else if (t->spool != NULL && queue_writer_write(t->spool, data, len, &error) < 0) {
		t->write_nospace = errno == ENOSPC || errno == EDQUOT;
		t->write_error = pool_strdup(t->pool, error);
	}
}

static void decoded_write(void *ctx, const char *data, size_t len)
{
	struct smtp_txn *t = ctx;
	smtp_message_feed(&t->msg, data, len);
}

/* The trace fields (RFC 5321 4.4), first in the message: Received:, and
 * when the message is written into the store (final delivery) the
 * Return-Path: with the envelope sender in front of it. The relay leaves
 * that line out when the same file goes on to other hosts. */
static char *trace_fields(struct smtp_session *s)
{
	struct smtp_txn *t = s->txn;
	const struct config *cfg = conn_config(s->conn);
	struct buf b = BUF_INIT;
	char date[64];
	const char *with = t->params.smtputf8 ? "UTF8SMTP" : "ESMTP";
	smtp_rfc5322_date(time(NULL), date, sizeof(date));
	if (t->local_total > 0) {
		buf_append_str(&b, "Return-Path: <");
		buf_append_sanitized(&b, t->sender.address, strlen(t->sender.address));
		buf_append_str(&b, ">\r\n");
	}
	buf_append_str(&b, "Received: from ");
	buf_append_sanitized(&b, s->helo, strlen(s->helo));
	buf_printf(&b, " ([%s])\r\n\tby %s (Postern) with %s%s%s id %s",
		   conn_remote_ip(s->conn), cfg->hostname, !s->esmtp ? "SMTP" : with,
		   conn_is_tls(s->conn) ? "S" : "", s->user != NULL ? "A" : "", t->id);
	if (conn_is_tls(s->conn))
		buf_printf(&b, "\r\n\t(%s)", conn_tls_description(s->conn));
	if (s->user != NULL) {
		buf_append_str(&b, "\r\n\t(authenticated user ");
		buf_append_sanitized(&b, s->user, strlen(s->user));
		buf_append_char(&b, ')');
	}
	if (t->rcpt_count == 1) {
		buf_append_str(&b, "\r\n\tfor <");
		buf_append_sanitized(&b, t->rcpts[0].address, strlen(t->rcpts[0].address));
		buf_append_char(&b, '>');
	}
	buf_printf(&b, ";\r\n\t%s\r\n", date);
	return b.data;
}

/* Opens where the message goes: the store when there are hosted
 * recipients, else a queue spool file. The queue links the store's file
 * afterwards when it needs one (remote recipients too, or a local
 * delivery to retry): the message is written once. */
static int txn_begin_message(struct smtp_session *s)
{
	struct smtp_txn *t = s->txn;
	struct services *sv = conn_services(s->conn);
	const char *error;
	if ((t->local_total > 0 && store_delivery_begin(sv->store, &t->delivery, &error) < 0) ||
	    (t->local_total == 0 && queue_writer_begin(sv->queue, &t->spool, &error) < 0)) {
		log_error("event=message-begin-failed error=\"%s\"", error);
		return -1;
	}
	char *trace = trace_fields(s);
	smtp_message_init(&t->msg, trace, smtp_is_submission(s), conn_config(s->conn)->hostname,
			  txn_write, t);
	free(trace);
	t->started = true;
	return 0;
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
	if (txn_begin_message(s) < 0) {
		smtp_txn_abort(s);
		smtp_set_state(s, SMTP_STATE_READY);
		smtp_reply(s, "451 4.3.0 Error: cannot store the message now");
		return;
	}
	const struct config *cfg = conn_config(s->conn);
	smtp_data_init(&t->dec, cfg->smtp_max_message_size, cfg->smtp_normalize_bare_lf,
		       decoded_write, t);
	smtp_set_state(s, SMTP_STATE_DATA);
	smtp_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

/* The end of the message: the reply, and back to no transaction. */
static void txn_finish(struct smtp_session *s, const char *refusal)
{
	const char *reply = refusal;
	if (reply == NULL)
		reply = smtp_deliver(s);
	smtp_reply(s, reply);
	smtp_txn_abort(s);
	smtp_set_state(s, SMTP_STATE_READY);
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
	if (t->bdat_refusal == NULL && !t->started && txn_begin_message(s) < 0)
		t->bdat_refusal = "451 4.3.0 Error: cannot store the message now";
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
		smtp_message_finish(&t->msg);
		txn_finish(s, NULL);
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
					smtp_message_feed(&t->msg, vec[i].iov_base, len);
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
	if (smtp_data_refused(&t->dec)) {
		txn_finish(s, smtp_data_error_reply(&t->dec));
		return true;
	}
	smtp_message_finish(&t->msg);
	txn_finish(s, NULL);
	return true;
}

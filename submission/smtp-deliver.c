/* The hand-off at the end of a message: header policy, then local
 * recipients through the store and everything else into the queue, all
 * durable before the 250 (DESIGN.md: nothing acknowledged is ever lost). */
#include "submission/smtp-private.h"
#include "auth/auth.h"
#include "core/metrics.h"
#include "core/ratelimit.h"
#include "relay/queue.h"
#include "store/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct target {
	const char *address;
	const struct smtp_rcpt *rcpt;
	bool local;
	int result;     /* store result for local targets */
};

static const char *header_policy(struct smtp_session *s)
{
	struct smtp_txn *t = s->txn;
	const struct config *cfg = conn_config(s->conn);
	if (t->msg.received_count > cfg->smtp_max_received)
		return "554 5.4.6 Too many Received: headers, mail loop suspected";
	if (!smtp_is_submission(s))
		return NULL;
	if (t->msg.from_unparsable)
		return "553 5.7.1 From: header cannot be checked against the login";
	for (int i = 0; i < t->msg.from_count; i++) {
		if (!auth_sender_allowed(conn_services(s->conn)->auth, s->user, t->msg.from[i])) {
			log_info("event=sender-rejected reason=header-from-mismatch");
			return "553 5.7.1 From: header address not owned by the authenticated user";
		}
	}
	return NULL;
}

/* Every distinct final destination of the transaction. */
static struct target *collect_targets(struct smtp_txn *t, size_t *count_r)
{
	struct target *all = pool_alloc(t->pool, (t->local_total + t->remote_total + 1) *
						 sizeof(*all));
	size_t n = 0;
	for (size_t i = 0; i < t->rcpt_count; i++) {
		const struct smtp_rcpt *r = &t->rcpts[i];
		for (int pass = 0; pass < 2; pass++) {
			char **list = pass == 0 ? r->local : r->remote;
			size_t count = pass == 0 ? r->local_count : r->remote_count;
			for (size_t j = 0; j < count; j++) {
				bool dup = false;
				for (size_t k = 0; k < n && !dup; k++)
					dup = all[k].local == (pass == 0) &&
					      ascii_strcasecmp(all[k].address, list[j]) == 0;
				if (dup)
					continue;
				all[n].address = list[j];
				all[n].rcpt = r;
				all[n].local = pass == 0;
				all[n].result = 0;
				n++;
			}
		}
	}
	*count_r = n;
	return all;
}

static void fill_queue_rcpt(struct queue_rcpt *q, const struct target *tg)
{
	const struct smtp_rcpt_params *p = &tg->rcpt->params;
	memset(q, 0, sizeof(*q));
	q->address = (char *)tg->address;
	q->notify = p->notify;
	/* RFC 3461 4.2: keep what the client named, for Original-Recipient */
	q->orcpt = p->orcpt;
	q->local = tg->local;
	q->state = QUEUE_RCPT_PENDING;
}

static int enqueue(struct smtp_session *s, struct target *targets, size_t n,
		   char *id_r, size_t id_size)
{
	struct smtp_txn *t = s->txn;
	struct queue_entry e;
	const char *error;
	memset(&e, 0, sizeof(e));
	e.sender = t->sender.address;
	e.envid = t->params.envid;
	e.ret = t->params.ret == SMTP_RET_FULL ? QUEUE_RET_FULL :
		t->params.ret == SMTP_RET_HDRS ? QUEUE_RET_HDRS : QUEUE_RET_UNSET;
	e.body = t->params.body == SMTP_BODY_7BIT ? QUEUE_BODY_7BIT :
		 t->params.body == SMTP_BODY_8BITMIME ? QUEUE_BODY_8BITMIME :
		 t->params.body == SMTP_BODY_BINARYMIME ? QUEUE_BODY_BINARYMIME : QUEUE_BODY_UNSET;
	e.smtputf8 = t->params.smtputf8;
	e.user = s->user;
	e.rcpts = pool_alloc(t->pool, (n + 1) * sizeof(*e.rcpts));
	for (size_t i = 0; i < n; i++) {
		if (!targets[i].local || targets[i].result < 0)
			fill_queue_rcpt(&e.rcpts[e.rcpt_count++], &targets[i]);
	}
	if (e.rcpt_count == 0)
		return 0;
	if (t->spool == NULL &&
	    queue_writer_begin_link(conn_services(s->conn)->queue,
				    store_delivery_file(t->delivery), &t->spool, &error) < 0) {
		log_error("event=queue-failed error=\"%s\"", error);
		return -1;
	}
	if (queue_writer_commit(t->spool, &e, &error) < 0) {
		log_error("event=queue-failed error=\"%s\"", error);
		return -1;
	}
	snprintf(id_r, id_size, "%s", e.id);
	return 1;
}

const char *smtp_deliver(struct smtp_session *s)
{
	struct smtp_txn *t = s->txn;
	const struct config *cfg = conn_config(s->conn);
	static char reply[128];

	if (t->write_error != NULL) {
		log_error("event=message-write-failed error=\"%s\"", t->write_error);
		return t->write_nospace ? "452 4.3.1 Insufficient system storage" :
					  "451 4.3.0 Error: local problem storing the message";
	}
	const char *refusal = header_policy(s);
	if (refusal != NULL)
		return refusal;

	size_t n;
	struct target *targets = collect_targets(t, &n);
	size_t local = 0, local_ok = 0, overquota = 0, nospace = 0;
	for (size_t i = 0; i < n; i++)
		local += targets[i].local;
	if (local > 0) {
		struct store_recipient *rcpts = pool_alloc(t->pool, local * sizeof(*rcpts));
		size_t k = 0;
		for (size_t i = 0; i < n; i++) {
			if (targets[i].local)
				rcpts[k++].address = targets[i].address;
		}
		store_delivery_commit(t->delivery, rcpts, local);
		k = 0;
		for (size_t i = 0; i < n; i++) {
			if (!targets[i].local)
				continue;
			targets[i].result = rcpts[k].result;
			if (rcpts[k].result == 0) {
				local_ok++;
			} else {
				if (rcpts[k].result == STORE_ERR_OVERQUOTA)
					overquota++;
				if (rcpts[k].result == STORE_ERR_NOSPACE)
					nospace++;
				log_warn("event=local-delivery-failed account=%s error=\"%s\"",
					 targets[i].address, rcpts[k].error ? rcpts[k].error : "");
			}
			k++;
		}
	}
	size_t remote = n - local;
	/* nothing delivered and nothing to queue: the client keeps the message */
	if (remote == 0 && local_ok == 0) {
		if (overquota == local)
			return cfg->smtp_quota_full_tempfail ? "452 4.2.2 Mailbox full" :
							       "552 5.2.2 Mailbox full";
		if (nospace > 0)
			return "452 4.3.1 Insufficient system storage";
		return "451 4.3.0 Error: local problem storing the message";
	}
	char id[QUEUE_ID_LEN + 1] = "";
	int queued = enqueue(s, targets, n, id, sizeof(id));
	if (queued < 0) {
		/* the client will send again: better twice than never */
		return errno == ENOSPC || errno == EDQUOT ? "452 4.3.1 Insufficient system storage" :
			"451 4.3.0 Error: cannot queue the message now";
	}
	log_info("event=message-accepted id=%s queue-id=%s from=<%s> size=%llu rcpts=%zu "
		 "local=%zu remote=%zu retry-local=%zu",
		 t->id, queued > 0 ? id : "-", t->sender.address,
		 (unsigned long long)(t->bdat ? t->bdat_total : t->dec.size), t->rcpt_count, local_ok, remote,
		 local - local_ok);
	metrics_count(METRIC_MESSAGES_ACCEPTED);
	if (s->user != NULL && cfg->smtp_rate_limit > 0)
		ratelimit_hit(conn_services(s->conn)->ratelimit, s->user, 3600, time(NULL));
	snprintf(reply, sizeof(reply), "250 2.0.0 Ok: queued as %s", queued > 0 ? id : t->id);
	return reply;
}

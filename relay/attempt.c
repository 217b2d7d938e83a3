/* One delivery attempt of one queued message: recipients in hosted
 * domains go to intake (aliases, quota, the store) at once; the others are
 * grouped by destination into SMTP transactions (DNS, then the client);
 * each recipient's answer is recorded, and when the last transaction
 * ends the attempt is accounted for (DSNs, retry time, or the record
 * goes). */
#include "relay/runner.h"
#include "core/metrics.h"
#include "intake/intake.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void set_str(char **field, const char *value)
{
	free(*field);
	*field = value != NULL ? xstrdup(value) : NULL;
}

static const char *rcpt_domain(const char *address)
{
	const char *at = strrchr(address, '@');
	return at != NULL ? at + 1 : "";
}


static struct relay_msg *msg_find(struct relay *r, const char *id)
{
	for (struct relay_msg *m = r->msgs; m != NULL; m = m->next) {
		if (strcmp(m->entry.id, id) == 0)
			return m;
	}
	return NULL;
}


bool attempt_in_flight(struct relay *r, const char *id)
{
	return msg_find(r, id) != NULL;
}

static int jobs_for(struct relay *r, const char *dest)
{
	int n = 0;
	for (struct relay_job *j = r->jobs; j != NULL; j = j->next)
		n += ascii_strcasecmp(j->dest, dest) == 0 ? 1 : 0;
	return n;
}

static bool host_is_down(struct relay *r, const char *ip, time_t now)
{
	for (struct down_host **p = &r->down; *p != NULL;) {
		struct down_host *d = *p;
		if (d->until <= now) {
			*p = d->next;
			free(d);
			continue;
		}
		if (strcmp(d->ip, ip) == 0)
			return true;
		p = &d->next;
	}
	return false;
}

static void host_unreachable(void *ctx, const struct relay_addr *addr)
{
	struct relay_job *job = ctx;
	struct relay *r = job->r;
	if (r->cfg->relay_host_down_time <= 0 || host_is_down(r, addr->ip, time(NULL)))
		return;
	struct down_host *d = xcalloc(1, sizeof(*d));
	snprintf(d->ip, sizeof(d->ip), "%s", addr->ip);
	d->until = time(NULL) + r->cfg->relay_host_down_time;
	d->next = r->down;
	r->down = d;
	log_info("event=relay-host-down ip=%s host=%s for=%ds", addr->ip, addr->host,
		 r->cfg->relay_host_down_time);
}

/* Next attempt after `attempts` attempts: the schedule's gaps, the last
 * one repeating, never past the end of the message's lifetime (it is
 * then bounced on time). */
static time_t next_attempt_time(const struct config *cfg, const struct queue_entry *e,
				time_t now)
{
	int n = e->attempts < 1 ? 0 : e->attempts - 1;
	if (n >= cfg->relay_retry_count)
		n = cfg->relay_retry_count - 1;
	time_t next = now + cfg->relay_retry_schedule[n];
	time_t deadline = e->arrival + cfg->relay_max_lifetime;
	return next > deadline ? deadline : next;
}


/* The TLS facts of a delivery: "TLSv1.3 SUITE verified=yes auth=dane"
 * ("none verified=no auth=none" in clear). */
struct tls_facts {
	char text[200];
};

static void tls_facts_set(struct tls_facts *f, const char *tls, bool verified, const char *auth)
{
	snprintf(f->text, sizeof(f->text), "%s verified=%s auth=%s", tls[0] ? tls : "none",
		 verified ? "yes" : "no", auth);
}

static void log_result(const struct queue_entry *e, const struct queue_rcpt *q, int code,
		       const char *host, const char *ip, const struct tls_facts *tls,
		       const char *reply)
{
	const char *status = code >= 200 && code < 300 ? "sent" :
			     code >= 500 ? "bounced" : "deferred";
	char clean[512];
	log_sanitize(clean, sizeof(clean), reply, strlen(reply));
	/* tls="VERSION SUITE" ... verified=yes|no tls_auth=dane|mta-sts|smarthost|none */
	char version[128] = "none";
	const char *verified = "no", *auth = "none";
	if (tls != NULL) {
		const char *v = strstr(tls->text, " verified=");
		snprintf(version, sizeof(version), "%.*s", v != NULL ? (int)(v - tls->text) : 0,
			 tls->text);
		verified = v != NULL && strncmp(v, " verified=yes", 13) == 0 ? "yes" : "no";
		const char *a = strstr(tls->text, " auth=");
		auth = a != NULL ? a + 6 : "none";
	}
	log_info("event=relay-delivery id=%s rcpt=%s host=%s ip=%s tls=\"%s\" status=%s code=%d "
		 "delay=%llds verified=%s tls_auth=%s reply=\"%s\"", e->id, q->address,
		 host[0] ? host : "-", ip[0] ? ip : "-", version, status, code,
		 (long long)(time(NULL) - e->arrival), verified, auth, clean);
	metrics_relay_result(code, q->local);
}

/* Records one recipient's result in the entry; success is the DSN
 * action a 2xx may report (-1: none, the peer passes NOTIFY on). */
static void apply_result(struct relay_msg *m, size_t i, int code, const char *reply,
			 const char *host, int success)
{
	struct queue_rcpt *q = &m->entry.rcpts[i];
	q->attempts++;
	set_str(&q->last_error, reply);
	set_str(&q->last_host, host != NULL && host[0] != '\0' ? host : NULL);
	if (code >= 200 && code < 300) {
		q->state = QUEUE_RCPT_DONE;
		if (success >= 0)
			m->outcome[i] = (unsigned char)(success + 1);
	} else if (code >= 500) {
		q->state = QUEUE_RCPT_FAILED;
		m->outcome[i] = DSN_FAILED + 1;
	}
}


/* ---- an attempt ends ---- */

static void msg_free(struct relay *r, struct relay_msg *m)
{
	for (struct relay_msg **p = &r->msgs; *p != NULL; p = &(*p)->next) {
		if (*p == m) {
			*p = m->next;
			break;
		}
	}
	queue_entry_free(&m->entry);
	free(m->outcome);
	free(m);
}

static void finish_attempt(struct relay *r, struct relay_msg *m)
{
	struct queue_entry *e = &m->entry;
	time_t now = time(NULL);
	const char *error;
	e->attempts++;
	e->last_attempt = now;
	size_t pending = relay_pending_count(e);
	/* is the record still there (`postern queue delete`)? */
	struct queue_entry current;
	int exists = queue_entry_get(r->svc->queue, e->id, &current, &error);
	if (exists == 1)
		queue_entry_free(&current);
	static const enum dsn_action reported[] = { DSN_FAILED, DSN_DELIVERED, DSN_RELAYED };
	bool *which = xcalloc(e->rcpt_count + 1, sizeof(bool));
	for (size_t k = 0; exists != 0 && k < sizeof(reported) / sizeof(reported[0]); k++) {
		bool any = false;
		for (size_t i = 0; i < e->rcpt_count; i++) {
			which[i] = m->outcome[i] == reported[k] + 1 &&
				   dsn_wanted(&e->rcpts[i], reported[k]);
			any |= which[i];
		}
		if (any)
			relay_send_dsn(r, e, which, reported[k]);
	}
	free(which);
	if (exists == 0) {
		log_info("event=relay-attempt-done id=%s note=\"deleted meanwhile\"", e->id);
	} else if (pending == 0) {
		relay_finished(r, e);
	} else {
		e->next_attempt = next_attempt_time(r->cfg, e, now);
		relay_save_entry(r, e);
		log_info("event=relay-attempt-done id=%s pending=%zu next_in=%llds", e->id, pending,
			 (long long)(e->next_attempt - now));
		relay_wake_at(r, e->next_attempt);
	}
	msg_free(r, m);
	relay_attempt_ended(r);
}

static long elapsed_ms(const struct timeval *since)
{
	struct timeval now;
	gettimeofday(&now, NULL);
	return (now.tv_sec - since->tv_sec) * 1000L + (now.tv_usec - since->tv_usec) / 1000;
}

static void job_free(struct relay *r, struct relay_job *job)
{
	for (struct relay_job **p = &r->jobs; *p != NULL; p = &(*p)->next) {
		if (*p == job) {
			*p = job->next;
			break;
		}
	}
	r->job_count--;
	relay_dns_cancel(&job->lookup);
	relay_mtasts_cancel(&job->sts_lookup);
	relay_mtasts_clear(&job->sts);
	smtp_client_free(&job->client);
	for (size_t i = 0; i < job->count; i++)
		free(job->rcpts[i].reply);
	free(job->rcpts);
	free(job->index);
	free(job->addrs);
	free(job);
}

static void job_finish(struct relay_job *job, const char *host, const char *ip,
		       const struct tls_facts *tls, bool peer_dsn)
{
	struct relay *r = job->r;
	struct relay_msg *m = job->msg;
	for (size_t k = 0; k < job->count; k++) {
		struct smtp_client_rcpt *c = &job->rcpts[k];
		size_t i = job->index[k];
		apply_result(m, i, c->code, c->reply, host, peer_dsn ? -1 : DSN_RELAYED);
		/* what the connection that answered was (none when none did) */
		set_str(&m->entry.rcpts[i].last_tls, host[0] != '\0' && tls != NULL ? tls->text :
			NULL);
		log_result(&m->entry, &m->entry.rcpts[i], c->code, host, ip, tls, c->reply);
	}
	/* done recipients are recorded at once: a restart must not resend
	 * them (the last transaction of an attempt leaves that to
	 * finish_attempt, which removes or rewrites the record: one durable
	 * commit instead of two) */
	if (m->jobs > 1)
		relay_save_entry(r, &m->entry);
	job_free(r, job);
	if (--m->jobs == 0)
		finish_attempt(r, m);
	if (r->stopping && r->job_count == 0)
		relay_drained(r);
}

static void job_all_failed(struct relay_job *job, int code, const char *reply)
{
	for (size_t k = 0; k < job->count; k++) {
		job->rcpts[k].code = code;
		set_str(&job->rcpts[k].reply, reply);
	}
	job_finish(job, "", "", NULL, false);
}

static void job_client_done(void *ctx)
{
	struct relay_job *job = ctx;
	char host[256], ip[64];
	struct tls_facts tls;
	snprintf(host, sizeof(host), "%s", smtp_client_host(job->client));
	snprintf(ip, sizeof(ip), "%s", smtp_client_ip(job->client));
	tls_facts_set(&tls, smtp_client_tls(job->client), smtp_client_verified(job->client),
		      smtp_client_tls_auth(job->client));
	bool peer_dsn = smtp_client_peer_dsn(job->client);
	job->client = NULL;   /* it says QUIT and frees itself */
	log_debug("event=relay-transaction-done id=%s dest=%s ms=%ld", job->msg->entry.id,
		  job->dest, elapsed_ms(&job->started));
	job_finish(job, host, ip, &tls, peer_dsn);
}

/* RFC 8461 4 and 2 (DANE first): which addresses the destination's
 * MTA-STS policy leaves, and what it asks of each. False when an enforce
 * policy leaves none (the reply says why). */
static bool apply_mtasts(struct relay_job *job, char *reply, size_t size)
{
	const struct relay_mtasts_policy *p = &job->sts;
	if (p->mode == RELAY_MTASTS_MODE_NONE)
		return true;
	size_t kept = 0;
	bool any_dane = false;
	for (size_t i = 0; i < job->addr_count; i++) {
		struct relay_addr *a = &job->addrs[i];
		bool match = relay_mtasts_match(p, a->host);
		if (a->dane != RELAY_DANE_NONE) {
			any_dane = true;
			job->addrs[kept++] = *a;   /* DANE takes precedence (RFC 8461 2) */
			continue;
		}
		if (p->mode == RELAY_MTASTS_MODE_ENFORCE && !match) {
			log_info("event=mta-sts-skip id=%s domain=%s host=%s reason=\"not an mx of "
				 "the policy\"", job->msg->entry.id, job->dest, a->host);
			continue;
		}
		if (p->mode == RELAY_MTASTS_MODE_TESTING && !match)
			log_warn("event=mta-sts-testing id=%s domain=%s host=%s problem=\"not an mx "
				 "of the policy\" note=\"delivered anyway: the policy is in testing "
				 "mode\"", job->msg->entry.id, job->dest, a->host);
		a->mtasts = p->mode == RELAY_MTASTS_MODE_ENFORCE ? RELAY_STS_ENFORCE :
			    RELAY_STS_TESTING;
		job->addrs[kept++] = *a;
	}
	job->addr_count = kept;
	if (kept == 0 && !any_dane) {
		snprintf(reply, size, "451 4.7.5 MTA-STS policy of %s (enforce): none of its mail "
			 "exchangers matches the policy's mx patterns", job->dest);
		return false;
	}
	return true;
}

/* Both the addresses and the MTA-STS policy are known: start the client. */
static void job_connect(struct relay_job *job)
{
	struct relay *r = job->r;
	if (!job->dns_done || !job->sts_done)
		return;
	char reply[400];
	if (job->dns_status != 0) {
		snprintf(reply, sizeof(reply), "%d %s", job->dns_status == 5 ? 550 : 451,
			 job->dns_error);
		job_all_failed(job, job->dns_status == 5 ? 550 : 451, reply);
		return;
	}
	time_t now = time(NULL);
	size_t kept = 0;
	for (size_t i = 0; i < job->addr_count; i++) {
		if (!host_is_down(r, job->addrs[i].ip, now))
			job->addrs[kept++] = job->addrs[i];
	}
	job->addr_count = kept;
	if (job->addr_count == 0) {
		snprintf(reply, sizeof(reply),
			 "451 4.4.1 every host of %s was unreachable recently", job->dest);
		job_all_failed(job, 451, reply);
		return;
	}
	if (!apply_mtasts(job, reply, sizeof(reply))) {
		job_all_failed(job, 451, reply);
		return;
	}
	struct smtp_client_params p;
	memset(&p, 0, sizeof(p));
	p.base = r->base;
	p.tls_ctx = r->tls_ctx;
	bool smarthost = strcmp(job->dest, RELAY_SMARTHOST_KEY) == 0;
	if (smarthost && r->smarthost_tls_ctx != NULL) {
		p.tls_ctx = r->smarthost_tls_ctx;
		p.verify_name = r->smarthost;
	}
	if (!smarthost)
		p.verify_ctx = r->verify_tls_ctx;
	p.domain = job->dest;
	if (smarthost && strcmp(r->cfg->relay_smarthost_tls, "implicit") == 0)
		p.tls = SMTP_TLS_IMPLICIT;
	else if (r->cfg->relay_require_tls || (smarthost && r->auth_user != NULL))
		p.tls = SMTP_TLS_REQUIRED;
	else
		p.tls = SMTP_TLS_OPPORTUNISTIC;
	p.helo = r->cfg->hostname;
	p.auth_user = smarthost ? r->auth_user : NULL;
	p.auth_pass = smarthost ? r->auth_pass : NULL;
	p.entry = &job->msg->entry;
	char *spool = queue_spool_path(r->svc->queue, job->msg->entry.id);
	p.spool_path = spool;
	p.addrs = job->addrs;
	p.addr_count = job->addr_count;
	p.rcpts = job->rcpts;
	p.rcpt_count = job->count;
	p.unreachable = host_unreachable;
	p.done = job_client_done;
	p.ctx = job;
	p.registry = &r->clients;
	job->client = smtp_client_start(&p);   /* opens the spool at once */
	free(spool);
}

static void job_dns_done(void *ctx, int status, const char *error,
			 const struct relay_addr *addrs, size_t count)
{
	struct relay_job *job = ctx;
	job->lookup = NULL;
	log_debug("event=relay-dns-done id=%s dest=%s status=%d addresses=%zu ms=%ld",
		  job->msg->entry.id, job->dest, status, count, elapsed_ms(&job->started));
	job->dns_done = true;
	job->dns_status = status;
	snprintf(job->dns_error, sizeof(job->dns_error), "%s", error != NULL ? error : "");
	if (status == 0) {
		job->addrs = xcalloc(count + 1, sizeof(*job->addrs));
		memcpy(job->addrs, addrs, count * sizeof(*addrs));
		job->addr_count = count;
	}
	job_connect(job);
}

static void job_sts_done(void *ctx, const struct relay_mtasts_policy *policy, const char *note)
{
	struct relay_job *job = ctx;
	job->sts_lookup = NULL;
	job->sts_done = true;
	if (policy != NULL && policy->mode != RELAY_MTASTS_MODE_NONE) {
		job->sts = *policy;
		job->sts.mx = xcalloc(policy->mx_count + 1, sizeof(*job->sts.mx));
		for (size_t i = 0; i < policy->mx_count; i++)
			job->sts.mx[i] = xstrdup(policy->mx[i]);
	}
	log_debug("event=mta-sts id=%s domain=%s mode=%s note=\"%s\"", job->msg->entry.id,
		  job->dest, relay_mtasts_mode_name(job->sts.mode), note);
	job_connect(job);
}

/* One transaction for up to RELAY_RCPTS_PER_TRANSACTION pending
 * recipients of dest not yet assigned; false when none is left. */
static bool job_start(struct relay *r, struct relay_msg *m, const char *dest, bool *assigned)
{
	struct queue_entry *e = &m->entry;
	bool smarthost = strcmp(dest, RELAY_SMARTHOST_KEY) == 0;
	size_t n = 0;
	for (size_t i = 0; i < e->rcpt_count; i++) {
		const struct queue_rcpt *q = &e->rcpts[i];
		n += !assigned[i] && q->state == QUEUE_RCPT_PENDING && !q->local &&
		     (smarthost || ascii_strcasecmp(rcpt_domain(q->address), dest) == 0);
	}
	if (n == 0)
		return false;
	struct relay_job *job = xcalloc(1, sizeof(*job));
	job->r = r;
	job->msg = m;
	snprintf(job->dest, sizeof(job->dest), "%s", dest);
	job->index = xcalloc(n, sizeof(*job->index));
	job->rcpts = xcalloc(n, sizeof(*job->rcpts));
	for (size_t i = 0; i < e->rcpt_count && job->count < RELAY_RCPTS_PER_TRANSACTION; i++) {
		struct queue_rcpt *q = &e->rcpts[i];
		if (assigned[i] || q->state != QUEUE_RCPT_PENDING || q->local ||
		    (!smarthost && ascii_strcasecmp(rcpt_domain(q->address), dest) != 0))
			continue;
		assigned[i] = true;
		job->index[job->count] = i;
		job->rcpts[job->count].address = q->address;
		job->rcpts[job->count].orcpt = q->orcpt;
		job->rcpts[job->count].notify = q->notify;
		job->count++;
	}
	gettimeofday(&job->started, NULL);
	job->next = r->jobs;
	r->jobs = job;
	r->job_count++;
	m->jobs++;
	job->sts_done = smarthost || r->mtasts == NULL;
	if (!job->sts_done)
		job->sts_lookup = relay_mtasts_get(r->mtasts, dest, job_sts_done, job);
	if (smarthost)
		job->lookup = relay_dns_host(r->dns, r->smarthost, r->smarthost_port, job_dns_done,
					     job);
	else
		job->lookup = relay_dns_mx(r->dns, dest, r->cfg->relay_mx_port, r->cfg->relay_dane,
					   job_dns_done, job);
	return true;
}

/* ---- local recipients ---- */

/* Recipients in hosted domains never leave: they are marked local here
 * (a message queued before its domain was hosted, a bounce to a local
 * sender), so that no remote destination is made of them. */
static void mark_hosted(struct relay *r, struct relay_msg *m)
{
	struct queue_entry *e = &m->entry;
	for (size_t i = 0; i < e->rcpt_count; i++) {
		struct queue_rcpt *q = &e->rcpts[i];
		if (q->state == QUEUE_RCPT_PENDING && !q->local &&
		    intake_is_hosted(r->svc, q->address))
			q->local = true;
	}
}

static int spool_to_intake(struct intake *job, const char *spool, const char **error_r)
{
	int fd = open(spool, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*error_r = "cannot open the spool file";
		return -1;
	}
	/* intake writes its own Return-Path: in front */
	if (lseek(fd, queue_spool_body_start(fd), SEEK_SET) < 0) {
		close(fd);
		*error_r = "cannot read the spool file";
		return -1;
	}
	char chunk[65536];
	ssize_t n;
	int ret = 0;
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*error_r = "cannot read the spool file";
			ret = -1;
			break;
		}
		intake_write(job, chunk, (size_t)n);
	}
	close(fd);
	return ret;
}

static void local_result(struct relay_msg *m, size_t i, const struct intake_status *st,
			 uint32_t uid)
{
	char reply[400];
	if (st->code == INTAKE_OK)
		snprintf(reply, sizeof(reply), "250 2.0.0 delivered to the mailbox (uid %u)", uid);
	else
		snprintf(reply, sizeof(reply), "%d %s %s", st->reply, st->enhanced, st->text);
	apply_result(m, i, st->reply, reply, NULL, DSN_DELIVERED);
	log_result(&m->entry, &m->entry.rcpts[i], st->reply, "local", "", NULL, reply);
}

/* Hosted recipients get the message through intake (aliases expanded,
 * quota as the account database says now, Return-Path written once),
 * now. Returns whether there were any. */
static bool deliver_local(struct relay *r, struct relay_msg *m)
{
	struct queue_entry *e = &m->entry;
	struct intake_envelope env = {
		.origin = INTAKE_RETRY,
		.sender = e->sender,
		.body = e->body == QUEUE_BODY_7BIT ? INTAKE_BODY_7BIT :
			e->body == QUEUE_BODY_8BITMIME ? INTAKE_BODY_8BITMIME :
			e->body == QUEUE_BODY_BINARYMIME ? INTAKE_BODY_BINARYMIME : INTAKE_BODY_UNSET,
		.smtputf8 = e->smtputf8,
		.envid = e->envid,
		.ret = e->ret == QUEUE_RET_FULL ? INTAKE_RET_FULL :
		       e->ret == QUEUE_RET_HDRS ? INTAKE_RET_HDRS : INTAKE_RET_UNSET,
		.queue_id = e->id,
		.id = e->id,
		.prepend = e->prepend,
	};
	struct intake *job;
	struct intake_status st;
	size_t *idx = xcalloc(e->rcpt_count + 1, sizeof(*idx));
	size_t n = 0;
	bool any = false;
	if (intake_begin(r->svc, r->cfg, &env, &job, &st) < 0)
		job = NULL;
	for (size_t i = 0; i < e->rcpt_count; i++) {
		struct queue_rcpt *q = &e->rcpts[i];
		if (q->state != QUEUE_RCPT_PENDING || !q->local)
			continue;
		any = true;
		struct intake_rcpt_params p = { q->notify, q->orcpt };
		if (job == NULL)
			local_result(m, i, &st, 0);
		else if (intake_add_rcpt(job, q->address, &p, &st) == 0)
			idx[n++] = i;
		else
			local_result(m, i, &st, 0);
	}
	if (n > 0) {
		const char *error = NULL;
		char *spool = queue_spool_path(r->svc->queue, e->id);
		if (spool_to_intake(job, spool, &error) < 0) {
			intake_status_set(&st, r->cfg, INTAKE_LOCAL_ERROR, error);
			for (size_t k = 0; k < n; k++)
				local_result(m, idx[k], &st, 0);
		} else {
			intake_end(job, NULL, NULL, NULL);
			for (size_t k = 0; k < n; k++)
				local_result(m, idx[k], intake_rcpt_result(job, k),
					     intake_rcpt_uid(job, k));
		}
		free(spool);
	}
	intake_free(&job);
	free(idx);
	return any;
}

/* ---- starting an attempt ---- */

/* Distinct remote destinations of the pending recipients. */
static size_t remote_dests(struct relay *r, const struct queue_entry *e, const char **dests,
			   size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < e->rcpt_count; i++) {
		const struct queue_rcpt *q = &e->rcpts[i];
		if (q->state != QUEUE_RCPT_PENDING || q->local)
			continue;
		const char *d = r->cfg->relay_mode == RELAY_SMARTHOST ? RELAY_SMARTHOST_KEY :
				rcpt_domain(q->address);
		bool seen = false;
		for (size_t k = 0; k < n && !seen; k++)
			seen = ascii_strcasecmp(dests[k], d) == 0;
		if (!seen && n < max)
			dests[n++] = d;
	}
	return n;
}

/* Starts an attempt for a due message; false when the concurrency
 * limits say not now. */
bool attempt_start(struct relay *r, const struct queue_entry *entry)
{
	struct relay_msg *m = xcalloc(1, sizeof(*m));
	if (relay_entry_dup(entry, &m->entry) < 0) {
		free(m);
		return true;
	}
	m->outcome = xcalloc(m->entry.rcpt_count + 1, 1);
	m->next = r->msgs;
	r->msgs = m;
	mark_hosted(r, m);
	bool changed = false;

	const char **dests = xcalloc(m->entry.rcpt_count + 1, sizeof(*dests));
	size_t ndest = remote_dests(r, &m->entry, dests, m->entry.rcpt_count);
	if (r->cfg->relay_mode == RELAY_NONE)
		ndest = 0;
	bool busy = ndest > 0 && r->job_count > 0 &&
		    r->job_count + (int)ndest > r->cfg->relay_max_connections;
	for (size_t k = 0; k < ndest && !busy; k++)
		busy = jobs_for(r, dests[k]) >= r->cfg->relay_max_per_destination;
	if (busy) {
		free(dests);
		msg_free(r, m);
		return false;
	}
	changed |= deliver_local(r, m);
	if (r->cfg->relay_mode == RELAY_NONE) {
		changed = true;
		for (size_t i = 0; i < m->entry.rcpt_count; i++) {
			struct queue_rcpt *q = &m->entry.rcpts[i];
			if (q->state == QUEUE_RCPT_PENDING && !q->local) {
				q->attempts++;
				set_str(&q->last_error, "451 4.3.2 relaying is disabled here");
			}
		}
	}
	/* dests point into m->entry; job_start copies them */
	bool *assigned = xcalloc(m->entry.rcpt_count + 1, sizeof(bool));
	for (size_t k = 0; k < ndest; k++) {
		char dest[256];
		snprintf(dest, sizeof(dest), "%s", dests[k]);
		while (job_start(r, m, dest, assigned))
			;
	}
	free(assigned);
	free(dests);
	if (m->jobs == 0)
		finish_attempt(r, m);
	else if (changed)
		relay_save_entry(r, &m->entry);   /* local results and resolved recipients */
	return true;
}

void attempt_abandon_all(struct relay *r)
{
	while (r->jobs != NULL)
		job_free(r, r->jobs);
	while (r->msgs != NULL)
		msg_free(r, r->msgs);
}

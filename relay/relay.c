/* The relay process: runs the outbound queue in its own event loop.
 *
 * A scan walks the queue records: due messages start an attempt (local
 * recipients go to the store at once, remote ones are grouped by domain
 * into one SMTP transaction each), the others set the wake-up timer.
 * Scans run at start, when the queue directory says a record was
 * committed (inotify), when the timer fires and when an attempt ends.
 * A recipient is marked done in its record right after the peer's 250,
 * before anything else happens, so a restart never sends it twice. */
#include "relay/relay.h"
#include "relay/relay-private.h"
#include "auth/auth.h"
#include "store/store.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define RELAY_SMARTHOST_KEY "[smarthost]"
#define RELAY_LOCK_RETRY_MS 200
#define RELAY_IDLE_WAKE 3600
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
	char *auth_user, *auth_pass;
	char smarthost[256];
	int smarthost_port;
	struct event *notify_ev, *timer_ev, *scan_ev, *term_ev, *drain_ev, *lock_ev;
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

static void relay_scan_soon(struct relay *r);
static void relay_wake_at(struct relay *r, time_t t);
static void backlog_drain(struct relay *r);
static bool finished_has(struct relay *r, const char *id);
static void finished_push(struct relay *r, const struct queue_entry *e);

/* ---- small helpers ---- */

static int entry_dup(const struct queue_entry *src, struct queue_entry *dst)
{
	size_t len;
	char *data = queue_entry_serialize(src, &len);
	int ret = queue_entry_parse(data, len, dst);
	free(data);
	return ret;
}

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

static size_t pending_count(const struct queue_entry *e)
{
	size_t n = 0;
	for (size_t i = 0; i < e->rcpt_count; i++)
		n += e->rcpts[i].state == QUEUE_RCPT_PENDING ? 1 : 0;
	return n;
}

static struct relay_msg *msg_find(struct relay *r, const char *id)
{
	for (struct relay_msg *m = r->msgs; m != NULL; m = m->next) {
		if (strcmp(m->entry.id, id) == 0)
			return m;
	}
	return NULL;
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

static void save_entry(struct relay *r, const struct queue_entry *e)
{
	const char *error;
	if (queue_entry_replace(r->svc->queue, e, &error) < 0)
		log_error("event=relay-record-failed id=%s error=\"%s\"", e->id, error);
}

static void send_dsn(struct relay *r, const struct queue_entry *e, const bool *which,
		     enum dsn_action action)
{
	const char *error;
	if (dsn_send(r->cfg, r->svc, e, which, action, e->arrival + r->cfg->relay_max_lifetime,
		     &error) < 0)
		log_error("event=dsn-failed id=%s error=\"%s\"", e->id, error);
}

static void log_result(const struct queue_entry *e, const struct queue_rcpt *q, int code,
		       const char *host, const char *ip, const char *tls, const char *reply)
{
	const char *status = code >= 200 && code < 300 ? "sent" :
			     code >= 500 ? "bounced" : "deferred";
	char clean[512];
	log_sanitize(clean, sizeof(clean), reply, strlen(reply));
	log_info("event=relay-delivery id=%s rcpt=%s host=%s ip=%s tls=\"%s\" status=%s code=%d "
		 "delay=%llds reply=\"%s\"", e->id, q->address, host[0] ? host : "-",
		 ip[0] ? ip : "-", tls[0] ? tls : "none", status, code,
		 (long long)(time(NULL) - e->arrival), clean);
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
	size_t pending = pending_count(e);
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
			send_dsn(r, e, which, reported[k]);
	}
	free(which);
	if (exists == 0) {
		log_info("event=relay-attempt-done id=%s note=\"deleted meanwhile\"", e->id);
	} else if (pending == 0) {
		finished_push(r, e);
	} else {
		e->next_attempt = next_attempt_time(r->cfg, e, now);
		save_entry(r, e);
		log_info("event=relay-attempt-done id=%s pending=%zu next_in=%llds", e->id, pending,
			 (long long)(e->next_attempt - now));
		relay_wake_at(r, e->next_attempt);
	}
	msg_free(r, m);
	if (!r->stopping)
		backlog_drain(r);
}

static long elapsed_ms(const struct timeval *since)
{
	struct timeval now;
	gettimeofday(&now, NULL);
	return (now.tv_sec - since->tv_sec) * 1000L + (now.tv_usec - since->tv_usec) / 1000;
}

static bool finished_has(struct relay *r, const char *id)
{
	for (size_t i = 0; i < r->finished_count; i++) {
		if (strcmp(r->finished[i], id) == 0)
			return true;
	}
	return false;
}

static void finished_push(struct relay *r, const struct queue_entry *e)
{
	if (r->finished_count == r->finished_cap) {
		r->finished_cap = r->finished_cap == 0 ? 64 : r->finished_cap * 2;
		r->finished = xrealloc(r->finished, r->finished_cap * sizeof(*r->finished));
		r->finished_attempts = xrealloc(r->finished_attempts,
						r->finished_cap * sizeof(int));
	}
	memcpy(r->finished[r->finished_count], e->id, QUEUE_ID_LEN + 1);
	r->finished_attempts[r->finished_count++] = e->attempts;
	event_active(r->finished_ev, EV_TIMEOUT, 0);
}

static void finished_commit(evutil_socket_t fd, short what, void *arg)
{
	struct relay *r = arg;
	if (r->finished_count == 0)
		return;
	const char **ids = xcalloc(r->finished_count, sizeof(*ids));
	for (size_t i = 0; i < r->finished_count; i++)
		ids[i] = r->finished[i];
	const char *error;
	if (queue_entries_remove(r->svc->queue, ids, r->finished_count, &error) < 0) {
		log_error("event=relay-remove-failed count=%zu error=\"%s\"", r->finished_count,
			  error);
	} else {
		for (size_t i = 0; i < r->finished_count; i++)
			log_info("event=relay-message-done id=%s attempts=%d", ids[i],
				 r->finished_attempts[i]);
	}
	free(ids);
	r->finished_count = 0;
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
	smtp_client_free(&job->client);
	for (size_t i = 0; i < job->count; i++)
		free(job->rcpts[i].reply);
	free(job->rcpts);
	free(job->index);
	free(job->addrs);
	free(job);
}

static void job_finish(struct relay_job *job, const char *host, const char *ip,
		       const char *tls, bool peer_dsn)
{
	struct relay *r = job->r;
	struct relay_msg *m = job->msg;
	for (size_t k = 0; k < job->count; k++) {
		struct smtp_client_rcpt *c = &job->rcpts[k];
		size_t i = job->index[k];
		apply_result(m, i, c->code, c->reply, host, peer_dsn ? -1 : DSN_RELAYED);
		log_result(&m->entry, &m->entry.rcpts[i], c->code, host, ip, tls, c->reply);
	}
	/* done recipients are recorded at once: a restart must not resend
	 * them (the last transaction of an attempt leaves that to
	 * finish_attempt, which removes or rewrites the record: one durable
	 * commit instead of two) */
	if (m->jobs > 1)
		save_entry(r, &m->entry);
	job_free(r, job);
	if (--m->jobs == 0)
		finish_attempt(r, m);
	if (r->stopping && r->job_count == 0)
		event_base_loopexit(r->base, NULL);   /* drained */
}

static void job_all_failed(struct relay_job *job, int code, const char *reply)
{
	for (size_t k = 0; k < job->count; k++) {
		job->rcpts[k].code = code;
		set_str(&job->rcpts[k].reply, reply);
	}
	job_finish(job, "", "", "", false);
}

static void job_client_done(void *ctx)
{
	struct relay_job *job = ctx;
	char host[256], ip[64], tls[128];
	snprintf(host, sizeof(host), "%s", smtp_client_host(job->client));
	snprintf(ip, sizeof(ip), "%s", smtp_client_ip(job->client));
	snprintf(tls, sizeof(tls), "%s", smtp_client_tls(job->client));
	bool peer_dsn = smtp_client_peer_dsn(job->client);
	job->client = NULL;   /* it says QUIT and frees itself */
	log_debug("event=relay-transaction-done id=%s dest=%s ms=%ld", job->msg->entry.id,
		  job->dest, elapsed_ms(&job->started));
	job_finish(job, host, ip, tls, peer_dsn);
}

static void job_dns_done(void *ctx, int status, const char *error,
			 const struct relay_addr *addrs, size_t count)
{
	struct relay_job *job = ctx;
	struct relay *r = job->r;
	job->lookup = NULL;
	char reply[400];
	log_debug("event=relay-dns-done id=%s dest=%s status=%d addresses=%zu ms=%ld",
		  job->msg->entry.id, job->dest, status, count, elapsed_ms(&job->started));
	if (status != 0) {
		snprintf(reply, sizeof(reply), "%d %s", status == 5 ? 550 : 451, error);
		job_all_failed(job, status == 5 ? 550 : 451, reply);
		return;
	}
	time_t now = time(NULL);
	job->addrs = xcalloc(count + 1, sizeof(*job->addrs));
	for (size_t i = 0; i < count; i++) {
		if (!host_is_down(r, addrs[i].ip, now))
			job->addrs[job->addr_count++] = addrs[i];
	}
	if (job->addr_count == 0) {
		snprintf(reply, sizeof(reply),
			 "451 4.4.1 every host of %s was unreachable recently", job->dest);
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
	if (smarthost)
		job->lookup = relay_dns_host(r->dns, r->smarthost, r->smarthost_port, job_dns_done,
					     job);
	else
		job->lookup = relay_dns_mx(r->dns, dest, r->cfg->relay_mx_port, job_dns_done, job);
	return true;
}

/* ---- local recipients ---- */

/* Recipients in hosted domains never leave: resolve them here (aliases,
 * catch-alls) into hosted mailboxes flagged local. */
static void resolve_hosted(struct relay *r, struct relay_msg *m)
{
	struct queue_entry *e = &m->entry;
	size_t n = e->rcpt_count;
	for (size_t i = 0; i < n; i++) {
		struct queue_rcpt *q = &e->rcpts[i];
		if (q->state != QUEUE_RCPT_PENDING || q->local ||
		    !auth_domain_is_local(r->svc->auth, rcpt_domain(q->address)))
			continue;
		struct auth_recipients list = { NULL, 0 };
		const char *error;
		int rc = auth_resolve_recipient(r->svc->auth, q->address, &list, &error);
		if (rc <= 0) {
			bool unknown = rc == 0;
			char reply[300];
			snprintf(reply, sizeof(reply), unknown ? "550 5.1.1 no such user here" :
				 "451 4.3.0 account lookup failed");
			apply_result(m, i, unknown ? 550 : 451, reply, NULL, -1);
			log_result(e, &e->rcpts[i], unknown ? 550 : 451, "", "", "", reply);
			auth_recipients_free(&list);
			continue;
		}
		for (size_t k = 0; k < list.count; k++) {
			struct queue_rcpt *t;
			if (k == 0) {
				t = &e->rcpts[i];
			} else {
				e->rcpts = xrealloc(e->rcpts, (e->rcpt_count + 1) * sizeof(*e->rcpts));
				m->outcome = xrealloc(m->outcome, e->rcpt_count + 1);
				m->outcome[e->rcpt_count] = 0;
				t = &e->rcpts[e->rcpt_count++];
				memset(t, 0, sizeof(*t));
				t->notify = e->rcpts[i].notify;
				t->orcpt = e->rcpts[i].orcpt != NULL ? xstrdup(e->rcpts[i].orcpt) : NULL;
			}
			if (t->orcpt == NULL && ascii_strcasecmp(t->address != NULL ? t->address : "",
								 list.items[k].address) != 0 && k == 0)
				t->orcpt = xasprintf("rfc822;%s", e->rcpts[i].address);
			set_str(&t->address, list.items[k].address);
			t->local = list.items[k].local;
		}
		auth_recipients_free(&list);
	}
}

static int store_write(struct store_delivery *d, const char *spool, const char **error_r)
{
	int fd = open(spool, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*error_r = "cannot open the spool file";
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
		if (store_delivery_write(d, chunk, (size_t)n, error_r) < 0) {
			ret = -1;
			break;
		}
	}
	close(fd);
	return ret;
}

/* Hosted mailboxes get the message through the store, now. */
static void deliver_local(struct relay *r, struct relay_msg *m)
{
	struct queue_entry *e = &m->entry;
	size_t n = 0;
	struct store_recipient *sr = xcalloc(e->rcpt_count + 1, sizeof(*sr));
	size_t *idx = xcalloc(e->rcpt_count + 1, sizeof(*idx));
	for (size_t i = 0; i < e->rcpt_count; i++) {
		if (e->rcpts[i].state == QUEUE_RCPT_PENDING && e->rcpts[i].local) {
			sr[n].address = e->rcpts[i].address;
			idx[n++] = i;
		}
	}
	if (n == 0)
		goto out;
	struct store_delivery *d = NULL;
	const char *error = NULL;
	char *spool = queue_spool_path(r->svc->queue, e->id);
	/* final delivery: the envelope sender goes in front (RFC 5321 4.4) */
	struct buf rp = BUF_INIT;
	buf_append_str(&rp, "Return-Path: <");
	buf_append_sanitized(&rp, e->sender, strlen(e->sender));
	buf_append_str(&rp, ">\r\n");
	bool written = store_delivery_begin(r->svc->store, &d, &error) == 0 &&
		       store_delivery_write(d, rp.data, rp.len, &error) == 0 &&
		       store_write(d, spool, &error) == 0;
	buf_free(&rp);
	free(spool);
	if (written)
		store_delivery_commit(d, sr, n);
	for (size_t k = 0; k < n; k++) {
		int code;
		char reply[300];
		int result = written ? sr[k].result : STORE_ERR_INTERNAL;
		const char *why = written ? sr[k].error : error;
		if (result == 0) {
			code = 250;
			snprintf(reply, sizeof(reply), "250 2.0.0 delivered to the mailbox (uid %u)",
				 sr[k].uid);
		} else if (result == STORE_ERR_NOTFOUND) {
			code = 550;
			snprintf(reply, sizeof(reply), "550 5.1.1 mailbox unavailable: %s",
				 why ? why : "no such account");
		} else if (result == STORE_ERR_OVERQUOTA) {
			code = 452;
			snprintf(reply, sizeof(reply), "452 4.2.2 mailbox full");
		} else {
			code = 451;
			snprintf(reply, sizeof(reply), "451 4.3.0 local delivery failed: %s",
				 why ? why : "store error");
		}
		apply_result(m, idx[k], code, reply, NULL, DSN_DELIVERED);
		log_result(e, &e->rcpts[idx[k]], code, "local", "", "", reply);
	}
	store_delivery_free(&d);
out:
	free(sr);
	free(idx);
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
static bool attempt_start(struct relay *r, const struct queue_entry *entry)
{
	struct relay_msg *m = xcalloc(1, sizeof(*m));
	if (entry_dup(entry, &m->entry) < 0) {
		free(m);
		return true;
	}
	m->outcome = xcalloc(m->entry.rcpt_count + 1, 1);
	m->next = r->msgs;
	r->msgs = m;
	resolve_hosted(r, m);

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
	deliver_local(r, m);
	if (r->cfg->relay_mode == RELAY_NONE) {
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
	else
		save_entry(r, &m->entry);   /* local results and resolved recipients */
	return true;
}

/* ---- expiry and delay warnings ---- */

static void expire(struct relay *r, const struct queue_entry *entry)
{
	struct queue_entry e;
	const char *error;
	if (entry_dup(entry, &e) < 0)
		return;
	bool *which = xcalloc(e.rcpt_count + 1, sizeof(bool));
	for (size_t i = 0; i < e.rcpt_count; i++) {
		struct queue_rcpt *q = &e.rcpts[i];
		if (q->state != QUEUE_RCPT_PENDING)
			continue;
		q->state = QUEUE_RCPT_FAILED;
		if (q->last_error == NULL)
			q->last_error = xstrdup("451 4.4.7 delivery time expired");
		which[i] = dsn_wanted(q, DSN_FAILED);
		log_info("event=relay-expired id=%s rcpt=%s age=%llds last_error=\"%s\"", e.id,
			 q->address, (long long)(time(NULL) - e.arrival), q->last_error);
	}
	send_dsn(r, &e, which, DSN_FAILED);
	if (queue_entry_remove(r->svc->queue, e.id, &error) < 0)
		log_error("event=relay-remove-failed id=%s error=\"%s\"", e.id, error);
	free(which);
	queue_entry_free(&e);
}

/* Sends the delay DSN and records that it went out, in e (a copy the
 * caller goes on with). */
static void delay_warning(struct relay *r, struct queue_entry *e)
{
	bool *which = xcalloc(e->rcpt_count + 1, sizeof(bool));
	for (size_t i = 0; i < e->rcpt_count; i++)
		which[i] = e->rcpts[i].state == QUEUE_RCPT_PENDING &&
			   dsn_wanted(&e->rcpts[i], DSN_DELAYED);
	send_dsn(r, e, which, DSN_DELAYED);
	e->delay_warned = true;
	save_entry(r, e);
	free(which);
}

/* ---- the scan ---- */

static void backlog_push(struct relay *r, const char *id)
{
	if (r->backlog_count == r->backlog_cap) {
		r->backlog_cap = r->backlog_cap == 0 ? 64 : r->backlog_cap * 2;
		r->backlog = xrealloc(r->backlog, r->backlog_cap * sizeof(*r->backlog));
	}
	memcpy(r->backlog[r->backlog_count++], id, QUEUE_ID_LEN + 1);
}

struct scan {
	struct relay *r;
	time_t now;
	time_t wake;
};

static void wake_at(struct scan *s, time_t t)
{
	if (t < s->wake)
		s->wake = t;
}

static int scan_one(const struct queue_entry *e, void *ctx)
{
	struct scan *s = ctx;
	struct relay *r = s->r;
	const struct config *cfg = r->cfg;
	if (r->stopping)
		return 1;
	if (msg_find(r, e->id) != NULL || finished_has(r, e->id))
		return 0;   /* in flight, or done and about to go */
	const char *error;
	if (pending_count(e) == 0) {
		queue_entry_remove(r->svc->queue, e->id, &error);
		return 0;
	}
	time_t deadline = e->arrival + cfg->relay_max_lifetime;
	if (s->now >= deadline) {
		expire(r, e);
		return 0;
	}
	wake_at(s, deadline);
	struct queue_entry warned;
	bool warned_now = false;
	if (cfg->relay_delay_warning > 0 && !e->delay_warned && e->sender[0] != '\0') {
		time_t warn = e->arrival + cfg->relay_delay_warning;
		if (s->now >= warn && e->attempts > 0 && entry_dup(e, &warned) == 0) {
			delay_warning(r, &warned);
			warned_now = true;
			e = &warned;
		} else if (s->now < warn) {
			wake_at(s, warn);
		}
	}
	if (e->next_attempt <= s->now) {
		if (r->job_count >= cfg->relay_max_connections || !attempt_start(r, e))
			backlog_push(r, e->id);
	} else
		wake_at(s, e->next_attempt);
	if (warned_now)
		queue_entry_free(&warned);
	return 0;
}

static void relay_scan(evutil_socket_t fd, short what, void *arg)
{
	struct relay *r = arg;
	if (r->stopping)
		return;
	struct scan s = { r, time(NULL), time(NULL) + RELAY_IDLE_WAKE };
	const char *error;
	r->backlog_count = 0;
	if (queue_list(r->svc->queue, scan_one, &s, &error) < 0)
		log_error("event=relay-scan-failed error=\"%s\"", error);
	evtimer_del(r->timer_ev);
	relay_wake_at(r, s.wake);
}

static void relay_wake_at(struct relay *r, time_t t)
{
	if (r->stopping || r->timer_ev == NULL)
		return;
	if (evtimer_pending(r->timer_ev, NULL) && r->wake <= t)
		return;
	time_t now = time(NULL);
	struct timeval tv = { t > now ? t - now : 0, t > now ? 0 : 100000 };
	r->wake = t;
	evtimer_add(r->timer_ev, &tv);
}

/* Starts held-back messages while there is room; those a destination
 * limit still holds stay, in order. */
static void backlog_drain(struct relay *r)
{
	if (r->backlog_draining)
		return;
	r->backlog_draining = true;
	size_t keep = 0;
	time_t now = time(NULL);
	for (size_t i = 0; i < r->backlog_count; i++) {
		char id[QUEUE_ID_LEN + 1];
		memcpy(id, r->backlog[i], sizeof(id));
		if (r->stopping || r->job_count >= r->cfg->relay_max_connections) {
			memcpy(r->backlog[keep++], id, sizeof(id));
			continue;
		}
		struct queue_entry e;
		const char *error;
		if (msg_find(r, id) != NULL || finished_has(r, id) ||
		    queue_entry_get(r->svc->queue, id, &e, &error) != 1)
			continue;
		if (e.next_attempt <= now && pending_count(&e) > 0 && !attempt_start(r, &e))
			memcpy(r->backlog[keep++], id, sizeof(id));
		queue_entry_free(&e);
	}
	r->backlog_count = keep;
	r->backlog_draining = false;
}

static void relay_scan_soon(struct relay *r)
{
	if (!r->stopping && r->scan_ev != NULL)
		event_active(r->scan_ev, EV_TIMEOUT, 0);
}

static void relay_notified(evutil_socket_t fd, short what, void *arg)
{
	struct relay *r = arg;
	queue_notify_consume(r->svc->queue);
	relay_scan_soon(r);
}

/* ---- stopping ---- */

static void relay_abandon(evutil_socket_t fd, short what, void *arg)
{
	struct relay *r = arg;
	/* in-flight recipients stay pending in their records: the next relay
	 * retries them; nothing that got its 250 is pending any more */
	log_info("event=relay-abandon jobs=%d", r->job_count);
	event_base_loopexit(r->base, NULL);
}

static void relay_term(evutil_socket_t fd, short what, void *arg)
{
	struct relay *r = arg;
	if (r->stopping)
		return;
	r->stopping = true;
	log_info("event=relay-draining jobs=%d", r->job_count);
	if (r->notify_ev != NULL)
		event_del(r->notify_ev);
	if (r->timer_ev != NULL)
		event_del(r->timer_ev);
	if (r->lock_ev != NULL)
		event_del(r->lock_ev);
	if (r->job_count == 0) {
		event_base_loopexit(r->base, NULL);
		return;
	}
	r->drain_ev = evtimer_new(r->base, relay_abandon, r);
	struct timeval tv = { r->cfg->shutdown_timeout, 0 };
	evtimer_add(r->drain_ev, &tv);
}

/* ---- start-up ---- */

static int read_auth_file(struct relay *r, const char *path, const char **error_r)
{
	static char err[400];
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		snprintf(err, sizeof(err), "[relay] smarthost_auth_file %s: %s", path,
			 strerror(errno));
		*error_r = err;
		return -1;
	}
	struct stat st;
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077) != 0)
		log_warn("event=relay-auth-file-readable path=%s mode=%o hint=\"chmod 600\"", path,
			 (unsigned)(st.st_mode & 0777));
	char line[1024];
	if (fgets(line, sizeof(line), f) == NULL)
		line[0] = '\0';
	fclose(f);
	line[strcspn(line, "\r\n")] = '\0';
	char *sp = strpbrk(line, " \t");
	if (sp == NULL || sp == line) {
		explicit_bzero(line, sizeof(line));
		snprintf(err, sizeof(err), "[relay] smarthost_auth_file %s: want one line "
			 "\"user password\"", path);
		*error_r = err;
		return -1;
	}
	*sp++ = '\0';
	while (*sp == ' ' || *sp == '\t')
		sp++;
	r->auth_user = xstrdup(line);
	r->auth_pass = xstrdup(sp);
	explicit_bzero(line, sizeof(line));
	return 0;
}

static int relay_setup(struct relay *r, const char **error_r)
{
	if (r->cfg->relay_mode == RELAY_SMARTHOST) {
		if (config_split_hostport(r->cfg->relay_smarthost, r->smarthost,
					  sizeof(r->smarthost), &r->smarthost_port) < 0) {
			snprintf(r->smarthost, sizeof(r->smarthost), "%s", r->cfg->relay_smarthost);
			r->smarthost_port = strcmp(r->cfg->relay_smarthost_tls, "implicit") == 0 ?
					    465 : 587;
		}
		if (r->cfg->relay_smarthost_auth_file != NULL &&
		    read_auth_file(r, r->cfg->relay_smarthost_auth_file, error_r) < 0)
			return -1;
	}
	r->tls_ctx = SSL_CTX_new(TLS_client_method());
	if (r->tls_ctx == NULL) {
		*error_r = "cannot create the TLS client context";
		return -1;
	}
	SSL_CTX_set_min_proto_version(r->tls_ctx, TLS1_2_VERSION);
	/* opportunistic TLS (RFC 7435): encrypt, do not authenticate */
	SSL_CTX_set_verify(r->tls_ctx, SSL_VERIFY_NONE, NULL);
	if (r->cfg->relay_mode == RELAY_SMARTHOST && r->cfg->relay_smarthost_tls_verify) {
		/* credentials go there: its certificate and name must check out */
		r->smarthost_tls_ctx = SSL_CTX_new(TLS_client_method());
		if (r->smarthost_tls_ctx == NULL) {
			*error_r = "cannot create the TLS client context";
			return -1;
		}
		SSL_CTX_set_min_proto_version(r->smarthost_tls_ctx, TLS1_2_VERSION);
		SSL_CTX_set_verify(r->smarthost_tls_ctx, SSL_VERIFY_PEER, NULL);
		const char *ca = r->cfg->relay_smarthost_ca_file;
		if ((ca != NULL ? SSL_CTX_load_verify_locations(r->smarthost_tls_ctx, ca, NULL) :
		     SSL_CTX_set_default_verify_paths(r->smarthost_tls_ctx)) != 1) {
			static char err[400];
			snprintf(err, sizeof(err), "[relay] smarthost_ca_file %s: cannot load",
				 ca != NULL ? ca : "(system)");
			*error_r = err;
			return -1;
		}
	}
	if (relay_dns_new(r->base, r->cfg->relay_dns, &r->dns, error_r) < 0)
		return -1;
	return 0;
}

static void relay_begin(struct relay *r)
{
	const char *error;
	if (queue_recover(r->svc->queue, &error) < 0)
		log_error("event=relay-recover-failed error=\"%s\"", error);
	int fd = queue_notify_fd(r->svc->queue);
	if (fd >= 0) {
		r->notify_ev = event_new(r->base, fd, EV_READ | EV_PERSIST, relay_notified, r);
		event_add(r->notify_ev, NULL);
	} else {
		log_warn("event=relay-no-inotify note=\"new mail waits for the next timer\"");
	}
	r->timer_ev = evtimer_new(r->base, relay_scan, r);
	r->finished_ev = event_new(r->base, -1, 0, finished_commit, r);
	r->scan_ev = event_new(r->base, -1, 0, relay_scan, r);
	log_info("event=relay-running mode=%s", r->cfg->relay_mode == RELAY_MX ? "mx" :
		 r->cfg->relay_mode == RELAY_SMARTHOST ? "smarthost" : "none");
	relay_scan_soon(r);
}

/* One relay at a time: during a reload the new one waits for the old one
 * to finish draining, so no message is in two relays at once. */
static void relay_try_lock(evutil_socket_t fd, short what, void *arg)
{
	struct relay *r = arg;
	if (flock(r->lock_fd, LOCK_EX | LOCK_NB) == 0) {
		relay_begin(r);
		return;
	}
	struct timeval tv = { 0, RELAY_LOCK_RETRY_MS * 1000 };
	evtimer_add(r->lock_ev, &tv);
}

int relay_main(const struct config *cfg, struct services *services)
{
	struct relay r;
	memset(&r, 0, sizeof(r));
	r.cfg = cfg;
	r.svc = services;
	r.lock_fd = -1;
	const char *error;
	r.base = event_base_new();
	if (r.base == NULL)
		fatal("event=relay-init-failed error=\"no event base\"");
	if (relay_setup(&r, &error) < 0) {
		log_error("event=relay-init-failed error=\"%s\"", error);
		/* a config problem: stay up and idle rather than respawn in a loop */
	}
	char *lock_path = xasprintf("%s/queue/.relay-lock", cfg->data_dir);
	r.lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	free(lock_path);
	r.term_ev = evsignal_new(r.base, SIGTERM, relay_term, &r);
	event_add(r.term_ev, NULL);
	r.lock_ev = evtimer_new(r.base, relay_try_lock, &r);
	if (r.dns != NULL && r.tls_ctx != NULL && r.lock_fd >= 0)
		relay_try_lock(-1, 0, &r);

	event_base_dispatch(r.base);
	if (r.finished_ev != NULL)
		finished_commit(-1, 0, &r);

	while (r.jobs != NULL)
		job_free(&r, r.jobs);
	while (r.msgs != NULL)
		msg_free(&r, r.msgs);
	smtp_client_free_all(&r.clients);
	free(r.backlog);
	free(r.finished);
	free(r.finished_attempts);
	while (r.down != NULL) {
		struct down_host *d = r.down;
		r.down = d->next;
		free(d);
	}
	relay_dns_free(&r.dns);
	struct event *evs[] = { r.notify_ev, r.timer_ev, r.scan_ev, r.term_ev, r.drain_ev,
				r.lock_ev, r.finished_ev };
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
		if (evs[i] != NULL)
			event_free(evs[i]);
	}
	if (r.tls_ctx != NULL)
		SSL_CTX_free(r.tls_ctx);
	if (r.smarthost_tls_ctx != NULL)
		SSL_CTX_free(r.smarthost_tls_ctx);
	if (r.auth_pass != NULL)
		explicit_bzero(r.auth_pass, strlen(r.auth_pass));
	free(r.auth_user);
	free(r.auth_pass);
	event_base_free(r.base);
	log_info("event=relay-stopped");
	/* the next relay (after a reload) may start only now */
	if (r.lock_fd >= 0)
		close(r.lock_fd);
	return 0;
}

int relay_bounce_pending(const struct config *cfg, struct services *services,
			 struct queue_entry *entry, const char *reason, const char **error_r)
{
	bool *which = xcalloc(entry->rcpt_count + 1, sizeof(bool));
	for (size_t i = 0; i < entry->rcpt_count; i++) {
		struct queue_rcpt *q = &entry->rcpts[i];
		if (q->state != QUEUE_RCPT_PENDING)
			continue;
		q->state = QUEUE_RCPT_FAILED;
		set_str(&q->last_error, reason);
		which[i] = dsn_wanted(q, DSN_FAILED);
	}
	int ret = dsn_send(cfg, services, entry, which, DSN_FAILED, 0, error_r);
	free(which);
	return ret;
}

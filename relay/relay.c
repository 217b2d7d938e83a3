/* The relay process: runs the outbound queue in its own event loop
 * (one attempt of one message is attempt.c).
 *
 * A scan walks the queue records: due messages start an attempt (local
 * recipients go to the store at once, remote ones are grouped by domain
 * into one SMTP transaction each), the others set the wake-up timer.
 * Scans run at start, when the queue directory says a record was
 * committed (inotify), when the timer fires and when an attempt ends.
 * A recipient is marked done in its record right after the peer's 250,
 * before anything else happens, so a restart never sends it twice. */
#include "relay/relay.h"
#include "relay/runner.h"
#include "core/metrics.h"

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

#define RELAY_LOCK_RETRY_MS 200
#define RELAY_IDLE_WAKE 3600
#define RELAY_POLL_SECS 1        /* without inotify */
#define RELAY_FINISH_WAIT_MS 20  /* finished messages wait this long for one commit */
#define RELAY_FINISH_BATCH 64    /* or until this many finished */

static void relay_scan_soon(struct relay *r);
static void backlog_drain(struct relay *r);
static void relay_notified(evutil_socket_t fd, short what, void *arg);

static void set_str(char **field, const char *value)
{
	free(*field);
	*field = value != NULL ? xstrdup(value) : NULL;
}

int relay_entry_dup(const struct queue_entry *src, struct queue_entry *dst)
{
	size_t len;
	char *data = queue_entry_serialize(src, &len);
	int ret = queue_entry_parse(data, len, dst);
	free(data);
	return ret;
}

size_t relay_pending_count(const struct queue_entry *e)
{
	size_t n = 0;
	for (size_t i = 0; i < e->rcpt_count; i++)
		n += e->rcpts[i].state == QUEUE_RCPT_PENDING ? 1 : 0;
	return n;
}

void relay_save_entry(struct relay *r, const struct queue_entry *e)
{
	const char *error;
	if (queue_entry_replace(r->svc->queue, e, &error) < 0)
		log_error("event=relay-record-failed id=%s error=\"%s\"", e->id, error);
}

void relay_send_dsn(struct relay *r, const struct queue_entry *e, const bool *which,
		     enum dsn_action action)
{
	const char *error;
	if (dsn_send(r->cfg, r->svc, e, which, action, e->arrival + r->cfg->relay_max_lifetime,
		     &error) < 0)
		log_error("event=dsn-failed id=%s error=\"%s\"", e->id, error);
}


static bool finished_has(struct relay *r, const char *id)
{
	for (size_t i = 0; i < r->finished_count; i++) {
		if (strcmp(r->finished[i], id) == 0)
			return true;
	}
	return false;
}

void relay_finished(struct relay *r, const struct queue_entry *e)
{
	if (r->finished_count == r->finished_cap) {
		r->finished_cap = r->finished_cap == 0 ? 64 : r->finished_cap * 2;
		r->finished = xrealloc(r->finished, r->finished_cap * sizeof(*r->finished));
		r->finished_attempts = xrealloc(r->finished_attempts,
						r->finished_cap * sizeof(int));
	}
	memcpy(r->finished[r->finished_count], e->id, QUEUE_ID_LEN + 1);
	r->finished_attempts[r->finished_count++] = e->attempts;
	/* one commit for what finishes within a few milliseconds: the slot is
	 * free already; until the commit the message only stays on disk */
	if (r->finished_count >= RELAY_FINISH_BATCH)
		event_active(r->finished_ev, EV_TIMEOUT, 0);
	else if (!evtimer_pending(r->finished_ev, NULL)) {
		struct timeval tv = { 0, RELAY_FINISH_WAIT_MS * 1000 };
		evtimer_add(r->finished_ev, &tv);
	}
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

void relay_attempt_ended(struct relay *r)
{
	if (!r->stopping)
		backlog_drain(r);
}

/* ---- expiry and delay warnings ---- */

static void expire(struct relay *r, const struct queue_entry *entry)
{
	struct queue_entry e;
	const char *error;
	if (relay_entry_dup(entry, &e) < 0)
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
		metrics_count(METRIC_EXPIRED);
	}
	relay_send_dsn(r, &e, which, DSN_FAILED);
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
	relay_send_dsn(r, e, which, DSN_DELAYED);
	e->delay_warned = true;
	relay_save_entry(r, e);
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
	if (attempt_in_flight(r, e->id) || finished_has(r, e->id))
		return 0;   /* in flight, or done and about to go */
	const char *error;
	if (relay_pending_count(e) == 0) {
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
		if (s->now >= warn && e->attempts > 0 && relay_entry_dup(e, &warned) == 0) {
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

/* inotify on the queue directory; false when the kernel refuses one
 * (fs.inotify.max_user_instances is per user and shared by every process
 * of run_as): then the scans poll. */
static bool relay_watch_queue(struct relay *r)
{
	if (r->notify_ev != NULL)
		return true;
	int fd = queue_notify_fd(r->svc->queue);
	if (fd < 0)
		return false;
	r->notify_ev = event_new(r->base, fd, EV_READ | EV_PERSIST, relay_notified, r);
	event_add(r->notify_ev, NULL);
	log_info("event=relay-watching-queue");
	return true;
}

static void relay_scan(evutil_socket_t fd, short what, void *arg)
{
	struct relay *r = arg;
	if (r->stopping)
		return;
	struct scan s = { r, time(NULL), time(NULL) + RELAY_IDLE_WAKE };
	if (!relay_watch_queue(r))
		s.wake = s.now + RELAY_POLL_SECS;
	const char *error;
	r->backlog_count = 0;
	if (queue_list(r->svc->queue, scan_one, &s, &error) < 0)
		log_error("event=relay-scan-failed error=\"%s\"", error);
	evtimer_del(r->timer_ev);
	relay_wake_at(r, s.wake);
}

void relay_wake_at(struct relay *r, time_t t)
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
		if (attempt_in_flight(r, id) || finished_has(r, id) ||
		    queue_entry_get(r->svc->queue, id, &e, &error) != 1)
			continue;
		if (e.next_attempt <= now && relay_pending_count(&e) > 0 && !attempt_start(r, &e))
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

#define QUIT_WAIT_MS 100
#define QUIT_WAIT_ROUNDS 10

static void relay_quit_wait(evutil_socket_t fd, short what, void *arg)
{
	struct relay *r = arg;
	if (r->clients == NULL || ++r->quit_waits >= QUIT_WAIT_ROUNDS)
		event_base_loopexit(r->base, NULL);
}

void relay_drained(struct relay *r)
{
	if (r->quit_ev != NULL)
		return;
	if (smtp_client_quit_idle(r->clients) == 0) {
		event_base_loopexit(r->base, NULL);
		return;
	}
	r->quit_ev = event_new(r->base, -1, EV_PERSIST, relay_quit_wait, r);
	struct timeval tv = { 0, QUIT_WAIT_MS * 1000 };
	if (r->quit_ev == NULL || event_add(r->quit_ev, &tv) < 0)
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
		relay_drained(r);
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
	if (r->cfg->relay_mode == RELAY_MX && (r->cfg->relay_dane || r->cfg->relay_mta_sts)) {
		/* DANE (its TLSA records) and MTA-STS (these CAs, the MX name)
		 * peers; each session says which check applies */
		r->verify_tls_ctx = SSL_CTX_new(TLS_client_method());
		const char *ca = r->cfg->relay_mta_sts_ca_file;
		if (r->verify_tls_ctx == NULL ||
		    SSL_CTX_set_min_proto_version(r->verify_tls_ctx, TLS1_2_VERSION) != 1 ||
		    SSL_CTX_dane_enable(r->verify_tls_ctx) <= 0 ||
		    (ca != NULL ? SSL_CTX_load_verify_locations(r->verify_tls_ctx, ca, NULL) :
		     SSL_CTX_set_default_verify_paths(r->verify_tls_ctx)) != 1) {
			static char err[400];
			snprintf(err, sizeof(err), "cannot set up TLS verification for DANE and "
				 "MTA-STS (CAs %s)", ca != NULL ? ca : "(system)");
			*error_r = err;
			return -1;
		}
		SSL_CTX_set_verify(r->verify_tls_ctx, SSL_VERIFY_PEER, NULL);
	}
	const char *anchor = r->cfg->relay_mode == RELAY_MX && r->cfg->relay_dane ?
			     r->cfg->relay_dane_trust_anchor : NULL;
	if (relay_dns_new(r->base, r->cfg->relay_dns, anchor, &r->dns, error_r) < 0)
		return -1;
	if (r->cfg->relay_mode == RELAY_MX && r->cfg->relay_mta_sts &&
	    relay_mtasts_new(r->base, r->cfg, r->dns, &r->mtasts, error_r) < 0)
		return -1;
	return 0;
}

static void relay_begin(struct relay *r)
{
	const char *error;
	if (queue_recover(r->svc->queue, &error) < 0)
		log_error("event=relay-recover-failed error=\"%s\"", error);
	if (!relay_watch_queue(r))
		log_warn("event=relay-no-inotify error=\"%s\" note=\"polling every %ds until it "
			 "works\"", strerror(errno), RELAY_POLL_SECS);
	r->timer_ev = evtimer_new(r->base, relay_scan, r);
	r->finished_ev = evtimer_new(r->base, finished_commit, r);
	queue_relay_sync_mode(r->svc->queue);
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

	attempt_abandon_all(&r);
	smtp_client_free_all(&r.clients);
	free(r.backlog);
	free(r.finished);
	free(r.finished_attempts);
	while (r.down != NULL) {
		struct down_host *d = r.down;
		r.down = d->next;
		free(d);
	}
	relay_mtasts_free(&r.mtasts);
	relay_dns_free(&r.dns);
	struct event *evs[] = { r.notify_ev, r.timer_ev, r.scan_ev, r.term_ev, r.drain_ev, r.quit_ev,
				r.lock_ev, r.finished_ev };
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
		if (evs[i] != NULL)
			event_free(evs[i]);
	}
	if (r.tls_ctx != NULL)
		SSL_CTX_free(r.tls_ctx);
	if (r.smarthost_tls_ctx != NULL)
		SSL_CTX_free(r.smarthost_tls_ctx);
	if (r.verify_tls_ctx != NULL)
		SSL_CTX_free(r.verify_tls_ctx);
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

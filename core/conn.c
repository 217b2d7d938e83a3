#include "core/server-private.h"
#include "core/buf.h"
#include "core/compress.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/tls.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Input is buffered up to this much before reading pauses (backpressure). */
#define CONN_READ_HIGH_WATER (1024 * 1024)

static void conn_update_log_ctx(struct conn *c)
{
	snprintf(c->log_ctx, sizeof(c->log_ctx), "conn=%llu proto=%s listener=%s remote=%s%s%s",
		 (unsigned long long)c->id, c->proto->name, listener_kind_name(c->kind),
		 c->remote_ip, c->user[0] ? " user=" : "", c->user);
}

/* Every protocol callback runs inside the connection's log context. */
#define CALL_PROTO(c, fn)                                   \
	do {                                                \
		if ((c)->proto->fn != NULL && !(c)->freed_session && (c)->session != NULL) { \
			const char *saved_ = log_get_context(); \
			log_set_context((c)->log_ctx);      \
			(c)->proto->fn((c)->session);       \
			log_set_context(saved_);            \
		}                                           \
	} while (0)

static void conn_schedule(struct conn *c)
{
	event_active(c->defer_ev, EV_TIMEOUT, 0);
}

static void conn_readcb(struct bufferevent *bev, void *arg);
static void conn_writecb(struct bufferevent *bev, void *arg);
static void conn_eventcb(struct bufferevent *bev, short what, void *arg);

/* ---- timers the connection owns (conn.h) ---- */

/* Counts what arrived since the input buffer was last looked at. */
static void conn_count_input(struct conn *c)
{
	size_t len = evbuffer_get_length(bufferevent_get_input(c->bev));
	if (len > c->in_seen)
		c->in_total += len - c->in_seen;
	c->in_seen = len;
}

/* A timer ran out: the protocol says goodbye and the connection closes
 * (at once when not even that can be sent). */
static void conn_expire(struct conn *c)
{
	if (c->closing || c->starttls_pending || c->freed_session) {
		conn_free(c);
		return;
	}
	CALL_PROTO(c, timeout);
	conn_close(c, "timeout");
}

static void conn_preauth_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	const char *saved = log_get_context();
	log_set_context(c->log_ctx);
	log_info("event=timeout reason=preauth-deadline seconds=%d",
		 c->worker->cfg->timeout_preauth);
	log_set_context(saved);
	conn_expire(c);
}

static double tv_seconds(const struct timeval *a, const struct timeval *b)
{
	return (double)(a->tv_sec - b->tv_sec) + (double)(a->tv_usec - b->tv_usec) / 1e6;
}

static void conn_rate_arm(struct conn *c, double seconds)
{
	struct timeval tv = { (time_t)seconds, (suseconds_t)((seconds - (time_t)seconds) * 1e6) };
	evtimer_add(c->rate_ev, &tv);
}

/* Whether the unit in progress kept up min_rate on average; re-armed for
 * the moment it would fall behind if nothing more came. */
static void conn_rate_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	const struct config *cfg = c->worker->cfg;
	struct timeval now;
	if (!c->rate_active)
		return;
	conn_count_input(c);
	event_base_gettimeofday_cached(c->worker->base, &now);
	double elapsed = tv_seconds(&now, &c->rate_start);
	uint64_t bytes = c->in_total - c->rate_start_total;
	double need = (double)bytes / cfg->min_rate;
	if (need < cfg->min_rate_grace)
		need = cfg->min_rate_grace;
	if (elapsed + 0.001 < need) {
		conn_rate_arm(c, need - elapsed);
		return;
	}
	c->rate_active = false;
	const char *saved = log_get_context();
	log_set_context(c->log_ctx);
	log_info("event=too-slow bytes=%llu seconds=%.1f min_rate=%d",
		 (unsigned long long)bytes, elapsed, cfg->min_rate);
	log_set_context(saved);
	conn_expire(c);
}

void conn_want_more(struct conn *c, bool partial)
{
	const struct config *cfg = c->worker->cfg;
	if (!partial || cfg->min_rate <= 0 || c->paused || c->rate_ev == NULL) {
		if (c->rate_active && c->rate_ev != NULL)
			evtimer_del(c->rate_ev);
		c->rate_active = false;
		return;
	}
	if (c->rate_active)
		return;
	conn_count_input(c);
	c->rate_active = true;
	event_base_gettimeofday_cached(c->worker->base, &c->rate_start);
	/* what of the unit is already here counts for it */
	c->rate_start_total = c->in_total - c->in_seen;
	conn_rate_arm(c, cfg->min_rate_grace > 0 ? cfg->min_rate_grace : 1);
}

void conn_end_preauth(struct conn *c)
{
	if (c->preauth_ev != NULL)
		evtimer_del(c->preauth_ev);
}

/* A draining server closes each session once it is not in the middle of
 * a command: the same for every protocol. */
static void conn_drain_if_idle(struct conn *c)
{
	if (!c->worker->draining || c->closing || c->freed_session)
		return;
	/* still in its TLS handshake: let it end (bounded by the pre-login
	 * deadline and the shutdown timeout), so the client is told goodbye
	 * by its protocol instead of seeing the connection reset halfway */
	if (c->session == NULL)
		return;
	if (c->proto->busy != NULL) {
		const char *saved = log_get_context();
		log_set_context(c->log_ctx);
		bool busy = c->proto->busy(c->session);
		log_set_context(saved);
		if (busy)
			return;
	}
	CALL_PROTO(c, shutdown);
	conn_close(c, "shutdown");
}

void conn_busy_done(struct conn *c)
{
	if (c->worker->draining && !c->closing)
		conn_schedule(c);
}

static void conn_apply_timeouts(struct conn *c)
{
	struct timeval tv = { c->timeout, 0 };
	/* a client that stops reading our output gets as long as an idle one */
	bufferevent_set_timeouts(c->bev, c->timeout > 0 ? &tv : NULL,
				 c->timeout > 0 ? &tv : NULL);
}

static int conn_setup_bev(struct conn *c, bool tls)
{
	if (tls) {
		c->ssl = SSL_new(c->worker->ssl_ctx);
		if (c->ssl == NULL)
			return -1;
		c->bev = bufferevent_openssl_socket_new(c->worker->base, c->fd, c->ssl,
							BUFFEREVENT_SSL_ACCEPTING,
							BEV_OPT_DEFER_CALLBACKS);
		if (c->bev != NULL)
			bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	} else {
		c->bev = bufferevent_socket_new(c->worker->base, c->fd, BEV_OPT_DEFER_CALLBACKS);
	}
	if (c->bev == NULL)
		return -1;
	bufferevent_setcb(c->bev, conn_readcb, conn_writecb, conn_eventcb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, CONN_READ_HIGH_WATER);
	conn_apply_timeouts(c);
	return 0;
}

/* Bytes the protocol can read: under COMPRESS, what arrived is inflated
 * first (up to the read cap; the rest waits in the socket's buffer). */
static size_t conn_input_ready(struct conn *c)
{
	struct evbuffer *raw = bufferevent_get_input(c->bev);
	if (c->z == NULL)
		return evbuffer_get_length(raw);
	if (compress_read(c->z, raw, CONN_READ_HIGH_WATER) < 0) {
		log_info("event=compress-input-error");
		evbuffer_drain(raw, evbuffer_get_length(raw));
		conn_close(c, "compress-error");
		return 0;
	}
	return evbuffer_get_length(compress_input(c->z));
}

/* Runs the protocol on what is ready; under COMPRESS, input left in the
 * socket's buffer is taken in a later turn once the protocol read on. */
static void conn_run_input(struct conn *c)
{
	conn_count_input(c);
	if (conn_input_ready(c) == 0 || c->closing)
		return;
	CALL_PROTO(c, input);
	conn_count_input(c);
	if (c->z != NULL && !c->closing && !c->paused &&
	    evbuffer_get_length(bufferevent_get_input(c->bev)) > 0 &&
	    evbuffer_get_length(compress_input(c->z)) < CONN_READ_HIGH_WATER)
		conn_schedule(c);
}

static void conn_deferred_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	if (c->closing) {
		if (conn_output_pending(c) == 0)
			conn_free(c);
		return;
	}
	if (!c->paused && !c->starttls_pending)
		conn_run_input(c);
	conn_drain_if_idle(c);
}

static void sockaddr_text(const struct sockaddr *sa, char *ip, size_t ip_size, int *port_r,
			  bool *loopback_r)
{
	ip[0] = '\0';
	*port_r = 0;
	*loopback_r = false;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, ip, (socklen_t)ip_size);
		*port_r = ntohs(in->sin_port);
		*loopback_r = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, ip, (socklen_t)ip_size);
		*port_r = ntohs(in6->sin6_port);
		*loopback_r = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
			/* show ::ffff:1.2.3.4 as 1.2.3.4 */
			const uint8_t *b = in6->sin6_addr.s6_addr + 12;
			snprintf(ip, ip_size, "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
			*loopback_r = b[0] == 127;
		}
	} else if (sa->sa_family == AF_UNIX) {
		snprintf(ip, ip_size, "local");
		*loopback_r = true;
	}
}

void conn_accept(struct worker *w, enum listener_kind kind, int fd,
		 const struct sockaddr *sa, int socklen)
{
	const struct proto *proto = w->setup->protos[kind];
	char ip[64];
	int port;
	bool loopback;
	unsigned int bucket;
	const char *reason;

	sockaddr_text(sa, ip, sizeof(ip), &port, &loopback);
	if (w->draining) {
		close(fd);
		return;
	}
	if (!connlimit_acquire(w->limits, w->slot, ip, w->cfg->max_connections,
			       w->cfg->max_connections_per_ip, &bucket, &reason)) {
		log_warn("event=connection-refused listener=%s remote=%s reason=%s",
			 listener_kind_name(kind), ip, reason);
		metrics_count_listener(METRIC_CONNECTIONS_REFUSED, kind);
		/* a plain-text port gets a one-line reason; a TLS port just closes */
		if (!w->setup->implicit_tls[kind] && proto->name != NULL) {
			const char *msg = strcmp(proto->name, "smtp") == 0 ?
				"421 4.7.0 Too many connections, try again later\r\n" :
				strcmp(proto->name, "pop3") == 0 ?
				"-ERR [SYS/TEMP] Too many connections, try again later\r\n" :
				"* BYE [UNAVAILABLE] Too many connections, try again later\r\n";
			ssize_t ret = send(fd, msg, strlen(msg), MSG_DONTWAIT | MSG_NOSIGNAL);
			(void)ret;
		}
		close(fd);
		return;
	}

	metrics_count_listener(METRIC_CONNECTIONS, kind);
	metrics_connection_open(w->slot, kind, 1);
	struct conn *c = xcalloc(1, sizeof(*c));
	c->worker = w;
	c->id = ++w->next_id * 1000 + (uint64_t)w->slot;
	c->kind = kind;
	c->proto = proto;
	c->fd = fd;
	c->limit_bucket = bucket;
	snprintf(c->remote_ip, sizeof(c->remote_ip), "%s", ip);
	c->remote_port = port;
	c->loopback = loopback;
	struct sockaddr_storage local;
	socklen_t local_len = sizeof(local);
	if (getsockname(fd, (struct sockaddr *)&local, &local_len) == 0) {
		bool dummy;
		sockaddr_text((struct sockaddr *)&local, c->local_ip, sizeof(c->local_ip),
			      &c->local_port, &dummy);
	}
	c->timeout = w->cfg->timeout_preauth;
	c->defer_ev = event_new(w->base, -1, 0, conn_deferred_cb, c);
	c->preauth_ev = evtimer_new(w->base, conn_preauth_cb, c);
	c->rate_ev = evtimer_new(w->base, conn_rate_cb, c);
	conn_update_log_ctx(c);

	c->next = w->conns;
	if (w->conns != NULL)
		w->conns->prev = c;
	w->conns = c;
	w->nconns++;

	if (c->defer_ev == NULL || c->preauth_ev == NULL || c->rate_ev == NULL ||
	    conn_setup_bev(c, w->setup->implicit_tls[kind]) < 0) {
		log_error("event=conn-setup-failed remote=%s", ip);
		c->freed_session = true;
		conn_free(c);
		return;
	}
	log_set_context(c->log_ctx);
	log_info("event=connect port=%d local=%s:%d", port, c->local_ip, c->local_port);
	if (w->cfg->timeout_preauth > 0) {
		/* absolute: nothing the client sends moves it (issue 19) */
		struct timeval tv = { w->cfg->timeout_preauth, 0 };
		evtimer_add(c->preauth_ev, &tv);
	}
	/* an implicit-TLS session starts once the handshake is done, so its
	 * greeting can offer what needs TLS keys (SCRAM-*-PLUS) */
	if (!w->setup->implicit_tls[kind])
		c->session = proto->start(c);
	log_set_context(NULL);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

void conn_free(struct conn *c)
{
	struct worker *w = c->worker;
	if (!c->freed_session) {
		CALL_PROTO(c, free);
		c->freed_session = true;
	}
	log_set_context(c->log_ctx);
	log_info("event=disconnect");
	log_set_context(NULL);
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	if (c->ssl != NULL) {
		SSL_free(c->ssl);
		ERR_clear_error();
	}
	if (c->fd >= 0)
		close(c->fd);
	if (c->defer_ev != NULL)
		event_free(c->defer_ev);
	compress_free(&c->z);
	free(c->account);
	if (c->preauth_ev != NULL)
		event_free(c->preauth_ev);
	if (c->hold_ev != NULL)
		event_free(c->hold_ev);
	if (c->rate_ev != NULL)
		event_free(c->rate_ev);
	connlimit_release(w->limits, w->slot, c->limit_bucket);
	metrics_connection_open(w->slot, c->kind, -1);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	w->nconns--;
	free(c);
	if (w->draining && w->nconns == 0)
		event_base_loopbreak(w->base);
}

static void conn_readcb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	if (c->closing || c->paused || c->starttls_pending) {
		if (c->closing) /* nothing more is read from a closing connection */
			evbuffer_drain(bufferevent_get_input(bev),
				       evbuffer_get_length(bufferevent_get_input(bev)));
		return;
	}
	conn_run_input(c);
	conn_drain_if_idle(c);
}

static void conn_upgrade_tls(struct conn *c)
{
	/* the reply went out in clear; switch the same socket to TLS */
	evbuffer_drain(bufferevent_get_input(c->bev),
		       evbuffer_get_length(bufferevent_get_input(c->bev)));
	c->in_seen = 0;
	bufferevent_free(c->bev);
	c->bev = NULL;
	if (conn_setup_bev(c, true) < 0) {
		log_error("event=starttls-failed");
		c->starttls_pending = false;
		c->closing = true;
		conn_schedule(c);
		return;
	}
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void conn_writecb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	size_t pending = evbuffer_get_length(bufferevent_get_output(bev));
	if (c->starttls_pending && c->ssl == NULL && pending == 0) {
		conn_upgrade_tls(c);
		return;
	}
	if (c->closing) {
		if (pending == 0)
			conn_free(c);
		return;
	}
	if (c->drain_fn != NULL && pending <= c->drain_low_water) {
		void (*fn)(void *) = c->drain_fn;
		c->drain_fn = NULL;
		const char *saved = log_get_context();
		log_set_context(c->log_ctx);
		fn(c->session);
		log_set_context(saved);
		conn_drain_if_idle(c);
	}
}

static void conn_log_tls_error(struct conn *c, const char *what)
{
	unsigned long e;
	char reason[256] = "";
	while ((e = bufferevent_get_openssl_error(c->bev)) != 0) {
		if (ERR_GET_LIB(e) == 0)   /* a system error: the peer went away */
			snprintf(reason, sizeof(reason), "connection-closed");
		else
			ERR_error_string_n(e, reason, sizeof(reason));
	}
	log_info("event=%s%s%s", what, reason[0] ? " tls-error=" : "", reason);
}

static void conn_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	const char *saved = log_get_context();
	log_set_context(c->log_ctx);
	if (what & BEV_EVENT_CONNECTED) {
		if (c->ssl != NULL && !c->handshake_logged) {
			tls_describe(c->ssl, c->tls_desc, sizeof(c->tls_desc));
			c->handshake_logged = true;
			log_info("event=tls-established tls=\"%s\"", c->tls_desc);
			metrics_count_listener(METRIC_TLS_HANDSHAKES, c->kind);
		}
		if (c->session == NULL && !c->freed_session && !c->closing) {
			c->session = c->proto->start(c);
			if (c->worker->draining)
				conn_schedule(c);   /* greeted: now say goodbye */
		}
		if (c->starttls_pending) {
			c->starttls_pending = false;
			if (!c->paused)
				bufferevent_enable(c->bev, EV_READ);
		}
		log_set_context(saved);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		log_info("event=timeout idle=%ds", c->timeout);
		if ((what & BEV_EVENT_WRITING) || c->closing || c->starttls_pending) {
			/* the client does not read, or even our goodbye did not leave */
			log_set_context(saved);
			conn_free(c);
			return;
		}
		/* idle: the protocol says goodbye; the connection then closes */
		log_set_context(saved);
		conn_expire(c);
		return;
	}
	if (c->ssl != NULL && !c->handshake_logged)
		metrics_count_listener(METRIC_TLS_FAILURES, c->kind);
	if (what & BEV_EVENT_ERROR) {
		if (c->ssl != NULL && !c->handshake_logged)
			conn_log_tls_error(c, "tls-handshake-failed");
		else if (c->ssl != NULL)
			conn_log_tls_error(c, "connection-error");
		else
			log_info("event=connection-error");
	} else if (what & BEV_EVENT_EOF) {
		if (c->ssl != NULL && !c->handshake_logged)
			log_info("event=tls-handshake-failed reason=eof");
	}
	log_set_context(saved);
	/* EOF or error: nothing more can be sent; the session ends here */
	conn_free(c);
}

/* ---- the interface for protocols ---- */

enum listener_kind conn_listener_kind(const struct conn *c) { return c->kind; }
struct evbuffer *conn_input(struct conn *c)
{
	return c->z != NULL ? compress_input(c->z) : bufferevent_get_input(c->bev);
}
struct event_base *conn_event_base(const struct conn *c) { return c->worker->base; }
const struct config *conn_config(const struct conn *c) { return c->worker->cfg; }
struct services *conn_services(const struct conn *c) { return c->worker->services; }
/* TLS from the protocol's point of view: an implicit-TLS connection is TLS
 * from start() on (no client byte is read before its handshake ends), as
 * is one upgraded by STARTTLS. */
bool conn_is_tls(const struct conn *c) { return c->ssl != NULL; }
const char *conn_tls_description(const struct conn *c) { return c->tls_desc; }
const char *conn_remote_ip(const struct conn *c) { return c->remote_ip; }
int conn_remote_port(const struct conn *c) { return c->remote_port; }
const char *conn_local_ip(const struct conn *c) { return c->local_ip; }
int conn_local_port(const struct conn *c) { return c->local_port; }
bool conn_is_loopback(const struct conn *c) { return c->loopback; }
uint64_t conn_id(const struct conn *c) { return c->id; }
bool conn_is_closing(const struct conn *c) { return c->closing; }
bool conn_server_draining(const struct conn *c) { return c->worker->draining; }

void conn_write(struct conn *c, const void *data, size_t len)
{
	if (c->closing && c->freed_session)
		return;
	if (c->z != NULL) {
		/* after a close the goodbye must not wait for the loop's flush */
		if (compress_write(c->z, data, len) < 0 || (c->closing && compress_flush(c->z) < 0))
			log_warn("event=write-failed len=%zu", len);
		return;
	}
	if (bufferevent_write(c->bev, data, len) < 0)
		log_warn("event=write-failed len=%zu", len);
}

void conn_write_str(struct conn *c, const char *s)
{
	conn_write(c, s, strlen(s));
}

void conn_printf(struct conn *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (c->z != NULL) {
		struct buf b = BUF_INIT;
		buf_vprintf(&b, fmt, ap);
		conn_write(c, b.data, b.len);
		buf_free(&b);
	} else {
		evbuffer_add_vprintf(bufferevent_get_output(c->bev), fmt, ap);
	}
	va_end(ap);
}

size_t conn_output_pending(const struct conn *c)
{
	/* bytes still in the compressor count as one until flushed */
	return evbuffer_get_length(bufferevent_get_output(c->bev)) +
	       (c->z != NULL && compress_pending(c->z) ? 1 : 0);
}

void conn_on_output_drained(struct conn *c, size_t low_water, void (*fn)(void *session))
{
	c->drain_low_water = low_water;
	c->drain_fn = fn;
	if (fn != NULL) {
		bufferevent_setwatermark(c->bev, EV_WRITE, low_water, 0);
		if (conn_output_pending(c) <= low_water)
			bufferevent_trigger(c->bev, EV_WRITE, BEV_TRIG_DEFER_CALLBACKS);
	} else {
		bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	}
}

void conn_pause_input(struct conn *c)
{
	conn_want_more(c, false);   /* our wait is not the client's slowness */
	c->paused = true;
	bufferevent_disable(c->bev, EV_READ);
}

void conn_resume_input(struct conn *c)
{
	if (c->worker->draining && !c->closing)
		conn_schedule(c);   /* the session may be idle now: drain it */
	if (!c->paused)
		return;
	c->paused = false;
	if (c->closing)
		return;
	if (!c->starttls_pending)
		bufferevent_enable(c->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0 ||
	    (c->z != NULL && evbuffer_get_length(compress_input(c->z)) > 0))
		conn_schedule(c);
}

static void conn_hold_cb(evutil_socket_t fd, short what, void *arg)
{
	conn_resume_input(arg);
}

void conn_pause_for(struct conn *c, unsigned ms)
{
	if (ms == 0 || c->closing)
		return;
	if (c->hold_ev == NULL)
		c->hold_ev = evtimer_new(c->worker->base, conn_hold_cb, c);
	conn_pause_input(c);
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	evtimer_add(c->hold_ev, &tv);
}

void conn_starttls(struct conn *c, const char *reply)
{
	conn_write_str(c, reply);
	c->starttls_pending = true;
	bufferevent_disable(c->bev, EV_READ);
	/* RFC 3207 section 4.2 (and RFC 2595, 3501): anything pipelined after
	 * the command was sent before the client saw our reply: drop it */
	evbuffer_drain(bufferevent_get_input(c->bev),
		       evbuffer_get_length(bufferevent_get_input(c->bev)));
	c->in_seen = 0;
	conn_want_more(c, false);
	if (conn_output_pending(c) == 0)
		conn_upgrade_tls(c);
}

int conn_tls_exporter(struct conn *c, unsigned char *out, size_t len)
{
	if (c->ssl == NULL || !c->handshake_logged)
		return -1;
	/* RFC 9266 3: TLS 1.2 only with the extended master secret */
	if (SSL_version(c->ssl) < TLS1_3_VERSION && SSL_get_extms_support(c->ssl) != 1)
		return -1;
	return SSL_export_keying_material(c->ssl, out, len, "EXPORTER-Channel-Binding",
					  strlen("EXPORTER-Channel-Binding"), NULL, 0, 0) == 1 ? 0 : -1;
}

int conn_compress_start(struct conn *c, const char *reply)
{
	if (c->z != NULL || c->starttls_pending)
		return -1;
	struct compress *z = compress_new(c->worker->base, bufferevent_get_output(c->bev));
	if (z == NULL)
		return -1;
	conn_write_str(c, reply);
	c->z = z;
	/* anything the client sent after the command is compressed already */
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
		conn_schedule(c);
	return 0;
}

bool conn_is_compressed(const struct conn *c)
{
	return c->z != NULL;
}

void conn_set_user(struct conn *c, const char *user)
{
	log_sanitize(c->user, sizeof(c->user), user, strlen(user));
	free(c->account);
	c->account = xstrdup(user);
	conn_update_log_ctx(c);
	conn_end_preauth(c);
}

unsigned conn_end_account(struct worker *w, const char *address)
{
	unsigned ended = 0;
	/* ending may free the connection: walk with a saved next */
	for (struct conn *c = w->conns, *next; c != NULL; c = next) {
		next = c->next;
		if (c->account == NULL || c->closing ||
		    ascii_strcasecmp(c->account, address) != 0)
			continue;
		ended++;
		log_set_context(c->log_ctx);
		log_info("event=account-ended");
		log_set_context(NULL);
		if (c->proto->end != NULL)
			CALL_PROTO(c, end);
		conn_close(c, "account-ended");
	}
	return ended;
}

void conn_set_timeout(struct conn *c, int seconds)
{
	c->timeout = seconds;
	conn_apply_timeouts(c);
}

void conn_close(struct conn *c, const char *reason)
{
	if (c->closing)
		return;
	c->closing = true;
	if (reason != NULL)
		log_debug("event=closing reason=%s", reason);
	if (c->z != NULL)
		compress_flush(c->z);
	bufferevent_disable(c->bev, EV_READ);
	conn_want_more(c, false);
	conn_end_preauth(c);
	/* give the last reply a bounded time to leave */
	struct timeval tv = { 30, 0 };
	bufferevent_set_timeouts(c->bev, NULL, &tv);
	conn_schedule(c);
}

void conn_drain(struct conn *c)
{
	if (c->proto->shutdown == NULL && !c->closing) {
		conn_close(c, "shutdown");
		return;
	}
	conn_drain_if_idle(c);
}

int conn_tls_exporter_fn(void *c, unsigned char *out, size_t len)
{
	return conn_tls_exporter(c, out, len);
}

/* The public session calls, and a worker's (or the relay's) link to the
 * auth process.
 *
 * In a process that holds the account database (the auth process, the
 * CLI, the unit tests) an auth_session is the SASL server's own
 * (sasl.c). In a worker, auth_client_open() ran instead: the session
 * sends each call to the auth process and gets the answer back (the
 * result, a challenge, the canonical user, never a hash). Lookups
 * (auth_user_lookup & co.) are quick synchronous round trips on a socket
 * of their own, so an answer to a session never has to be set aside
 * while one waits. */
#include "auth/auth-private.h"
#include "auth/ipc.h"
#include "core/core.h"
#include "core/offload.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOOKUP_TIMEOUT_MS 5000     /* the auth process restarting, at worst */
#define ANSWER_TIMEOUT_SECS 60     /* a session's answer (throttling waits <= 10 s) */
#define CBIND_MAX 64

struct auth_client {
	const struct config *cfg;
	int sync_fd, async_fd;
	uint32_t next_id;
	uint64_t next_sid;
	char mechs[256];              /* every mechanism the server has, "" = not known yet */
	time_t mechs_retry;           /* when to ask again after no answer */
	struct event *read_ev;        /* async_fd, once a loop is known */
	struct auth_session *waiting; /* sessions with a call out */
	unsigned char buf[IPC_MAX];
	struct ipc_msg msg;
};

static struct auth_client *client_global;

struct auth_session {
	struct asrv_session *local;   /* NULL: a remote session */
	struct auth_client *cl;
	struct auth_session *prev, *next;   /* in cl->waiting while a call is out */
	char *service, *local_ip, *remote_ip;
	int local_port, remote_port;
	bool tls, loopback;
	int (*tls_exporter)(void *ctx, unsigned char *out, size_t len);
	void *tls_exporter_ctx;
	char cbind_name[32];
	char cbind_hex[2 * CBIND_MAX + 1];
	uint64_t sid;                 /* the server's session, 0 = none */
	uint32_t call;                /* id of the call out, 0 = none */
	auth_done_fn *cb;
	void *cb_ctx;
	const char *log_ctx;
	struct event *timer;
	char *username;
	unsigned delay_ms;
	char mechs[256];
};

struct auth_client *auth_client_get(void)
{
	return client_global;
}

/* ---- lookups: synchronous round trips ---------------------------------- */

static uint32_t client_next_id(struct auth_client *cl)
{
	if (++cl->next_id == 0)
		cl->next_id = 1;
	return cl->next_id;
}

/* Sends o on the lookup socket and waits for its answer in cl->msg. */
static int client_call(struct auth_client *cl, struct ipc_out *o)
{
	uint32_t id = (uint32_t)o->data[0] | (uint32_t)o->data[1] << 8 |
		      (uint32_t)o->data[2] << 16 | (uint32_t)o->data[3] << 24;
	struct timespec start, now;
	if (ipc_send(cl->sync_fd, o) < 0) {
		log_error("event=auth-call-failed error=\"%s\"", strerror(errno));
		return -1;
	}
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		long spent = (now.tv_sec - start.tv_sec) * 1000 +
			     (now.tv_nsec - start.tv_nsec) / 1000000;
		struct pollfd pfd = { cl->sync_fd, POLLIN, 0 };
		int ready = spent < LOOKUP_TIMEOUT_MS ?
			poll(&pfd, 1, (int)(LOOKUP_TIMEOUT_MS - spent)) : 0;
		if (ready < 0 && errno == EINTR)
			continue;
		if (ready <= 0) {
			log_error("event=auth-call-failed error=\"no answer from the auth process\"");
			return -1;
		}
		long n = ipc_recv(cl->sync_fd, cl->buf, sizeof(cl->buf));
		if (n <= 0) {
			log_error("event=auth-call-failed error=\"%s\"",
				  n == 0 ? "auth socket closed" : strerror(errno));
			return -1;
		}
		/* an answer to a call that timed out earlier is skipped */
		if (ipc_decode(cl->buf, (size_t)n, &cl->msg) == 0 && cl->msg.id == id &&
		    cl->msg.type == IPC_ANSWER)
			return 0;
	}
}

static bool field_is(const struct ipc_msg *m, unsigned i, const char *value)
{
	return i < m->count && strcmp(m->field[i], value) == 0;
}

int auth_client_user_lookup(struct auth_client *cl, const char *address,
			    struct auth_user *user_r)
{
	struct ipc_out o;
	ipc_begin(&o, client_next_id(cl), IPC_USER_LOOKUP);
	ipc_add_str(&o, address);
	memset(user_r, 0, sizeof(*user_r));
	if (client_call(cl, &o) < 0)
		return -1;
	const struct ipc_msg *m = &cl->msg;
	if (field_is(m, 0, "0"))
		return 0;
	if (!field_is(m, 0, "1") || m->count != 7)
		return -1;
	snprintf(user_r->address, sizeof(user_r->address), "%s", m->field[1]);
	snprintf(user_r->key, sizeof(user_r->key), "%s", m->field[2]);
	user_r->quota = strtoull(m->field[3], NULL, 10);
	user_r->enabled = strcmp(m->field[4], "1") == 0;
	user_r->created = (time_t)strtoll(m->field[5], NULL, 10);
	user_r->quota_messages = strtoull(m->field[6], NULL, 10);
	return 1;
}

int auth_client_domain_is_local(struct auth_client *cl, const char *domain)
{
	struct ipc_out o;
	ipc_begin(&o, client_next_id(cl), IPC_DOMAIN_IS_LOCAL);
	ipc_add_str(&o, domain);
	return client_call(cl, &o) == 0 && field_is(&cl->msg, 0, "1");
}

int auth_client_sender_allowed(struct auth_client *cl, const char *user, const char *address)
{
	struct ipc_out o;
	ipc_begin(&o, client_next_id(cl), IPC_SENDER_ALLOWED);
	ipc_add_str(&o, user);
	ipc_add_str(&o, address);
	return client_call(cl, &o) == 0 && field_is(&cl->msg, 0, "1");
}

int auth_client_resolve(struct auth_client *cl, const char *address,
			struct auth_recipients *list_r, const char **error_r)
{
	static char error[256];
	struct ipc_out o;
	ipc_begin(&o, client_next_id(cl), IPC_RESOLVE);
	ipc_add_str(&o, address);
	list_r->items = NULL;
	list_r->count = 0;
	if (client_call(cl, &o) < 0) {
		*error_r = "account database unavailable";
		return -1;
	}
	const struct ipc_msg *m = &cl->msg;
	if (m->count != 3) {
		*error_r = "bad answer from the auth process";
		return -1;
	}
	int status = atoi(m->field[0]);
	if (status < 0) {
		snprintf(error, sizeof(error), "%s", m->field[1]);
		*error_r = error;
		return -1;
	}
	/* one line per address: "1 ADDRESS" local, "0 ADDRESS" remote */
	size_t n = 0, cap = 0;
	for (const char *p = m->field[2]; *p != '\0';) {
		const char *end = strchr(p, '\n');
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
		if (len > 2 && p[1] == ' ') {
			if (n == cap) {
				cap = cap == 0 ? 4 : cap * 2;
				list_r->items = xrealloc(list_r->items, cap * sizeof(*list_r->items));
			}
			list_r->items[n].address = xstrndup(p + 2, len - 2);
			list_r->items[n].local = p[0] == '1';
			n++;
		}
		p += len + (end != NULL);
	}
	list_r->count = n;
	return status > 0 ? 1 : 0;
}

/* The mechanisms the auth process offers, asked once (again a few
 * seconds after no answer: it may be restarting). */
static const char *client_mechanisms(struct auth_client *cl)
{
	struct ipc_out o;
	if (cl->mechs[0] != '\0' || time(NULL) < cl->mechs_retry)
		return cl->mechs;
	ipc_begin(&o, client_next_id(cl), IPC_MECHANISMS);
	if (client_call(cl, &o) == 0 && cl->msg.count == 1)
		snprintf(cl->mechs, sizeof(cl->mechs), "%s", cl->msg.field[0]);
	else
		cl->mechs_retry = time(NULL) + 5;
	return cl->mechs;
}

/* ---- opening ---------------------------------------------------------- */

int auth_client_open(const struct config *cfg, int sync_fd, int async_fd,
		     struct auth_db **db_r, const char **error_r)
{
	if (client_global != NULL) {
		*error_r = "auth client already open in this process";
		return -1;
	}
	struct auth_client *cl = xcalloc(1, sizeof(*cl));
	cl->cfg = cfg;
	cl->sync_fd = sync_fd;
	cl->async_fd = async_fd;
	int flags = fcntl(async_fd, F_GETFL);
	if (flags < 0 || fcntl(async_fd, F_SETFL, flags | O_NONBLOCK) < 0) {
		*error_r = "auth socket: cannot make it non-blocking";
		free(cl);
		return -1;
	}
	client_global = cl;
	*db_r = auth_db_remote_new(cl);
	return 0;
}

void auth_client_close(void)
{
	struct auth_client *cl = client_global;
	if (cl == NULL)
		return;
	while (cl->waiting != NULL) {
		struct auth_session *s = cl->waiting;
		cl->waiting = s->next;
		s->prev = s->next = NULL;
		s->call = 0;
	}
	if (cl->read_ev != NULL)
		event_free(cl->read_ev);
	close(cl->sync_fd);
	close(cl->async_fd);
	free(cl);
	client_global = NULL;
}

/* ---- remote sessions -------------------------------------------------- */

static void waiting_remove(struct auth_session *s)
{
	if (s->call == 0)
		return;
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		s->cl->waiting = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	s->prev = s->next = NULL;
	s->call = 0;
	if (s->timer != NULL)
		evtimer_del(s->timer);
}

/* The call's answer (or its failure): the protocol's callback, in the
 * log context of the call. */
static void remote_finish(struct auth_session *s, enum auth_result result,
			  const char *challenge)
{
	auth_done_fn *cb = s->cb;
	waiting_remove(s);
	s->cb = NULL;
	const char *saved = log_get_context();
	log_set_context(s->log_ctx);
	cb(s->cb_ctx, result, challenge);
	log_set_context(saved);
}

static void remote_send_free(struct auth_session *s)
{
	struct ipc_out o;
	if (s->sid == 0)
		return;
	ipc_begin(&o, 0, IPC_FREE);
	ipc_add_u64(&o, s->sid);
	ipc_send(s->cl->async_fd, &o);   /* lost: the server frees it with the worker */
	s->sid = 0;
}

static void remote_answer(struct auth_client *cl, const struct ipc_msg *m)
{
	struct auth_session *s = cl->waiting;
	while (s != NULL && s->call != m->id)
		s = s->next;
	if (s == NULL || m->count != 4)
		return;   /* for a session gone meanwhile */
	int result = atoi(m->field[0]);
	if (result < AUTH_CONTINUE || result > AUTH_TEMPFAIL)
		result = AUTH_TEMPFAIL;
	free(s->username);
	s->username = m->field[2][0] != '\0' ? xstrdup(m->field[2]) : NULL;
	s->delay_ms = (unsigned)strtoul(m->field[3], NULL, 10);
	if (result != AUTH_CONTINUE)
		s->sid = 0;   /* the exchange is over on the server too */
	remote_finish(s, (enum auth_result)result, m->field[1]);
}

static void client_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct auth_client *cl = arg;
	for (;;) {
		long n = ipc_recv(cl->async_fd, cl->buf, sizeof(cl->buf));
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			log_error("event=auth-socket-closed");
			event_del(cl->read_ev);
			while (cl->waiting != NULL)
				remote_finish(cl->waiting, AUTH_TEMPFAIL, "");
			return;
		}
		if (ipc_decode(cl->buf, (size_t)n, &cl->msg) == 0 && cl->msg.type == IPC_ANSWER)
			remote_answer(cl, &cl->msg);
	}
}

static void remote_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct auth_session *s = arg;
	log_error("event=auth-call-failed error=\"no answer from the auth process\"");
	remote_send_free(s);
	remote_finish(s, AUTH_TEMPFAIL, "");
}

/* Channel binding from the connection's TLS, once it is up. */
static void remote_fetch_channel_binding(struct auth_session *s)
{
	unsigned char data[32];
	if (s->cbind_name[0] != '\0' || !s->tls || s->tls_exporter == NULL ||
	    s->tls_exporter(s->tls_exporter_ctx, data, sizeof(data)) < 0)
		return;
	snprintf(s->cbind_name, sizeof(s->cbind_name), "tls-exporter");
	ipc_hex(s->cbind_hex, data, sizeof(data));
	OPENSSL_cleanse(data, sizeof(data));
}

static void remote_add_info(struct ipc_out *o, struct auth_session *s)
{
	char flags[3] = "";
	size_t n = 0;
	if (s->tls)
		flags[n++] = 't';
	if (s->loopback)
		flags[n++] = 'l';
	flags[n] = '\0';
	ipc_add_str(o, s->service);
	ipc_add_str(o, s->local_ip);
	ipc_add_u64(o, (uint64_t)s->local_port);
	ipc_add_str(o, s->remote_ip);
	ipc_add_u64(o, (uint64_t)s->remote_port);
	ipc_add_str(o, flags);
	ipc_add_str(o, s->cbind_name);
	ipc_add_str(o, s->cbind_hex);
}

/* Sends a session call; the answer comes to cb on o's loop. */
static void remote_call(struct auth_session *s, struct offload *o, enum ipc_type type,
			const char *a, const char *b, auth_done_fn *cb, void *ctx)
{
	struct auth_client *cl = s->cl;
	struct ipc_out *out = xmalloc(sizeof(*out));
	waiting_remove(s);
	s->cb = cb;
	s->cb_ctx = ctx;
	s->log_ctx = log_get_context();
	struct event_base *base = o != NULL ? offload_base(o) : NULL;
	if (base == NULL) {
		log_error("event=auth-call-failed error=\"no event loop for the answer\"");
		free(out);
		remote_finish(s, AUTH_TEMPFAIL, "");
		return;
	}
	if (cl->read_ev == NULL) {
		cl->read_ev = event_new(base, cl->async_fd, EV_READ | EV_PERSIST, client_read_cb, cl);
		if (cl->read_ev == NULL || event_add(cl->read_ev, NULL) < 0)
			fatal("event=event-new-failed");
	}
	if (s->timer == NULL && (s->timer = evtimer_new(base, remote_timeout_cb, s)) == NULL)
		fatal("event=evtimer-new-failed");
	if (type != IPC_STEP) {
		/* a new exchange: a fresh session on the server */
		remote_send_free(s);
		remote_fetch_channel_binding(s);
		s->sid = ++cl->next_sid;
	}
	s->call = client_next_id(cl);
	ipc_begin(out, s->call, type);
	ipc_add_u64(out, s->sid);
	if (type != IPC_STEP)
		remote_add_info(out, s);
	ipc_add_str(out, a);
	if (b != NULL)
		ipc_add_str(out, b);
	int rc = ipc_send(cl->async_fd, out);
	OPENSSL_cleanse(out, sizeof(*out));
	free(out);
	/* on the waiting list first: remote_finish takes it off */
	s->next = cl->waiting;
	if (cl->waiting != NULL)
		cl->waiting->prev = s;
	cl->waiting = s;
	if (rc < 0) {
		log_error("event=auth-call-failed error=\"%s\"", strerror(errno));
		s->sid = 0;
		remote_finish(s, AUTH_TEMPFAIL, "");
		return;
	}
	struct timeval tv = { ANSWER_TIMEOUT_SECS, 0 };
	evtimer_add(s->timer, &tv);
}

static bool remote_plaintext_allowed(const struct auth_session *s)
{
	return auth_plaintext_policy(s->cl->cfg, s->tls, s->loopback);
}

static const char *remote_mechanisms(struct auth_session *s)
{
	struct buf out = BUF_INIT;
	s->mechs[0] = '\0';
	if (!remote_plaintext_allowed(s))
		return s->mechs;
	if (s->sid == 0)
		remote_fetch_channel_binding(s);
	for (const char *p = client_mechanisms(s->cl); *p != '\0';) {
		size_t n = strcspn(p, " ");
		bool plus = n > 5 && ascii_strncasecmp(p + n - 5, "-PLUS", 5) == 0;
		if (!plus || s->cbind_name[0] != '\0') {
			if (out.len > 0)
				buf_append_char(&out, ' ');
			buf_append(&out, p, n);
		}
		p += n;
		p += strspn(p, " ");
	}
	snprintf(s->mechs, sizeof(s->mechs), "%s", buf_str(&out));
	buf_free(&out);
	return s->mechs;
}

/* ---- the public calls: local or remote -------------------------------- */

struct auth_session *auth_session_new(const struct auth_conn_info *info)
{
	struct auth_session *s = xcalloc(1, sizeof(*s));
	s->cl = client_global;
	if (s->cl == NULL) {
		s->local = asrv_session_new(info);
		return s;
	}
	s->service = xstrdup(info->service);
	s->local_ip = xstrdup(info->local_ip != NULL ? info->local_ip : "");
	s->remote_ip = xstrdup(info->remote_ip != NULL ? info->remote_ip : "");
	s->local_port = info->local_port;
	s->remote_port = info->remote_port;
	s->tls = info->tls;
	s->loopback = info->loopback;
	s->tls_exporter = info->tls_exporter;
	s->tls_exporter_ctx = info->tls_exporter_ctx;
	return s;
}

void auth_session_free(struct auth_session **sp)
{
	struct auth_session *s = *sp;
	if (s == NULL)
		return;
	if (s->local != NULL) {
		asrv_session_free(&s->local);
	} else {
		waiting_remove(s);
		remote_send_free(s);
		if (s->timer != NULL)
			event_free(s->timer);
		free(s->service);
		free(s->local_ip);
		free(s->remote_ip);
		free(s->username);
	}
	free(s);
	*sp = NULL;
}

void auth_session_set_tls(struct auth_session *s)
{
	if (s->local != NULL) {
		asrv_session_set_tls(s->local);
		return;
	}
	s->tls = true;
	remote_send_free(s);
}

void auth_session_set_channel_binding(struct auth_session *s, const char *type,
				      const unsigned char *data, size_t len)
{
	if (s->local != NULL) {
		asrv_session_set_channel_binding(s->local, type, data, len);
		return;
	}
	remote_send_free(s);
	s->cbind_name[0] = '\0';
	s->cbind_hex[0] = '\0';
	if (type == NULL || len == 0 || len > CBIND_MAX || strlen(type) >= sizeof(s->cbind_name))
		return;
	snprintf(s->cbind_name, sizeof(s->cbind_name), "%s", type);
	ipc_hex(s->cbind_hex, data, len);
}

bool auth_plaintext_allowed(const struct auth_session *s)
{
	return s->local != NULL ? asrv_plaintext_allowed(s->local) : remote_plaintext_allowed(s);
}

const char *auth_mechanisms(struct auth_session *s)
{
	return s->local != NULL ? asrv_mechanisms(s->local) : remote_mechanisms(s);
}

/* The synchronous calls are for processes that hold the database. */
static enum auth_result remote_sync_refused(const char **challenge_b64_r)
{
	if (challenge_b64_r != NULL)
		*challenge_b64_r = "";
	log_error("event=auth-call-failed error=\"synchronous call in a worker\"");
	return AUTH_TEMPFAIL;
}

enum auth_result auth_start(struct auth_session *s, const char *mech,
			    const char *initial_b64, const char **challenge_b64_r)
{
	if (s->local == NULL)
		return remote_sync_refused(challenge_b64_r);
	return asrv_start(s->local, mech, initial_b64, challenge_b64_r);
}

enum auth_result auth_step(struct auth_session *s, const char *response_b64,
			   const char **challenge_b64_r)
{
	if (s->local == NULL)
		return remote_sync_refused(challenge_b64_r);
	return asrv_step(s->local, response_b64, challenge_b64_r);
}

enum auth_result auth_login(struct auth_session *s, const char *user, const char *password)
{
	if (s->local == NULL)
		return remote_sync_refused(NULL);
	return asrv_login(s->local, user, password);
}

void auth_cancel(struct auth_session *s)
{
	const char *challenge;
	if (s->local != NULL) {
		asrv_step(s->local, "*", &challenge);
		return;
	}
	waiting_remove(s);
	remote_send_free(s);
}

void auth_login_async(struct auth_session *s, struct offload *o, const char *user,
		      const char *password, auth_done_fn *cb, void *ctx)
{
	if (s->local != NULL)
		asrv_login_async(s->local, o, user, password, cb, ctx);
	else
		remote_call(s, o, IPC_LOGIN, user, password, cb, ctx);
}

void auth_start_async(struct auth_session *s, struct offload *o, const char *mech,
		      const char *initial_b64, auth_done_fn *cb, void *ctx)
{
	if (s->local != NULL)
		asrv_start_async(s->local, o, mech, initial_b64, cb, ctx);
	else
		remote_call(s, o, IPC_START, mech, initial_b64, cb, ctx);
}

void auth_step_async(struct auth_session *s, struct offload *o, const char *response_b64,
		     auth_done_fn *cb, void *ctx)
{
	if (s->local != NULL)
		asrv_step_async(s->local, o, response_b64, cb, ctx);
	else if (s->sid == 0)
		cb(ctx, AUTH_MALFORMED, "");   /* no exchange in progress */
	else
		remote_call(s, o, IPC_STEP, response_b64, NULL, cb, ctx);
}

const char *auth_username(const struct auth_session *s)
{
	return s->local != NULL ? asrv_username(s->local) : s->username;
}

unsigned auth_reply_delay_ms(const struct auth_session *s)
{
	return s->local != NULL ? asrv_reply_delay_ms(s->local) : s->delay_ms;
}

/* The auth process (auth.h): alone it opens accounts.lmdb, the throttle
 * counters and the server secret, runs the SASL server and its hashing
 * threads, and answers the workers and the relay over the socketpairs the
 * master hands it. Everything a worker sends is untrusted (ipc_decode
 * checks each record); answers carry results, never a hash or secret. */
#include "auth/auth-private.h"
#include "auth/ipc.h"
#include "core/core.h"
#include "core/server.h"
#include "core/offload.h"

#include <errno.h>
#include <fcntl.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SESSIONS_PER_CLIENT_MAX 50000
#define PERIODIC_SECS 30

struct service;
struct svc_client;

/* One exchange of one connection of a worker. */
struct svc_session {
	struct svc_client *cl;
	uint64_t sid;
	uint32_t call;               /* the request being answered */
	struct asrv_session *s;
	struct svc_session *prev, *next;
};

/* A worker or the relay: its two sockets and open sessions. */
struct svc_client {
	struct service *svc;
	int slot;
	int fd[2];                   /* lookups, sessions */
	struct event *ev[2];
	struct svc_session *sessions;
	unsigned nsessions;
	struct svc_client *prev, *next;
};

struct service {
	const struct config *cfg;
	struct event_base *base;
	struct auth_db *db;
	struct offload *offload;
	struct svc_client *clients;
	char mechs[256];
	int ctl_fd;
	unsigned char buf[IPC_MAX];
	struct ipc_msg msg;
};

/* What the master sends on the control socket (with two descriptors for
 * ATTACH): the layout core/master.c writes. */
struct svc_ctl {
	char op;                     /* 'A'ttach, 'D'etach */
	int slot;
};

/* ---- lookups ---------------------------------------------------------- */

static void svc_lookup(struct svc_client *cl, const struct ipc_msg *m)
{
	struct service *svc = cl->svc;
	struct ipc_out *o = xmalloc(sizeof(*o));
	ipc_begin(o, m->id, IPC_ANSWER);
	switch (m->type) {
	case IPC_USER_LOOKUP: {
		struct auth_user u;
		int found = m->count == 1 ? auth_user_lookup(svc->db, m->field[0], &u) : -1;
		ipc_add_str(o, found > 0 ? "1" : found == 0 ? "0" : "-1");
		if (found > 0) {
			ipc_add_str(o, u.address);
			ipc_add_str(o, u.key);
			ipc_add_u64(o, u.quota);
			ipc_add_str(o, u.enabled ? "1" : "0");
			ipc_add_u64(o, (uint64_t)u.created);
			ipc_add_u64(o, u.quota_messages);
		}
		OPENSSL_cleanse(&u, sizeof(u));
		break;
	}
	case IPC_DOMAIN_IS_LOCAL:
		ipc_add_str(o, m->count == 1 && auth_domain_is_local(svc->db, m->field[0]) ?
			    "1" : "0");
		break;
	case IPC_SENDER_ALLOWED:
		ipc_add_str(o, m->count == 2 &&
				       auth_sender_allowed(svc->db, m->field[0], m->field[1]) ?
			    "1" : "0");
		break;
	case IPC_RESOLVE: {
		struct auth_recipients list = { NULL, 0 };
		const char *error = "bad request";
		int r = m->count == 1 ?
			auth_resolve_recipient(svc->db, m->field[0], &list, &error) : -1;
		ipc_add_str(o, r > 0 ? "1" : r == 0 ? "0" : "-1");
		ipc_add_str(o, r < 0 ? error : "");
		/* one line per address: "1 ADDRESS" local, "0 ADDRESS" remote */
		struct buf lines = BUF_INIT;
		for (size_t i = 0; i < list.count; i++)
			buf_printf(&lines, "%d %s\n", list.items[i].local ? 1 : 0,
				   list.items[i].address);
		ipc_add(o, lines.data != NULL ? lines.data : "", lines.len);
		buf_free(&lines);
		auth_recipients_free(&list);
		if (o->overflow) {   /* an alias that expands too far for one record */
			ipc_begin(o, m->id, IPC_ANSWER);
			ipc_add_str(o, "-1");
			ipc_add_str(o, "alias expands to too many addresses");
		}
		break;
	}
	case IPC_MECHANISMS:
		ipc_add_str(o, svc->mechs);
		break;
	default:
		ipc_add_str(o, "-1");
		break;
	}
	if (ipc_send(cl->fd[0], o) < 0)
		log_warn("event=auth-answer-failed slot=%d error=\"%s\"", cl->slot,
			 strerror(errno));
	free(o);
}

/* ---- sessions --------------------------------------------------------- */

static void session_free(struct svc_session *ss)
{
	struct svc_client *cl = ss->cl;
	if (ss->prev != NULL)
		ss->prev->next = ss->next;
	else
		cl->sessions = ss->next;
	if (ss->next != NULL)
		ss->next->prev = ss->prev;
	cl->nsessions--;
	asrv_session_free(&ss->s);
	free(ss);
}

static struct svc_session *session_find(struct svc_client *cl, uint64_t sid)
{
	for (struct svc_session *ss = cl->sessions; ss != NULL; ss = ss->next)
		if (ss->sid == sid)
			return ss;
	return NULL;
}

static void session_answer(void *ctx, enum auth_result result, const char *challenge)
{
	struct svc_session *ss = ctx;
	struct ipc_out *o = xmalloc(sizeof(*o));
	const char *user = result == AUTH_OK ? asrv_username(ss->s) : NULL;
	ipc_begin(o, ss->call, IPC_ANSWER);
	ipc_add_u64(o, (uint64_t)result);
	ipc_add_str(o, challenge != NULL ? challenge : "");
	ipc_add_str(o, user != NULL ? user : "");
	ipc_add_u64(o, asrv_reply_delay_ms(ss->s));
	if (ipc_send(ss->cl->fd[1], o) < 0)
		log_warn("event=auth-answer-failed slot=%d error=\"%s\"", ss->cl->slot,
			 strerror(errno));
	free(o);
	if (result != AUTH_CONTINUE)
		session_free(ss);   /* the exchange is over: the worker starts anew */
}

static void answer_now(struct svc_client *cl, uint32_t id, enum auth_result result)
{
	struct ipc_out o;
	ipc_begin(&o, id, IPC_ANSWER);
	ipc_add_u64(&o, (uint64_t)result);
	ipc_add_str(&o, "");
	ipc_add_str(&o, "");
	ipc_add_str(&o, "0");
	ipc_send(cl->fd[1], &o);
}

/* LOGIN/START: sid, the connection facts, then the call's arguments. */
static struct svc_session *session_begin(struct svc_client *cl, const struct ipc_msg *m)
{
	const char *const *f = m->field;
	unsigned char cbind[64];
	long cbind_len = 0;
	if (m->count < 1 + IPC_INFO_FIELDS + 1 ||
	    (f[8][0] != '\0' && (cbind_len = ipc_unhex(cbind, sizeof(cbind), f[8])) <= 0))
		return NULL;
	uint64_t sid = strtoull(f[0], NULL, 10);
	struct svc_session *ss = session_find(cl, sid);
	if (ss != NULL)
		session_free(ss);   /* a new exchange starts afresh */
	if (cl->nsessions >= SESSIONS_PER_CLIENT_MAX)
		return NULL;
	struct auth_conn_info info = {
		.service = f[1],
		.local_ip = f[2],
		.local_port = atoi(f[3]),
		.remote_ip = f[4],
		.remote_port = atoi(f[5]),
		.tls = strchr(f[6], 't') != NULL,
		.loopback = strchr(f[6], 'l') != NULL,
	};
	ss = xcalloc(1, sizeof(*ss));
	ss->cl = cl;
	ss->sid = sid;
	ss->s = asrv_session_new(&info);
	if (cbind_len > 0)
		asrv_session_set_channel_binding(ss->s, f[7], cbind, (size_t)cbind_len);
	OPENSSL_cleanse(cbind, sizeof(cbind));
	ss->next = cl->sessions;
	if (cl->sessions != NULL)
		cl->sessions->prev = ss;
	cl->sessions = ss;
	cl->nsessions++;
	return ss;
}

static void svc_session_call(struct svc_client *cl, const struct ipc_msg *m)
{
	struct offload *o = cl->svc->offload;
	const unsigned args = 1 + IPC_INFO_FIELDS;
	struct svc_session *ss;
	switch (m->type) {
	case IPC_LOGIN:
		if (m->count != args + 2 || (ss = session_begin(cl, m)) == NULL)
			break;
		ss->call = m->id;
		asrv_login_async(ss->s, o, m->field[args], m->field[args + 1], session_answer, ss);
		return;
	case IPC_START:
		if ((m->count != args + 1 && m->count != args + 2) ||
		    (ss = session_begin(cl, m)) == NULL)
			break;
		ss->call = m->id;
		asrv_start_async(ss->s, o, m->field[args],
				 m->count == args + 2 ? m->field[args + 1] : NULL, session_answer, ss);
		return;
	case IPC_STEP:
		if (m->count != 2 ||
		    (ss = session_find(cl, strtoull(m->field[0], NULL, 10))) == NULL) {
			answer_now(cl, m->id, AUTH_MALFORMED);
			return;
		}
		ss->call = m->id;
		asrv_step_async(ss->s, o, m->field[1], session_answer, ss);
		return;
	case IPC_FREE:
		if (m->count == 1 && (ss = session_find(cl, strtoull(m->field[0], NULL, 10))) != NULL)
			session_free(ss);
		return;
	default:
		break;
	}
	answer_now(cl, m->id, AUTH_TEMPFAIL);
}

/* ---- the sockets ------------------------------------------------------ */

static void client_free(struct svc_client *cl)
{
	struct service *svc = cl->svc;
	while (cl->sessions != NULL)
		session_free(cl->sessions);
	for (int i = 0; i < 2; i++) {
		event_free(cl->ev[i]);
		close(cl->fd[i]);
	}
	if (cl->prev != NULL)
		cl->prev->next = cl->next;
	else
		svc->clients = cl->next;
	if (cl->next != NULL)
		cl->next->prev = cl->prev;
	free(cl);
}

static void client_read(struct svc_client *cl, int which)
{
	struct service *svc = cl->svc;
	long n = ipc_recv(cl->fd[which], svc->buf, sizeof(svc->buf));
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (n <= 0) {
		log_warn("event=auth-client-gone slot=%d", cl->slot);
		client_free(cl);
		return;
	}
	if (ipc_decode(svc->buf, (size_t)n, &svc->msg) < 0) {
		log_warn("event=auth-bad-request slot=%d", cl->slot);
		return;
	}
	if (which == 0)
		svc_lookup(cl, &svc->msg);
	else
		svc_session_call(cl, &svc->msg);
	OPENSSL_cleanse(svc->buf, (size_t)n);
	OPENSSL_cleanse(svc->msg.text, sizeof(svc->msg.text));
}

static void lookup_cb(evutil_socket_t fd, short what, void *arg)
{
	client_read(arg, 0);
}

static void session_cb(evutil_socket_t fd, short what, void *arg)
{
	client_read(arg, 1);
}

static struct svc_client *client_find(struct service *svc, int slot)
{
	for (struct svc_client *cl = svc->clients; cl != NULL; cl = cl->next)
		if (cl->slot == slot)
			return cl;
	return NULL;
}

static void client_attach(struct service *svc, int slot, const int fds[2])
{
	struct svc_client *old = client_find(svc, slot);
	if (old != NULL)
		client_free(old);
	struct svc_client *cl = xcalloc(1, sizeof(*cl));
	cl->svc = svc;
	cl->slot = slot;
	for (int i = 0; i < 2; i++) {
		cl->fd[i] = fds[i];
		/* a worker that stops reading loses its answers; it never
		 * blocks the auth process */
		int flags = fcntl(fds[i], F_GETFL);
		if (flags >= 0)
			fcntl(fds[i], F_SETFL, flags | O_NONBLOCK);
		cl->ev[i] = event_new(svc->base, fds[i], EV_READ | EV_PERSIST,
				      i == 0 ? lookup_cb : session_cb, cl);
		if (cl->ev[i] == NULL || event_add(cl->ev[i], NULL) < 0)
			fatal("event=event-new-failed");
	}
	cl->next = svc->clients;
	if (svc->clients != NULL)
		svc->clients->prev = cl;
	svc->clients = cl;
	log_debug("event=auth-client-attached slot=%d", slot);
}

static void ctl_cb(evutil_socket_t fd, short what, void *arg)
{
	struct service *svc = arg;
	struct svc_ctl ctl;
	char cbuf[CMSG_SPACE(2 * sizeof(int))];
	struct iovec iov = { &ctl, sizeof(ctl) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {   /* the master is gone */
		log_warn("event=auth-master-gone");
		event_base_loopbreak(svc->base);
		return;
	}
	int fds[2] = { -1, -1 };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	if (cm != NULL && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
	    cm->cmsg_len == CMSG_LEN(2 * sizeof(int)))
		memcpy(fds, CMSG_DATA(cm), sizeof(fds));
	if (n == sizeof(ctl) && ctl.op == 'A' && fds[0] >= 0 && fds[1] >= 0) {
		client_attach(svc, ctl.slot, fds);
		return;
	}
	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	struct svc_client *cl = n == sizeof(ctl) && ctl.op == 'D' ? client_find(svc, ctl.slot) : NULL;
	if (cl != NULL)
		client_free(cl);
}

static void term_cb(evutil_socket_t sig, short what, void *arg)
{
	event_base_loopbreak(arg);
}

static void periodic_cb(evutil_socket_t fd, short what, void *arg)
{
	struct service *svc = arg;
	int cleared = auth_db_reader_check(svc->db);
	if (cleared > 0)
		log_info("event=lmdb-stale-readers-cleared count=%d", cleared);
}

/* Every mechanism the server offers, the -PLUS ones included. */
static void all_mechanisms(struct service *svc)
{
	static const unsigned char dummy[32];
	struct auth_conn_info info = { .service = "imap", .tls = true };
	struct asrv_session *s = asrv_session_new(&info);
	asrv_session_set_channel_binding(s, "tls-exporter", dummy, sizeof(dummy));
	snprintf(svc->mechs, sizeof(svc->mechs), "%s", asrv_mechanisms(s));
	asrv_session_free(&s);
}

int auth_service_main(const struct config *cfg, int ctl_fd,
		      int (*prepare)(const struct config *cfg, const char **error_r))
{
	struct service svc;
	const char *error;
	memset(&svc, 0, sizeof(svc));
	svc.cfg = cfg;
	svc.ctl_fd = ctl_fd;
	if (auth_db_open(cfg->data_dir, cfg->run_as, &svc.db, &error) < 0 ||
	    auth_sasl_init(cfg, svc.db, &error) < 0) {
		/* the master counts this as a start that failed (and gives up
		 * after a few, with this reason) */
		server_child_init_failed("auth-init-failed", error);
	}
	all_mechanisms(&svc);
	svc.base = event_base_new();
	if (svc.base == NULL)
		fatal("event=event-base-failed");
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	svc.offload = offload_new(svc.base, cpus < 1 ? 1 : cpus > 4 ? 4 : (unsigned)cpus);
	if (svc.offload == NULL)
		log_warn("event=offload-unavailable (password checks run on the event loop)");
	if (prepare != NULL && prepare(cfg, &error) < 0)
		fatal("event=auth-sandbox-failed error=\"%s\"", error);
	struct event *ctl_ev = event_new(svc.base, ctl_fd, EV_READ | EV_PERSIST, ctl_cb, &svc);
	struct event *term_ev = evsignal_new(svc.base, SIGTERM, term_cb, svc.base);
	struct event *periodic_ev = event_new(svc.base, -1, EV_PERSIST, periodic_cb, &svc);
	struct timeval tv = { PERIODIC_SECS, 0 };
	if (ctl_ev == NULL || term_ev == NULL || periodic_ev == NULL ||
	    event_add(ctl_ev, NULL) < 0 || evsignal_add(term_ev, NULL) < 0 ||
	    event_add(periodic_ev, &tv) < 0)
		fatal("event=event-new-failed");
	log_info("event=auth-ready mechanisms=\"%s\"", svc.mechs);
	event_base_dispatch(svc.base);
	while (svc.clients != NULL)
		client_free(svc.clients);
	offload_free(&svc.offload);
	event_free(ctl_ev);
	event_free(term_ev);
	event_free(periodic_ev);
	event_base_free(svc.base);
	auth_sasl_deinit();
	auth_db_close(&svc.db);
	close(ctl_fd);
	log_info("event=auth-exit");
	return 0;
}

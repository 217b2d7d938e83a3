#include "core/server-private.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/notify.h"
#include "core/privs.h"
#include "core/sandbox.h"
#include "core/tls.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RESTART_BACKOFF_SECS 1
/* [listen] metrics and https: served by the web process, not the workers */
enum { HTTP_METRICS, HTTP_HTTPS, HTTP_COUNT };

/* a child that fails initialisation this many times in a row (about two
 * seconds with the back-off) will not start: the master gives up */
#define INIT_FAILURES_MAX 3
/* the exit status of a child that failed initialisation (server.h) */
#define EXIT_INIT_FAILED SERVER_EXIT_INIT_FAILED

/* What a child tells the master about its start, in a shared mapping
 * (one per slot): whether it got through initialisation, else why not. */
struct child_report {
	volatile int initialised;
	char error[300];
};

struct child {
	pid_t pid;          /* 0 = slot free */
	enum metrics_child kind;   /* worker, relay, web or auth process */
	int auth_fds[2];    /* the auth process's ends of this child's sockets, -1 */
	int generation;
	time_t started;
	bool restart_due;   /* died; start a new one when backoff passed */
	time_t restart_at;
	int init_failures;  /* failed initialisation this many times in a row */
};

struct master {
	const struct server_setup *setup;
	struct server_setup live_setup;
	SSL_CTX *ssl_ctx;
	int listen_fds[LISTEN_COUNT];
	int http_fds[HTTP_COUNT];
	struct connlimit *limits;
	struct child *children;      /* indexed by slot */
	struct child_report *reports;   /* shared with the children, by slot */
	int nslots;
	int nworkers;
	int generation;
	bool stopping;
	bool gave_up;                /* children cannot start: exit 1 */
	char give_up_reason[400];
	struct config *owned_cfg;    /* made by a reload; freed by the next one */
	sigset_t old_mask;
	int sfd;
	int auth_ctl;                /* control socket to the auth process, -1 */
	struct tls_ocsp *ocsp;       /* the stapled OCSP response, shared */
	time_t ocsp_due;             /* next refresh, 0 = none */
};

/* The certificate's OCSP response, fetched now (if it names a
 * responder) and again when the last one runs towards its end. */
static void master_ocsp_refresh(struct master *m)
{
	int next = tls_ocsp_refresh(m->ocsp, m->ssl_ctx);
	m->ocsp_due = next > 0 ? time(NULL) + next : 0;
}

/* The control records for the auth process (auth/service.c reads them):
 * 'A' with the two socket ends of a child, 'D' when it is gone. */
struct auth_ctl_msg {
	char op;
	int slot;
};

static void master_auth_send(struct master *m, char op, int slot, const int *fds)
{
	struct auth_ctl_msg msg;
	memset(&msg, 0, sizeof(msg));
	msg.op = op;
	msg.slot = slot;
	char cbuf[CMSG_SPACE(2 * sizeof(int))];
	struct iovec iov = { &msg, sizeof(msg) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (m->auth_ctl < 0)
		return;   /* the next auth process gets them all */
	if (fds != NULL) {
		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(2 * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, 2 * sizeof(int));
	}
	if (sendmsg(m->auth_ctl, &mh, MSG_NOSIGNAL) < 0)
		log_warn("event=auth-control-failed error=\"%s\"", strerror(errno));
}

/* Closes the master's copies of a child's auth sockets. */
static void master_auth_forget(struct master *m, struct child *ch, int slot)
{
	if (ch->auth_fds[0] < 0)
		return;
	if (!m->stopping)
		master_auth_send(m, 'D', slot, NULL);
	for (int i = 0; i < 2; i++) {
		close(ch->auth_fds[i]);
		ch->auth_fds[i] = -1;
	}
}

/* In a new child: only its own sockets stay open. */
static void child_close_auth_fds(struct master *m)
{
	for (int i = 0; i < m->nslots; i++)
		for (int j = 0; j < 2; j++)
			if (m->children[i].auth_fds[j] >= 0)
				close(m->children[i].auth_fds[j]);
	if (m->auth_ctl >= 0)
		close(m->auth_ctl);
}

/* Two socketpairs for a worker, the relay or the web process to reach the
 * auth process: the child's ends in mine, the auth process's in
 * ch->auth_fds. */
static int master_auth_pairs(struct master *m, struct child *ch, int mine[2])
{
	mine[0] = mine[1] = -1;
	if (m->live_setup.auth_main == NULL)
		return 0;
	for (int i = 0; i < 2; i++) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
			log_error("event=socketpair-failed error=\"%s\"", strerror(errno));
			for (int j = 0; j < i; j++) {
				close(mine[j]);
				close(ch->auth_fds[j]);
				ch->auth_fds[j] = mine[j] = -1;
			}
			return -1;
		}
		mine[i] = sv[0];
		ch->auth_fds[i] = sv[1];
	}
	return 0;
}

static int bind_listener(const char *text, const char *name, const char **error_r)
{
	static char err[512];
	char host[256];
	int port;
	if (config_split_hostport(text, host, sizeof(host), &port) < 0) {
		*error_r = "bad listen address";
		return -1;
	}
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = host[0] == '\0' ? AF_INET6 : AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV | AI_NUMERICHOST;
	char portstr[16];
	snprintf(portstr, sizeof(portstr), "%d", port);
	int gai = getaddrinfo(host[0] ? host : NULL, portstr, &hints, &res);
	if (gai != 0 && host[0] == '\0') {
		hints.ai_family = AF_INET;   /* no IPv6 here */
		gai = getaddrinfo(NULL, portstr, &hints, &res);
	}
	if (gai != 0) {
		snprintf(err, sizeof(err), "[listen] %s = %s: %s (numeric address needed)",
			 name, text, gai_strerror(gai));
		*error_r = err;
		return -1;
	}
	int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, res->ai_protocol);
	if (fd < 0)
		goto fail;
	int one = 1, zero = 0;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (res->ai_family == AF_INET6)  /* "*:port" serves IPv4 too */
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, host[0] ? &one : &zero, sizeof(int));
	/* a burst of connections waits in the kernel rather than being dropped */
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 4096) < 0)
		goto fail;
	freeaddrinfo(res);
	return fd;
fail:
	snprintf(err, sizeof(err), "[listen] %s = %s: %s", name, text, strerror(errno));
	*error_r = err;
	if (fd >= 0)
		close(fd);
	freeaddrinfo(res);
	return -1;
}

/* In a child: its row of the reports (server_child_init_failed). */
static struct child_report *child_report_row;

void server_child_init_failed(const char *event, const char *error)
{
	log_error("event=%s error=\"%s\"", event, error);
	if (child_report_row != NULL)
		snprintf(child_report_row->error, sizeof(child_report_row->error), "%s", error);
	/* _exit: nothing of a half-made child is worth flushing, and exit
	 * handlers (a leak checker's among them) must not change the status */
	_exit(EXIT_INIT_FAILED);
}

/* In a child: tells the master why it cannot start, and exits. */
static void __attribute__((noreturn))
child_init_failed(struct master *m, int slot, const char *event, const char *error)
{
	child_report_row = &m->reports[slot];
	server_child_init_failed(event, error);
}

static void close_fds(int *fds, int n)
{
	for (int i = 0; i < n; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		fds[i] = -1;
	}
}

/* In the child: the work of its kind, after the privilege drop. */
static int child_run(struct master *m, int slot, enum metrics_child kind,
		     struct services *services)
{
	const char *error;
	switch (kind) {
	case METRICS_RELAY:
		SSL_CTX_free(m->ssl_ctx);   /* the relay makes its own client contexts */
		if (sandbox_enter(m->live_setup.cfg, SANDBOX_RELAY, &error) < 0)
			fatal("event=sandbox-failed error=\"%s\"", error);
		log_info("event=relay-ready");
		return m->live_setup.relay_main(m->live_setup.cfg, services);
	case METRICS_WEB:
		/* it parses requests from the network: only the queue's record
		 * (for its gauges) and its sockets */
		if (sandbox_enter(m->live_setup.cfg, SANDBOX_WEB, &error) < 0)
			fatal("event=sandbox-failed error=\"%s\"", error);
		return http_main(&m->live_setup, m->ssl_ctx, m->http_fds[HTTP_METRICS],
				 m->http_fds[HTTP_HTTPS], services);
	default:
		return worker_main(&m->live_setup, m->ssl_ctx, m->listen_fds, m->limits, slot,
				   services);
	}
}

/* In the child, never returns: the privilege drop, the init of its
 * kind, its work. */
static void __attribute__((noreturn))
child_main(struct master *m, int slot, enum metrics_child kind, int auth_ctl, const int mine[2])
{
	const char *error;
	pid_t master = getppid();
	close(m->sfd);
	child_close_auth_fds(m);
	signal(SIGHUP, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	sigprocmask(SIG_SETMASK, &m->old_mask, NULL);
	/* privileges go before any client byte is read */
	if (privs_drop(m->live_setup.cfg->run_as, &error) < 0)
		child_init_failed(m, slot, "privilege-drop-failed", error);
	/* after the drop: changing credentials clears the death signal.
	 * A master that died meanwhile is caught by the getppid check. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != master)
		_exit(0);
	/* each child keeps only the sockets it serves */
	if (kind != METRICS_WEB)
		close_fds(m->http_fds, HTTP_COUNT);
	if (kind != METRICS_WORKER)
		close_fds(m->listen_fds, LISTEN_COUNT);
	child_report_row = &m->reports[slot];
	if (kind == METRICS_AUTH) {
		/* it opens the account database itself: a failure there is
		 * reported by server_child_init_failed() */
		SSL_CTX_free(m->ssl_ctx);   /* the auth process needs no TLS key */
		exit(m->live_setup.auth_main(m->live_setup.cfg, auth_ctl));
	}
	struct services services = { .auth_fd = { mine[0], mine[1] } };
	if (m->live_setup.child_init != NULL &&
	    m->live_setup.child_init(m->live_setup.cfg, &services, &error) < 0)
		child_init_failed(m, slot, "worker-init-failed", error);
	m->reports[slot].initialised = 1;
	int ret = child_run(m, slot, kind, &services);
	if (m->live_setup.child_deinit != NULL)
		m->live_setup.child_deinit(&services);
	exit(ret);
}

static void master_spawn(struct master *m, int slot, enum metrics_child kind)
{
	struct child *ch = &m->children[slot];
	int mine[2] = { -1, -1 }, ctl[2] = { -1, -1 };
	ch->kind = kind;
	connlimit_clear_slot(m->limits, slot);
	metrics_clear_slot(slot);
	memset(&m->reports[slot], 0, sizeof(m->reports[slot]));
	bool failed = kind == METRICS_AUTH ?
		socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) < 0 :
		master_auth_pairs(m, ch, mine) < 0;
	pid_t pid = failed ? -1 : fork();
	if (pid < 0) {
		log_error("event=fork-failed error=\"%s\"", strerror(errno));
		for (int i = 0; i < 2; i++) {
			if (mine[i] >= 0)
				close(mine[i]);
			if (ctl[i] >= 0)
				close(ctl[i]);
		}
		master_auth_forget(m, ch, slot);
		ch->restart_due = true;
		ch->restart_at = time(NULL) + RESTART_BACKOFF_SECS;
		return;
	}
	if (pid == 0) {
		if (kind == METRICS_AUTH)
			close(ctl[0]);
		child_main(m, slot, kind, ctl[1], mine);
	}
	ch->pid = pid;
	ch->generation = m->generation;
	ch->started = time(NULL);
	ch->restart_due = false;
	if (kind == METRICS_AUTH) {
		/* the old auth process, if any, sees its control socket close
		 * and ends; the new one gets every live child's sockets */
		close(ctl[1]);
		if (m->auth_ctl >= 0)
			close(m->auth_ctl);
		m->auth_ctl = ctl[0];
		for (int i = 0; i < m->nslots; i++)
			if (m->children[i].auth_fds[0] >= 0)
				master_auth_send(m, 'A', i, m->children[i].auth_fds);
	} else {
		for (int i = 0; i < 2; i++)
			if (mine[i] >= 0)
				close(mine[i]);
		if (ch->auth_fds[0] >= 0)
			master_auth_send(m, 'A', slot, ch->auth_fds);
	}
	log_info("event=%s-started slot=%d pid=%d generation=%d", metrics_child_name(kind),
		 slot, (int)pid, m->generation);
}

static int master_free_slot(struct master *m)
{
	for (int i = 0; i < m->nslots; i++) {
		if (m->children[i].pid == 0 && !m->children[i].restart_due)
			return i;
	}
	return -1;
}

static void master_spawn_generation(struct master *m)
{
	/* the auth process first: the others' first lookups wait for it */
	if (m->live_setup.auth_main != NULL) {
		int slot = master_free_slot(m);
		if (slot >= 0)
			master_spawn(m, slot, METRICS_AUTH);
	}
	for (int n = 0; n < m->nworkers; n++) {
		int slot = master_free_slot(m);
		if (slot < 0) {
			log_error("event=no-free-worker-slot");
			return;
		}
		master_spawn(m, slot, METRICS_WORKER);
	}
	if (m->live_setup.relay_main != NULL) {
		int slot = master_free_slot(m);
		if (slot >= 0)
			master_spawn(m, slot, METRICS_RELAY);
	}
	if (m->http_fds[HTTP_METRICS] >= 0 || m->http_fds[HTTP_HTTPS] >= 0) {
		int slot = master_free_slot(m);
		if (slot >= 0)
			master_spawn(m, slot, METRICS_WEB);
	}
}

static void master_signal_children(struct master *m, int sig, int generation_below)
{
	for (int i = 0; i < m->nslots; i++) {
		struct child *ch = &m->children[i];
		if (ch->pid > 0 && ch->generation < generation_below)
			kill(ch->pid, sig);
		if (ch->generation < generation_below)
			ch->restart_due = false;
	}
}

/* A child that got through initialisation resets its slot's count; one
 * that failed it INIT_FAILURES_MAX times in a row makes the master stop
 * with the child's reason, instead of restarting it forever. */
static void master_count_init_failure(struct master *m, int slot, int status)
{
	struct child *ch = &m->children[slot];
	struct child_report *report = &m->reports[slot];
	if (report->initialised || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != EXIT_INIT_FAILED) {
		ch->init_failures = 0;
		return;
	}
	if (++ch->init_failures < INIT_FAILURES_MAX || m->stopping)
		return;
	report->error[sizeof(report->error) - 1] = '\0';
	snprintf(m->give_up_reason, sizeof(m->give_up_reason),
		 "%s failed to start %d times in a row: %s",
		 ch->kind == METRICS_RELAY ? "the relay" : ch->kind == METRICS_WEB ? "the web process" :
		 ch->kind == METRICS_AUTH ? "the auth process" : "a worker",
		 ch->init_failures, report->error[0] != '\0' ? report->error : "(no reason given)");
	log_error("event=children-failing slot=%d", slot);
	m->gave_up = true;
	m->stopping = true;
}

static void master_reap(struct master *m)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (int i = 0; i < m->nslots; i++) {
			struct child *ch = &m->children[i];
			if (ch->pid != pid)
				continue;
			ch->pid = 0;
			connlimit_clear_slot(m->limits, i);
			metrics_clear_slot(i);
			master_auth_forget(m, ch, i);
			master_count_init_failure(m, i, status);
			bool current = ch->generation == m->generation;
			if (WIFSIGNALED(status) || WEXITSTATUS(status) != 0 || (current && !m->stopping)) {
				const char *kind = metrics_child_name(ch->kind);
				if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS)
					log_warn("event=%s-died slot=%d pid=%d signal=%d reason=sandbox-violation",
						 kind, i, (int)pid, WTERMSIG(status));
				else if (WIFSIGNALED(status))
					log_warn("event=%s-died slot=%d pid=%d signal=%d", kind, i,
						 (int)pid, WTERMSIG(status));
				else
					log_warn("event=%s-exited slot=%d pid=%d status=%d", kind, i,
						 (int)pid, WEXITSTATUS(status));
			} else {
				log_info("event=%s-stopped slot=%d pid=%d",
					 metrics_child_name(ch->kind), i, (int)pid);
			}
			if (current && !m->stopping) {
				time_t now = time(NULL);
				metrics_count((enum metric)(METRIC_RESTARTS + ch->kind));
				ch->restart_due = true;
				/* a worker that keeps dying at start must not spin */
				ch->restart_at = now - ch->started >= RESTART_BACKOFF_SECS ?
					now : now + RESTART_BACKOFF_SECS;
			}
		}
	}
}

static void master_restart_due(struct master *m)
{
	time_t now = time(NULL);
	for (int i = 0; i < m->nslots; i++) {
		struct child *ch = &m->children[i];
		if (ch->restart_due && ch->pid == 0 && now >= ch->restart_at)
			master_spawn(m, i, ch->kind);
	}
}

static void log_certificate_warning(void *context, const char *text)
{
	log_warn("event=certificate-warning warning=\"%s\"", text);
}

/* The journal says it too when the certificate is about to expire, or
 * names another host (`postern check` prints the same). */
static void master_check_certificate(const struct config *cfg)
{
	const char *error;
	tls_cert_check(cfg->tls_cert, cfg->hostname, CERT_WARN_DAYS, log_certificate_warning,
		       NULL, &error);
}

/* READY=1 for systemd (after start-up and after each reload), with a
 * status line for `systemctl status`. */
static void master_notify_serving(struct master *m, const char *note)
{
	char status[200];
	snprintf(status, sizeof(status), "serving with %d workers, generation %d%s%s",
		 m->nworkers, m->generation, note != NULL ? "; " : "", note != NULL ? note : "");
	notify_ready(status);
}

static void master_reload(struct master *m)
{
	const char *error;
	struct config *newcfg = xcalloc(1, sizeof(*newcfg));
	log_info("event=reload");
	notify_reloading();
	if (m->setup->reload_config != NULL) {
		if (m->setup->reload_config(newcfg, &error) < 0) {
			log_error("event=reload-failed error=\"%s\"", error);
			free(newcfg);
			master_notify_serving(m, "reload failed, serving the old configuration");
			return;
		}
		for (int i = 0; i < LISTEN_COUNT; i++) {
			const char *a = m->live_setup.cfg->listen[i], *b = newcfg->listen[i];
			if ((a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0))
				log_warn("event=reload-ignored key=listen.%s reason=\"listeners change on restart only\"",
					 listener_kind_name(i));
			free(newcfg->listen[i]);
			newcfg->listen[i] = a == NULL ? NULL : xstrdup(a);
		}
		char **http_old[HTTP_COUNT] = { &m->live_setup.cfg->listen_metrics,
						&m->live_setup.cfg->listen_https };
		char **http_new[HTTP_COUNT] = { &newcfg->listen_metrics, &newcfg->listen_https };
		for (int i = 0; i < HTTP_COUNT; i++) {
			const char *a = *http_old[i], *b = *http_new[i];
			if ((a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0))
				log_warn("event=reload-ignored key=listen.%s reason=\"listeners change on restart only\"",
					 i == HTTP_METRICS ? "metrics" : "https");
			free(*http_new[i]);
			*http_new[i] = a == NULL ? NULL : xstrdup(a);
		}
		if (newcfg->workers != m->live_setup.cfg->workers)
			log_warn("event=reload-ignored key=workers reason=\"changes on restart only\"");
	} else {
		*newcfg = *m->live_setup.cfg;   /* shallow: certificates only */
	}
	SSL_CTX *ctx = tls_ctx_new(newcfg->tls_cert, newcfg->tls_key, &error);
	if (ctx == NULL) {
		log_error("event=reload-failed error=\"%s\"", error);
		if (m->setup->reload_config != NULL) {
			config_free(newcfg);
		}
		free(newcfg);
		master_notify_serving(m, "reload failed, serving the old configuration");
		return;
	}
	master_check_certificate(newcfg);
	/* each worker has its own copy of the old config and context, so the
	 * master's can go once the new generation is forked */
	SSL_CTX *old_ctx = m->ssl_ctx;
	struct config *old_cfg = m->owned_cfg;
	m->live_setup.cfg = newcfg;
	m->ssl_ctx = ctx;
	tls_ocsp_use(ctx, m->ocsp);
	master_ocsp_refresh(m);
	metrics_set_certificate_expiry(tls_ctx_not_after(ctx));
	log_set_level(newcfg->log_level);
	m->generation++;
	master_spawn_generation(m);
	master_signal_children(m, SIGTERM, m->generation);
	SSL_CTX_free(old_ctx);
	if (m->setup->reload_config != NULL) {
		m->owned_cfg = newcfg;
		if (old_cfg != NULL) {
			config_free(old_cfg);
			free(old_cfg);
		}
	} else {
		free(old_cfg);
		m->owned_cfg = newcfg;   /* a shallow copy: only the struct is ours */
	}
	log_info("event=reloaded generation=%d", m->generation);
	master_notify_serving(m, NULL);
}

/* Waits until no child (but the auth process when skip_auth) is left;
 * returns how many still are. */
static int master_wait_children(struct master *m, int timeout_secs, bool skip_auth)
{
	time_t deadline = time(NULL) + timeout_secs;
	for (;;) {
		int alive = 0;
		master_reap(m);
		for (int i = 0; i < m->nslots; i++)
			alive += m->children[i].pid > 0 &&
				 !(skip_auth && m->children[i].kind == METRICS_AUTH);
		if (alive == 0)
			return 0;
		if (time(NULL) >= deadline)
			return alive;
		struct pollfd pfd = { m->sfd, POLLIN, 0 };
		if (poll(&pfd, 1, 200) > 0) {
			struct signalfd_siginfo si;
			ssize_t r = read(m->sfd, &si, sizeof(si));
			(void)r;
		}
	}
}

int server_run(const struct server_setup *setup)
{
	struct master m;
	const char *error;
	memset(&m, 0, sizeof(m));
	m.setup = setup;
	m.live_setup = *setup;
	const struct config *cfg = setup->cfg;

	signal(SIGPIPE, SIG_IGN);
	/* every connection is a descriptor: take all the system allows */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warn("event=rlimit-failed error=\"%s\"", strerror(errno));
	}
	/* signals wait in the signalfd from the start: a SIGTERM that comes
	 * while listeners are bound but the loop has not begun (a client can
	 * connect already) stops the server cleanly instead of killing it */
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, &m.old_mask);
	m.sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (m.sfd < 0)
		fatal("event=signalfd-failed error=\"%s\"", strerror(errno));

	uid_t uid;
	gid_t gid;
	if (privs_is_root()) {
		if (privs_lookup(cfg->run_as, &uid, &gid, &error) < 0) {
			log_error("event=startup-failed error=\"%s\"", error);
			return 1;
		}
		/* data_dir exists and belongs to run_as (CONTRACT.md) */
		if (privs_mkdir_p(cfg->data_dir, 0750, NULL, &error) < 0 ||
		    privs_give(cfg->data_dir, cfg->run_as, &error) < 0 ||
		    privs_user_can_reach(cfg->run_as, cfg->data_dir, R_OK | W_OK | X_OK,
					 &error) < 0) {
			log_error("event=startup-failed key=data_dir error=\"%s\"", error);
			return 1;
		}
	} else if (privs_mkdir_p(cfg->data_dir, 0750, NULL, &error) < 0) {
		log_error("event=startup-failed error=\"%s\"", error);
		return 1;
	}

	bool any = false;
	for (int i = 0; i < HTTP_COUNT; i++)
		m.http_fds[i] = -1;
	for (int i = 0; i < LISTEN_COUNT; i++) {
		m.listen_fds[i] = -1;
		if (cfg->listen[i] == NULL || setup->protos[i] == NULL)
			continue;
		m.listen_fds[i] = bind_listener(cfg->listen[i], listener_kind_name(i), &error);
		if (m.listen_fds[i] < 0) {
			log_error("event=startup-failed error=\"%s\"", error);
			return 1;
		}
		any = true;
		log_info("event=listening listener=%s address=%s", listener_kind_name(i),
			 cfg->listen[i]);
	}
	const char *http_listen[HTTP_COUNT] = { cfg->listen_metrics, cfg->listen_https };
	for (int i = 0; i < HTTP_COUNT; i++) {
		const char *name = i == HTTP_METRICS ? "metrics" : "https";
		if (http_listen[i] == NULL)
			continue;
		m.http_fds[i] = bind_listener(http_listen[i], name, &error);
		if (m.http_fds[i] < 0) {
			log_error("event=startup-failed error=\"%s\"", error);
			return 1;
		}
		log_info("event=listening listener=%s address=%s", name, http_listen[i]);
	}
	if (!any) {
		log_error("event=startup-failed error=\"no [listen] address configured\"");
		return 1;
	}
	m.ssl_ctx = tls_ctx_new(cfg->tls_cert, cfg->tls_key, &error);
	if (m.ssl_ctx == NULL) {
		log_error("event=startup-failed error=\"%s\"", error);
		return 1;
	}
	master_check_certificate(cfg);

	m.nworkers = cfg->workers > 0 ? cfg->workers : (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (m.nworkers < 1)
		m.nworkers = 1;
	/* two generations during a reload, each with a relay, a web and an
	 * auth process */
	m.nslots = m.nworkers * 2 + 6;
	m.children = xcalloc((size_t)m.nslots, sizeof(*m.children));
	m.reports = mmap(NULL, (size_t)m.nslots * sizeof(*m.reports), PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (m.reports == MAP_FAILED)
		fatal("event=mmap-failed error=\"%s\"", strerror(errno));
	m.limits = connlimit_create(m.nslots);
	if (metrics_setup(cfg->data_dir, cfg->run_as, m.nslots, &error) < 0) {
		log_error("event=startup-failed error=\"%s\"", error);
		return 1;
	}
	metrics_set_certificate_expiry(tls_ctx_not_after(m.ssl_ctx));
	m.ocsp = tls_ocsp_new();
	tls_ocsp_use(m.ssl_ctx, m.ocsp);
	master_ocsp_refresh(&m);
	/* bound, loaded, files made: the master keeps only what reloads and
	 * forks need */
	if (sandbox_master(&error) < 0) {
		log_error("event=startup-failed error=\"%s\"", error);
		return 1;
	}
	for (int i = 0; i < m.nslots; i++)
		m.children[i].auth_fds[0] = m.children[i].auth_fds[1] = -1;
	m.auth_ctl = -1;

	log_info("event=master-started version=%s workers=%d", POSTERN_VERSION, m.nworkers);
	master_spawn_generation(&m);
	/* every listener is bound: connections wait in the kernel's queue
	 * until a worker takes them */
	master_notify_serving(&m, NULL);

	while (!m.stopping) {
		struct pollfd pfd = { m.sfd, POLLIN, 0 };
		int n = poll(&pfd, 1, 500);
		if (n > 0) {
			struct signalfd_siginfo si;
			if (read(m.sfd, &si, sizeof(si)) == sizeof(si)) {
				switch (si.ssi_signo) {
				case SIGCHLD:
					master_reap(&m);
					break;
				case SIGHUP:
					master_reload(&m);
					break;
				case SIGTERM:
				case SIGINT:
					log_info("event=stopping signal=%d", (int)si.ssi_signo);
					m.stopping = true;
					break;
				}
			}
		}
		master_reap(&m);
		if (!m.stopping)
			master_restart_due(&m);
		if (!m.stopping && m.ocsp_due != 0 && time(NULL) >= m.ocsp_due)
			master_ocsp_refresh(&m);
	}

	notify_stopping(m.gave_up ? m.give_up_reason : NULL);
	/* the auth process stops last: draining workers and the relay still
	 * log in and look accounts up until they are gone */
	for (int i = 0; i < m.nslots; i++) {
		m.children[i].restart_due = false;
		if (m.children[i].pid > 0 && m.children[i].kind != METRICS_AUTH)
			kill(m.children[i].pid, SIGTERM);
	}
	master_wait_children(&m, cfg->shutdown_timeout + 5, true);
	master_signal_children(&m, SIGTERM, m.generation + 1);
	int left = master_wait_children(&m, 5, false);
	if (left > 0) {
		log_warn("event=killing-workers count=%d", left);
		master_signal_children(&m, SIGKILL, m.generation + 1);
		master_wait_children(&m, 5, false);
	}
	close_fds(m.listen_fds, LISTEN_COUNT);
	close_fds(m.http_fds, HTTP_COUNT);
	if (m.auth_ctl >= 0)
		close(m.auth_ctl);
	for (int i = 0; i < m.nslots; i++)
		master_auth_forget(&m, &m.children[i], i);
	close(m.sfd);
	SSL_CTX_free(m.ssl_ctx);
	if (m.owned_cfg != NULL) {
		if (setup->reload_config != NULL)
			config_free(m.owned_cfg);
		free(m.owned_cfg);
	}
	free(m.children);
	munmap(m.reports, (size_t)m.nslots * sizeof(*m.reports));
	if (m.gave_up) {
		/* the last line on stderr says why */
		log_error("event=giving-up error=\"%s\"", m.give_up_reason);
		return 1;
	}
	log_info("event=master-exit");
	return 0;
}

#include "core/server-private.h"
#include "core/buf.h"
#include "core/log.h"
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
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RESTART_BACKOFF_SECS 1

enum child_kind { CHILD_WORKER, CHILD_RELAY, CHILD_AUTH };

static const char *const child_kind_names[] = { "worker", "relay", "auth" };

struct child {
	pid_t pid;          /* 0 = slot free */
	enum child_kind kind;
	int auth_fds[2];    /* the auth process's ends of this child's sockets, -1 */
	int generation;
	time_t started;
	bool restart_due;   /* died; start a new one when backoff passed */
	time_t restart_at;
};

struct master {
	const struct server_setup *setup;
	struct server_setup live_setup;
	SSL_CTX *ssl_ctx;
	int listen_fds[LISTEN_COUNT];
	struct connlimit *limits;
	struct child *children;      /* indexed by slot */
	int nslots;
	int nworkers;
	int generation;
	bool stopping;
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

static int bind_listener(const char *text, enum listener_kind kind, const char **error_r)
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
			 listener_kind_name(kind), text, gai_strerror(gai));
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
	snprintf(err, sizeof(err), "[listen] %s = %s: %s", listener_kind_name(kind), text,
		 strerror(errno));
	*error_r = err;
	if (fd >= 0)
		close(fd);
	freeaddrinfo(res);
	return -1;
}

/* Two socketpairs for a worker or the relay to reach the auth process:
 * the child's ends in mine, the auth process's in ch->auth_fds. */
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

static void child_main(struct master *m, int slot, enum child_kind kind, int auth_ctl,
		       const int mine[2])
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
		fatal("event=privilege-drop-failed error=\"%s\"", error);
	/* after the drop: changing credentials clears the death signal.
	 * A master that died meanwhile is caught by the getppid check. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != master)
		_exit(0);
	int ret;
	if (kind != CHILD_WORKER) {
		for (int i = 0; i < LISTEN_COUNT; i++) {
			if (m->listen_fds[i] >= 0)
				close(m->listen_fds[i]);
		}
	}
	if (kind == CHILD_AUTH) {
		SSL_CTX_free(m->ssl_ctx);   /* the auth process needs no TLS key */
		ret = m->live_setup.auth_main(m->live_setup.cfg, auth_ctl);
		exit(ret);
	}
	struct services services = { .auth_fd = { mine[0], mine[1] } };
	if (m->live_setup.child_init != NULL &&
	    m->live_setup.child_init(m->live_setup.cfg, &services, &error) < 0)
		fatal("event=worker-init-failed error=\"%s\"", error);
	if (kind == CHILD_RELAY) {
		SSL_CTX_free(m->ssl_ctx);   /* the relay makes its own client contexts */
		if (sandbox_enter(m->live_setup.cfg, SANDBOX_RELAY, &error) < 0)
			fatal("event=sandbox-failed error=\"%s\"", error);
		log_info("event=relay-ready");
		ret = m->live_setup.relay_main(m->live_setup.cfg, &services);
	} else {
		ret = worker_main(&m->live_setup, m->ssl_ctx, m->listen_fds, m->limits, slot,
				  &services);
	}
	if (m->live_setup.child_deinit != NULL)
		m->live_setup.child_deinit(&services);
	exit(ret);
}

static void master_spawn(struct master *m, int slot, enum child_kind kind)
{
	struct child *ch = &m->children[slot];
	int mine[2] = { -1, -1 }, ctl[2] = { -1, -1 };
	ch->kind = kind;
	connlimit_clear_slot(m->limits, slot);
	bool failed = kind == CHILD_AUTH ?
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
		if (kind == CHILD_AUTH)
			close(ctl[0]);
		child_main(m, slot, kind, ctl[1], mine);
	}
	ch->pid = pid;
	ch->generation = m->generation;
	ch->started = time(NULL);
	ch->restart_due = false;
	if (kind == CHILD_AUTH) {
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
	log_info("event=%s-started slot=%d pid=%d generation=%d", child_kind_names[kind], slot,
		 (int)pid, m->generation);
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
			master_spawn(m, slot, CHILD_AUTH);
	}
	for (int n = 0; n < m->nworkers; n++) {
		int slot = master_free_slot(m);
		if (slot < 0) {
			log_error("event=no-free-worker-slot");
			return;
		}
		master_spawn(m, slot, CHILD_WORKER);
	}
	if (m->live_setup.relay_main != NULL) {
		int slot = master_free_slot(m);
		if (slot >= 0)
			master_spawn(m, slot, CHILD_RELAY);
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
			master_auth_forget(m, ch, i);
			bool current = ch->generation == m->generation;
			if (WIFSIGNALED(status) || WEXITSTATUS(status) != 0 || (current && !m->stopping)) {
				const char *kind = child_kind_names[ch->kind];
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
					 child_kind_names[ch->kind], i, (int)pid);
			}
			if (current && !m->stopping) {
				time_t now = time(NULL);
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

static void master_reload(struct master *m)
{
	const char *error;
	struct config *newcfg = xcalloc(1, sizeof(*newcfg));
	log_info("event=reload");
	if (m->setup->reload_config != NULL) {
		if (m->setup->reload_config(newcfg, &error) < 0) {
			log_error("event=reload-failed error=\"%s\"", error);
			free(newcfg);
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
		return;
	}
	/* each worker has its own copy of the old config and context, so the
	 * master's can go once the new generation is forked */
	SSL_CTX *old_ctx = m->ssl_ctx;
	struct config *old_cfg = m->owned_cfg;
	m->live_setup.cfg = newcfg;
	m->ssl_ctx = ctx;
	tls_ocsp_use(ctx, m->ocsp);
	master_ocsp_refresh(m);
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
				 !(skip_auth && m->children[i].kind == CHILD_AUTH);
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
	/* every connection is a descriptor: take all the system allows */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warn("event=rlimit-failed error=\"%s\"", strerror(errno));
	}
	uid_t uid;
	gid_t gid;
	if (privs_is_root()) {
		if (privs_lookup(cfg->run_as, &uid, &gid, &error) < 0) {
			log_error("event=startup-failed error=\"%s\"", error);
			return 1;
		}
		/* data_dir exists and belongs to run_as (CONTRACT.md) */
		if (privs_mkdir_p(cfg->data_dir, 0750, NULL, &error) < 0 ||
		    privs_give(cfg->data_dir, cfg->run_as, &error) < 0) {
			log_error("event=startup-failed error=\"%s\"", error);
			return 1;
		}
	} else if (privs_mkdir_p(cfg->data_dir, 0750, NULL, &error) < 0) {
		log_error("event=startup-failed error=\"%s\"", error);
		return 1;
	}

	bool any = false;
	for (int i = 0; i < LISTEN_COUNT; i++) {
		m.listen_fds[i] = -1;
		if (cfg->listen[i] == NULL || setup->protos[i] == NULL)
			continue;
		m.listen_fds[i] = bind_listener(cfg->listen[i], (enum listener_kind)i, &error);
		if (m.listen_fds[i] < 0) {
			log_error("event=startup-failed error=\"%s\"", error);
			return 1;
		}
		any = true;
		log_info("event=listening listener=%s address=%s", listener_kind_name(i),
			 cfg->listen[i]);
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

	m.ocsp = tls_ocsp_new();
	tls_ocsp_use(m.ssl_ctx, m.ocsp);
	master_ocsp_refresh(&m);
	/* bound and loaded: the master keeps only what reloads and forks need */
	if (sandbox_master(&error) < 0) {
		log_error("event=startup-failed error=\"%s\"", error);
		return 1;
	}
	m.nworkers = cfg->workers > 0 ? cfg->workers : (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (m.nworkers < 1)
		m.nworkers = 1;
	m.nslots = m.nworkers * 2 + 4;   /* two generations during a reload, relays */
	m.children = xcalloc((size_t)m.nslots, sizeof(*m.children));
	for (int i = 0; i < m.nslots; i++)
		m.children[i].auth_fds[0] = m.children[i].auth_fds[1] = -1;
	m.auth_ctl = -1;
	m.limits = connlimit_create(m.nslots);


	log_info("event=master-started version=%s workers=%d", POSTERN_VERSION, m.nworkers);
	master_spawn_generation(&m);

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

	/* the auth process stops last: draining workers and the relay still
	 * log in and look accounts up until they are gone */
	for (int i = 0; i < m.nslots; i++) {
		m.children[i].restart_due = false;
		if (m.children[i].pid > 0 && m.children[i].kind != CHILD_AUTH)
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
	for (int i = 0; i < LISTEN_COUNT; i++) {
		if (m.listen_fds[i] >= 0)
			close(m.listen_fds[i]);
	}
	close(m.sfd);
	if (m.auth_ctl >= 0)
		close(m.auth_ctl);
	for (int i = 0; i < m.nslots; i++)
		master_auth_forget(&m, &m.children[i], i);
	SSL_CTX_free(m.ssl_ctx);
	if (m.owned_cfg != NULL) {
		if (setup->reload_config != NULL)
			config_free(m.owned_cfg);
		free(m.owned_cfg);
	}
	free(m.children);
	log_info("event=master-exit");
	return 0;
}

#include "core/server-private.h"
#include "core/account-end.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/offload.h"
#include "core/sandbox.h"

#include <event2/event.h>
#include <event2/listener.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct listener_arg {
	struct worker *worker;
	enum listener_kind kind;
};

static struct listener_arg listener_args[LISTEN_COUNT];

static void worker_accept_cb(struct evconnlistener *listener, evutil_socket_t fd,
			     struct sockaddr *sa, int socklen, void *arg)
{
	struct listener_arg *la = arg;
	conn_accept(la->worker, la->kind, fd, sa, socklen);
}

static void worker_accept_error_cb(struct evconnlistener *listener, void *arg)
{
	/* EMFILE and friends: pause accepting briefly instead of spinning */
	struct listener_arg *la = arg;
	log_error("event=accept-failed listener=%s error=\"%s\"", listener_kind_name(la->kind),
		  evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

static void worker_drain_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	log_info("event=drain-timeout connections=%u", w->nconns);
	event_base_loopbreak(w->base);
}

static void worker_start_drain(struct worker *w)
{
	if (w->draining)
		return;
	w->draining = true;
	log_info("event=draining connections=%u", w->nconns);
	for (int i = 0; i < LISTEN_COUNT; i++) {
		if (w->listeners[i] != NULL) {
			evconnlistener_free(w->listeners[i]);
			w->listeners[i] = NULL;
		}
	}
	if (w->nconns == 0) {
		event_base_loopbreak(w->base);
		return;
	}
	struct timeval tv = { w->cfg->shutdown_timeout, 0 };
	w->drain_timer = evtimer_new(w->base, worker_drain_timeout_cb, w);
	evtimer_add(w->drain_timer, &tv);
	/* conn_drain may free connections: walk with a saved next */
	for (struct conn *c = w->conns, *next; c != NULL; c = next) {
		next = c->next;
		conn_drain(c);
	}
}

static void worker_periodic_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	w->setup->child_periodic(w->services);
}

static void worker_account_ended(const char *address, void *arg)
{
	struct worker *w = arg;
	unsigned n = conn_end_account(w, address);
	if (n > 0)
		log_info("event=account-sessions-ended sessions=%u", n);
}

static void worker_account_end_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	account_end_consume(fd, w->cfg->data_dir, worker_account_ended, w);
}

/* `postern user del` marks the account; its sessions here end at once. */
static void worker_watch_account_ends(struct worker *w)
{
	const char *error;
	int fd = account_end_watch(w->cfg->data_dir, &error);
	if (fd < 0) {
		log_warn("event=account-end-watch-failed error=\"%s\" "
			 "note=\"sessions of deleted accounts are not ended\"", error);
		return;
	}
	w->account_end_ev = event_new(w->base, fd, EV_READ | EV_PERSIST,
				      worker_account_end_cb, w);
	event_add(w->account_end_ev, NULL);
}

static void worker_sigterm_cb(evutil_socket_t sig, short what, void *arg)
{
	worker_start_drain(arg);
}

/* Tests only (POSTERN_SANDBOX_TEST=probe|violate): SIGUSR2 probes what
 * the sandbox lets this worker open, and with violate steps outside it. */
static void worker_probe_cb(evutil_socket_t sig, short what, void *arg)
{
	struct worker *w = arg;
	const char *mode = getenv("POSTERN_SANDBOX_TEST");
	sandbox_probe(w->cfg, mode != NULL && strcmp(mode, "violate") == 0);
}

int worker_main(const struct server_setup *setup, SSL_CTX *ssl_ctx,
		const int *listen_fds, struct connlimit *limits, int slot,
		struct services *services)
{
	struct worker w;
	memset(&w, 0, sizeof(w));
	w.cfg = setup->cfg;
	w.setup = setup;
	w.ssl_ctx = ssl_ctx;
	w.limits = limits;
	w.slot = slot;
	w.services = services;

	w.base = event_base_new();
	if (w.base == NULL)
		fatal("event=event-base-failed");
	for (int i = 0; i < LISTEN_COUNT; i++) {
		if (listen_fds[i] < 0)
			continue;
		listener_args[i].worker = &w;
		listener_args[i].kind = (enum listener_kind)i;
		w.listeners[i] = evconnlistener_new(w.base, worker_accept_cb, &listener_args[i],
						    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
						    0, listen_fds[i]);   /* 0: already listening (master.c) */
		if (w.listeners[i] == NULL)
			fatal("event=listener-failed listener=%s", listener_kind_name(i));
		evconnlistener_set_error_cb(w.listeners[i], worker_accept_error_cb);
	}
	/* password hashing off the loop: one thread per core, at most 4 */
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	services->offload = offload_new(w.base, cpus < 1 ? 1 : cpus > 4 ? 4 : (unsigned)cpus);
	if (services->offload == NULL)
		log_warn("event=offload-unavailable (password checks run on the event loop)");
	w.sigterm_ev = evsignal_new(w.base, SIGTERM, worker_sigterm_cb, &w);
	evsignal_add(w.sigterm_ev, NULL);
	if (setup->child_periodic != NULL) {
		struct timeval tv = { SERVER_PERIODIC_SECS, 0 };
		w.periodic_ev = event_new(w.base, -1, EV_PERSIST, worker_periodic_cb, &w);
		event_add(w.periodic_ev, &tv);
	}

	worker_watch_account_ends(&w);

	struct event *probe_ev = NULL;
	if (getenv("POSTERN_SANDBOX_TEST") != NULL) {
		probe_ev = evsignal_new(w.base, SIGUSR2, worker_probe_cb, &w);
		evsignal_add(probe_ev, NULL);
	}
	/* everything is open: from here on the kernel keeps this worker to
	 * its mail, queue and counter files, and to its system calls */
	const char *error;
	if (sandbox_enter(w.cfg, SANDBOX_WORKER, &error) < 0)
		fatal("event=sandbox-failed error=\"%s\"", error);
	log_info("event=worker-ready slot=%d", slot);
	event_base_dispatch(w.base);
	if (probe_ev != NULL)
		event_free(probe_ev);

	/* drained or timed out: anything still open is cut */
	while (w.conns != NULL)
		conn_free(w.conns);
	offload_free(&services->offload);
	for (int i = 0; i < LISTEN_COUNT; i++) {
		if (w.listeners[i] != NULL)
			evconnlistener_free(w.listeners[i]);
	}
	if (w.drain_timer != NULL)
		event_free(w.drain_timer);
	event_free(w.sigterm_ev);
	if (w.periodic_ev != NULL)
		event_free(w.periodic_ev);
	if (w.account_end_ev != NULL) {
		close(event_get_fd(w.account_end_ev));
		event_free(w.account_end_ev);
	}
	event_base_free(w.base);
	log_info("event=worker-exit slot=%d", slot);
	return 0;
}

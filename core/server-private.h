#ifndef POSTERN_SERVER_PRIVATE_H
#define POSTERN_SERVER_PRIVATE_H

/* Shared by conn.c, worker.c, http.c and master.c only. */

#include <openssl/ssl.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/conn.h"
#include "core/connlimit.h"
#include "core/server.h"

struct bufferevent;
struct event;
struct evconnlistener;

struct worker {
	struct event_base *base;
	const struct config *cfg;
	SSL_CTX *ssl_ctx;
	const struct server_setup *setup;
	struct services *services;
	struct evconnlistener *listeners[LISTEN_COUNT];
	struct connlimit *limits;
	int slot;
	struct conn *conns;         /* doubly linked list of live connections */
	unsigned int nconns;
	uint64_t next_id;
	bool draining;
	struct event *sigterm_ev;
	struct event *drain_timer;
	struct event *periodic_ev;
	struct event *account_end_ev;   /* marks of deleted accounts (inotify) */
};

struct conn {
	struct conn *prev, *next;
	struct worker *worker;
	uint64_t id;
	enum listener_kind kind;
	const struct proto *proto;
	void *session;
	int fd;
	struct bufferevent *bev;
	SSL *ssl;
	unsigned int limit_bucket;

	char remote_ip[64];
	int remote_port;
	char local_ip[64];
	int local_port;
	bool loopback;

	char tls_desc[96];
	char log_ctx[384];
	char user[256];
	char *account;              /* the user as given, for ending its sessions */

	int timeout;
	bool paused;
	bool closing;
	bool freed_session;
	bool starttls_pending;
	bool handshake_logged;
	size_t drain_low_water;
	void (*drain_fn)(void *session);
	struct event *defer_ev;     /* deferred input / close processing */
	struct compress *z;         /* COMPRESS=DEFLATE, once started */

	struct event *preauth_ev;   /* the pre-login deadline */
	struct event *hold_ev;      /* conn_pause_for()'s end */
	struct event *rate_ev;      /* the minimum rate of a unit in progress */
	bool rate_active;
	struct timeval rate_start;
	uint64_t rate_start_total;  /* in_total when the unit began */
	uint64_t in_total;          /* bytes received so far */
	size_t in_seen;             /* input buffer length last looked at */
};

void conn_accept(struct worker *w, enum listener_kind kind, int fd,
		 const struct sockaddr *sa, int socklen);
void conn_drain(struct conn *c);
/* Ends every session of the worker logged in as address (its account was
 * deleted); returns how many. */
unsigned conn_end_account(struct worker *w, const char *address);
void conn_free(struct conn *c);

int worker_main(const struct server_setup *setup, SSL_CTX *ssl_ctx,
		const int *listen_fds, struct connlimit *limits, int slot,
		struct services *services);
/* The web process (core/http.c): metrics_fd and https_fd are listening
 * sockets, -1 when that listener is off. Runs until SIGTERM. */
int http_main(const struct server_setup *setup, SSL_CTX *ssl_ctx, int metrics_fd,
	      int https_fd, struct services *services);

#endif

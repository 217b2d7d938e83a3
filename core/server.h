#ifndef POSTERN_SERVER_H
#define POSTERN_SERVER_H

/* `postern serve`: the master binds every configured listener (as root
 * when ports are < 1024), loads TLS, then forks `workers` event-loop
 * children that drop to run_as before touching a client byte. It
 * restarts a child that dies; SIGHUP reloads the config and certificates
 * (a new generation of workers takes over, the old one drains); SIGTERM
 * or SIGINT drains and exits. With relay_main, one more child runs the
 * outbound queue. */

/* The exit status of a child that could not start (its privilege drop
 * or its init failed): the master gives up after a few in a row. */
#define SERVER_EXIT_INIT_FAILED 78
/* In a child that cannot start: logs, tells the master the reason, and
 * exits with SERVER_EXIT_INIT_FAILED. */
void server_child_init_failed(const char *event, const char *error)
	__attribute__((noreturn));

#include <stdbool.h>

#include "core/config.h"
#include "core/conn.h"
#include "core/services.h"

#define SERVER_PERIODIC_SECS 30

struct metrics_queue;

struct server_setup {
	struct config *cfg;
	/* protocol serving each listener kind */
	const struct proto *protos[LISTEN_COUNT];
	/* listener kinds whose connections start with a TLS handshake */
	bool implicit_tls[LISTEN_COUNT];
	/* per-process start-up in each child after the privilege drop
	 * (open LMDB environments, SASL) filling the services sessions get
	 * from conn_services(): -1 with a reason is fatal */
	int (*child_init)(const struct config *cfg, struct services *services,
			  const char **error_r);
	void (*child_deinit)(struct services *services);
	/* called every SERVER_PERIODIC_SECS in each worker (housekeeping such
	 * as clearing LMDB reader slots left by killed processes) */
	void (*child_periodic)(struct services *services);
	/* the relay process (one, supervised like a worker, replaced on
	 * reload): runs its own loop until SIGTERM; NULL = none */
	int (*relay_main)(const struct config *cfg, struct services *services);
	/* the auth process (one, supervised, replaced on reload): after the
	 * privilege drop, serves the other children over the socket ends the
	 * master hands it on ctl_fd until SIGTERM; NULL = none (each child
	 * then opens the account database itself) */
	int (*auth_main)(const struct config *cfg, int ctl_fd);
	/* re-reads the configuration for SIGHUP; NULL = reload certificates only */
	int (*reload_config)(struct config *cfg_r, const char **error_r);
	/* for the web process, which serves [listen] metrics and https (one,
	 * supervised like the relay, started when either is set): whether
	 * a domain is hosted here, and the queue's state (core/metrics.h) */
	bool (*domain_hosted)(struct services *services, const char *domain);
	void (*queue_state)(struct services *services, struct metrics_queue *queue);
};

/* Runs until SIGTERM/SIGINT; returns the exit status. */
int server_run(const struct server_setup *setup);

#endif

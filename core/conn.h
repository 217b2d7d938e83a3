#ifndef POSTERN_CONN_H
#define POSTERN_CONN_H

/* A client connection on a worker's event loop: plain, upgraded in place
 * by STARTTLS, or implicit TLS from the first byte. A protocol module
 * supplies a struct proto; the connection calls it and the protocol
 * reads lines from conn_input() and answers with conn_write*().
 *
 * Lifetime: proto->start() when accepted; proto->input() whenever bytes
 * arrived (or input was resumed with bytes still buffered);
 * proto->timeout() when a timer of the connection ran out (say goodbye;
 * the connection then closes); proto->shutdown() when the server drains
 * and proto->busy() says no command is in progress (say goodbye; the
 * connection then closes); proto->free() exactly once when the
 * connection is gone, whichever way.
 *
 * The connection owns every timer a session has: the idle timeout, the
 * pre-login deadline (timeout_preauth counts from the accept and is
 * not stretched by anything the client sends, until conn_end_preauth()),
 * the minimum rate of a unit in progress (conn_want_more()), and the
 * drain at shutdown, so every protocol stops the same way. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/services.h"

struct conn;
struct evbuffer;
struct event_base;

struct proto {
	const char *name;               /* "smtp", "pop3", "imap": for logs */
	void *(*start)(struct conn *c); /* make the session, send the greeting */
	void (*input)(void *session);
	void (*timeout)(void *session);
	/* true while a command is in progress (a message being received, a
	 * reply being streamed, an authentication waiting): a draining
	 * server lets it finish, then calls shutdown. NULL = never busy. */
	bool (*busy)(void *session);
	void (*shutdown)(void *session);
	/* the session's account was deleted (`postern user del`): say goodbye
	 * and close now, whatever is in progress. NULL = just close. */
	void (*end)(void *session);
	void (*free)(void *session);
};

enum listener_kind conn_listener_kind(const struct conn *c);
struct evbuffer *conn_input(struct conn *c);
struct event_base *conn_event_base(const struct conn *c);
const struct config *conn_config(const struct conn *c);
/* The worker's per-process handles (accounts, store, queue). */
struct services *conn_services(const struct conn *c);

void conn_write(struct conn *c, const void *data, size_t len);
void conn_write_str(struct conn *c, const char *s);
void conn_printf(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Bytes queued for the client and not yet sent. */
size_t conn_output_pending(const struct conn *c);
/* Calls fn(session) once the output queue drops below low_water bytes (0 =
 * emptied): for streaming large replies without buffering them whole.
 * fn = NULL cancels. */
void conn_on_output_drained(struct conn *c, size_t low_water, void (*fn)(void *session));

/* Stop / resume delivering input to the protocol (e.g. while a delayed
 * reply is pending). Resuming re-runs proto->input if bytes are buffered. */
void conn_pause_input(struct conn *c);
void conn_resume_input(struct conn *c);
/* Reads nothing more for ms milliseconds (a protocol slowing a client
 * down: the next command waits, the loop does not). */
void conn_pause_for(struct conn *c, unsigned ms);

/* Sends reply in clear, discards everything the client pipelined after
 * the command (RFC 3207/2595/3501 injection defence), then starts the TLS
 * handshake. Input resumes once the handshake is done. */
void conn_starttls(struct conn *c, const char *reply);
/* True on implicit-TLS listeners from the start and after STARTTLS: no
 * client byte is ever read before the handshake completes. */
bool conn_is_tls(const struct conn *c);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384", or "" without TLS. */
const char *conn_tls_description(const struct conn *c);
/* RFC 5705 / RFC 9266 keying material for channel binding (tls-exporter):
 * -1 before the handshake, without TLS, or on TLS 1.2 without the
 * extended master secret. The _fn form takes the conn as void *, for
 * auth_conn_info. */
int conn_tls_exporter(struct conn *c, unsigned char *out, size_t len);
int conn_tls_exporter_fn(void *c, unsigned char *out, size_t len);

/* RFC 4978: sends reply as it is, then DEFLATEs everything both ways from
 * the next byte on (over TLS when there is TLS). -1 (nothing sent) when
 * already compressing or zlib fails. */
int conn_compress_start(struct conn *c, const char *reply);
bool conn_is_compressed(const struct conn *c);

const char *conn_remote_ip(const struct conn *c);
int conn_remote_port(const struct conn *c);
const char *conn_local_ip(const struct conn *c);
int conn_local_port(const struct conn *c);
bool conn_is_loopback(const struct conn *c);
uint64_t conn_id(const struct conn *c);

/* Authenticated user (the account's canonical address), added to every
 * log line from now on; ends the pre-login deadline (conn_end_preauth);
 * the connection ends when the account does. */
void conn_set_user(struct conn *c, const char *user);
/* The pre-login deadline no longer applies: after a login, or for a
 * session that has none (SMTP on 25). */
void conn_end_preauth(struct conn *c);
/* The protocol's reader needs more input. partial: it holds part of a
 * unit (a command line, a literal, a message being received) that must
 * now arrive at [limits] min_rate bytes/s on average once it has lasted
 * min_rate_grace; slower, the session gets proto->timeout() and closes.
 * false: it waits for a new command, and only the idle timeout applies.
 * Time spent with input paused never counts. */
void conn_want_more(struct conn *c, bool partial);
/* Idle timeout in seconds (pre-auth shorter than post-auth). */
void conn_set_timeout(struct conn *c, int seconds);
/* Flushes what is queued, then closes. proto->free() follows. */
void conn_close(struct conn *c, const char *reason);
bool conn_is_closing(const struct conn *c);
/* True while the worker drains for shutdown. */
bool conn_server_draining(const struct conn *c);
/* A protocol whose busy() just turned false may call this so a draining
 * server closes the session now rather than at its next event. */
void conn_busy_done(struct conn *c);

#endif

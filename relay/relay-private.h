#ifndef POSTERN_RELAY_PRIVATE_H
#define POSTERN_RELAY_PRIVATE_H

/* Internals of relay/: DNS (dns.c), the SMTP client (smtp-client.c) and
 * DSN composition (dsn.c), driven by the queue runner (relay.c). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <time.h>

#include <openssl/ssl.h>

#include "core/core.h"
#include "core/services.h"
#include "queue/queue.h"

struct event_base;

/* ---- addresses to try, in order ---- */

struct relay_addr {
	struct sockaddr_storage sa;
	socklen_t sa_len;
	char ip[64];           /* numeric, for logs and the down-host memory */
	char host[256];        /* the MX (or smarthost) name it belongs to */
};

/* ---- dns.c: MX and address lookups through libunbound, in the loop ---- */

struct relay_dns;

/* server: "ip:port", "ip" or NULL for the system resolver. */
int relay_dns_new(struct event_base *base, const char *server, struct relay_dns **dns_r,
		  const char **error_r);
/* Cancels every lookup in flight (their callbacks never run). */
void relay_dns_free(struct relay_dns **dns);

/* status: 0 addresses found; 4 temporary failure; 5 permanent failure
 * (NXDOMAIN, null MX, no address). error is "X.Y.Z text". addrs is owned
 * by the lookup and valid during the call only. */
typedef void relay_dns_cb(void *ctx, int status, const char *error,
			  const struct relay_addr *addrs, size_t count);
struct relay_dns_lookup;
/* Mail exchangers of domain (RFC 5321 5.1): MX by preference, equal ones
 * shuffled, implicit MX when none, null MX refused; every host's IPv6 and
 * IPv4 addresses. */
struct relay_dns_lookup *relay_dns_mx(struct relay_dns *dns, const char *domain, int port,
				      relay_dns_cb *cb, void *ctx);
/* Addresses of one host name (or a literal IP), for the smarthost. */
struct relay_dns_lookup *relay_dns_host(struct relay_dns *dns, const char *host, int port,
					relay_dns_cb *cb, void *ctx);
void relay_dns_cancel(struct relay_dns_lookup **lookup);

/* Parses the MX rdata (preference + uncompressed name) into name (with no
 * trailing dot; "" for the root). -1 when malformed. Exposed for tests. */
int relay_dns_parse_mx(const unsigned char *rdata, size_t len, int *pref_r, char *name,
		       size_t name_size);

/* ---- smtp-client.c: one SMTP transaction to one destination ---- */

enum smtp_tls_policy {
	SMTP_TLS_OPPORTUNISTIC,   /* STARTTLS when offered */
	SMTP_TLS_REQUIRED,        /* STARTTLS or defer */
	SMTP_TLS_IMPLICIT,        /* TLS from the first byte */
};

struct smtp_client_rcpt {
	const char *address;
	const char *orcpt;     /* "rfc822;x" or NULL */
	unsigned int notify;   /* QUEUE_NOTIFY_* */
	/* results */
	int code;              /* 250, 451, 550...; 0 = no answer */
	char *reply;           /* "550 5.1.1 text", one line, sanitized */
};

struct smtp_client_params {
	struct event_base *base;
	SSL_CTX *tls_ctx;
	enum smtp_tls_policy tls;
	/* check the peer's certificate against this name (a host name or an
	 * IP literal); NULL = opportunistic, unverified (RFC 7435) */
	const char *verify_name;
	const char *helo;
	const char *auth_user;     /* NULL: no AUTH */
	const char *auth_pass;
	const struct queue_entry *entry;
	const char *spool_path;
	const struct relay_addr *addrs;
	size_t addr_count;
	struct smtp_client_rcpt *rcpts;
	size_t rcpt_count;
	/* an address that could not be reached (connect failed or timed
	 * out): the runner remembers it */
	void (*unreachable)(void *ctx, const struct relay_addr *addr);
	/* every recipient has a result (code, reply) */
	void (*done)(void *ctx);
	void *ctx;
	/* every live client is on this list (head owned by the runner), so
	 * that clients still saying QUIT can be freed at exit */
	struct smtp_client **registry;
};

struct smtp_client;

/* Starts at once; done() runs exactly once unless the client is freed
 * first. After done() the client says QUIT and frees itself. */
struct smtp_client *smtp_client_start(const struct smtp_client_params *params);
/* Abandons the transaction (before done) or the QUIT (after). */
void smtp_client_free(struct smtp_client **client);
/* Frees every client on a registry. */
void smtp_client_free_all(struct smtp_client **registry);
/* The relay stops: every kept idle connection says QUIT (and frees itself
 * after the answer). Returns how many did. */
int smtp_client_quit_idle(struct smtp_client *registry);
/* Host, address and TLS of the connection that answered ("" when none). */
const char *smtp_client_host(const struct smtp_client *client);
const char *smtp_client_ip(const struct smtp_client *client);
const char *smtp_client_tls(const struct smtp_client *client);
/* Did the peer that answered offer DSN (RFC 3461)? */
bool smtp_client_peer_dsn(const struct smtp_client *client);

/* One reply line "250-SIZE 100" -> code 250, more = '-', text "SIZE 100".
 * -1 when not a reply line. Exposed for tests and the fuzz target. */
int smtp_reply_parse_line(const char *line, size_t len, int *code_r, bool *more_r,
			  const char **text_r);

/* ---- dsn.c: delivery status notifications (RFC 3464) ---- */

/* failed (5xx or expired), delayed (delay warning), delivered (into a
 * mailbox here) and relayed (to a peer that cannot pass NOTIFY=SUCCESS on) */
enum dsn_action { DSN_FAILED, DSN_DELAYED, DSN_DELIVERED, DSN_RELAYED };

/* Writes the DSN for the recipients of entry selected by which[i] into
 * write(ctx, ...), streaming the original from spool_path (all of it or
 * its header per RET). */
typedef int dsn_write_fn(void *ctx, const void *data, size_t len, const char **error_r);
int dsn_compose(const char *hostname, const struct queue_entry *entry,
		const bool *which, enum dsn_action action, time_t retry_until,
		const char *spool_path, dsn_write_fn *write, void *ctx,
		const char **error_r);

/* Builds and sends (to the store when the sender is hosted here, else to
 * the queue) the DSN; nothing for the null sender. 0, or -1 with error. */
int dsn_send(const struct config *cfg, struct services *services,
	     const struct queue_entry *entry, const bool *which, enum dsn_action action,
	     time_t retry_until, const char **error_r);

/* Does recipient r want a DSN for this action (NOTIFY, defaults)? */
bool dsn_wanted(const struct queue_rcpt *r, enum dsn_action action);

#endif

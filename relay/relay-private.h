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

/* A TLSA record (RFC 6698) usable for SMTP (RFC 7672 3.1): DANE-TA(2) or
 * DANE-EE(3), a SHA-256 or SHA-512 digest (full certificates are not
 * kept: RFC 7672 advises against publishing them). */
#define RELAY_TLSA_MAX 8
#define RELAY_TLSA_DATA_MAX 64
struct relay_tlsa {
	unsigned char usage, selector, mtype;
	unsigned char len;
	unsigned char data[RELAY_TLSA_DATA_MAX];
};

enum relay_dane {
	RELAY_DANE_NONE,       /* no secure TLSA records: DANE does not apply */
	RELAY_DANE_VERIFY,     /* usable TLSA records: TLS, and the certificate must match */
	RELAY_DANE_TLS_ONLY,   /* TLSA records, none usable: TLS, unauthenticated (7672 2.2) */
};

/* What an MTA-STS policy (RFC 8461) asks of one host. */
enum relay_addr_sts {
	RELAY_STS_NONE,      /* no policy (or mode none) */
	RELAY_STS_TESTING,   /* testing: deliver as without, log what would fail */
	RELAY_STS_ENFORCE,   /* TLS with a certificate valid for the host, or nothing */
};

struct relay_addr {
	struct sockaddr_storage sa;
	socklen_t sa_len;
	char ip[64];           /* numeric, for logs and the down-host memory */
	char host[256];        /* the MX (or smarthost) name it belongs to */
	enum relay_dane dane;  /* what its host's DNSSEC-validated TLSA records say */
	enum relay_addr_sts mtasts;   /* the destination's MTA-STS policy, for this host */
	size_t tlsa_count;
	struct relay_tlsa tlsa[RELAY_TLSA_MAX];
};

/* ---- dns.c: MX and address lookups through libunbound, in the loop ---- */

struct relay_dns;

/* server: "ip:port", "ip" or NULL for the system resolver. trust_anchor:
 * a DNSSEC trust anchor file (unbound's format: DS or DNSKEY records) for
 * DANE, or NULL for no DANE. A second, validating resolver context uses
 * it; at start it checks that the resolver hands out DNSSEC data that
 * validates (the anchor's DNSKEY comes back secure): when not, DANE stays
 * off (logged) and it checks again every few minutes. */
int relay_dns_new(struct event_base *base, const char *server, const char *trust_anchor,
		  struct relay_dns **dns_r, const char **error_r);
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
 * IPv4 addresses. With dane (and a working validator), everything is
 * looked up with DNSSEC validation (RFC 7672 2.2): a bogus MX answer is a
 * temporary failure; when the MX RRset (or, for the implicit MX, the
 * domain's addresses) and a host's addresses are secure, its TLSA records
 * at _PORT._tcp.HOST are looked up and put in its addresses (dane,
 * tlsa); a host whose TLSA lookup fails (bogus, SERVFAIL) is left out. */
struct relay_dns_lookup *relay_dns_mx(struct relay_dns *dns, const char *domain, int port,
				      bool dane, relay_dns_cb *cb, void *ctx);
/* Addresses of one host name (or a literal IP), for the smarthost. */
struct relay_dns_lookup *relay_dns_host(struct relay_dns *dns, const char *host, int port,
					relay_dns_cb *cb, void *ctx);
void relay_dns_cancel(struct relay_dns_lookup **lookup);

/* One query of one record type, not validated: status 0 with the records'
 * rdata (count may be 0: no such data), 5 for NXDOMAIN, 4 for a failure.
 * Runs from the loop, never inside relay_dns_query(). */
typedef void relay_dns_query_cb(void *ctx, int status, char *const *data, const int *len,
				int count);
struct relay_dns_query;
struct relay_dns_query *relay_dns_query(struct relay_dns *dns, const char *name, int type,
					relay_dns_query_cb *cb, void *ctx);
void relay_dns_query_cancel(struct relay_dns_query **query);
#define RELAY_DNS_TXT 16
/* A TXT rdata's strings joined (RFC 7208 3.3 style), NUL-terminated;
 * -1 when malformed. */
int relay_dns_txt_join(const unsigned char *rdata, size_t len, struct buf *out);
/* A TLSA rdata (RFC 6698 2.1) that RFC 7672 lets SMTP use: 1, 0 when it is
 * well-formed but unusable (PKIX usages, full certificates, unknown types),
 * -1 when malformed. */
int relay_dns_parse_tlsa(const unsigned char *rdata, size_t len, struct relay_tlsa *t);

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
	/* verifies peers (DANE enabled, the MTA-STS CAs): for addresses with
	 * usable TLSA records or an MTA-STS policy; NULL = none of that */
	SSL_CTX *verify_ctx;
	const char *domain;        /* the destination, for MTA-STS messages */
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
/* Was the peer's certificate verified, and how: "dane", "mta-sts",
 * "smarthost" (its configured name and CAs) or "none". */
bool smtp_client_verified(const struct smtp_client *client);
const char *smtp_client_tls_auth(const struct smtp_client *client);
/* Did the peer that answered offer DSN (RFC 3461)? */
bool smtp_client_peer_dsn(const struct smtp_client *client);

/* One reply line "250-SIZE 100" -> code 250, more = '-', text "SIZE 100".
 * -1 when not a reply line. Exposed for tests and the fuzz target. */
int smtp_reply_parse_line(const char *line, size_t len, int *code_r, bool *more_r,
			  const char **text_r);

/* ---- mtasts.c: MTA-STS policies of recipient domains (RFC 8461) ---- */

#define RELAY_MTASTS_MAX_MX 32

enum relay_mtasts_mode { RELAY_MTASTS_MODE_NONE, RELAY_MTASTS_MODE_TESTING,
			 RELAY_MTASTS_MODE_ENFORCE };

struct relay_mtasts_policy {
	enum relay_mtasts_mode mode;
	int max_age;            /* seconds, at most a year */
	char **mx;              /* patterns, lowercase: "mx.example.com", "*.example.net" */
	size_t mx_count;
};

/* The policy file (RFC 8461 3.2): "key: value" lines (CRLF or LF);
 * version STSv1, mode and max_age required, mx required unless mode is
 * none, unknown keys ignored. 0, or -1 with a reason. */
int relay_mtasts_parse(const char *text, size_t len, struct relay_mtasts_policy *p,
		       const char **error_r);
void relay_mtasts_clear(struct relay_mtasts_policy *p);
/* Does an MX host name match one of the policy's mx patterns (RFC 8461
 * 4.1: "*." stands for exactly one label)? */
bool relay_mtasts_match(const struct relay_mtasts_policy *p, const char *host);
/* The id of a "v=STSv1; id=..." TXT record (1-32 alphanumerics), or -1. */
int relay_mtasts_txt_id(const char *txt, char *id, size_t size);
const char *relay_mtasts_mode_name(enum relay_mtasts_mode mode);

/* The relay's policy fetcher and cache (memory and DATA/mta-sts). */
struct relay_mtasts;
struct relay_mtasts_lookup;
int relay_mtasts_new(struct event_base *base, const struct config *cfg, struct relay_dns *dns,
		     struct relay_mtasts **m_r, const char **error_r);
void relay_mtasts_free(struct relay_mtasts **m);
/* The policy of domain (NULL: none applies), from the loop, never inside
 * relay_mtasts_get(); note says where it came from or why there is none.
 * The policy is the callback's only for the call. */
typedef void relay_mtasts_cb(void *ctx, const struct relay_mtasts_policy *policy,
			     const char *note);
struct relay_mtasts_lookup *relay_mtasts_get(struct relay_mtasts *m, const char *domain,
					     relay_mtasts_cb *cb, void *ctx);
void relay_mtasts_cancel(struct relay_mtasts_lookup **lookup);

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

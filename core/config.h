#ifndef POSTERN_CONFIG_H
#define POSTERN_CONFIG_H

/* The configuration: an INI file (CONTRACT.md), loaded once by the master
 * and read-only afterwards (the only global state). Every key has a typed
 * field here and a row in config.c's table, which drives parsing, defaults
 * and `postern check`'s listing. */

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "core/log.h"

#define CONFIG_DEFAULT_PATH "/etc/postern/postern.conf"

enum listener_kind {
	LISTEN_SUBMISSION,   /* 587, STARTTLS */
	LISTEN_SUBMISSIONS,  /* 465, implicit TLS */
	LISTEN_SMTP,         /* 25, inbound MX */
	LISTEN_POP3,
	LISTEN_POP3S,
	LISTEN_IMAP,
	LISTEN_IMAPS,
	LISTEN_COUNT
};

enum plaintext_policy { PLAINTEXT_NEVER, PLAINTEXT_LOOPBACK, PLAINTEXT_ALWAYS };
enum relay_mode { RELAY_MX, RELAY_SMARTHOST, RELAY_NONE };

#define CONFIG_MAX_RETRIES 32
/* room for the rows of config.c's key table (checked when it compiles) */
#define CONFIG_KEYS_MAX 192

struct config {
	char *path;             /* file it came from, or "(demo)" */
	/* the line each key was set on (0 = its default), by table row:
	 * what config_validate names in its messages */
	unsigned short key_lines[CONFIG_KEYS_MAX];

	char *hostname;
	char *data_dir;
	char *run_as;
	int workers;            /* 0 = number of CPUs */
	enum log_level log_level;

	char *tls_cert;
	char *tls_key;

	char *listen[LISTEN_COUNT];    /* "host:port" or NULL when disabled */
	char *listen_metrics;          /* Prometheus text over HTTP, NULL = off */
	char *listen_https;            /* autoconfig, autodiscover, MTA-STS policy */

	enum plaintext_policy auth_plaintext;
	int auth_delay_after;          /* failures before replies slow down */
	int auth_block_after;          /* failures before refusing */
	int auth_block_time;           /* seconds a block lasts */

	int max_connections;           /* whole server */
	int max_connections_per_ip;
	int timeout_preauth;           /* seconds, before login */
	int timeout_smtp;
	int timeout_pop3;
	int timeout_imap;
	int shutdown_timeout;          /* seconds a draining worker waits */
	int min_rate;                  /* bytes/s a command line or message must keep up, 0 = none */
	int min_rate_grace;            /* seconds before min_rate is checked */

	size_t smtp_max_message_size;
	int smtp_max_recipients;
	int smtp_max_received;
	int smtp_rate_limit;           /* messages per user per hour, 0 = none */
	bool smtp_normalize_bare_lf;   /* false: refuse with 550 5.6.0 */
	bool smtp_quota_full_tempfail; /* over quota: 452 4.2.2, else 552 5.2.2 */

	enum relay_mode relay_mode;
	char *relay_smarthost;
	char *relay_dns;
	char *relay_retry_schedule_text;
	int relay_retry_schedule[CONFIG_MAX_RETRIES];
	int relay_retry_count;
	int relay_max_lifetime;
	int relay_delay_warning;
	int relay_mx_port;
	bool relay_require_tls;
	char *relay_smarthost_tls;        /* "starttls" or "implicit" */
	char *relay_smarthost_auth_file;  /* "user password" line, or NULL */
	bool relay_smarthost_tls_verify;  /* check the smarthost's certificate and name */
	char *relay_smarthost_ca_file;    /* CAs for that, NULL = the system's */
	int relay_max_connections;        /* deliveries at once, in all */
	int relay_max_per_destination;    /* deliveries at once to one domain */
	int relay_host_down_time;         /* seconds an unreachable host is skipped */
	bool relay_mta_sts;               /* honour recipients' MTA-STS policies (RFC 8461) */
	char *relay_mta_sts_ca_file;      /* CAs for MTA-STS (policy host and MX), NULL = system's */
	int relay_mta_sts_port;           /* HTTPS port of policy hosts; only tests change it */
	bool relay_dane;                  /* honour DNSSEC-validated TLSA records (RFC 7672) */
	char *relay_dane_trust_anchor;    /* DNSSEC trust anchor file for DANE */

	char *mta_sts_mode;               /* the policy published: enforce, testing or none */
	int mta_sts_max_age;              /* its max_age, seconds */
};

/* Fills cfg with every default. */
void config_init_defaults(struct config *cfg);
/* Loads path over the defaults. On error returns -1 and a message
 * "FILE:LINE: what is wrong" in error_r (static storage). */
int config_load(struct config *cfg, const char *path, const char **error_r);
/* The same from an open stream; PATH names it in messages. */
int config_load_stream(struct config *cfg, FILE *f, const char *path,
		       const char **error_r);
/* Cross-key checks that need every key read (files readable, ...). */
int config_validate(const struct config *cfg, const char **error_r);
/* Prints every effective setting as INI, one key a line. */
void config_print(const struct config *cfg, FILE *out);
void config_free(struct config *cfg);

const char *listener_kind_name(enum listener_kind kind);

/* "host:port", "[v6]:port", "*:port" -> host (NULL for any) and port. */
int config_split_hostport(const char *text, char *host, size_t host_size,
			  int *port_r);
/* "90", "90s", "5m", "2h", "1d" -> seconds. */
int config_parse_duration(const char *text, int *seconds_r);
/* "1024", "10k", "20M", "1G" -> bytes. */
int config_parse_size(const char *text, size_t *bytes_r);

#endif

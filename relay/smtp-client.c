/* The relay's SMTP client: one transaction (one message, its recipients
 * for one destination) over a libevent bufferevent, trying the
 * destination's addresses in order until one answers. EHLO, STARTTLS
 * (opportunistic, required or implicit), AUTH PLAIN/LOGIN for a
 * smarthost, PIPELINING (RFC 2920), SIZE, 8BITMIME, SMTPUTF8, DSN
 * parameters, and the body streamed from the spool file with
 * dot-stuffing, never whole in memory. Timeouts per RFC 5321 4.5.3.2. */
#include "relay/relay-private.h"
#include "core/tls.h"
#include "mail/mail.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SMTP_REPLY_LINE_MAX 4096
#define SMTP_BODY_CHUNK 65536
#define SMTP_BODY_HIGH (256 * 1024)

/* RFC 5321 4.5.3.2 */
#define TIMEOUT_CONNECT 30
#define TIMEOUT_GREETING 300
#define TIMEOUT_COMMAND 300
#define TIMEOUT_DATA_INIT 120
#define TIMEOUT_DATA_BLOCK 180
#define TIMEOUT_DATA_END 600
#define TIMEOUT_QUIT 30
/* A connection whose transaction ended cleanly waits this long for the
 * next message to the same host (Postfix's smtp_connection_cache_time_limit
 * is 2 s too), at most CLIENT_IDLE_MAX of them at once. */
#define CLIENT_IDLE_SECS 2
#define CLIENT_IDLE_MAX 100

enum client_state {
	CS_CONNECTING,
	CS_GREETING,
	CS_EHLO,
	CS_HELO,
	CS_STARTTLS,
	CS_TLS_HANDSHAKE,
	CS_AUTH,
	CS_AUTH_LOGIN_USER,
	CS_AUTH_LOGIN_PASS,
	CS_TRANSACTION,     /* MAIL, RCPT..., DATA (pipelined or not) */
	CS_BODY,
	CS_DOT,
	CS_DOT_IGNORED,     /* 354 without any accepted recipient */
	CS_QUIT,
	CS_IDLE,            /* transaction over, kept for the next one */
};

static const char *const state_names[] = {
	"connecting", "greeting", "ehlo", "helo", "starttls", "tls-handshake", "auth",
	"auth-login-user", "auth-login-pass", "transaction", "body", "dot",
	"dot-ignored", "quit", "idle",
};

/* How the current address's TLS is to be checked. */
enum client_auth {
	AUTH_NONE,             /* opportunistic (or the smarthost's own check) */
	AUTH_DANE,             /* TLS required, certificate matched to TLSA records */
	AUTH_DANE_TLS_ONLY,    /* TLS required, not authenticated (no usable TLSA) */
	AUTH_MTASTS,           /* TLS required, certificate valid for the MX name */
	AUTH_MTASTS_TESTING,   /* as AUTH_NONE, but what MTA-STS would refuse is logged */
};

struct smtp_client {
	struct smtp_client_params p;
	struct smtp_client *reg_prev, *reg_next;
	struct bufferevent *bev;
	enum client_state state;
	size_t addr_index;
	char host[256], ip[64], tls[128];
	bool tls_active;
	enum client_auth auth;   /* for the current address */
	bool verified;           /* the peer's certificate checked out */
	const char *tls_auth;    /* how: "dane", "mta-sts", "smarthost", "none" */

	/* the reply being read */
	int reply_code;
	struct buf reply;      /* first line, "250 text" */
	bool ehlo_reply;

	/* peer's extensions */
	bool cap_starttls, cap_pipelining, cap_size, cap_8bitmime, cap_smtputf8, cap_dsn;
	bool cap_chunking, cap_binarymime;
	bool cap_auth_plain, cap_auth_login;
	uint64_t size_max;

	/* the transaction: command 0 = MAIL, 1..n = RCPT, n + 1 = DATA */
	size_t cmd_sent, cmd_replied;
	bool mail_failed;
	bool *accepted;
	size_t accepted_count;

	int spool_fd;
	struct mail_data_encoder encoder;

	/* connection reuse: what the connection was made for, kept in the
	 * client (the params' strings belong to the runner's job) */
	struct sockaddr_storage peer;
	socklen_t peer_len;
	char verify[256];      /* p.verify_name, "" for none */
	bool reusable;         /* the last transaction ended with a reply to "." */
	bool reused;           /* this transaction runs on an adopted connection */

	char error[512];       /* why the current address failed */
	int error_code;
	bool done_called;
	struct event *free_ev; /* self-destruction, deferred out of callbacks */
	struct event *start_ev;
};

static void client_next_address(struct smtp_client *c);
static bool body_binary(const struct smtp_client *c);
static void start_body(struct smtp_client *c);
static void client_process_input(struct smtp_client *c);
static void client_bind(struct smtp_client *c);

const char *smtp_client_host(const struct smtp_client *c)
{
	return c->host;
}

const char *smtp_client_ip(const struct smtp_client *c)
{
	return c->ip;
}

const char *smtp_client_tls(const struct smtp_client *c)
{
	return c->tls;
}

bool smtp_client_peer_dsn(const struct smtp_client *c)
{
	return c->cap_dsn;
}

bool smtp_client_verified(const struct smtp_client *c)
{
	return c->verified;
}

const char *smtp_client_tls_auth(const struct smtp_client *c)
{
	return c->tls_auth != NULL ? c->tls_auth : "none";
}

static enum client_auth addr_auth(const struct smtp_client *c, const struct relay_addr *a)
{
	if (c->p.verify_ctx == NULL || c->p.tls == SMTP_TLS_IMPLICIT)
		return AUTH_NONE;
	if (a->dane == RELAY_DANE_VERIFY)
		return AUTH_DANE;
	if (a->dane == RELAY_DANE_TLS_ONLY)
		return AUTH_DANE_TLS_ONLY;
	if (a->mtasts == RELAY_STS_ENFORCE)
		return AUTH_MTASTS;
	if (a->mtasts == RELAY_STS_TESTING)
		return AUTH_MTASTS_TESTING;
	return AUTH_NONE;
}

/* The policy that asked for TLS, for a refusal's text. */
static const char *auth_name(enum client_auth auth)
{
	return auth == AUTH_DANE || auth == AUTH_DANE_TLS_ONLY ? "DANE" :
	       auth == AUTH_MTASTS || auth == AUTH_MTASTS_TESTING ? "MTA-STS" : "";
}

static void mtasts_testing_note(const struct smtp_client *c, const char *problem)
{
	log_warn("event=mta-sts-testing id=%s domain=%s host=%s ip=%s problem=\"%s\" "
		 "note=\"delivered anyway: the policy is in testing mode\"", c->p.entry->id,
		 c->p.domain != NULL ? c->p.domain : "-", c->host, c->ip, problem);
}

int smtp_reply_parse_line(const char *line, size_t len, int *code_r, bool *more_r,
			  const char **text_r)
{
	if (len < 3)
		return -1;
	for (int i = 0; i < 3; i++) {
		if (line[i] < '0' || line[i] > '9')
			return -1;
	}
	if (line[0] < '2' || line[0] > '5')
		return -1;
	if (len > 3 && line[3] != ' ' && line[3] != '-')
		return -1;
	*code_r = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	*more_r = len > 3 && line[3] == '-';
	*text_r = len > 4 ? line + 4 : line + len;
	return 0;
}

static void client_set_state(struct smtp_client *c, enum client_state state)
{
	log_debug("event=relay-smtp-state id=%s host=%s from=%s to=%s", c->p.entry->id, c->ip,
		  state_names[c->state], state_names[state]);
	c->state = state;
}

static void client_timeout(struct smtp_client *c, int read_secs, int write_secs)
{
	struct timeval rtv = { read_secs, 0 }, wtv = { write_secs, 0 };
	bufferevent_set_timeouts(c->bev, read_secs > 0 ? &rtv : NULL,
				 write_secs > 0 ? &wtv : NULL);
}

static void client_send(struct smtp_client *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void client_send(struct smtp_client *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	evbuffer_add_vprintf(bufferevent_get_output(c->bev), fmt, ap);
	va_end(ap);
	evbuffer_add(bufferevent_get_output(c->bev), "\r\n", 2);
}

static void client_release_bev(struct smtp_client *c)
{
	if (c->bev != NULL) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	c->tls_active = false;
}

void smtp_client_free(struct smtp_client **cp)
{
	struct smtp_client *c = *cp;
	if (c == NULL)
		return;
	client_release_bev(c);
	if (c->p.registry != NULL) {
		if (c->reg_prev != NULL)
			c->reg_prev->reg_next = c->reg_next;
		else
			*c->p.registry = c->reg_next;
		if (c->reg_next != NULL)
			c->reg_next->reg_prev = c->reg_prev;
	}
	if (c->free_ev != NULL)
		event_free(c->free_ev);
	if (c->start_ev != NULL)
		event_free(c->start_ev);
	if (c->spool_fd >= 0)
		close(c->spool_fd);
	buf_free(&c->reply);
	free(c->accepted);
	free(c);
	*cp = NULL;
}

void smtp_client_free_all(struct smtp_client **registry)
{
	while (*registry != NULL) {
		struct smtp_client *c = *registry;
		smtp_client_free(&c);
	}
}

int smtp_client_quit_idle(struct smtp_client *registry)
{
	int n = 0;
	for (struct smtp_client *c = registry; c != NULL; c = c->reg_next) {
		if (c->state != CS_IDLE || c->bev == NULL)
			continue;
		c->state = CS_QUIT;     /* as on the idle timeout: no entry to log */
		client_send(c, "QUIT");
		client_timeout(c, TIMEOUT_QUIT, TIMEOUT_QUIT);
		n++;
	}
	return n;
}

/* Stops every callback now and frees from the loop afterwards, so that
 * code still running on this client's stack stays safe (it checks bev). */
static void client_destroy_later(struct smtp_client *c)
{
	client_release_bev(c);
	event_active(c->free_ev, EV_TIMEOUT, 0);
}

static void client_free_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_client *c = arg;
	smtp_client_free(&c);
}

static int idle_count(const struct smtp_client *c)
{
	int n = 0;
	for (const struct smtp_client *o = c->p.registry != NULL ? *c->p.registry : NULL;
	     o != NULL; o = o->reg_next)
		n += o->state == CS_IDLE;
	return n;
}

/* An idle connection made to the same address for the same purpose. */
static struct smtp_client *idle_find(const struct smtp_client *c, const struct relay_addr *a)
{
	const char *verify = c->p.verify_name != NULL ? c->p.verify_name : "";
	for (struct smtp_client *o = c->p.registry != NULL ? *c->p.registry : NULL; o != NULL;
	     o = o->reg_next) {
		if (o->state == CS_IDLE && o->bev != NULL && o->p.tls == c->p.tls &&
		    o->p.tls_ctx == c->p.tls_ctx && o->peer_len == a->sa_len &&
		    memcmp(&o->peer, &a->sa, a->sa_len) == 0 && strcmp(o->host, a->host) == 0 &&
		    strcmp(o->verify, verify) == 0 && o->p.auth_user == c->p.auth_user &&
		    strcmp(o->p.helo, c->p.helo) == 0 && o->auth == addr_auth(c, a))
			return o;
	}
	return NULL;
}

/* Takes over idle o's connection and what we learnt about the peer. */
static void client_adopt(struct smtp_client *c, struct smtp_client *o)
{
	c->bev = o->bev;
	o->bev = NULL;
	c->tls_active = o->tls_active;
	memcpy(c->tls, o->tls, sizeof(c->tls));
	c->verified = o->verified;
	c->tls_auth = o->tls_auth;
	c->cap_starttls = o->cap_starttls;
	c->cap_pipelining = o->cap_pipelining;
	c->cap_size = o->cap_size;
	c->cap_8bitmime = o->cap_8bitmime;
	c->cap_smtputf8 = o->cap_smtputf8;
	c->cap_dsn = o->cap_dsn;
	c->cap_auth_plain = o->cap_auth_plain;
	c->cap_auth_login = o->cap_auth_login;
	c->size_max = o->size_max;
	memcpy(&c->peer, &o->peer, sizeof(c->peer));
	c->peer_len = o->peer_len;
	c->reused = true;
	client_destroy_later(o);
	client_bind(c);
}

/* Every recipient has its result: tell the runner, then say goodbye.
 * The runner forgets the client in done(); it frees itself later. */
static void client_done(struct smtp_client *c)
{
	for (size_t i = 0; i < c->p.rcpt_count; i++) {
		struct smtp_client_rcpt *r = &c->p.rcpts[i];
		if (r->code == 0) {
			r->code = c->error_code != 0 ? c->error_code : 451;
			free(r->reply);
			r->reply = xstrdup(c->error[0] != '\0' ? c->error :
					   "451 4.4.2 no answer from the destination");
		}
	}
	c->done_called = true;
	if (c->bev != NULL && c->reusable && idle_count(c) < CLIENT_IDLE_MAX &&
	    c->p.registry != NULL) {
		/* RFC 5321 4.1.4: after the reply to "." the session is back at
		 * its start: the next MAIL may follow */
		client_set_state(c, CS_IDLE);
		client_timeout(c, CLIENT_IDLE_SECS, CLIENT_IDLE_SECS);
		if (c->spool_fd >= 0) {
			close(c->spool_fd);
			c->spool_fd = -1;
		}
	} else if (c->bev != NULL) {
		client_set_state(c, CS_QUIT);
		client_send(c, "QUIT");
		client_timeout(c, TIMEOUT_QUIT, TIMEOUT_QUIT);
	} else {
		client_destroy_later(c);
	}
	c->p.done(c->p.ctx);
}

/* This address failed before the transaction: remember why, try the next. */
static void client_address_failed(struct smtp_client *c, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void client_address_failed(struct smtp_client *c, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->error, sizeof(c->error), fmt, ap);
	va_end(ap);
	c->error_code = code;
	log_info("event=relay-host-failed id=%s host=%s ip=%s state=%s reason=\"%s\"",
		 c->p.entry->id, c->host, c->ip, state_names[c->state], c->error);
	client_release_bev(c);
	c->addr_index++;
	client_next_address(c);
}

/* The transaction broke after MAIL: unresolved recipients are retried. */
static void client_transaction_failed(struct smtp_client *c, const char *why)
{
	snprintf(c->error, sizeof(c->error), "451 4.4.2 %s (host %s)", why, c->host);
	c->error_code = 451;
	for (size_t i = 0; i < c->p.rcpt_count; i++) {
		if (c->accepted[i]) {
			c->p.rcpts[i].code = 0;   /* accepted, but no final answer */
		}
	}
	client_release_bev(c);
	client_done(c);
}

static void set_rcpt_result(struct smtp_client_rcpt *r, int code, const char *reply)
{
	r->code = code;
	free(r->reply);
	r->reply = xstrdup(reply);
}

static void all_rcpts_result(struct smtp_client *c, int code, const char *reply)
{
	for (size_t i = 0; i < c->p.rcpt_count; i++) {
		if (c->p.rcpts[i].code == 0)
			set_rcpt_result(&c->p.rcpts[i], code, reply);
	}
}

/* ---- commands ---- */

static void send_command(struct smtp_client *c, size_t index)
{
	const struct queue_entry *e = c->p.entry;
	struct buf b = BUF_INIT;
	if (index == 0) {
		buf_printf(&b, "MAIL FROM:<%s>", e->sender);
		if (c->cap_size)
			buf_printf(&b, " SIZE=%llu", (unsigned long long)(e->size +
				   (e->prepend != NULL ? strlen(e->prepend) : 0) +
				   (e->prepend_remote != NULL ? strlen(e->prepend_remote) : 0)));
		if (e->body == QUEUE_BODY_8BITMIME)
			buf_append_str(&b, " BODY=8BITMIME");
		else if (e->body == QUEUE_BODY_BINARYMIME)
			buf_append_str(&b, " BODY=BINARYMIME");
		if (e->smtputf8)
			buf_append_str(&b, " SMTPUTF8");
		if (c->cap_dsn && e->ret != QUEUE_RET_UNSET)
			buf_append_str(&b, e->ret == QUEUE_RET_FULL ? " RET=FULL" : " RET=HDRS");
		if (c->cap_dsn && e->envid != NULL) {
			buf_append_str(&b, " ENVID=");
			mail_xtext_encode(&b, e->envid);
		}
	} else if (index <= c->p.rcpt_count) {
		const struct smtp_client_rcpt *r = &c->p.rcpts[index - 1];
		buf_printf(&b, "RCPT TO:<%s>", r->address);
		if (c->cap_dsn && r->notify != 0) {
			buf_append_str(&b, " NOTIFY=");
			if (r->notify & QUEUE_NOTIFY_NEVER) {
				buf_append_str(&b, "NEVER");
			} else {
				const char *sep = "";
				if (r->notify & QUEUE_NOTIFY_SUCCESS) {
					buf_append_str(&b, "SUCCESS");
					sep = ",";
				}
				if (r->notify & QUEUE_NOTIFY_FAILURE) {
					buf_printf(&b, "%sFAILURE", sep);
					sep = ",";
				}
				if (r->notify & QUEUE_NOTIFY_DELAY)
					buf_printf(&b, "%sDELAY", sep);
			}
		}
		if (c->cap_dsn && r->orcpt != NULL) {
			const char *semi = strchr(r->orcpt, ';');
			if (semi != NULL) {
				buf_printf(&b, " ORCPT=%.*s;", (int)(semi - r->orcpt), r->orcpt);
				mail_xtext_encode(&b, semi + 1);
			}
		}
	} else {
		buf_append_str(&b, "DATA");
	}
	client_send(c, "%s", buf_str(&b));
	buf_free(&b);
	c->cmd_sent = index + 1;
}

/* Refuses what the peer cannot take; 0 when the transaction may start. */
static int check_peer_capabilities(struct smtp_client *c)
{
	const struct queue_entry *e = c->p.entry;
	char reply[300];
	if (e->body == QUEUE_BODY_BINARYMIME && !(c->cap_chunking && c->cap_binarymime)) {
		/* RFC 3030 3: binary content goes only with BDAT, to a server
		 * that takes it; it is never turned into text on the way */
		snprintf(reply, sizeof(reply),
			 "554 5.6.3 %s does not accept binary content (no BINARYMIME and CHUNKING)",
			 c->host);
	} else if (e->body == QUEUE_BODY_8BITMIME && !c->cap_8bitmime) {
		snprintf(reply, sizeof(reply),
			 "554 5.6.3 %s does not accept 8-bit content (no 8BITMIME)", c->host);
	} else if (e->smtputf8 && !c->cap_smtputf8) {
		snprintf(reply, sizeof(reply),
			 "553 5.6.7 %s does not accept internationalized mail (no SMTPUTF8)",
			 c->host);
	} else if (c->size_max > 0 && e->size > c->size_max) {
		snprintf(reply, sizeof(reply), "552 5.3.4 message too big for %s (limit %llu)",
			 c->host, (unsigned long long)c->size_max);
	} else {
		return 0;
	}
	all_rcpts_result(c, atoi(reply), reply);
	client_done(c);
	return -1;
}

static void start_transaction(struct smtp_client *c)
{
	if (check_peer_capabilities(c) < 0)
		return;
	client_set_state(c, CS_TRANSACTION);
	c->cmd_sent = c->cmd_replied = 0;
	if (c->cap_pipelining) {
		/* BDAT waits for the recipients' answers: its data follows at once */
		size_t last = c->p.rcpt_count + (body_binary(c) ? 0 : 1);
		for (size_t i = 0; i <= last; i++)
			send_command(c, i);
	} else {
		send_command(c, 0);
	}
	client_timeout(c, TIMEOUT_COMMAND, TIMEOUT_COMMAND);
}

static void auth_base64(struct buf *out, const void *data, size_t len)
{
	size_t need = 4 * ((len + 2) / 3) + 1;
	buf_reserve(out, need);
	int n = EVP_EncodeBlock((unsigned char *)out->data + out->len, data, (int)len);
	out->len += (size_t)n;
	out->data[out->len] = '\0';
}

static void start_auth(struct smtp_client *c)
{
	struct buf b = BUF_INIT;
	client_set_state(c, CS_AUTH);
	if (c->cap_auth_plain) {
		struct buf raw = BUF_INIT;
		buf_append_char(&raw, '\0');
		buf_append_str(&raw, c->p.auth_user);
		buf_append_char(&raw, '\0');
		buf_append_str(&raw, c->p.auth_pass);
		buf_append_str(&b, "AUTH PLAIN ");
		auth_base64(&b, raw.data, raw.len);
		explicit_bzero(raw.data, raw.len);
		buf_free(&raw);
	} else {
		client_set_state(c, CS_AUTH_LOGIN_USER);
		buf_append_str(&b, "AUTH LOGIN");
	}
	client_send(c, "%s", buf_str(&b));
	explicit_bzero(b.data, b.len);
	buf_free(&b);
}

/* After EHLO: STARTTLS, AUTH, then the transaction. */
static void after_ehlo(struct smtp_client *c)
{
	if (!c->tls_active && c->p.tls != SMTP_TLS_IMPLICIT && c->cap_starttls &&
	    c->p.tls_ctx != NULL) {
		client_set_state(c, CS_STARTTLS);
		client_send(c, "STARTTLS");
		return;
	}
	if (!c->tls_active && c->auth != AUTH_NONE && c->auth != AUTH_MTASTS_TESTING) {
		client_address_failed(c, 451, "451 4.7.5 %s: %s of %s must use TLS but does not offer "
				      "STARTTLS", auth_name(c->auth), c->host,
				      c->p.domain != NULL ? c->p.domain : "the destination");
		return;
	}
	if (!c->tls_active && c->p.tls == SMTP_TLS_REQUIRED) {
		client_address_failed(c, 451, "451 4.7.10 TLS required but %s does not offer STARTTLS",
				      c->host);
		return;
	}
	if (!c->tls_active && c->auth == AUTH_MTASTS_TESTING)
		mtasts_testing_note(c, "no STARTTLS");
	if (c->p.auth_user != NULL) {
		if (!c->tls_active) {
			client_address_failed(c, 451,
					      "451 4.7.0 no TLS to %s: credentials not sent", c->host);
			return;
		}
		if (!c->cap_auth_plain && !c->cap_auth_login) {
			client_address_failed(c, 451, "451 4.7.0 %s offers no AUTH PLAIN or LOGIN",
					      c->host);
			return;
		}
		start_auth(c);
		return;
	}
	start_transaction(c);
}

static void parse_ehlo_line(struct smtp_client *c, const char *text)
{
	char word[32];
	size_t n = 0;
	while (text[n] != '\0' && text[n] != ' ' && text[n] != '=' && n < sizeof(word) - 1) {
		word[n] = text[n];
		n++;
	}
	word[n] = '\0';
	const char *args = text + n;
	if (ascii_strcasecmp(word, "STARTTLS") == 0) {
		c->cap_starttls = true;
	} else if (ascii_strcasecmp(word, "PIPELINING") == 0) {
		c->cap_pipelining = true;
	} else if (ascii_strcasecmp(word, "8BITMIME") == 0) {
		c->cap_8bitmime = true;
	} else if (ascii_strcasecmp(word, "CHUNKING") == 0) {
		c->cap_chunking = true;
	} else if (ascii_strcasecmp(word, "BINARYMIME") == 0) {
		c->cap_binarymime = true;
	} else if (ascii_strcasecmp(word, "SMTPUTF8") == 0) {
		c->cap_smtputf8 = true;
	} else if (ascii_strcasecmp(word, "DSN") == 0) {
		c->cap_dsn = true;
	} else if (ascii_strcasecmp(word, "SIZE") == 0) {
		c->cap_size = true;
		c->size_max = strtoull(args, NULL, 10);
	} else if (ascii_strcasecmp(word, "AUTH") == 0) {
		char upper[512];
		size_t i;
		for (i = 0; args[i] != '\0' && i < sizeof(upper) - 2; i++)
			upper[i] = (args[i] >= 'a' && args[i] <= 'z') ? (char)(args[i] - 32) :
				   (args[i] == '=' ? ' ' : args[i]);
		upper[i++] = ' ';
		upper[i] = '\0';
		c->cap_auth_plain |= strstr(upper, " PLAIN ") != NULL;
		c->cap_auth_login |= strstr(upper, " LOGIN ") != NULL;
	}
}

static void send_ehlo(struct smtp_client *c)
{
	c->cap_starttls = c->cap_pipelining = c->cap_size = c->cap_8bitmime = false;
	c->cap_smtputf8 = c->cap_dsn = c->cap_auth_plain = c->cap_auth_login = false;
	c->size_max = 0;
	client_set_state(c, CS_EHLO);
	client_send(c, "EHLO %s", c->p.helo);
	client_timeout(c, TIMEOUT_COMMAND, TIMEOUT_COMMAND);
}

/* A TLS session for the current address: SNI, and what to check of the
 * peer: DANE (its TLSA records), MTA-STS (CAs and the MX name), the
 * smarthost's name (its context verifies), or nothing (opportunistic). */
static SSL *client_ssl_new(struct smtp_client *c)
{
	const struct relay_addr *a = &c->p.addrs[c->addr_index];
	bool checked = c->auth == AUTH_DANE || c->auth == AUTH_MTASTS ||
		       c->auth == AUTH_MTASTS_TESTING;
	SSL *ssl = SSL_new(checked ? c->p.verify_ctx : c->p.tls_ctx);
	if (ssl == NULL)
		return NULL;
	if (c->auth == AUTH_DANE) {
		/* RFC 7672 3.2: the MX host name is the reference identifier
		 * (DANE-TA); DANE-EE ignores names and dates */
		int usable = 0;
		if (SSL_dane_enable(ssl, c->host) > 0) {
			SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
			for (size_t i = 0; i < a->tlsa_count; i++) {
				const struct relay_tlsa *t = &a->tlsa[i];
				if (SSL_dane_tlsa_add(ssl, t->usage, t->selector, t->mtype, t->data,
						      t->len) > 0)
					usable++;
			}
		}
		if (usable == 0) {
			/* nothing OpenSSL can use: encrypt without authenticating */
			c->auth = AUTH_DANE_TLS_ONLY;
			SSL_free(ssl);
			ssl = SSL_new(c->p.tls_ctx);
			if (ssl != NULL)
				SSL_set_tlsext_host_name(ssl, c->host);
		}
		return ssl;
	}
	if (c->auth == AUTH_MTASTS || c->auth == AUTH_MTASTS_TESTING) {
		/* RFC 8461 4.2: valid for the MX host name, by a trusted CA */
		SSL_set_tlsext_host_name(ssl, c->host);
		X509_VERIFY_PARAM_set_hostflags(SSL_get0_param(ssl),
						X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (SSL_set1_host(ssl, c->host) != 1) {
			SSL_free(ssl);
			return NULL;
		}
		if (c->auth == AUTH_MTASTS_TESTING)
			SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
		return ssl;
	}
	unsigned char bin[16];
	bool literal = c->p.verify_name != NULL &&
		       (inet_pton(AF_INET, c->p.verify_name, bin) == 1 ||
			inet_pton(AF_INET6, c->p.verify_name, bin) == 1);
	if (!literal)
		SSL_set_tlsext_host_name(ssl, (char *)(c->p.verify_name != NULL ? c->p.verify_name :
							      c->host));
	if (c->p.verify_name != NULL) {
		X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
		X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		int ok = literal ? X509_VERIFY_PARAM_set1_ip_asc(param, c->p.verify_name) :
			 SSL_set1_host(ssl, c->p.verify_name);
		if (ok != 1) {
			SSL_free(ssl);
			return NULL;
		}
	}
	return ssl;
}

/* The handshake is done: what was verified, and how. */
static void client_tls_facts(struct smtp_client *c, SSL *ssl)
{
	long result = SSL_get_verify_result(ssl);
	c->verified = false;
	c->tls_auth = "none";
	switch (c->auth) {
	case AUTH_DANE:
		c->verified = result == X509_V_OK && SSL_get0_dane_authority(ssl, NULL, NULL) >= 0;
		c->tls_auth = c->verified ? "dane" : "none";
		break;
	case AUTH_MTASTS:
		c->verified = result == X509_V_OK;
		c->tls_auth = c->verified ? "mta-sts" : "none";
		break;
	case AUTH_MTASTS_TESTING:
		c->verified = result == X509_V_OK;
		c->tls_auth = c->verified ? "mta-sts" : "none";
		if (!c->verified) {
			char problem[300];
			snprintf(problem, sizeof(problem), "certificate not valid for %s: %s", c->host,
				 X509_verify_cert_error_string(result));
			mtasts_testing_note(c, problem);
		}
		break;
	default:
		/* the smarthost's context verifies (SSL_VERIFY_PEER) */
		if (c->p.verify_name != NULL && result == X509_V_OK &&
		    SSL_get_verify_mode(ssl) != SSL_VERIFY_NONE) {
			c->verified = true;
			c->tls_auth = "smarthost";
		}
		break;
	}
}

/* ---- the body ---- */

static bool body_binary(const struct smtp_client *c)
{
	return c->p.entry->body == QUEUE_BODY_BINARYMIME;
}

/* Text goes as DATA: CRLF line ends only and dot-stuffing at every line
 * start, whatever the spool holds (mail_data_encode); a BINARYMIME body
 * goes as it is in one BDAT LAST (RFC 3030). */
static void body_add(struct smtp_client *c, const char *data, size_t len)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	if (body_binary(c)) {
		evbuffer_add(out, data, len);
		return;
	}
	char stuffed[SMTP_BODY_CHUNK * 2 + 2];
	while (len > 0) {
		size_t n = len < SMTP_BODY_CHUNK ? len : SMTP_BODY_CHUNK;
		evbuffer_add(out, stuffed, mail_data_encode(&c->encoder, data, n, stuffed));
		data += n;
		len -= n;
	}
}

static void body_feed(struct smtp_client *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	char in[SMTP_BODY_CHUNK];
	while (evbuffer_get_length(out) < SMTP_BODY_HIGH) {
		ssize_t n = read(c->spool_fd, in, sizeof(in));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			client_transaction_failed(c, "cannot read the spool file");
			return;
		}
		if (n == 0) {
			if (!body_binary(c)) {
				char end[8];
				evbuffer_add(out, end, mail_data_encode_end(&c->encoder, end));
			}
			bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
			client_set_state(c, CS_DOT);
			client_timeout(c, TIMEOUT_DATA_END, TIMEOUT_DATA_BLOCK);
			client_process_input(c);   /* a reply may have come early */
			return;
		}
		body_add(c, in, (size_t)n);
	}
}

/* After 354 (DATA), or once the recipients are answered (BDAT): the
 * fields intake's filters put on top of the copies that leave, then the
 * spool file from where the message starts for another hop. */
static void start_body(struct smtp_client *c)
{
	const struct queue_entry *e = c->p.entry;
	struct stat st;
	off_t start = queue_spool_body_start(c->spool_fd);
	client_set_state(c, CS_BODY);
	c->encoder = (struct mail_data_encoder)MAIL_DATA_ENCODER_INIT;
	if (lseek(c->spool_fd, start, SEEK_SET) < 0 || fstat(c->spool_fd, &st) < 0) {
		client_transaction_failed(c, "cannot read the spool file");
		return;
	}
	size_t top = (e->prepend != NULL ? strlen(e->prepend) : 0) +
		     (e->prepend_remote != NULL ? strlen(e->prepend_remote) : 0);
	if (body_binary(c))
		client_send(c, "BDAT %llu LAST",
			    (unsigned long long)(top + (uint64_t)(st.st_size - start)));
	if (e->prepend != NULL)
		body_add(c, e->prepend, strlen(e->prepend));
	if (e->prepend_remote != NULL)
		body_add(c, e->prepend_remote, strlen(e->prepend_remote));
	client_timeout(c, 0, TIMEOUT_DATA_BLOCK);
	bufferevent_setwatermark(c->bev, EV_WRITE, SMTP_BODY_CHUNK, 0);
	body_feed(c);
}

/* ---- replies ---- */

static void client_connect(struct smtp_client *c);

/* An adopted connection the peer closed meanwhile (EOF, or 421 before
 * anything of ours was answered): no fault of the host, connect anew. */
static bool reuse_failed(struct smtp_client *c)
{
	if (!c->reused || c->cmd_replied != 0)
		return false;
	c->reused = false;
	client_release_bev(c);
	client_connect(c);
	return true;
}

static void transaction_reply(struct smtp_client *c, int code, const char *reply)
{
	if (code == 421 && reuse_failed(c))
		return;
	size_t index = c->cmd_replied++;
	size_t n = c->p.rcpt_count;
	bool ok = code >= 200 && code < 300;
	if (index == 0) {
		if (!ok) {
			c->mail_failed = true;
			all_rcpts_result(c, code, reply);
		}
	} else if (index <= n) {
		if (ok) {
			c->accepted[index - 1] = true;
			c->accepted_count++;
		} else if (!c->mail_failed) {
			set_rcpt_result(&c->p.rcpts[index - 1], code, reply);
		}
	} else {
		/* DATA */
		if (code == 354) {
			if (c->accepted_count > 0 && !c->mail_failed) {
				start_body(c);
			} else {
				/* RFC 2920 3.1: nothing valid, end the empty message */
				client_set_state(c, CS_DOT_IGNORED);
				client_send(c, ".");
			}
			return;
		}
		char text[600];
		if (code < 400) {
			/* anything but 354 means no body went: never count it as sent */
			snprintf(text, sizeof(text), "451 4.5.0 unexpected reply to DATA: %s", reply);
			code = 451;
			reply = text;
		}
		for (size_t i = 0; i < n; i++) {
			if (c->accepted[i])
				set_rcpt_result(&c->p.rcpts[i], code, reply);
		}
		client_done(c);
		return;
	}
	bool binary = body_binary(c);
	if (c->cap_pipelining && (!binary || index < n))
		return;   /* everything was sent; wait for the rest */
	if (c->mail_failed) {
		client_done(c);
	} else if (index == n && c->accepted_count == 0) {
		client_done(c);   /* every recipient refused: no DATA, no BDAT */
	} else if (index == n && binary) {
		start_body(c);    /* BDAT size LAST and the bytes */
	} else {
		send_command(c, index + 1);
		if (index == n)
			client_timeout(c, TIMEOUT_DATA_INIT, TIMEOUT_COMMAND);
	}
}

static void reply_complete(struct smtp_client *c, int code, const char *reply)
{
	switch (c->state) {
	case CS_GREETING:
		if (code != 220) {
			client_address_failed(c, 451, "%s", reply);
			return;
		}
		send_ehlo(c);
		return;
	case CS_EHLO:
		if (code == 250) {
			after_ehlo(c);
		} else if (code >= 500 && !c->tls_active) {
			client_set_state(c, CS_HELO);
			client_send(c, "HELO %s", c->p.helo);
		} else {
			client_address_failed(c, 451, "%s", reply);
		}
		return;
	case CS_HELO:
		if (code != 250)
			client_address_failed(c, 451, "%s", reply);
		else
			after_ehlo(c);
		return;
	case CS_STARTTLS:
		if (code != 220) {
			if (c->auth != AUTH_NONE && c->auth != AUTH_MTASTS_TESTING)
				client_address_failed(c, 451, "451 4.7.5 %s: %s refused STARTTLS: %s",
						      auth_name(c->auth), c->host, reply);
			else if (c->p.tls == SMTP_TLS_REQUIRED)
				client_address_failed(c, 451, "451 4.7.10 STARTTLS refused: %s", reply);
			else {
				/* opportunistic: go on in clear */
				c->cap_starttls = false;
				after_ehlo(c);
			}
			return;
		}
		{
			SSL *ssl = client_ssl_new(c);
			if (ssl == NULL) {
				client_address_failed(c, 451, "451 4.7.0 cannot start TLS");
				return;
			}
			client_set_state(c, CS_TLS_HANDSHAKE);
			struct bufferevent *tls = bufferevent_openssl_filter_new(
				c->p.base, c->bev, ssl, BUFFEREVENT_SSL_CONNECTING,
				BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
			if (tls == NULL) {
				SSL_free(ssl);
				client_address_failed(c, 451, "451 4.7.0 cannot start TLS");
				return;
			}
			c->bev = tls;
			client_bind(c);
			client_timeout(c, TIMEOUT_COMMAND, TIMEOUT_COMMAND);
		}
		return;
	case CS_AUTH:
		if (code == 235) {
			start_transaction(c);
		} else {
			client_address_failed(c, 451, "451 4.7.0 authentication to %s failed: %s",
					      c->host, reply);
		}
		return;
	case CS_AUTH_LOGIN_USER:
	case CS_AUTH_LOGIN_PASS:
		if (code == 235 && c->state == CS_AUTH_LOGIN_PASS) {
			start_transaction(c);
		} else if (code == 334) {
			const char *secret = c->state == CS_AUTH_LOGIN_USER ? c->p.auth_user :
					     c->p.auth_pass;
			struct buf b = BUF_INIT;
			auth_base64(&b, secret, strlen(secret));
			client_send(c, "%s", buf_str(&b));
			explicit_bzero(b.data, b.len);
			buf_free(&b);
			if (c->state == CS_AUTH_LOGIN_USER)
				client_set_state(c, CS_AUTH_LOGIN_PASS);
			else
				client_set_state(c, CS_AUTH);   /* 235 expected */
		} else {
			client_address_failed(c, 451, "451 4.7.0 authentication to %s failed: %s",
					      c->host, reply);
		}
		return;
	case CS_TRANSACTION:
		transaction_reply(c, code, reply);
		return;
	case CS_DOT:
		for (size_t i = 0; i < c->p.rcpt_count; i++) {
			if (c->accepted[i])
				set_rcpt_result(&c->p.rcpts[i], code, reply);
		}
		c->reusable = code != 421;
		client_done(c);
		return;
	case CS_DOT_IGNORED:
		c->reusable = code != 421;
		client_done(c);
		return;
	case CS_QUIT:
	case CS_IDLE:           /* a 421 or anything else unasked: done with it */
		client_destroy_later(c);
		return;
	default:
		return;
	}
}

/* Reads complete reply lines; returns when input runs dry or the state
 * changed into one that does not read (body, handshake, freed). */
static void client_process_input(struct smtp_client *c)
{
	while (c->bev != NULL && c->state != CS_BODY && c->state != CS_TLS_HANDSHAKE &&
	       c->state != CS_CONNECTING) {
		struct evbuffer *in = bufferevent_get_input(c->bev);
		size_t len;
		char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
		if (line == NULL) {
			if (evbuffer_get_length(in) > SMTP_REPLY_LINE_MAX) {
				if (c->state == CS_QUIT || c->state == CS_IDLE)
					client_destroy_later(c);   /* done() was called */
				else if (c->state >= CS_TRANSACTION)
					client_transaction_failed(c, "reply line too long");
				else
					client_address_failed(c, 451, "451 4.5.0 reply line too long");
			}
			return;
		}
		int code;
		bool more;
		const char *text;
		if (smtp_reply_parse_line(line, len, &code, &more, &text) < 0 ||
		    (c->reply.len > 0 && code != c->reply_code)) {
			free(line);
			if (c->state == CS_QUIT || c->state == CS_IDLE)
				client_destroy_later(c);   /* done() was called */
			else if (c->state >= CS_TRANSACTION)
				client_transaction_failed(c, "malformed reply");
			else
				client_address_failed(c, 451, "451 4.5.0 malformed reply from %s",
						      c->host);
			return;
		}
		if (c->reply.len == 0) {
			c->reply_code = code;
			char clean[512];
			log_sanitize(clean, sizeof(clean), line, len);
			buf_append_str(&c->reply, clean);
		} else if (c->state == CS_EHLO) {
			parse_ehlo_line(c, text);
		}
		free(line);
		if (more)
			continue;
		char reply[512];
		snprintf(reply, sizeof(reply), "%s", buf_str(&c->reply));
		buf_reset(&c->reply);
		reply_complete(c, code, reply);
	}
}

/* ---- the connection ---- */

static void client_read_cb(struct bufferevent *bev, void *arg)
{
	client_process_input(arg);
}

static void client_write_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_client *c = arg;
	if (c->state == CS_BODY)
		body_feed(c);
}

static void client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_client *c = arg;
	if (what & BEV_EVENT_CONNECTED) {
		/* commands and the message go out in whole writes of ours;
		 * Nagle would hold the last small one (".", QUIT) for an ACK
		 * the peer delays */
		int one = 1;
		if (c->state == CS_CONNECTING)
			(void)setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY,
					 &one, sizeof(one));
		if (c->state == CS_TLS_HANDSHAKE || c->p.tls == SMTP_TLS_IMPLICIT) {
			SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
			c->tls_active = ssl != NULL;
			if (ssl != NULL) {
				tls_describe(ssl, c->tls, sizeof(c->tls));
				client_tls_facts(c, ssl);
			}
		}
		if (c->state == CS_TLS_HANDSHAKE) {
			send_ehlo(c);
		} else {
			client_set_state(c, CS_GREETING);
			client_timeout(c, TIMEOUT_GREETING, TIMEOUT_COMMAND);
		}
		client_process_input(c);
		return;
	}
	if (c->state == CS_IDLE && (what & BEV_EVENT_TIMEOUT)) {
		c->state = CS_QUIT;     /* not client_set_state: the entry is gone */
		client_send(c, "QUIT");
		client_timeout(c, TIMEOUT_QUIT, TIMEOUT_QUIT);
		return;
	}
	if (c->state == CS_QUIT || c->state == CS_IDLE) {
		client_destroy_later(c);
		return;
	}
	if (c->state == CS_TRANSACTION && !(what & BEV_EVENT_TIMEOUT) && reuse_failed(c))
		return;
	const char *why = (what & BEV_EVENT_TIMEOUT) ? "timed out" :
			  (what & BEV_EVENT_EOF) ? "connection closed" : "connection failed";
	char detail[200] = "";
	if (c->state == CS_TLS_HANDSHAKE && (c->auth == AUTH_DANE || c->auth == AUTH_MTASTS)) {
		SSL *ssl = bufferevent_openssl_get_ssl(bev);
		long result = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
		if (result != X509_V_OK) {
			client_address_failed(c, 451, "451 4.7.5 %s: the certificate of %s does not "
					      "check out: %s", auth_name(c->auth), c->host,
					      c->auth == AUTH_DANE ? "it matches none of its TLSA "
					      "records" : X509_verify_cert_error_string(result));
			return;
		}
	}
	if (what & BEV_EVENT_ERROR) {
		unsigned long e = bufferevent_get_openssl_error(bev);
		if (e != 0)
			ERR_error_string_n(e, detail, sizeof(detail));
		else if (EVUTIL_SOCKET_ERROR() != 0)
			snprintf(detail, sizeof(detail), "%s",
				 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	}
	if (c->state == CS_CONNECTING || c->state == CS_GREETING) {
		if (c->p.unreachable != NULL &&
		    (c->state == CS_CONNECTING || (what & BEV_EVENT_TIMEOUT)))
			c->p.unreachable(c->p.ctx, &c->p.addrs[c->addr_index]);
	}
	if (c->state >= CS_TRANSACTION) {
		char text[300];
		snprintf(text, sizeof(text), "%s during %s%s%s", why, state_names[c->state],
			 detail[0] ? ": " : "", detail);
		client_transaction_failed(c, text);
	} else {
		client_address_failed(c, 451, "451 4.4.1 %s: %s%s%s", c->host, why,
				      detail[0] ? ": " : "", detail);
	}
}

static void client_start_cb(evutil_socket_t fd, short what, void *arg)
{
	client_next_address(arg);
}

static void client_bind(struct smtp_client *c)
{
	bufferevent_setcb(c->bev, client_read_cb, client_write_cb, client_event_cb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void client_next_address(struct smtp_client *c)
{
	if (c->addr_index >= c->p.addr_count) {
		if (c->error[0] == '\0') {
			snprintf(c->error, sizeof(c->error), "451 4.4.1 no host to try");
			c->error_code = 451;
		}
		client_done(c);
		return;
	}
	const struct relay_addr *a = &c->p.addrs[c->addr_index];
	snprintf(c->host, sizeof(c->host), "%s", a->host);
	snprintf(c->ip, sizeof(c->ip), "%s", a->ip);
	c->tls[0] = '\0';
	c->tls_active = false;
	c->verified = false;
	c->tls_auth = "none";
	c->auth = addr_auth(c, a);
	c->mail_failed = false;
	c->accepted_count = 0;
	memset(c->accepted, 0, c->p.rcpt_count * sizeof(*c->accepted));
	buf_reset(&c->reply);
	struct smtp_client *idle = idle_find(c, a);
	if (idle != NULL) {
		client_adopt(c, idle);
		log_debug("event=relay-connection-reused id=%s host=%s ip=%s", c->p.entry->id,
			  c->host, c->ip);
		start_transaction(c);
		return;
	}
	client_connect(c);
}

/* A new connection to the current address. */
static void client_connect(struct smtp_client *c)
{
	const struct relay_addr *a = &c->p.addrs[c->addr_index];
	memcpy(&c->peer, &a->sa, a->sa_len);
	c->peer_len = a->sa_len;
	c->reusable = false;
	int opts = BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS;
	if (c->p.tls == SMTP_TLS_IMPLICIT) {
		SSL *ssl = client_ssl_new(c);
		if (ssl == NULL) {
			client_address_failed(c, 451, "451 4.7.0 cannot start TLS");
			return;
		}
		c->bev = bufferevent_openssl_socket_new(c->p.base, -1, ssl,
							BUFFEREVENT_SSL_CONNECTING, opts);
	} else {
		c->bev = bufferevent_socket_new(c->p.base, -1, opts);
	}
	client_set_state(c, CS_CONNECTING);
	client_bind(c);
	client_timeout(c, TIMEOUT_CONNECT, TIMEOUT_CONNECT);
	if (bufferevent_socket_connect(c->bev, (const struct sockaddr *)&a->sa,
				       (int)a->sa_len) < 0) {
		if (c->p.unreachable != NULL)
			c->p.unreachable(c->p.ctx, a);
		client_address_failed(c, 451, "451 4.4.1 cannot connect to %s [%s]", c->host,
				      c->ip);
	}
}

struct smtp_client *smtp_client_start(const struct smtp_client_params *params)
{
	struct smtp_client *c = xcalloc(1, sizeof(*c));
	c->p = *params;
	if (c->p.registry != NULL) {
		c->reg_next = *c->p.registry;
		if (c->reg_next != NULL)
			c->reg_next->reg_prev = c;
		*c->p.registry = c;
	}
	c->accepted = xcalloc(c->p.rcpt_count + 1, sizeof(*c->accepted));
	snprintf(c->verify, sizeof(c->verify), "%s",
		 c->p.verify_name != NULL ? c->p.verify_name : "");
	c->free_ev = event_new(c->p.base, -1, 0, client_free_cb, c);
	c->spool_fd = open(c->p.spool_path, O_RDONLY | O_CLOEXEC);
	if (c->spool_fd < 0) {
		snprintf(c->error, sizeof(c->error), "451 4.3.0 cannot open the spool file: %s",
			 strerror(errno));
		c->error_code = 451;
		c->addr_index = c->p.addr_count;
	}
	/* the first step runs from the loop, never inside the caller */
	c->start_ev = event_new(c->p.base, -1, 0, client_start_cb, c);
	event_active(c->start_ev, EV_TIMEOUT, 0);
	return c;
}

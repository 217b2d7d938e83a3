/* IMAP load generator for bench/run: drives any IMAP4rev1 server (Postern,
 * Dovecot) and checks every reply, so a fast wrong answer cannot win.
 *
 *   imap-load --port P [--host H] [--tls] [--user FMT] [--users U]
 *             [--password PW] [--sessions S] [--seconds T] [--seed N]
 *             [--mode mix|large|idle] [--connections N] [--search TEXT]
 *
 * mix:   S threads, each looping for T seconds over whole sessions of
 *        connect, LOGIN, SELECT, FETCH headers, FETCH bodies, STORE flags
 *        (+ and -), APPEND, UID STORE \Deleted + UID EXPUNGE of what it
 *        appended, IDLE/DONE, LOGOUT. Session i uses user (i % U).
 * large: one session: SELECT, UID FETCH 1:* (FLAGS), UID SEARCH HEADER
 *        Subject TEXT; each timed once.
 * idle:  N connections opened one after another, each LOGIN + SELECT +
 *        IDLE; prints "ready N" and holds them until stdin closes.
 *
 * Checks: every tagged reply is OK; SELECT reports EXISTS; a header FETCH
 * yields one FETCH per message asked with a header literal; a body FETCH
 * yields a literal whose length equals RFC822.SIZE; STORE reports the new
 * flags; APPEND answers APPENDUID; UID EXPUNGE reports one expunge; IDLE
 * gets its continuation; LOGOUT gets BYE. The result is one line of
 * key=value fields on stdout. A NO or BAD names the command in
 * "unsupported=CMD" (exit status 3); other failures exit 1.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum op { OP_LOGIN, OP_SELECT, OP_FETCH_HDR, OP_FETCH_BODY, OP_STORE, OP_APPEND,
	  OP_EXPUNGE, OP_IDLE, OP_LOGOUT, OP_COUNT };
static const char *const op_names[OP_COUNT] = {
	"login", "select", "fetch_hdr", "fetch_body", "store", "append", "expunge",
	"idle", "logout" };

struct options {
	const char *host, *user_fmt, *password, *mode, *search;
	int port, users, sessions, connections;
	double seconds;
	bool tls;
	unsigned int seed;
};
static struct options opt = {
	.host = "127.0.0.1", .user_fmt = "user%d@example.org", .password = "bench password",
	.mode = "mix", .search = "needle", .users = 1, .sessions = 1, .connections = 100,
	.seconds = 10, .seed = 1,
};
static SSL_CTX *ssl_ctx;

/* What went wrong first, shared by all threads. */
static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;
static char fail_text[512];
static const char *fail_unsupported;
static int fail_count;

struct conn {
	int fd;
	SSL *ssl;
	unsigned char buf[65536];
	size_t pos, len;
	unsigned int tagno;
	char tag[16];
	uint64_t bytes_in;
};

/* One reply: its lines joined, each literal replaced by "{n}" and only
 * counted; sizes of the literals in order. */
struct reply {
	char *text;
	size_t len, cap;
	size_t lits[64];
	unsigned int nlits;
};

struct stats {
	double *lat[OP_COUNT];
	size_t nlat[OP_COUNT], caplat[OP_COUNT];
	uint64_t ops, bytes, sessions;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (p == NULL) {
		perror("imap-load: realloc");
		exit(2);
	}
	return p;
}

static void fail(const char *unsupported, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void fail(const char *unsupported, const char *fmt, ...)
{
	va_list ap;
	pthread_mutex_lock(&fail_lock);
	if (fail_count++ == 0) {
		va_start(ap, fmt);
		vsnprintf(fail_text, sizeof(fail_text), fmt, ap);
		va_end(ap);
		for (char *p = fail_text; *p != '\0'; p++)
			if (*p == '\r' || *p == '\n' || *p == '"')
				*p = ' ';
		fail_unsupported = unsupported;
	}
	pthread_mutex_unlock(&fail_lock);
}

static bool failed(void)
{
	pthread_mutex_lock(&fail_lock);
	bool f = fail_count > 0;
	pthread_mutex_unlock(&fail_lock);
	return f;
}

/* ---- transport ---- */

static int conn_write(struct conn *c, const void *data, size_t n)
{
	const char *p = data;
	while (n > 0) {
		ssize_t w;
		if (c->ssl != NULL) {
			int r = SSL_write(c->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
			w = r > 0 ? r : -1;
		} else {
			w = send(c->fd, p, n, MSG_NOSIGNAL);
			if (w < 0 && errno == EINTR)
				continue;
		}
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int conn_fill(struct conn *c)
{
	if (c->pos == c->len)
		c->pos = c->len = 0;
	if (c->len == sizeof(c->buf)) {
		memmove(c->buf, c->buf + c->pos, c->len - c->pos);
		c->len -= c->pos;
		c->pos = 0;
	}
	ssize_t r;
	if (c->ssl != NULL) {
		int n = SSL_read(c->ssl, c->buf + c->len, (int)(sizeof(c->buf) - c->len));
		r = n > 0 ? n : -1;
	} else {
		do
			r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
		while (r < 0 && errno == EINTR);
	}
	if (r <= 0)
		return -1;
	c->len += (size_t)r;
	c->bytes_in += (uint64_t)r;
	return 0;
}

static void reply_add(struct reply *r, const void *data, size_t n)
{
	if (r->len + n + 1 > r->cap) {
		r->cap = (r->len + n + 1) * 2;
		r->text = xrealloc(r->text, r->cap);
	}
	memcpy(r->text + r->len, data, n);
	r->len += n;
	r->text[r->len] = '\0';
}

/* A literal announcement "{n}" or "{n+}" at the end of the text so far. */
static bool literal_at_end(const struct reply *r, size_t *size_r)
{
	if (r->len < 3 || r->text[r->len - 1] != '}')
		return false;
	size_t i = r->len - 2;
	if (r->text[i] == '+')
		i--;
	size_t end = i + 1;
	while (i > 0 && r->text[i] >= '0' && r->text[i] <= '9')
		i--;
	if (r->text[i] != '{' || i + 1 == end)
		return false;
	*size_r = strtoull(r->text + i + 1, NULL, 10);
	return true;
}

/* Reads one whole reply (a line plus any literals and continuation
 * lines). Returns 0, or -1 when the connection broke. */
static int read_reply(struct conn *c, struct reply *r)
{
	r->len = 0;
	r->nlits = 0;
	reply_add(r, "", 0);
	for (;;) {
		unsigned char *nl;
		while ((nl = memchr(c->buf + c->pos, '\n', c->len - c->pos)) == NULL) {
			reply_add(r, c->buf + c->pos, c->len - c->pos);
			c->pos = c->len;
			if (conn_fill(c) < 0)
				return -1;
		}
		size_t n = (size_t)(nl - (c->buf + c->pos));
		reply_add(r, c->buf + c->pos, n);
		c->pos += n + 1;
		if (r->len > 0 && r->text[r->len - 1] == '\r')
			r->text[--r->len] = '\0';
		size_t lit;
		if (!literal_at_end(r, &lit))
			return 0;
		if (r->nlits < sizeof(r->lits) / sizeof(r->lits[0]))
			r->lits[r->nlits++] = lit;
		while (lit > 0) {   /* skip the literal's bytes, counting them */
			if (c->pos == c->len && conn_fill(c) < 0)
				return -1;
			size_t take = c->len - c->pos < lit ? c->len - c->pos : lit;
			c->pos += take;
			lit -= take;
		}
	}
}

static int conn_open(struct conn *c)
{
	memset(c, 0, sizeof(*c));
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (c->fd < 0)
		return -1;
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port) };
	inet_pton(AF_INET, opt.host, &sin.sin_addr);
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		close(c->fd);
		return -1;
	}
	if (opt.tls) {
		c->ssl = SSL_new(ssl_ctx);
		SSL_set_fd(c->ssl, c->fd);
		if (SSL_connect(c->ssl) != 1) {
			SSL_free(c->ssl);
			close(c->fd);
			return -1;
		}
	}
	return 0;
}

static void conn_close(struct conn *c)
{
	if (c->ssl != NULL) {
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	close(c->fd);
	c->fd = -1;
	c->ssl = NULL;
}

/* ---- commands ---- */

/* What a command's untagged replies told us. */
struct result {
	unsigned int exists, fetches, expunges, bad_fetches;
	uint64_t body_bytes;
	unsigned long appenduid;
	unsigned int search_hits;
	bool bye, flagged_seen, unflagged_seen, searched, exists_seen;
};

static unsigned long field_number(const char *text, const char *name, bool *found)
{
	const char *p = strstr(text, name);
	*found = p != NULL;
	return p != NULL ? strtoul(p + strlen(name), NULL, 10) : 0;
}

/* A FETCH reply. When the command asked for BODY_ITEM, a FETCH without it
 * is an unsolicited one (another session changed flags) and not counted;
 * one with it must carry the item as a literal, of RFC822.SIZE bytes when
 * that was asked too. */
static void fetch_reply(const struct reply *r, const char *end, struct result *res,
			const char *body_item)
{
	const char *flags = strcasestr(end, "FLAGS (");
	if (flags != NULL) {
		const char *close_paren = strchr(flags, ')');
		const char *fl = strcasestr(flags, "\\Flagged");
		if (fl != NULL && (close_paren == NULL || fl < close_paren))
			res->flagged_seen = true;
		else
			res->unflagged_seen = true;
	}
	if (body_item == NULL) {
		res->fetches++;
		return;
	}
	const char *item = strcasestr(end, body_item);
	if (item == NULL)
		return;
	res->fetches++;
	bool has_size;
	unsigned long size = field_number(end, "RFC822.SIZE ", &has_size);
	unsigned int lit = 0;
	for (const char *p = r->text; p < item; p++)
		if (*p == '{' && p[1] >= '0' && p[1] <= '9')
			lit++;
	if (lit >= r->nlits || item[strlen(body_item)] != '{' ||
	    (has_size && r->lits[lit] != size) || (!has_size && r->lits[lit] == 0))
		res->bad_fetches++;
	else
		res->body_bytes += r->lits[lit];
}

/* One untagged reply: "* N EXISTS", "* N FETCH (...)", "* N EXPUNGE",
 * "* VANISHED ...", "* BYE". */
static void untagged(const struct reply *r, struct result *res, const char *body_item)
{
	const char *t = r->text + 2;
	char *end;
	unsigned long n = strtoul(t, &end, 10);
	if (end != t) {
		if (strncasecmp(end, " EXISTS", 7) == 0) {
			res->exists = (unsigned int)n;
			res->exists_seen = true;
		} else if (strncasecmp(end, " EXPUNGE", 8) == 0) {
			res->expunges++;
		} else if (strncasecmp(end, " FETCH (", 8) == 0) {
			fetch_reply(r, end, res, body_item);
		}
	} else if (strncasecmp(t, "SEARCH", 6) == 0) {
		res->searched = true;
		for (const char *p = t + 6; *p != '\0'; p++)
			if (*p >= '0' && *p <= '9' && p[-1] == ' ')
				res->search_hits++;
	} else if (strncasecmp(t, "VANISHED", 8) == 0) {
		res->expunges++;
	} else if (strncasecmp(t, "BYE", 3) == 0) {
		res->bye = true;
	}
}

/* Sends "TAG <line>" (plus an optional literal after a continuation) and
 * reads replies up to the tagged one. Returns 0 on OK, 1 on NO/BAD (also
 * recorded as unsupported), -1 on a broken connection. */
static int command(struct conn *c, struct reply *r, struct result *res, const char *name,
		   const char *body_item, const void *literal, size_t literal_len,
		   const char *fmt, ...) __attribute__((format(printf, 8, 9)));
static int command(struct conn *c, struct reply *r, struct result *res, const char *name,
		   const char *body_item, const void *literal, size_t literal_len,
		   const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	memset(res, 0, sizeof(*res));
	snprintf(c->tag, sizeof(c->tag), "a%u", ++c->tagno);
	int n = snprintf(line, sizeof(line), "%s ", c->tag);
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	n += snprintf(line + n, sizeof(line) - (size_t)n, "\r\n");
	if (conn_write(c, line, (size_t)n) < 0)
		goto broken;
	size_t taglen = strlen(c->tag);
	for (;;) {
		if (read_reply(c, r) < 0)
			goto broken;
		if (r->text[0] == '*' && r->text[1] == ' ') {
			untagged(r, res, body_item);
		} else if (r->text[0] == '+') {
			if (literal == NULL) {
				fail(NULL, "%s: unexpected continuation: %.200s", name, r->text);
				return -1;
			}
			if (conn_write(c, literal, literal_len) < 0 || conn_write(c, "\r\n", 2) < 0)
				goto broken;
			literal = NULL;
		} else if (strncmp(r->text, c->tag, taglen) == 0 && r->text[taglen] == ' ') {
			const char *status = r->text + taglen + 1;
			if (strncasecmp(status, "OK", 2) == 0) {
				const char *au = strcasestr(status, "[APPENDUID ");
				if (au != NULL) {
					char *e;
					strtoul(au + 11, &e, 10);
					res->appenduid = strtoul(e, NULL, 10);
				}
				return 0;
			}
			fail(name, "%s: %.300s", name, r->text);
			return 1;
		} else {
			fail(NULL, "%s: unexpected reply: %.200s", name, r->text);
			return -1;
		}
	}
broken:
	fail(NULL, "%s: connection broken", name);
	return -1;
}

static void record(struct stats *st, enum op op, double started)
{
	double ms = (now_s() - started) * 1000.0;
	if (st->nlat[op] == st->caplat[op]) {
		st->caplat[op] = st->caplat[op] ? st->caplat[op] * 2 : 1024;
		st->lat[op] = xrealloc(st->lat[op], st->caplat[op] * sizeof(double));
	}
	st->lat[op][st->nlat[op]++] = ms;
	st->ops++;
}

static int login(struct conn *c, struct reply *r, int user)
{
	struct result res;
	char address[256];
	snprintf(address, sizeof(address), opt.user_fmt, user);
	if (read_reply(c, r) < 0 || strncasecmp(r->text, "* OK", 4) != 0) {
		fail(NULL, "greeting: %.200s", r->text);
		return -1;
	}
	return command(c, r, &res, "LOGIN", NULL, NULL, 0, "LOGIN \"%s\" \"%s\"", address,
		       opt.password);
}

static const char append_message[] =
	"From: Load Generator <load@bench.example>\r\n"
	"To: someone@example.org\r\n"
	"Subject: appended by imap-load\r\n"
	"Date: Sun, 29 Nov 2026 12:00:00 +0000\r\n"
	"Message-ID: <append@bench.example>\r\n"
	"\r\n"
	"A short draft, as a client saves one to Drafts or Sent.\r\n"
	"It is deleted again by the same session.\r\n";

/* One whole session of the mix; returns 0 or -1. */
static int mix_session(struct stats *st, int user, unsigned int *seed)
{
	struct conn *c = xrealloc(NULL, sizeof(*c));
	struct reply r = { 0 };
	struct result res;
	int ret = -1;
	double t = now_s();
	if (conn_open(c) < 0) {
		fail(NULL, "connect failed: %s", strerror(errno));
		free(c);
		return -1;
	}
	if (login(c, &r, user) != 0)
		goto out;
	record(st, OP_LOGIN, t);

	t = now_s();
	if (command(c, &r, &res, "SELECT", NULL, NULL, 0, "SELECT INBOX") != 0)
		goto out;
	record(st, OP_SELECT, t);
	if (!res.exists_seen || res.exists == 0) {
		fail(NULL, "SELECT: no EXISTS or an empty mailbox for user %d", user);
		goto out;
	}
	/* pick among the corpus only: the newest messages may be other
	 * sessions' appends, expunged at any moment (one per session at most) */
	unsigned int exists = res.exists > (unsigned int)opt.sessions ?
		res.exists - (unsigned int)opt.sessions : 1;

	unsigned int first = 1 + (unsigned int)rand_r(seed) % exists;
	unsigned int last = first + 19 > exists ? exists : first + 19;
	t = now_s();
	if (command(c, &r, &res, "FETCH", "BODY[HEADER] ", NULL, 0,
		    "FETCH %u:%u (UID FLAGS BODY.PEEK[HEADER])", first, last) != 0)
		goto out;
	record(st, OP_FETCH_HDR, t);
	if (res.fetches < last - first + 1 || res.bad_fetches > 0) {
		fail(NULL, "FETCH headers: %u of %u replies, %u bad", res.fetches,
		     last - first + 1, res.bad_fetches);
		goto out;
	}
	st->bytes += res.body_bytes;

	for (int i = 0; i < 3; i++) {
		unsigned int seq = 1 + (unsigned int)rand_r(seed) % exists;
		t = now_s();
		if (command(c, &r, &res, "FETCH", "BODY[] ", NULL, 0,
			    "FETCH %u (RFC822.SIZE BODY.PEEK[])", seq) != 0)
			goto out;
		record(st, OP_FETCH_BODY, t);
		if (res.fetches != 1 || res.bad_fetches > 0 || res.body_bytes == 0) {
			fail(NULL, "FETCH body of %u: %u replies, %u with a wrong size", seq,
			     res.fetches, res.bad_fetches);
			goto out;
		}
		st->bytes += res.body_bytes;
	}

	unsigned int seq = 1 + (unsigned int)rand_r(seed) % exists;
	t = now_s();
	if (command(c, &r, &res, "STORE", NULL, NULL, 0, "STORE %u +FLAGS (\\Flagged)", seq) != 0)
		goto out;
	record(st, OP_STORE, t);
	/* a server may leave out the FETCH when another session of the same
	 * user set the flag first; when it answers, the flag must be there */
	if (res.fetches > 0 && !res.flagged_seen) {
		fail(NULL, "STORE +FLAGS: FETCH without \\Flagged");
		goto out;
	}
	t = now_s();
	if (command(c, &r, &res, "STORE", NULL, NULL, 0, "STORE %u -FLAGS (\\Flagged)", seq) != 0)
		goto out;
	record(st, OP_STORE, t);
	if (res.fetches > 0 && !res.unflagged_seen) {
		fail(NULL, "STORE -FLAGS: FETCH still with \\Flagged");
		goto out;
	}

	t = now_s();
	size_t alen = sizeof(append_message) - 1;
	if (command(c, &r, &res, "APPEND", NULL, append_message, alen,
		    "APPEND INBOX (\\Seen) {%zu}", alen) != 0)
		goto out;
	record(st, OP_APPEND, t);
	unsigned long uid = res.appenduid;
	if (uid == 0) {
		fail("APPENDUID", "APPEND: no [APPENDUID] in the reply");
		goto out;
	}

	t = now_s();
	if (command(c, &r, &res, "UID STORE", NULL, NULL, 0,
		    "UID STORE %lu +FLAGS.SILENT (\\Deleted)", uid) != 0)
		goto out;
	if (command(c, &r, &res, "UID EXPUNGE", NULL, NULL, 0, "UID EXPUNGE %lu", uid) != 0)
		goto out;
	record(st, OP_EXPUNGE, t);
	/* other sessions' expunges may be reported here too */
	if (res.expunges < 1) {
		fail(NULL, "UID EXPUNGE %lu: %u expunges reported", uid, res.expunges);
		goto out;
	}

	t = now_s();
	snprintf(c->tag, sizeof(c->tag), "a%u", ++c->tagno);
	char line[64];
	int n = snprintf(line, sizeof(line), "%s IDLE\r\n", c->tag);
	if (conn_write(c, line, (size_t)n) < 0 || read_reply(c, &r) < 0)
		goto broken;
	while (r.text[0] == '*')
		if (read_reply(c, &r) < 0)
			goto broken;
	if (r.text[0] != '+') {
		fail("IDLE", "IDLE: %.200s", r.text);
		goto out;
	}
	if (conn_write(c, "DONE\r\n", 6) < 0)
		goto broken;
	do
		if (read_reply(c, &r) < 0)
			goto broken;
	while (r.text[0] == '*');
	if (strncmp(r.text, c->tag, strlen(c->tag)) != 0 ||
	    strncasecmp(r.text + strlen(c->tag), " OK", 3) != 0) {
		fail("IDLE", "IDLE DONE: %.200s", r.text);
		goto out;
	}
	record(st, OP_IDLE, t);

	t = now_s();
	if (command(c, &r, &res, "LOGOUT", NULL, NULL, 0, "LOGOUT") != 0)
		goto out;
	record(st, OP_LOGOUT, t);
	if (!res.bye) {
		fail(NULL, "LOGOUT: no BYE");
		goto out;
	}
	st->sessions++;
	ret = 0;
	goto out;
broken:
	fail(NULL, "IDLE: connection broken");
out:
	conn_close(c);
	free(c);
	free(r.text);
	return ret;
}

struct worker {
	pthread_t thread;
	int index;
	double deadline;
	struct stats st;
};

static void *mix_worker(void *arg)
{
	struct worker *w = arg;
	unsigned int seed = opt.seed * 7919u + (unsigned int)w->index;
	int user = w->index % opt.users;
	while (now_s() < w->deadline && !failed()) {
		if (mix_session(&w->st, user, &seed) < 0)
			break;
		user = (user + opt.sessions) % opt.users;
		if (opt.sessions > opt.users)
			user = w->index % opt.users;
	}
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double percentile(const double *v, size_t n, double p)
{
	if (n == 0)
		return 0;
	size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
	return v[i];
}

static void print_failure_fields(void)
{
	if (fail_count > 0)
		printf(" errors=%d unsupported=%s error=\"%s\"", fail_count,
		       fail_unsupported != NULL ? fail_unsupported : "-", fail_text);
	else
		printf(" errors=0");
	printf("\n");
}

static int exit_status(void)
{
	if (fail_count == 0)
		return 0;
	return fail_unsupported != NULL ? 3 : 1;
}

static int run_mix(void)
{
	struct worker *w = calloc((size_t)opt.sessions, sizeof(*w));
	double start = now_s();
	for (int i = 0; i < opt.sessions; i++) {
		w[i].index = i;
		w[i].deadline = start + opt.seconds;
		pthread_create(&w[i].thread, NULL, mix_worker, &w[i]);
	}
	struct stats all = { 0 };
	double *lat = NULL;
	size_t nlat = 0;
	/* LOGIN apart too: it is mostly the password hash, the same on both sides */
	double *rest = NULL;
	size_t nrest = 0;
	for (int i = 0; i < opt.sessions; i++) {
		pthread_join(w[i].thread, NULL);
		all.ops += w[i].st.ops;
		all.bytes += w[i].st.bytes;
		all.sessions += w[i].st.sessions;
		for (int op = 0; op < OP_COUNT; op++) {
			size_t n = w[i].st.nlat[op];
			lat = xrealloc(lat, (nlat + n + 1) * sizeof(double));
			memcpy(lat + nlat, w[i].st.lat[op], n * sizeof(double));
			nlat += n;
			if (op == OP_LOGIN)
				continue;
			rest = xrealloc(rest, (nrest + n + 1) * sizeof(double));
			memcpy(rest + nrest, w[i].st.lat[op], n * sizeof(double));
			nrest += n;
		}
	}
	double elapsed = now_s() - start;
	qsort(lat, nlat, sizeof(double), cmp_double);
	qsort(rest, nrest, sizeof(double), cmp_double);
	printf("mode=mix sessions=%d seconds=%.2f imap_sessions=%llu ops=%llu ops_s=%.1f "
	       "p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f fetched_bytes=%llu",
	       opt.sessions, elapsed, (unsigned long long)all.sessions,
	       (unsigned long long)all.ops, (double)all.ops / elapsed,
	       percentile(lat, nlat, 50), percentile(lat, nlat, 90), percentile(lat, nlat, 99),
	       nlat ? lat[nlat - 1] : 0.0, (unsigned long long)all.bytes);
	printf(" nologin_p50_ms=%.2f nologin_p99_ms=%.2f", percentile(rest, nrest, 50),
	       percentile(rest, nrest, 99));
	for (int op = 0; op < OP_COUNT; op++) {
		size_t n = 0;
		double *v = NULL;
		for (int i = 0; i < opt.sessions; i++) {
			v = xrealloc(v, (n + w[i].st.nlat[op] + 1) * sizeof(double));
			memcpy(v + n, w[i].st.lat[op], w[i].st.nlat[op] * sizeof(double));
			n += w[i].st.nlat[op];
		}
		qsort(v, n, sizeof(double), cmp_double);
		printf(" %s_p99_ms=%.2f", op_names[op], percentile(v, n, 99));
		free(v);
	}
	print_failure_fields();
	free(lat);
	free(rest);
	return exit_status();
}

static int run_large(void)
{
	struct conn *c = xrealloc(NULL, sizeof(*c));
	struct reply r = { 0 };
	struct result res;
	if (conn_open(c) < 0) {
		fail(NULL, "connect failed: %s", strerror(errno));
		goto done;
	}
	if (login(c, &r, 0) != 0)
		goto done;
	double t = now_s();
	if (command(c, &r, &res, "SELECT", NULL, NULL, 0, "SELECT INBOX") != 0)
		goto done;
	double select_ms = (now_s() - t) * 1000;
	unsigned int exists = res.exists;
	t = now_s();
	if (command(c, &r, &res, "UID FETCH", NULL, NULL, 0, "UID FETCH 1:* (FLAGS)") != 0)
		goto done;
	double fetch_ms = (now_s() - t) * 1000;
	if (res.fetches != exists) {
		fail(NULL, "UID FETCH 1:* (FLAGS): %u replies for %u messages", res.fetches,
		     exists);
		goto done;
	}
	t = now_s();
	if (command(c, &r, &res, "UID SEARCH", NULL, NULL, 0, "UID SEARCH HEADER Subject \"%s\"",
		    opt.search) != 0)
		goto done;
	double search_ms = (now_s() - t) * 1000;
	unsigned int hits = res.search_hits;
	if (!res.searched) {
		fail(NULL, "UID SEARCH: no SEARCH reply");
		goto done;
	}
	command(c, &r, &res, "LOGOUT", NULL, NULL, 0, "LOGOUT");
	printf("mode=large exists=%u select_ms=%.1f fetch_flags_ms=%.1f search_ms=%.1f "
	       "search_hits=%u", exists, select_ms, fetch_ms, search_ms, hits);
	print_failure_fields();
	conn_close(c);
	free(c);
	free(r.text);
	return exit_status();
done:
	printf("mode=large");
	print_failure_fields();
	return exit_status();
}

static int run_idle(void)
{
	struct conn **conns = calloc((size_t)opt.connections, sizeof(*conns));
	struct reply r = { 0 };
	struct result res;
	int open_count = 0;
	double start = now_s();
	for (int i = 0; i < opt.connections; i++) {
		struct conn *c = xrealloc(NULL, sizeof(*c));
		if (conn_open(c) < 0) {
			fail(NULL, "connect %d failed: %s", i, strerror(errno));
			free(c);
			break;
		}
		conns[open_count++] = c;
		if (login(c, &r, i % opt.users) != 0 ||
		    command(c, &r, &res, "SELECT", NULL, NULL, 0, "SELECT INBOX") != 0)
			break;
		snprintf(c->tag, sizeof(c->tag), "a%u", ++c->tagno);
		char line[64];
		int n = snprintf(line, sizeof(line), "%s IDLE\r\n", c->tag);
		if (conn_write(c, line, (size_t)n) < 0 || read_reply(c, &r) < 0) {
			fail(NULL, "IDLE %d: connection broken", i);
			break;
		}
		while (r.text[0] == '*' && read_reply(c, &r) == 0)
			;
		if (r.text[0] != '+') {
			fail("IDLE", "IDLE: %.200s", r.text);
			break;
		}
		/* drop what the connection buffer holds: the connection waits */
		c->pos = c->len = 0;
	}
	printf("ready %d %.1f\n", fail_count ? 0 : open_count, now_s() - start);
	fflush(stdout);
	char buf[64];
	while (fgets(buf, sizeof(buf), stdin) != NULL)
		;
	for (int i = 0; i < open_count; i++) {
		close(conns[i]->fd);   /* no TLS goodbye: leave the way a client dies */
		if (conns[i]->ssl != NULL)
			SSL_free(conns[i]->ssl);
		free(conns[i]);
	}
	free(conns);
	free(r.text);
	printf("mode=idle connections=%d", open_count);
	print_failure_fields();
	return exit_status();
}

static void usage(void) __attribute__((noreturn));
static void usage(void)
{
	fprintf(stderr, "usage: imap-load --port P [--host H] [--tls] [--user FMT] [--users U]\n"
		"  [--password PW] [--sessions S] [--seconds T] [--seed N]\n"
		"  [--mode mix|large|idle] [--connections N] [--search TEXT]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--tls") == 0) {
			opt.tls = true;
			continue;
		}
		if (v == NULL)
			usage();
		i++;
		if (strcmp(a, "--host") == 0)
			opt.host = v;
		else if (strcmp(a, "--port") == 0)
			opt.port = atoi(v);
		else if (strcmp(a, "--user") == 0)
			opt.user_fmt = v;
		else if (strcmp(a, "--users") == 0)
			opt.users = atoi(v);
		else if (strcmp(a, "--password") == 0)
			opt.password = v;
		else if (strcmp(a, "--sessions") == 0)
			opt.sessions = atoi(v);
		else if (strcmp(a, "--seconds") == 0)
			opt.seconds = atof(v);
		else if (strcmp(a, "--seed") == 0)
			opt.seed = (unsigned int)atoi(v);
		else if (strcmp(a, "--mode") == 0)
			opt.mode = v;
		else if (strcmp(a, "--connections") == 0)
			opt.connections = atoi(v);
		else if (strcmp(a, "--search") == 0)
			opt.search = v;
		else
			usage();
	}
	if (opt.port <= 0 || opt.users <= 0 || opt.sessions <= 0 || opt.connections <= 0)
		usage();
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (opt.tls) {
		ssl_ctx = SSL_CTX_new(TLS_client_method());
		SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_NONE, NULL);
	}
	int status;
	if (strcmp(opt.mode, "mix") == 0)
		status = run_mix();
	else if (strcmp(opt.mode, "large") == 0)
		status = run_large();
	else if (strcmp(opt.mode, "idle") == 0)
		status = run_idle();
	else
		usage();
	fflush(stdout);
	return status;
}

/* MTA-STS for outbound mail (RFC 8461): the policy of a recipient domain,
 * found through its _mta-sts TXT record and fetched over HTTPS (libcurl,
 * in a thread of the relay's own small offload pool: the fetch blocks),
 * cached by id and max_age in memory and in DATA/mta-sts/DOMAIN (so a
 * restart keeps what protects against a downgrade). Every name is looked
 * up through the relay's resolver ([relay] dns); curl is told the
 * addresses. */
#include "relay/relay-private.h"
#include "core/offload.h"

#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MTASTS_BODY_MAX (64 * 1024)     /* RFC 8461 3.3: SHOULD limit, e.g. 64k */
#define MTASTS_CONNECT_TIMEOUT 10
#define MTASTS_FETCH_TIMEOUT 30
#define MTASTS_MAX_AGE_LIMIT 31557600   /* RFC 8461 3.2 */
#define MTASTS_CACHE_MAX 512
#define MTASTS_FETCH_THREADS 2

/* ---- the policy text (RFC 8461 3.2) ---- */

void relay_mtasts_clear(struct relay_mtasts_policy *p)
{
	for (size_t i = 0; i < p->mx_count; i++)
		free(p->mx[i]);
	free(p->mx);
	memset(p, 0, sizeof(*p));
}

static void policy_copy(struct relay_mtasts_policy *dst, const struct relay_mtasts_policy *src)
{
	*dst = *src;
	dst->mx = xcalloc(src->mx_count + 1, sizeof(*dst->mx));
	for (size_t i = 0; i < src->mx_count; i++)
		dst->mx[i] = xstrdup(src->mx[i]);
}

static bool mx_pattern_ok(const char *p, size_t len)
{
	if (len == 0 || len > 253)
		return false;
	size_t start = 0;
	if (len >= 2 && p[0] == '*' && p[1] == '.')
		start = 2;   /* "*.example.com": one leftmost label */
	if (start == len)
		return false;
	for (size_t i = start; i < len; i++) {
		char c = p[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.' || c == '_'))
			return false;
	}
	return true;
}

int relay_mtasts_parse(const char *text, size_t len, struct relay_mtasts_policy *p,
			const char **error_r)
{
	memset(p, 0, sizeof(*p));
	bool version = false, mode = false, max_age = false;
	size_t pos = 0;
	while (pos < len) {
		const char *line = text + pos;
		const char *lf = memchr(line, '\n', len - pos);
		size_t n = lf != NULL ? (size_t)(lf - line) : len - pos;
		pos += n + (lf != NULL ? 1 : 0);
		if (n > 0 && line[n - 1] == '\r')
			n--;
		if (n == 0)
			continue;
		const char *colon = memchr(line, ':', n);
		if (colon == NULL) {
			*error_r = "a line without ':'";
			goto fail;
		}
		size_t klen = (size_t)(colon - line);
		const char *v = colon + 1;
		size_t vlen = n - klen - 1;
		while (vlen > 0 && (*v == ' ' || *v == '\t')) {
			v++;
			vlen--;
		}
		while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
			vlen--;
		if (klen == 7 && memcmp(line, "version", 7) == 0) {
			if (vlen != 5 || memcmp(v, "STSv1", 5) != 0) {
				*error_r = "version is not STSv1";
				goto fail;
			}
			version = true;
		} else if (klen == 4 && memcmp(line, "mode", 4) == 0) {
			if (vlen == 7 && memcmp(v, "enforce", 7) == 0)
				p->mode = RELAY_MTASTS_MODE_ENFORCE;
			else if (vlen == 7 && memcmp(v, "testing", 7) == 0)
				p->mode = RELAY_MTASTS_MODE_TESTING;
			else if (vlen == 4 && memcmp(v, "none", 4) == 0)
				p->mode = RELAY_MTASTS_MODE_NONE;
			else {
				*error_r = "mode is not enforce, testing or none";
				goto fail;
			}
			mode = true;
		} else if (klen == 7 && memcmp(line, "max_age", 7) == 0) {
			long long age = 0;
			if (vlen == 0 || vlen > 10) {
				*error_r = "bad max_age";
				goto fail;
			}
			for (size_t i = 0; i < vlen; i++) {
				if (v[i] < '0' || v[i] > '9') {
					*error_r = "bad max_age";
					goto fail;
				}
				age = age * 10 + (v[i] - '0');
			}
			p->max_age = age > MTASTS_MAX_AGE_LIMIT ? MTASTS_MAX_AGE_LIMIT : (int)age;
			max_age = true;
		} else if (klen == 2 && memcmp(line, "mx", 2) == 0) {
			if (!mx_pattern_ok(v, vlen)) {
				*error_r = "bad mx pattern";
				goto fail;
			}
			if (p->mx_count < RELAY_MTASTS_MAX_MX) {
				p->mx = xrealloc(p->mx, (p->mx_count + 1) * sizeof(*p->mx));
				p->mx[p->mx_count] = xstrndup(v, vlen);
				for (char *c = p->mx[p->mx_count]; *c != '\0'; c++)
					*c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
				p->mx_count++;
			}
		}
		/* other keys: ignored (extensions) */
	}
	if (!version || !mode || !max_age) {
		*error_r = "version, mode or max_age missing";
		goto fail;
	}
	if (p->mode != RELAY_MTASTS_MODE_NONE && p->mx_count == 0) {
		*error_r = "no mx in an enforce or testing policy";
		goto fail;
	}
	return 0;
fail:
	relay_mtasts_clear(p);
	return -1;
}

bool relay_mtasts_match(const struct relay_mtasts_policy *p, const char *host)
{
	size_t hlen = strlen(host);
	if (hlen > 0 && host[hlen - 1] == '.')
		hlen--;
	for (size_t i = 0; i < p->mx_count; i++) {
		const char *pat = p->mx[i];
		if (pat[0] == '*' && pat[1] == '.') {
			/* exactly one label in place of the '*' */
			const char *dot = memchr(host, '.', hlen);
			size_t rest = dot != NULL ? hlen - (size_t)(dot - host) : 0;
			if (dot != NULL && dot != host && rest == strlen(pat + 1) &&
			    ascii_strncasecmp(dot, pat + 1, rest) == 0)
				return true;
		} else if (strlen(pat) == hlen && ascii_strncasecmp(host, pat, hlen) == 0) {
			return true;
		}
	}
	return false;
}

/* "v=STSv1; id=ID" (RFC 8461 3.1): the id (1-32 alphanumerics), or -1. */
int relay_mtasts_txt_id(const char *txt, char *id, size_t size)
{
	if (strncmp(txt, "v=STSv1", 7) != 0 || (txt[7] != ';' && txt[7] != ' ' && txt[7] != '\0'))
		return -1;
	const char *p = txt + 7;
	while (*p != '\0') {
		while (*p == ';' || *p == ' ' || *p == '\t')
			p++;
		size_t n = strcspn(p, ";");
		if (n > 3 && strncmp(p, "id=", 3) == 0) {
			size_t len = 0;
			const char *v = p + 3;
			while (len < n - 3 && ((v[len] >= 'a' && v[len] <= 'z') ||
					       (v[len] >= 'A' && v[len] <= 'Z') ||
					       (v[len] >= '0' && v[len] <= '9')))
				len++;
			size_t rest = len;
			while (rest < n - 3 && (v[rest] == ' ' || v[rest] == '\t'))
				rest++;
			if (len == 0 || len > 32 || rest != n - 3 || len >= size)
				return -1;
			memcpy(id, v, len);
			id[len] = '\0';
			return 0;
		}
		p += n;
	}
	return -1;
}

/* ---- the cache ---- */

struct cached_policy {
	char domain[256];
	char txt_id[40];           /* the id of the TXT record it came with */
	time_t fetched;
	struct relay_mtasts_policy policy;
};

struct relay_mtasts {
	struct event_base *base;
	const struct config *cfg;
	struct relay_dns *dns;
	struct offload *offload;
	char *dir;                 /* DATA/mta-sts */
	struct cached_policy *cache;
	size_t cache_count;
	struct relay_mtasts_lookup *lookups;
};

struct fetch {
	/* in */
	char url[400];
	char resolve[600];
	char *ca_file;
	/* out */
	long status;
	char content_type[128];
	struct buf body;
	bool too_big;
	char error[CURL_ERROR_SIZE + 64];
};

struct relay_mtasts_lookup {
	struct relay_mtasts *m;
	struct relay_mtasts_lookup *prev, *next;
	char domain[256];
	char txt_id[40];
	relay_mtasts_cb *cb;
	void *ctx;
	struct relay_dns_query *txt;
	struct relay_dns_lookup *addrs;
	struct offload_job *job;
	struct event *done_ev;
	/* the answer */
	bool have_policy;
	struct relay_mtasts_policy policy;
	char note[300];
};

static bool cache_fresh(const struct cached_policy *c, time_t now)
{
	return c->fetched + c->policy.max_age > now;
}

static char *cache_path(struct relay_mtasts *m, const char *domain)
{
	return xasprintf("%s/%s", m->dir, domain);
}

/* The file: "id ID\nfetched T\n" then the policy text. */
static bool cache_load(struct relay_mtasts *m, const char *domain, struct cached_policy *c)
{
	char *path = cache_path(m, domain);
	FILE *f = fopen(path, "r");
	free(path);
	if (f == NULL)
		return false;
	char buf[MTASTS_BODY_MAX + 256];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	long long fetched;
	int used = 0;
	memset(c, 0, sizeof(*c));
	const char *error;
	if (sscanf(buf, "id %39s\nfetched %lld\n%n", c->txt_id, &fetched, &used) != 2 || used == 0 ||
	    relay_mtasts_parse(buf + used, n - (size_t)used, &c->policy, &error) < 0)
		return false;
	snprintf(c->domain, sizeof(c->domain), "%s", domain);
	c->fetched = (time_t)fetched;
	return true;
}

static void cache_store_file(struct relay_mtasts *m, const struct cached_policy *c,
			     const char *text, size_t len)
{
	char *path = cache_path(m, c->domain);
	char *tmp = xasprintf("%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	bool ok = fd >= 0 && dprintf(fd, "id %s\nfetched %lld\n", c->txt_id,
				     (long long)c->fetched) > 0 &&
		  write(fd, text, len) == (ssize_t)len;
	if (fd >= 0)
		close(fd);
	if (!ok || rename(tmp, path) < 0) {
		log_warn("event=mta-sts-cache-failed domain=%s error=\"%s\"", c->domain,
			 strerror(errno));
		unlink(tmp);
	}
	free(tmp);
	free(path);
}

static struct cached_policy *cache_find(struct relay_mtasts *m, const char *domain)
{
	for (size_t i = 0; i < m->cache_count; i++) {
		if (ascii_strcasecmp(m->cache[i].domain, domain) == 0)
			return &m->cache[i];
	}
	struct cached_policy c;
	if (!cache_load(m, domain, &c))
		return NULL;
	if (m->cache_count == MTASTS_CACHE_MAX) {
		/* full: the oldest fetch goes (it is still on disk) */
		size_t oldest = 0;
		for (size_t i = 1; i < m->cache_count; i++)
			oldest = m->cache[i].fetched < m->cache[oldest].fetched ? i : oldest;
		relay_mtasts_clear(&m->cache[oldest].policy);
		m->cache[oldest] = c;
		return &m->cache[oldest];
	}
	m->cache = xrealloc(m->cache, (m->cache_count + 1) * sizeof(*m->cache));
	m->cache[m->cache_count] = c;
	return &m->cache[m->cache_count++];
}

static void cache_put(struct relay_mtasts *m, const char *domain, const char *txt_id,
		      const struct relay_mtasts_policy *p, const char *text, size_t len)
{
	struct cached_policy *c = cache_find(m, domain);
	if (c == NULL) {
		if (m->cache_count == MTASTS_CACHE_MAX) {
			c = &m->cache[0];
		} else {
			m->cache = xrealloc(m->cache, (m->cache_count + 1) * sizeof(*m->cache));
			c = &m->cache[m->cache_count++];
			memset(c, 0, sizeof(*c));
		}
	}
	relay_mtasts_clear(&c->policy);
	snprintf(c->domain, sizeof(c->domain), "%s", domain);
	snprintf(c->txt_id, sizeof(c->txt_id), "%s", txt_id);
	c->fetched = time(NULL);
	policy_copy(&c->policy, p);
	cache_store_file(m, c, text, len);
}

/* ---- a lookup ---- */

static void lookup_free(struct relay_mtasts_lookup *l)
{
	struct relay_mtasts *m = l->m;
	relay_dns_query_cancel(&l->txt);
	relay_dns_cancel(&l->addrs);
	if (l->job != NULL)
		offload_cancel(l->job);
	if (l->prev != NULL)
		l->prev->next = l->next;
	else
		m->lookups = l->next;
	if (l->next != NULL)
		l->next->prev = l->prev;
	event_free(l->done_ev);
	relay_mtasts_clear(&l->policy);
	free(l);
}

static void lookup_deliver(evutil_socket_t fd, short what, void *arg)
{
	struct relay_mtasts_lookup *l = arg;
	l->cb(l->ctx, l->have_policy ? &l->policy : NULL, l->note);
	lookup_free(l);
}

/* Ends with the cached policy when there is a fresh one (RFC 8461 5.1:
 * a cached policy stands until it expires, whatever DNS says now), else
 * with none. */
static void lookup_finish_cached(struct relay_mtasts_lookup *l, const char *why)
{
	struct cached_policy *c = cache_find(l->m, l->domain);
	if (c != NULL && cache_fresh(c, time(NULL))) {
		policy_copy(&l->policy, &c->policy);
		l->have_policy = true;
		snprintf(l->note, sizeof(l->note), "%s; the cached policy (id %s) stands", why,
			 c->txt_id);
	} else {
		snprintf(l->note, sizeof(l->note), "%s", why);
	}
	event_active(l->done_ev, EV_TIMEOUT, 0);
}

static size_t fetch_write(char *data, size_t size, size_t n, void *arg)
{
	struct fetch *f = arg;
	size_t len = size * n;
	if (f->body.len + len > MTASTS_BODY_MAX) {
		f->too_big = true;
		return 0;
	}
	buf_append(&f->body, data, len);
	return len;
}

/* In an offload thread: nothing but f. */
static void fetch_work(void *arg)
{
	struct fetch *f = arg;
	CURL *curl = curl_easy_init();
	if (curl == NULL) {
		snprintf(f->error, sizeof(f->error), "cannot start libcurl");
		return;
	}
	struct curl_slist *resolve = curl_slist_append(NULL, f->resolve);
	char errbuf[CURL_ERROR_SIZE] = "";
	curl_easy_setopt(curl, CURLOPT_URL, f->url);
	curl_easy_setopt(curl, CURLOPT_RESOLVE, resolve);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);   /* RFC 8461 3.3: no redirects */
	curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(curl, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (f->ca_file != NULL)
		curl_easy_setopt(curl, CURLOPT_CAINFO, f->ca_file);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, (long)MTASTS_CONNECT_TIMEOUT);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, (long)MTASTS_FETCH_TIMEOUT);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "Postern MTA-STS");
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, fetch_write);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, f);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
	CURLcode rc = curl_easy_perform(curl);
	if (rc != CURLE_OK) {
		snprintf(f->error, sizeof(f->error), "%s", f->too_big ? "policy over 64 KiB" :
			 errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc));
	} else {
		char *type = NULL;
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &f->status);
		curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &type);
		snprintf(f->content_type, sizeof(f->content_type), "%s", type != NULL ? type : "");
	}
	curl_slist_free_all(resolve);
	curl_easy_cleanup(curl);
}

static void fetch_release(void *arg)
{
	struct fetch *f = arg;
	buf_free(&f->body);
	free(f->ca_file);
	free(f);
}

static void fetch_done(void *ctx, void *arg)
{
	struct relay_mtasts_lookup *l = ctx;
	struct fetch *f = arg;
	const char *error = NULL;
	char why[300];
	l->job = NULL;
	struct relay_mtasts_policy p;
	bool text_plain = ascii_has_prefix_ci(f->content_type, "text/plain");
	if (f->error[0] != '\0') {
		snprintf(why, sizeof(why), "fetching %s failed: %s", f->url, f->error);
	} else if (f->status != 200) {
		snprintf(why, sizeof(why), "fetching %s: HTTP status %ld", f->url, f->status);
	} else if (!text_plain) {
		snprintf(why, sizeof(why), "fetching %s: Content-Type is not text/plain", f->url);
	} else if (relay_mtasts_parse(f->body.data != NULL ? f->body.data : "", f->body.len, &p,
				       &error) < 0) {
		snprintf(why, sizeof(why), "the policy at %s is not valid: %s", f->url, error);
	} else {
		cache_put(l->m, l->domain, l->txt_id, &p, f->body.data, f->body.len);
		log_info("event=mta-sts-policy domain=%s id=%s mode=%s max_age=%d mx_count=%zu",
			 l->domain, l->txt_id, relay_mtasts_mode_name(p.mode), p.max_age, p.mx_count);
		l->policy = p;
		l->have_policy = true;
		snprintf(l->note, sizeof(l->note), "policy id %s fetched", l->txt_id);
		fetch_release(f);
		event_active(l->done_ev, EV_TIMEOUT, 0);
		return;
	}
	fetch_release(f);
	log_warn("event=mta-sts-fetch-failed domain=%s reason=\"%s\"", l->domain, why);
	lookup_finish_cached(l, why);
}

static void policy_host_found(void *ctx, int status, const char *error,
			      const struct relay_addr *addrs, size_t count)
{
	struct relay_mtasts_lookup *l = ctx;
	l->addrs = NULL;
	char why[300];
	if (status != 0 || count == 0) {
		snprintf(why, sizeof(why), "no address for mta-sts.%s: %s", l->domain, error);
		log_warn("event=mta-sts-fetch-failed domain=%s reason=\"%s\"", l->domain, why);
		lookup_finish_cached(l, why);
		return;
	}
	struct fetch *f = xcalloc(1, sizeof(*f));
	int port = l->m->cfg->relay_mta_sts_port;
	snprintf(f->url, sizeof(f->url), "https://mta-sts.%s:%d/.well-known/mta-sts.txt",
		 l->domain, port);
	struct buf r = BUF_INIT;
	buf_printf(&r, "mta-sts.%s:%d:", l->domain, port);
	for (size_t i = 0; i < count && i < 4; i++) {
		if (strchr(addrs[i].ip, ':') != NULL)
			buf_printf(&r, "%s[%s]", i > 0 ? "," : "", addrs[i].ip);
		else
			buf_printf(&r, "%s%s", i > 0 ? "," : "", addrs[i].ip);
	}
	snprintf(f->resolve, sizeof(f->resolve), "%s", buf_str(&r));
	buf_free(&r);
	if (l->m->cfg->relay_mta_sts_ca_file != NULL)
		f->ca_file = xstrdup(l->m->cfg->relay_mta_sts_ca_file);
	l->job = offload_submit(l->m->offload, fetch_work, fetch_done, fetch_release, f, l);
}

static void txt_answered(void *ctx, int status, char *const *data, const int *len, int count)
{
	struct relay_mtasts_lookup *l = ctx;
	l->txt = NULL;
	if (status == 4) {
		lookup_finish_cached(l, "the _mta-sts TXT lookup failed");
		return;
	}
	/* RFC 8461 3.1: exactly one record starting with v=STSv1 */
	int found = 0;
	struct buf txt = BUF_INIT;
	for (int i = 0; status == 0 && i < count; i++) {
		char id[40];
		if (relay_dns_txt_join((const unsigned char *)data[i], (size_t)len[i], &txt) == 0 &&
		    strncmp(buf_str(&txt), "v=STSv1", 7) == 0) {
			found++;
			if (relay_mtasts_txt_id(buf_str(&txt), id, sizeof(id)) == 0)
				snprintf(l->txt_id, sizeof(l->txt_id), "%s", id);
			else
				l->txt_id[0] = '\0';
		}
	}
	buf_free(&txt);
	if (found != 1 || l->txt_id[0] == '\0') {
		lookup_finish_cached(l, found == 0 ? "no MTA-STS record" :
				     "no single valid MTA-STS record");
		return;
	}
	struct cached_policy *c = cache_find(l->m, l->domain);
	if (c != NULL && cache_fresh(c, time(NULL)) && strcmp(c->txt_id, l->txt_id) == 0) {
		policy_copy(&l->policy, &c->policy);
		l->have_policy = true;
		snprintf(l->note, sizeof(l->note), "cached policy id %s", c->txt_id);
		event_active(l->done_ev, EV_TIMEOUT, 0);
		return;
	}
	/* new or changed: fetch it (RFC 8461 3.3), from the address our
	 * resolver gives for mta-sts.DOMAIN */
	char host[300];
	snprintf(host, sizeof(host), "mta-sts.%s", l->domain);
	l->addrs = relay_dns_host(l->m->dns, host, l->m->cfg->relay_mta_sts_port,
				  policy_host_found, l);
}

struct relay_mtasts_lookup *relay_mtasts_get(struct relay_mtasts *m, const char *domain,
					     relay_mtasts_cb *cb, void *ctx)
{
	struct relay_mtasts_lookup *l = xcalloc(1, sizeof(*l));
	l->m = m;
	snprintf(l->domain, sizeof(l->domain), "%s", domain);
	for (char *c = l->domain; *c != '\0'; c++)
		*c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
	l->cb = cb;
	l->ctx = ctx;
	l->done_ev = event_new(m->base, -1, 0, lookup_deliver, l);
	l->next = m->lookups;
	if (l->next != NULL)
		l->next->prev = l;
	m->lookups = l;
	char name[300];
	snprintf(name, sizeof(name), "_mta-sts.%s", l->domain);
	/* the domain name becomes a file name: only plain host names */
	bool safe = l->domain[0] != '.' && l->domain[0] != '\0' && strstr(l->domain, "..") == NULL &&
		    strchr(l->domain, '/') == NULL;
	if (!safe) {
		snprintf(l->note, sizeof(l->note), "not a host name");
		event_active(l->done_ev, EV_TIMEOUT, 0);
	} else {
		l->txt = relay_dns_query(m->dns, name, RELAY_DNS_TXT, txt_answered, l);
	}
	return l;
}

void relay_mtasts_cancel(struct relay_mtasts_lookup **lp)
{
	if (*lp != NULL)
		lookup_free(*lp);
	*lp = NULL;
}

const char *relay_mtasts_mode_name(enum relay_mtasts_mode mode)
{
	return mode == RELAY_MTASTS_MODE_ENFORCE ? "enforce" : mode == RELAY_MTASTS_MODE_TESTING ? "testing" :
	       "none";
}

int relay_mtasts_new(struct event_base *base, const struct config *cfg, struct relay_dns *dns,
		     struct relay_mtasts **m_r, const char **error_r)
{
	static bool curl_ready;
	if (!curl_ready) {
		/* before any thread: curl_global_init is not thread-safe */
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			*error_r = "cannot initialise libcurl";
			return -1;
		}
		curl_ready = true;
	}
	struct relay_mtasts *m = xcalloc(1, sizeof(*m));
	m->base = base;
	m->cfg = cfg;
	m->dns = dns;
	m->dir = xasprintf("%s/mta-sts", cfg->data_dir);
	if (mkdir(m->dir, 0700) < 0 && errno != EEXIST)
		log_warn("event=mta-sts-cache-failed dir=%s error=\"%s\"", m->dir, strerror(errno));
	m->offload = offload_new(base, MTASTS_FETCH_THREADS);
	if (m->offload == NULL) {
		free(m->dir);
		free(m);
		*error_r = "cannot start the MTA-STS fetch threads";
		return -1;
	}
	*m_r = m;
	return 0;
}

void relay_mtasts_free(struct relay_mtasts **mp)
{
	struct relay_mtasts *m = *mp;
	if (m == NULL)
		return;
	while (m->lookups != NULL)
		lookup_free(m->lookups);
	offload_free(&m->offload);
	for (size_t i = 0; i < m->cache_count; i++)
		relay_mtasts_clear(&m->cache[i].policy);
	free(m->cache);
	free(m->dir);
	free(m);
	*mp = NULL;
}

/* DNS for the relay: libunbound's asynchronous resolver, its file
 * descriptor watched by the relay's event loop. Mail exchangers per
 * RFC 5321 5.1 and RFC 7505 (null MX). */
#include "relay/relay-private.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unbound.h>

#define DNS_MAX_HOSTS 10
#define DNS_TYPE_A 1
#define DNS_TYPE_MX 15
#define DNS_TYPE_AAAA 28
#define DNS_CLASS_IN 1
#define DNS_RCODE_SERVFAIL 2

/* Answers (rcode 0, TTL > 0) kept for their TTL (at most
 * DNS_CACHE_MAX_TTL): a busy destination then costs no round trip through
 * libunbound's resolver thread per message. Direct-mapped, a newer answer
 * replaces whatever shares its slot. */
#define DNS_CACHE_SLOTS 1024
#define DNS_CACHE_MAX_TTL 300

struct dns_cache_entry {
	char name[256];
	int type;
	time_t expires;         /* 0: empty */
	bool havedata;
	int count;
	char **data;            /* count + 1, NULL-terminated, as ub_result */
	int *len;
};

struct relay_dns {
	struct ub_ctx *ub;
	struct event *ev;
	struct relay_dns_lookup *lookups;   /* in flight */
	struct dns_cache_entry *cache;      /* DNS_CACHE_SLOTS */
};

struct dns_host {
	char name[256];
	int pref;
	struct relay_addr *v6, *v4;
	size_t n6, n4;
	bool temp_failed;
};

struct dns_query {
	struct relay_dns_lookup *lookup;
	int host;       /* -1: the MX query */
	int type;
	int async_id;
	bool active;
};

struct relay_dns_lookup {
	struct relay_dns *dns;
	struct relay_dns_lookup *prev, *next;
	char domain[256];
	int port;
	relay_dns_cb *cb;
	void *ctx;
	struct dns_host hosts[DNS_MAX_HOSTS];
	size_t host_count;
	struct dns_query queries[1 + 2 * DNS_MAX_HOSTS];
	size_t query_count;
	int pending;
	bool starting;          /* queries still being started: not done yet */
	/* result, handed over from a deferred event so that callbacks never
	 * run inside relay_dns_mx() or ub_process()'s own bookkeeping */
	struct event *done_ev;
	int status;
	char error[300];
	struct relay_addr *addrs;
	size_t addr_count;
};

static uint32_t cache_slot(const char *name, int type)
{
	uint32_t h = 2166136261u ^ (uint32_t)type;
	for (const char *p = name; *p != '\0'; p++) {
		h ^= (unsigned char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
		h *= 16777619u;
	}
	return h % DNS_CACHE_SLOTS;
}

static void cache_entry_clear(struct dns_cache_entry *e)
{
	for (int i = 0; i < e->count; i++)
		free(e->data[i]);
	free(e->data);
	free(e->len);
	memset(e, 0, sizeof(*e));
}

static void cache_put(struct relay_dns *dns, const struct ub_result *result)
{
	if (result->rcode != 0 || result->nxdomain || result->ttl <= 0 ||
	    result->qname == NULL || strlen(result->qname) >= sizeof(dns->cache[0].name))
		return;
	int count = 0;
	while (result->havedata && result->data[count] != NULL && count < 64)
		count++;
	struct dns_cache_entry *e = &dns->cache[cache_slot(result->qname, result->qtype)];
	cache_entry_clear(e);
	snprintf(e->name, sizeof(e->name), "%s", result->qname);
	e->type = result->qtype;
	e->havedata = count > 0;
	e->count = count;
	e->data = xcalloc((size_t)count + 1, sizeof(*e->data));
	e->len = xcalloc((size_t)count + 1, sizeof(*e->len));
	for (int i = 0; i < count; i++) {
		e->data[i] = xmalloc((size_t)result->len[i] + 1);
		memcpy(e->data[i], result->data[i], (size_t)result->len[i]);
		e->len[i] = result->len[i];
	}
	int ttl = result->ttl < DNS_CACHE_MAX_TTL ? result->ttl : DNS_CACHE_MAX_TTL;
	e->expires = time(NULL) + ttl;
}

/* A fresh cached answer for name/type as a ub_result (pointing into the
 * cache; not to be freed), or NULL. */
static const struct dns_cache_entry *cache_get(struct relay_dns *dns, const char *name,
					       int type)
{
	struct dns_cache_entry *e = &dns->cache[cache_slot(name, type)];
	if (e->expires == 0 || e->type != type || strcasecmp(e->name, name) != 0)
		return NULL;
	if (time(NULL) >= e->expires) {
		cache_entry_clear(e);
		return NULL;
	}
	return e;
}

static void dns_readable(evutil_socket_t fd, short what, void *arg)
{
	struct relay_dns *dns = arg;
	ub_process(dns->ub);
}

int relay_dns_new(struct event_base *base, const char *server, struct relay_dns **dns_r,
		  const char **error_r)
{
	static char err[300];
	struct relay_dns *dns = xcalloc(1, sizeof(*dns));
	int rc;
	dns->ub = ub_ctx_create();
	if (dns->ub == NULL) {
		*error_r = "cannot create the DNS resolver";
		free(dns);
		return -1;
	}
	/* a resolver on loopback (tests, a local cache) must be usable */
	ub_ctx_set_option(dns->ub, "do-not-query-localhost:", "no");
	if (server != NULL && server[0] != '\0') {
		char host[128];
		int port = 53;
		if (config_split_hostport(server, host, sizeof(host), &port) < 0) {
			snprintf(host, sizeof(host), "%s", server);
			port = 53;
		}
		char fwd[160];
		snprintf(fwd, sizeof(fwd), "%s@%d", host, port);
		rc = ub_ctx_set_fwd(dns->ub, fwd);
	} else {
		rc = ub_ctx_resolvconf(dns->ub, NULL);
	}
	if (rc == 0)
		rc = ub_ctx_async(dns->ub, 1);
	if (rc != 0) {
		snprintf(err, sizeof(err), "DNS resolver %s: %s", server ? server : "(system)",
			 ub_strerror(rc));
		*error_r = err;
		ub_ctx_delete(dns->ub);
		free(dns);
		return -1;
	}
	dns->cache = xcalloc(DNS_CACHE_SLOTS, sizeof(*dns->cache));
	dns->ev = event_new(base, ub_fd(dns->ub), EV_READ | EV_PERSIST, dns_readable, dns);
	event_add(dns->ev, NULL);
	*dns_r = dns;
	return 0;
}

static void lookup_free(struct relay_dns_lookup *l)
{
	struct relay_dns *dns = l->dns;
	for (size_t i = 0; i < l->query_count; i++) {
		if (l->queries[i].active)
			ub_cancel(dns->ub, l->queries[i].async_id);
	}
	for (size_t i = 0; i < l->host_count; i++) {
		free(l->hosts[i].v6);
		free(l->hosts[i].v4);
	}
	if (l->prev != NULL)
		l->prev->next = l->next;
	else
		dns->lookups = l->next;
	if (l->next != NULL)
		l->next->prev = l->prev;
	if (l->done_ev != NULL)
		event_free(l->done_ev);
	free(l->addrs);
	free(l);
}

void relay_dns_free(struct relay_dns **dnsp)
{
	struct relay_dns *dns = *dnsp;
	if (dns == NULL)
		return;
	while (dns->lookups != NULL)
		lookup_free(dns->lookups);
	event_free(dns->ev);
	ub_ctx_delete(dns->ub);
	for (size_t i = 0; i < DNS_CACHE_SLOTS; i++)
		cache_entry_clear(&dns->cache[i]);
	free(dns->cache);
	free(dns);
	*dnsp = NULL;
}

void relay_dns_cancel(struct relay_dns_lookup **lp)
{
	if (*lp != NULL)
		lookup_free(*lp);
	*lp = NULL;
}

static void lookup_deliver(evutil_socket_t fd, short what, void *arg)
{
	struct relay_dns_lookup *l = arg;
	l->cb(l->ctx, l->status, l->error, l->addrs, l->addr_count);
	lookup_free(l);
}

static void lookup_finish(struct relay_dns_lookup *l, int status, const char *error)
{
	l->status = status;
	snprintf(l->error, sizeof(l->error), "%s", error != NULL ? error : "");
	event_active(l->done_ev, EV_TIMEOUT, 0);
}

/* All address queries answered: the hosts' addresses in MX order. */
static void lookup_collect(struct relay_dns_lookup *l)
{
	bool temp = false;
	size_t total = 0;
	for (size_t i = 0; i < l->host_count; i++) {
		total += l->hosts[i].n6 + l->hosts[i].n4;
		temp |= l->hosts[i].temp_failed;
	}
	l->addrs = xcalloc(total + 1, sizeof(*l->addrs));
	for (size_t i = 0; i < l->host_count; i++) {
		struct dns_host *h = &l->hosts[i];
		for (size_t k = 0; k < h->n6; k++)
			l->addrs[l->addr_count++] = h->v6[k];
		for (size_t k = 0; k < h->n4; k++)
			l->addrs[l->addr_count++] = h->v4[k];
	}
	if (l->addr_count > 0)
		lookup_finish(l, 0, NULL);
	else if (temp)
		lookup_finish(l, 4, "4.4.3 temporary DNS failure looking up the mail exchangers");
	else
		lookup_finish(l, 5, "5.4.4 no address found for the mail exchangers");
}

static void host_add_addr(struct relay_dns_lookup *l, struct dns_host *h, int type,
			  const char *data, int len)
{
	struct relay_addr a;
	memset(&a, 0, sizeof(a));
	snprintf(a.host, sizeof(a.host), "%s", h->name);
	if (type == DNS_TYPE_A && len == 4) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&a.sa;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)l->port);
		memcpy(&sin->sin_addr, data, 4);
		a.sa_len = sizeof(*sin);
		inet_ntop(AF_INET, &sin->sin_addr, a.ip, sizeof(a.ip));
		h->v4 = xrealloc(h->v4, (h->n4 + 1) * sizeof(a));
		h->v4[h->n4++] = a;
	} else if (type == DNS_TYPE_AAAA && len == 16) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a.sa;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)l->port);
		memcpy(&sin6->sin6_addr, data, 16);
		a.sa_len = sizeof(*sin6);
		inet_ntop(AF_INET6, &sin6->sin6_addr, a.ip, sizeof(a.ip));
		h->v6 = xrealloc(h->v6, (h->n6 + 1) * sizeof(a));
		h->v6[h->n6++] = a;
	}
}

static void query_answered(void *arg, int err, struct ub_result *result);
static void query_handle(struct dns_query *q, int err, struct ub_result *result);

/* Starts a query, or answers it at once from the cache; false when the
 * resolver refused it. */
static bool query_start(struct relay_dns_lookup *l, int host, const char *name, int type)
{
	struct dns_query *q = &l->queries[l->query_count++];
	q->lookup = l;
	q->host = host;
	q->type = type;
	l->pending++;
	const struct dns_cache_entry *cached = cache_get(l->dns, name, type);
	if (cached != NULL) {
		struct ub_result r;
		memset(&r, 0, sizeof(r));
		r.qname = (char *)cached->name;
		r.qtype = type;
		r.qclass = DNS_CLASS_IN;
		r.data = cached->data;
		r.len = cached->len;
		r.havedata = cached->havedata;
		query_handle(q, 0, &r);
		return true;
	}
	q->active = true;
	int rc = ub_resolve_async(l->dns->ub, name, type, DNS_CLASS_IN, q, query_answered,
				  &q->async_id);
	if (rc != 0) {
		q->active = false;
		l->pending--;
		if (host >= 0)
			l->hosts[host].temp_failed = true;
		log_warn("event=dns-error name=%s error=\"%s\"", name, ub_strerror(rc));
		return false;
	}
	return true;
}

int relay_dns_parse_mx(const unsigned char *rdata, size_t len, int *pref_r, char *name,
		       size_t name_size)
{
	if (len < 3 || name_size < 2)
		return -1;
	*pref_r = rdata[0] << 8 | rdata[1];
	size_t pos = 2, out = 0;
	while (pos < len) {
		size_t label = rdata[pos++];
		if (label == 0) {
			name[out] = '\0';
			return pos == len ? 0 : -1;
		}
		if (label > 63 || pos + label > len || out + label + 2 > name_size)
			return -1;
		if (out > 0)
			name[out++] = '.';
		for (size_t i = 0; i < label; i++) {
			unsigned char c = rdata[pos + i];
			if (c <= ' ' || c >= 0x7f || c == '.')
				return -1;   /* not a host name we can use */
			name[out++] = (char)c;
		}
		pos += label;
	}
	return -1;
}

/* RFC 5321 5.1: lowest preference first, equal ones in random order. */
static void hosts_sort(struct dns_host *hosts, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		/* a random key among equals: shuffle first, then a stable sort */
		size_t j = i + arc4random_uniform((uint32_t)(n - i));
		struct dns_host t = hosts[i];
		hosts[i] = hosts[j];
		hosts[j] = t;
	}
	for (size_t i = 1; i < n; i++) {
		struct dns_host t = hosts[i];
		size_t j = i;
		while (j > 0 && hosts[j - 1].pref > t.pref) {
			hosts[j] = hosts[j - 1];
			j--;
		}
		hosts[j] = t;
	}
}

static void mx_answered(struct relay_dns_lookup *l, struct ub_result *result)
{
	char error[300];
	if (result->rcode != 0 && !result->nxdomain) {
		snprintf(error, sizeof(error), "4.4.3 DNS lookup of %s failed (rcode %d)", l->domain,
			 result->rcode);
		lookup_finish(l, 4, error);
		return;
	}
	if (result->nxdomain) {
		snprintf(error, sizeof(error), "5.1.2 domain %s does not exist", l->domain);
		lookup_finish(l, 5, error);
		return;
	}
	bool null_mx = false;
	for (int i = 0; result->havedata && result->data[i] != NULL; i++) {
		struct dns_host h;
		memset(&h, 0, sizeof(h));
		if (relay_dns_parse_mx((const unsigned char *)result->data[i],
				       (size_t)result->len[i], &h.pref, h.name, sizeof(h.name)) < 0)
			continue;
		if (h.name[0] == '\0') {
			null_mx = true;   /* RFC 7505: "0 ." */
			continue;
		}
		if (l->host_count < DNS_MAX_HOSTS)
			l->hosts[l->host_count++] = h;
	}
	if (null_mx && l->host_count == 0) {
		snprintf(error, sizeof(error), "5.1.10 domain %s accepts no mail (null MX)",
			 l->domain);
		lookup_finish(l, 5, error);
		return;
	}
	if (l->host_count == 0 && result->havedata) {
		snprintf(error, sizeof(error), "5.4.4 unusable MX records for %s", l->domain);
		lookup_finish(l, 5, error);
		return;
	}
	if (l->host_count == 0) {
		/* no MX: the domain itself is the implicit MX (RFC 5321 5.1) */
		snprintf(l->hosts[0].name, sizeof(l->hosts[0].name), "%s", l->domain);
		l->host_count = 1;
	}
	hosts_sort(l->hosts, l->host_count);
	l->starting = true;
	for (size_t i = 0; i < l->host_count; i++) {
		query_start(l, (int)i, l->hosts[i].name, DNS_TYPE_AAAA);
		query_start(l, (int)i, l->hosts[i].name, DNS_TYPE_A);
	}
	l->starting = false;
	if (l->pending == 0)
		lookup_collect(l);
}

static void query_answered(void *arg, int err, struct ub_result *result)
{
	struct dns_query *q = arg;
	if (err == 0 && result != NULL)
		cache_put(q->lookup->dns, result);
	query_handle(q, err, result);
	if (result != NULL)
		ub_resolve_free(result);
}

static void query_handle(struct dns_query *q, int err, struct ub_result *result)
{
	struct relay_dns_lookup *l = q->lookup;
	q->active = false;
	l->pending--;
	if (q->host < 0) {
		if (err != 0) {
			char error[300];
			snprintf(error, sizeof(error), "4.4.3 DNS lookup of %s failed: %s", l->domain,
				 ub_strerror(err));
			lookup_finish(l, 4, error);
		} else {
			mx_answered(l, result);
		}
	} else {
		struct dns_host *h = &l->hosts[q->host];
		if (err != 0 || (result->rcode != 0 && !result->nxdomain))
			h->temp_failed = true;
		else
			for (int i = 0; result->havedata && result->data[i] != NULL; i++)
				host_add_addr(l, h, q->type, result->data[i], result->len[i]);
		if (l->pending == 0 && !l->starting)
			lookup_collect(l);
	}
}

static struct relay_dns_lookup *lookup_new(struct relay_dns *dns, struct event_base *base,
					   const char *name, int port, relay_dns_cb *cb,
					   void *ctx)
{
	struct relay_dns_lookup *l = xcalloc(1, sizeof(*l));
	l->dns = dns;
	snprintf(l->domain, sizeof(l->domain), "%s", name);
	l->port = port;
	l->cb = cb;
	l->ctx = ctx;
	l->done_ev = event_new(base, -1, 0, lookup_deliver, l);
	l->next = dns->lookups;
	if (l->next != NULL)
		l->next->prev = l;
	dns->lookups = l;
	return l;
}

struct relay_dns_lookup *relay_dns_mx(struct relay_dns *dns, const char *domain, int port,
				      relay_dns_cb *cb, void *ctx)
{
	struct relay_dns_lookup *l = lookup_new(dns, event_get_base(dns->ev), domain, port, cb,
						ctx);
	if (!query_start(l, -1, domain, DNS_TYPE_MX))
		lookup_finish(l, 4, "4.4.3 DNS resolver unavailable");
	return l;
}

struct relay_dns_lookup *relay_dns_host(struct relay_dns *dns, const char *host, int port,
					relay_dns_cb *cb, void *ctx)
{
	struct relay_dns_lookup *l = lookup_new(dns, event_get_base(dns->ev), host, port, cb,
						ctx);
	struct dns_host *h = &l->hosts[0];
	snprintf(h->name, sizeof(h->name), "%s", host);
	l->host_count = 1;
	unsigned char bin[16];
	if (inet_pton(AF_INET, host, bin) == 1) {
		host_add_addr(l, h, DNS_TYPE_A, (const char *)bin, 4);
		lookup_collect(l);
	} else if (inet_pton(AF_INET6, host, bin) == 1) {
		host_add_addr(l, h, DNS_TYPE_AAAA, (const char *)bin, 16);
		lookup_collect(l);
	} else {
		l->starting = true;
		query_start(l, 0, host, DNS_TYPE_AAAA);
		query_start(l, 0, host, DNS_TYPE_A);
		l->starting = false;
		if (l->pending == 0)
			lookup_collect(l);
	}
	return l;
}

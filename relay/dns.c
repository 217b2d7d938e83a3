/* DNS for the relay: libunbound's asynchronous resolver, its file
 * descriptor watched by the relay's event loop. Mail exchangers per
 * RFC 5321 5.1 and RFC 7505 (null MX); for DANE (RFC 7672) a second,
 * validating context with a trust anchor answers the MX, address and
 * TLSA queries of destinations that want it. */
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
#define DNS_TYPE_DNSKEY 48
#define DNS_TYPE_TLSA 52
#define DNS_VALIDATED 0x10000   /* cache key bit: an answer of the validating context */
#define DNS_PROBE_RETRY 600     /* seconds before a failed validator check is redone */
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
	bool secure;            /* DNSSEC-validated (validating context only) */
	int count;
	char **data;            /* count + 1, NULL-terminated, as ub_result */
	int *len;
};

enum validator_state { VALIDATOR_OFF, VALIDATOR_PROBING, VALIDATOR_OK, VALIDATOR_BROKEN };

struct relay_dns {
	struct ub_ctx *ub;
	struct event *ev;
	struct ub_ctx *ub_sec;              /* validating, for DANE; NULL without */
	struct event *ev_sec;
	enum validator_state validator;
	char anchor_zone[256];              /* the trust anchor's owner name */
	time_t probed;
	struct relay_dns_query *probe;
	struct relay_dns_lookup *lookups;   /* in flight */
	struct relay_dns_query *queries;    /* single queries in flight */
	struct dns_cache_entry *cache;      /* DNS_CACHE_SLOTS */
};

struct dns_host {
	char name[256];
	int pref;
	struct relay_addr *v6, *v4;
	size_t n6, n4;
	bool temp_failed;
	bool insecure;          /* an address answer was not validated secure */
	enum relay_dane dane;
	bool tlsa_failed;       /* its TLSA lookup failed: not to be used */
	size_t tlsa_count;
	struct relay_tlsa tlsa[RELAY_TLSA_MAX];
};

struct dns_query {
	struct relay_dns_lookup *lookup;
	int host;       /* -1: the MX query */
	int type;
	int async_id;
	bool active;
	bool validated;
};

struct relay_dns_query {
	struct relay_dns *dns;
	struct relay_dns_query *prev, *next;
	relay_dns_query_cb *cb;
	void *ctx;
	int async_id;
	bool active;
	bool validated;
	int type;
	struct event *done_ev;
	/* the answer, kept for the deferred callback */
	int status;
	bool secure;
	char **data;
	int *len;
	int count;
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
	struct dns_query queries[1 + 3 * DNS_MAX_HOSTS];   /* MX, AAAA + A, TLSA */
	size_t query_count;
	int pending;
	bool starting;          /* queries still being started: not done yet */
	bool dane;              /* asked for DANE (and the validator decides) */
	bool validated;         /* its queries go to the validating context */
	bool waiting;           /* for the validator check to end */
	bool mx_secure;         /* the MX answer (or its absence) validated secure */
	bool implicit_mx;
	bool tlsa_phase;
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

static void cache_put(struct relay_dns *dns, const struct ub_result *result, bool validated)
{
	if (result->rcode != 0 || result->nxdomain || result->ttl <= 0 ||
	    result->qname == NULL || strlen(result->qname) >= sizeof(dns->cache[0].name))
		return;
	int count = 0;
	while (result->havedata && result->data[count] != NULL && count < 64)
		count++;
	int type = result->qtype | (validated ? DNS_VALIDATED : 0);
	struct dns_cache_entry *e = &dns->cache[cache_slot(result->qname, type)];
	cache_entry_clear(e);
	snprintf(e->name, sizeof(e->name), "%s", result->qname);
	e->type = type;
	e->havedata = count > 0;
	e->secure = result->secure != 0;
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

static void dns_sec_readable(evutil_socket_t fd, short what, void *arg)
{
	struct relay_dns *dns = arg;
	ub_process(dns->ub_sec);
}

static int ctx_setup(struct ub_ctx *ub, const char *server)
{
	int rc;
	/* a resolver on loopback (tests, a local cache) must be usable */
	ub_ctx_set_option(ub, "do-not-query-localhost:", "no");
	if (server != NULL && server[0] != '\0') {
		char host[128];
		int port = 53;
		if (config_split_hostport(server, host, sizeof(host), &port) < 0) {
			snprintf(host, sizeof(host), "%s", server);
			port = 53;
		}
		char fwd[160];
		snprintf(fwd, sizeof(fwd), "%s@%d", host, port);
		rc = ub_ctx_set_fwd(ub, fwd);
	} else {
		rc = ub_ctx_resolvconf(ub, NULL);
	}
	if (rc == 0)
		rc = ub_ctx_async(ub, 1);
	return rc;
}

/* The owner name of the first record of a trust anchor file. */
static int anchor_owner(const char *path, char *out, size_t size)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	char line[1024];
	int ret = -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		char *p = line + strspn(line, " \t");
		if (*p == ';' || *p == '#' || *p == '\n' || *p == '\0')
			continue;
		size_t n = strcspn(p, " \t\n");
		if (n > 0 && n < size) {
			memcpy(out, p, n);
			out[n] = '\0';
			ret = 0;
		}
		break;
	}
	fclose(f);
	return ret;
}

static void lookup_begin(struct relay_dns_lookup *l);

static void probe_done(void *ctx, int status, char *const *data, const int *len, int count)
{
	struct relay_dns *dns = ctx;
	bool secure = dns->probe != NULL && dns->probe->secure;
	dns->probe = NULL;
	dns->validator = status == 0 && count > 0 && secure ? VALIDATOR_OK : VALIDATOR_BROKEN;
	if (dns->validator == VALIDATOR_OK)
		log_info("event=dane-ready anchor=%s", dns->anchor_zone);
	else
		log_warn("event=dane-unavailable anchor=%s reason=\"the resolver gives no DNSSEC data "
			 "that validates (%s)\" note=\"DANE is off; checked again in %ds\"",
			 dns->anchor_zone, status == 0 ? (count > 0 ? "insecure" : "no DNSKEY") :
			 "lookup failed", DNS_PROBE_RETRY);
	/* lookups that waited for the answer go on, validated or not */
	for (struct relay_dns_lookup *l = dns->lookups; l != NULL; l = l->next) {
		if (l->waiting) {
			l->waiting = false;
			lookup_begin(l);
		}
	}
}

static struct relay_dns_query *query_new(struct relay_dns *dns, const char *name, int type,
					 bool validated, relay_dns_query_cb *cb, void *ctx);

static void validator_check(struct relay_dns *dns)
{
	if (dns->ub_sec == NULL || dns->probe != NULL)
		return;
	dns->validator = VALIDATOR_PROBING;
	dns->probed = time(NULL);
	dns->probe = query_new(dns, dns->anchor_zone, DNS_TYPE_DNSKEY, true, probe_done, dns);
}

int relay_dns_new(struct event_base *base, const char *server, const char *trust_anchor,
		  struct relay_dns **dns_r, const char **error_r)
{
	static char err[400];
	struct relay_dns *dns = xcalloc(1, sizeof(*dns));
	int rc = -1;
	dns->ub = ub_ctx_create();
	if (dns->ub == NULL || (rc = ctx_setup(dns->ub, server)) != 0) {
		snprintf(err, sizeof(err), "DNS resolver %s: %s", server ? server : "(system)",
			 dns->ub == NULL ? "cannot create it" : ub_strerror(rc));
		*error_r = err;
		if (dns->ub != NULL)
			ub_ctx_delete(dns->ub);
		free(dns);
		return -1;
	}
	if (trust_anchor != NULL && trust_anchor[0] != '\0') {
		dns->ub_sec = ub_ctx_create();
		if (dns->ub_sec == NULL || anchor_owner(trust_anchor, dns->anchor_zone,
							sizeof(dns->anchor_zone)) < 0 ||
		    (rc = ctx_setup(dns->ub_sec, server)) != 0 ||
		    (rc = ub_ctx_add_ta_file(dns->ub_sec, trust_anchor)) != 0) {
			log_warn("event=dane-unavailable anchor_file=%s reason=\"%s\"", trust_anchor,
				 dns->ub_sec == NULL ? "cannot create a resolver" :
				 dns->anchor_zone[0] == '\0' ? "no record in the file" :
				 ub_strerror(rc));
			if (dns->ub_sec != NULL)
				ub_ctx_delete(dns->ub_sec);
			dns->ub_sec = NULL;
		}
	}
	dns->cache = xcalloc(DNS_CACHE_SLOTS, sizeof(*dns->cache));
	dns->ev = event_new(base, ub_fd(dns->ub), EV_READ | EV_PERSIST, dns_readable, dns);
	event_add(dns->ev, NULL);
	if (dns->ub_sec != NULL) {
		dns->ev_sec = event_new(base, ub_fd(dns->ub_sec), EV_READ | EV_PERSIST,
					dns_sec_readable, dns);
		event_add(dns->ev_sec, NULL);
		validator_check(dns);
	}
	*dns_r = dns;
	return 0;
}

static void lookup_free(struct relay_dns_lookup *l)
{
	struct relay_dns *dns = l->dns;
	for (size_t i = 0; i < l->query_count; i++) {
		if (l->queries[i].active)
			ub_cancel(l->queries[i].validated ? dns->ub_sec : dns->ub,
				  l->queries[i].async_id);
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
	while (dns->queries != NULL) {
		struct relay_dns_query *q = dns->queries;
		relay_dns_query_cancel(&q);
	}
	event_free(dns->ev);
	ub_ctx_delete(dns->ub);
	if (dns->ub_sec != NULL) {
		event_free(dns->ev_sec);
		ub_ctx_delete(dns->ub_sec);
	}
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

/* Every answer in: the usable hosts' addresses in MX order, each with
 * its host's DANE facts. */
static void lookup_deliver_addrs(struct relay_dns_lookup *l)
{
	bool temp = false, tlsa_failed = false;
	size_t total = 0;
	for (size_t i = 0; i < l->host_count; i++) {
		total += l->hosts[i].n6 + l->hosts[i].n4;
		temp |= l->hosts[i].temp_failed;
	}
	l->addrs = xcalloc(total + 1, sizeof(*l->addrs));
	for (size_t i = 0; i < l->host_count; i++) {
		struct dns_host *h = &l->hosts[i];
		if (h->tlsa_failed) {
			tlsa_failed |= h->n6 + h->n4 > 0;
			continue;
		}
		for (size_t k = 0; k < h->n6 + h->n4; k++) {
			struct relay_addr *a = &l->addrs[l->addr_count++];
			*a = k < h->n6 ? h->v6[k] : h->v4[k - h->n6];
			a->dane = h->dane;
			a->tlsa_count = h->tlsa_count;
			memcpy(a->tlsa, h->tlsa, sizeof(a->tlsa));
		}
	}
	char error[300];
	if (l->addr_count > 0) {
		lookup_finish(l, 0, NULL);
	} else if (tlsa_failed) {
		snprintf(error, sizeof(error), "4.7.5 DNSSEC lookup of the TLSA records of the mail "
			 "exchangers of %s failed", l->domain);
		lookup_finish(l, 4, error);
	} else if (temp) {
		lookup_finish(l, 4, "4.4.3 temporary DNS failure looking up the mail exchangers");
	} else {
		lookup_finish(l, 5, "5.4.4 no address found for the mail exchangers");
	}
}

static bool query_start(struct relay_dns_lookup *l, int host, const char *name, int type);

/* All address queries answered. Under DANE, hosts whose MX and
 * addresses are secure get their TLSA records looked up first. */
static void lookup_collect(struct relay_dns_lookup *l)
{
	if (!l->validated || !l->mx_secure || l->tlsa_phase) {
		lookup_deliver_addrs(l);
		return;
	}
	l->tlsa_phase = true;
	l->starting = true;
	for (size_t i = 0; i < l->host_count; i++) {
		struct dns_host *h = &l->hosts[i];
		if (h->insecure || h->n6 + h->n4 == 0)
			continue;
		char name[300];
		snprintf(name, sizeof(name), "_%d._tcp.%s", l->port, h->name);
		if (!query_start(l, (int)i, name, DNS_TYPE_TLSA))
			h->tlsa_failed = true;
	}
	l->starting = false;
	if (l->pending == 0)
		lookup_deliver_addrs(l);
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
	q->validated = l->validated;
	l->pending++;
	const struct dns_cache_entry *cached =
		cache_get(l->dns, name, type | (q->validated ? DNS_VALIDATED : 0));
	if (cached != NULL) {
		struct ub_result r;
		memset(&r, 0, sizeof(r));
		r.qname = (char *)cached->name;
		r.qtype = type;
		r.qclass = DNS_CLASS_IN;
		r.data = cached->data;
		r.len = cached->len;
		r.havedata = cached->havedata;
		r.secure = cached->secure;
		query_handle(q, 0, &r);
		return true;
	}
	q->active = true;
	int rc = ub_resolve_async(q->validated ? l->dns->ub_sec : l->dns->ub, name, type,
				  DNS_CLASS_IN, q, query_answered, &q->async_id);
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

int relay_dns_parse_tlsa(const unsigned char *rdata, size_t len, struct relay_tlsa *t)
{
	if (len < 4)
		return -1;
	memset(t, 0, sizeof(*t));
	t->usage = rdata[0];
	t->selector = rdata[1];
	t->mtype = rdata[2];
	size_t dlen = len - 3;
	/* RFC 7672 3.1: DANE-TA(2) and DANE-EE(3) only; digests of a
	 * certificate (0) or public key (1) */
	if ((t->usage != 2 && t->usage != 3) || t->selector > 1)
		return 0;
	if (!((t->mtype == 1 && dlen == 32) || (t->mtype == 2 && dlen == 64)))
		return (t->mtype == 1 || t->mtype == 2) ? -1 : 0;
	t->len = (unsigned char)dlen;
	memcpy(t->data, rdata + 3, dlen);
	return 1;
}

int relay_dns_txt_join(const unsigned char *rdata, size_t len, struct buf *out)
{
	size_t pos = 0;
	buf_reset(out);
	while (pos < len) {
		size_t n = rdata[pos++];
		if (pos + n > len)
			return -1;
		buf_append(out, rdata + pos, n);
		pos += n;
	}
	return 0;
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
	if (result->bogus) {
		/* RFC 7672 2.1.1: a bogus answer is a failed lookup */
		snprintf(error, sizeof(error), "4.7.5 DNSSEC validation of the MX records of %s "
			 "failed: %s", l->domain, result->why_bogus ? result->why_bogus : "bogus");
		lookup_finish(l, 4, error);
		return;
	}
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
	l->mx_secure = result->secure != 0;
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
		l->implicit_mx = true;
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
		cache_put(q->lookup->dns, result, q->validated);
	query_handle(q, err, result);
	if (result != NULL)
		ub_resolve_free(result);
}

/* A host's TLSA answer (RFC 7672 2.2): secure records decide; insecure or
 * no records mean no DANE; a failure (bogus, SERVFAIL) rules the host out. */
static void tlsa_answered(struct dns_host *h, int err, struct ub_result *result)
{
	if (err != 0 || result->bogus || (result->rcode != 0 && !result->nxdomain)) {
		h->tlsa_failed = true;
		log_info("event=dane-tlsa-failed host=%s reason=\"%s\"", h->name,
			 err != 0 ? ub_strerror(err) : result->bogus ? (result->why_bogus ?
			 result->why_bogus : "bogus") : "lookup failed");
		return;
	}
	if (!result->secure || !result->havedata)
		return;
	bool any = false;
	for (int i = 0; result->data[i] != NULL; i++) {
		struct relay_tlsa t;
		any = true;
		if (relay_dns_parse_tlsa((const unsigned char *)result->data[i],
					 (size_t)result->len[i], &t) == 1 &&
		    h->tlsa_count < RELAY_TLSA_MAX)
			h->tlsa[h->tlsa_count++] = t;
	}
	if (any)
		h->dane = h->tlsa_count > 0 ? RELAY_DANE_VERIFY : RELAY_DANE_TLS_ONLY;
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
		return;
	}
	struct dns_host *h = &l->hosts[q->host];
	if (q->type == DNS_TYPE_TLSA) {
		tlsa_answered(h, err, result);
	} else if (err != 0 || result->bogus || (result->rcode != 0 && !result->nxdomain)) {
		h->temp_failed = true;
	} else {
		/* an implicit MX is as secure as the domain's own addresses */
		if (!result->secure) {
			h->insecure = true;
			if (l->implicit_mx)
				l->mx_secure = false;
		}
		for (int i = 0; result->havedata && result->data[i] != NULL; i++)
			host_add_addr(l, h, q->type, result->data[i], result->len[i]);
	}
	if (l->pending == 0 && !l->starting)
		lookup_collect(l);
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

/* The MX query, once it is known whether it is to be validated. */
static void lookup_begin(struct relay_dns_lookup *l)
{
	l->validated = l->dane && l->dns->validator == VALIDATOR_OK;
	if (!query_start(l, -1, l->domain, DNS_TYPE_MX))
		lookup_finish(l, 4, "4.4.3 DNS resolver unavailable");
}

struct relay_dns_lookup *relay_dns_mx(struct relay_dns *dns, const char *domain, int port,
				      bool dane, relay_dns_cb *cb, void *ctx)
{
	struct relay_dns_lookup *l = lookup_new(dns, event_get_base(dns->ev), domain, port, cb,
						ctx);
	l->dane = dane && dns->ub_sec != NULL;
	if (l->dane && dns->validator == VALIDATOR_BROKEN &&
	    time(NULL) - dns->probed >= DNS_PROBE_RETRY)
		validator_check(dns);
	if (l->dane && dns->validator == VALIDATOR_PROBING)
		l->waiting = true;   /* probe_done() starts it */
	else
		lookup_begin(l);
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

/* ---- single queries ---- */

static void single_free(struct relay_dns_query *q)
{
	struct relay_dns *dns = q->dns;
	if (q->active)
		ub_cancel(q->validated ? dns->ub_sec : dns->ub, q->async_id);
	if (q->prev != NULL)
		q->prev->next = q->next;
	else
		dns->queries = q->next;
	if (q->next != NULL)
		q->next->prev = q->prev;
	for (int i = 0; i < q->count; i++)
		free(q->data[i]);
	free(q->data);
	free(q->len);
	event_free(q->done_ev);
	free(q);
}

static void single_deliver(evutil_socket_t fd, short what, void *arg)
{
	struct relay_dns_query *q = arg;
	q->cb(q->ctx, q->status, q->data, q->len, q->count);
	if (q->dns->probe == q)
		q->dns->probe = NULL;
	single_free(q);
}

static void single_keep(struct relay_dns_query *q, int status, bool secure, char **data,
			int *len, bool havedata)
{
	q->status = status;
	q->secure = secure;
	int count = 0;
	while (status == 0 && havedata && data[count] != NULL && count < 64)
		count++;
	q->count = count;
	q->data = xcalloc((size_t)count + 1, sizeof(*q->data));
	q->len = xcalloc((size_t)count + 1, sizeof(*q->len));
	for (int i = 0; i < count; i++) {
		q->data[i] = xmalloc((size_t)len[i] + 1);
		memcpy(q->data[i], data[i], (size_t)len[i]);
		q->data[i][len[i]] = '\0';
		q->len[i] = len[i];
	}
	event_active(q->done_ev, EV_TIMEOUT, 0);
}

static void single_answered(void *arg, int err, struct ub_result *result)
{
	struct relay_dns_query *q = arg;
	q->active = false;
	int status;
	if (err != 0 || result == NULL || result->bogus)
		status = 4;
	else if (result->nxdomain)
		status = 5;
	else if (result->rcode != 0)
		status = 4;
	else
		status = 0;
	if (status == 0 && !q->validated)
		cache_put(q->dns, result, false);
	single_keep(q, status, status == 0 && result->secure,
		    result != NULL ? result->data : NULL, result != NULL ? result->len : NULL,
		    status == 0 && result->havedata);
	if (result != NULL)
		ub_resolve_free(result);
}

static struct relay_dns_query *query_new(struct relay_dns *dns, const char *name, int type,
					 bool validated, relay_dns_query_cb *cb, void *ctx)
{
	struct relay_dns_query *q = xcalloc(1, sizeof(*q));
	q->dns = dns;
	q->cb = cb;
	q->ctx = ctx;
	q->type = type;
	q->validated = validated;
	q->done_ev = event_new(event_get_base(dns->ev), -1, 0, single_deliver, q);
	q->next = dns->queries;
	if (q->next != NULL)
		q->next->prev = q;
	dns->queries = q;
	const struct dns_cache_entry *cached = validated ? NULL : cache_get(dns, name, type);
	if (cached != NULL) {
		single_keep(q, 0, false, cached->data, cached->len, cached->havedata);
		return q;
	}
	q->active = true;
	int rc = ub_resolve_async(validated ? dns->ub_sec : dns->ub, name, type, DNS_CLASS_IN,
				  q, single_answered, &q->async_id);
	if (rc != 0) {
		q->active = false;
		log_warn("event=dns-error name=%s error=\"%s\"", name, ub_strerror(rc));
		single_keep(q, 4, false, NULL, NULL, false);
	}
	return q;
}

struct relay_dns_query *relay_dns_query(struct relay_dns *dns, const char *name, int type,
					relay_dns_query_cb *cb, void *ctx)
{
	return query_new(dns, name, type, false, cb, ctx);
}

void relay_dns_query_cancel(struct relay_dns_query **qp)
{
	struct relay_dns_query *q = *qp;
	if (q == NULL)
		return;
	if (q->dns->probe == q)
		q->dns->probe = NULL;
	single_free(q);
	*qp = NULL;
}

/* The web process: a child of the master like the relay, serving
 * [listen] metrics (Prometheus text over plain HTTP, meant for loopback)
 * and [listen] https (Thunderbird autoconfig, Microsoft Autodiscover and
 * the MTA-STS policy of every hosted domain) with libevent's evhttp.
 *
 * A process of its own rather than the master (which must never parse a
 * byte from the network) or the mail workers: it parses HTTP from anyone,
 * with a library the mail sessions do not otherwise need, so a fault in
 * it cannot take a mail session down with it; a metrics scrape that walks
 * the queue never stalls a mail session's loop; and it drops privileges
 * like a worker, so whatever confines workers confines it too. */
#include "core/server-private.h"
#include "core/autoconfig.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/mtasts.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define HTTP_TIMEOUT_SECS 10
#define HTTP_MAX_HEADERS 8192
#define HTTP_MAX_BODY 16384

struct web {
	struct event_base *base;
	const struct server_setup *setup;
	const struct config *cfg;
	SSL_CTX *ssl_ctx;
	struct services *services;
	struct evhttp *metrics;
	struct evhttp *https;
	struct event *sigterm_ev;
	struct event *periodic_ev;
};

static void web_log(struct evhttp_request *req, const char *listener, int status)
{
	char path[256], remote[64] = "-";
	const char *uri = evhttp_request_get_uri(req);
	log_sanitize(path, sizeof(path), uri, strlen(uri));
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	if (evcon != NULL) {
		char *addr = NULL;
		ev_uint16_t port;
		evhttp_connection_get_peer(evcon, &addr, &port);
		if (addr != NULL)
			log_sanitize(remote, sizeof(remote), addr, strlen(addr));
	}
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	log_info("event=http-request listener=%s remote=%s method=%s path=\"%s\" status=%d",
		 listener, remote, cmd == EVHTTP_REQ_GET ? "GET" : cmd == EVHTTP_REQ_HEAD ? "HEAD" :
		 cmd == EVHTTP_REQ_POST ? "POST" : "other", path, status);
}

static void web_send(struct evhttp_request *req, const char *listener, int status,
		     const char *type, const struct buf *body)
{
	struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
	struct evbuffer *out = evbuffer_new();
	if (out == NULL)
		fatal("event=evbuffer-failed");
	evhttp_add_header(headers, "Content-Type", type);
	evhttp_add_header(headers, "X-Content-Type-Options", "nosniff");
	evbuffer_add(out, body->data != NULL ? body->data : "", body->len);
	static const struct { int code; const char *reason; } reasons[] = {
		{ 200, "OK" }, { 400, "Bad Request" }, { 404, "Not Found" },
		{ 405, "Method Not Allowed" },
	};
	const char *reason = "Error";
	for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
		if (reasons[i].code == status)
			reason = reasons[i].reason;
	}
	web_log(req, listener, status);
	evhttp_send_reply(req, status, reason, out);
	evbuffer_free(out);
}

/* The request's path; "" when evhttp kept none. */
static const char *request_path(struct evhttp_request *req)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	return path != NULL ? path : "";
}

static void web_error(struct evhttp_request *req, const char *listener, int status,
		      const char *text)
{
	struct buf body = BUF_INIT;
	buf_printf(&body, "%s\n", text);
	web_send(req, listener, status, "text/plain; charset=utf-8", &body);
	buf_free(&body);
}

/* ---- [listen] metrics ---- */

static void metrics_cb(struct evhttp_request *req, void *arg)
{
	struct web *web = arg;
	const char *path = request_path(req);
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	if (strcmp(path, "/metrics") != 0) {
		web_error(req, "metrics", 404, "not found: the metrics are at /metrics");
		return;
	}
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		web_error(req, "metrics", 405, "GET only");
		return;
	}
	struct metrics_queue queue = { false, 0, 0 };
	if (web->setup->queue_state != NULL)
		web->setup->queue_state(web->services, &queue);
	struct buf body = BUF_INIT;
	const struct metrics *m = metrics_current();
	if (m != NULL)
		metrics_render(m, web->cfg, &queue, time(NULL), &body);
	web_send(req, "metrics", 200, "text/plain; version=0.0.4; charset=utf-8", &body);
	buf_free(&body);
}

/* ---- [listen] https ---- */

static bool hosted(struct web *web, const char *domain)
{
	return web->setup->domain_hosted != NULL &&
	       web->setup->domain_hosted(web->services, domain);
}

static const char *request_host(struct evhttp_request *req)
{
	const char *host = evhttp_find_header(evhttp_request_get_input_headers(req), "Host");
	return host != NULL ? host : "";
}

/* RFC 8461 3.3: https://mta-sts.DOMAIN/.well-known/mta-sts.txt */
static void serve_mta_sts(struct web *web, struct evhttp_request *req)
{
	char domain[AUTOCONFIG_DOMAIN_MAX + 1];
	if (autoconfig_host_domain(request_host(req), "mta-sts", 1, domain, sizeof(domain)) < 0 ||
	    !hosted(web, domain)) {
		web_error(req, "https", 404, "no MTA-STS policy for this host");
		return;
	}
	struct buf body = BUF_INIT;
	mtasts_policy(web->cfg, &body);
	web_send(req, "https", 200, "text/plain", &body);
	buf_free(&body);
}

/* Thunderbird asks https://autoconfig.DOMAIN/mail/config-v1.1.xml?emailaddress=A
 * and https://DOMAIN/.well-known/autoconfig/mail/config-v1.1.xml */
static void serve_autoconfig(struct web *web, struct evhttp_request *req)
{
	char domain[AUTOCONFIG_DOMAIN_MAX + 1];
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *query = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
	struct evkeyvalq params;
	const char *email = NULL;
	bool parsed = query != NULL && evhttp_parse_query_str(query, &params) == 0;
	if (parsed)
		email = evhttp_find_header(&params, "emailaddress");
	int ok = email != NULL ? autoconfig_email_domain(email, domain, sizeof(domain)) :
		 autoconfig_host_domain(request_host(req), "autoconfig", 0, domain,
					sizeof(domain));
	if (parsed)
		evhttp_clear_headers(&params);
	if (ok < 0 || !hosted(web, domain)) {
		web_error(req, "https", 404, "no mail settings for this domain");
		return;
	}
	struct buf body = BUF_INIT;
	autoconfig_thunderbird(web->cfg, domain, &body);
	web_send(req, "https", 200, "application/xml; charset=utf-8", &body);
	buf_free(&body);
}

/* Outlook POSTs <Autodiscover><Request><EMailAddress>A</EMailAddress>...
 * to https://autodiscover.DOMAIN/autodiscover/autodiscover.xml */
static void serve_autodiscover(struct web *web, struct evhttp_request *req)
{
	char email[AUTOCONFIG_EMAIL_MAX + 1], domain[AUTOCONFIG_DOMAIN_MAX + 1];
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const char *body_in = len > 0 ? (const char *)evbuffer_pullup(in, -1) : "";
	bool have_email = autoconfig_autodiscover_email(body_in, len, email, sizeof(email)) == 0;
	int ok = have_email ? autoconfig_email_domain(email, domain, sizeof(domain)) :
		 autoconfig_host_domain(request_host(req), "autodiscover", 0, domain,
					sizeof(domain));
	if (ok < 0 || !hosted(web, domain)) {
		web_error(req, "https", 404, "no mail settings for this domain");
		return;
	}
	struct buf body = BUF_INIT;
	autoconfig_autodiscover(web->cfg, have_email ? email : NULL, &body);
	web_send(req, "https", 200, "application/xml; charset=utf-8", &body);
	buf_free(&body);
}

static const struct route {
	const char *path;           /* compared without case: Outlook varies it */
	bool post;                  /* POST allowed besides GET and HEAD */
	void (*serve)(struct web *web, struct evhttp_request *req);
} routes[] = {
	{ "/.well-known/mta-sts.txt", false, serve_mta_sts },
	{ "/.well-known/autoconfig/mail/config-v1.1.xml", false, serve_autoconfig },
	{ "/mail/config-v1.1.xml", false, serve_autoconfig },
	{ "/autodiscover/autodiscover.xml", true, serve_autodiscover },
};

static void https_cb(struct evhttp_request *req, void *arg)
{
	struct web *web = arg;
	const char *path = request_path(req);
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (strcasecmp(path, routes[i].path) != 0)
			continue;
		if (cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD ||
		    (cmd == EVHTTP_REQ_POST && routes[i].post))
			routes[i].serve(web, req);
		else
			web_error(req, "https", 405, routes[i].post ? "GET or POST" : "GET only");
		return;
	}
	web_error(req, "https", 404, "not found");
}

/* Every HTTPS connection starts with the TLS handshake. */
static struct bufferevent *https_bev_cb(struct event_base *base, void *arg)
{
	struct web *web = arg;
	SSL *ssl = SSL_new(web->ssl_ctx);
	if (ssl == NULL)
		fatal("event=ssl-new-failed");   /* never a plain connection instead */
	struct bufferevent *bev = bufferevent_openssl_socket_new(base, -1, ssl,
		BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL)
		fatal("event=bufferevent-failed");
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

static struct evhttp *web_listen(struct web *web, int fd, bool tls,
				 void (*cb)(struct evhttp_request *, void *))
{
	struct evhttp *http = evhttp_new(web->base);
	if (http == NULL)
		fatal("event=evhttp-failed");
	evhttp_set_timeout(http, HTTP_TIMEOUT_SECS);
	evhttp_set_max_headers_size(http, HTTP_MAX_HEADERS);
	evhttp_set_max_body_size(http, HTTP_MAX_BODY);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD |
				   (tls ? EVHTTP_REQ_POST : 0));
	evhttp_set_gencb(http, cb, web);
	if (tls)
		evhttp_set_bevcb(http, https_bev_cb, web);
	if (evhttp_accept_socket_with_handle(http, fd) == NULL)
		fatal("event=http-listen-failed");
	return http;
}

static void web_sigterm_cb(evutil_socket_t sig, short what, void *arg)
{
	struct web *web = arg;
	event_base_loopbreak(web->base);
}

static void web_periodic_cb(evutil_socket_t fd, short what, void *arg)
{
	struct web *web = arg;
	web->setup->child_periodic(web->services);
}

int http_main(const struct server_setup *setup, SSL_CTX *ssl_ctx, int metrics_fd,
	      int https_fd, struct services *services)
{
	struct web web;
	memset(&web, 0, sizeof(web));
	web.setup = setup;
	web.cfg = setup->cfg;
	web.ssl_ctx = ssl_ctx;
	web.services = services;
	web.base = event_base_new();
	if (web.base == NULL)
		fatal("event=event-base-failed");
	if (metrics_fd >= 0)
		web.metrics = web_listen(&web, metrics_fd, false, metrics_cb);
	if (https_fd >= 0)
		web.https = web_listen(&web, https_fd, true, https_cb);
	web.sigterm_ev = evsignal_new(web.base, SIGTERM, web_sigterm_cb, &web);
	evsignal_add(web.sigterm_ev, NULL);
	if (setup->child_periodic != NULL) {
		struct timeval tv = { SERVER_PERIODIC_SECS, 0 };
		web.periodic_ev = event_new(web.base, -1, EV_PERSIST, web_periodic_cb, &web);
		event_add(web.periodic_ev, &tv);
	}
	log_info("event=web-ready metrics=%s https=%s",
		 setup->cfg->listen_metrics ? setup->cfg->listen_metrics : "off",
		 setup->cfg->listen_https ? setup->cfg->listen_https : "off");
	event_base_dispatch(web.base);

	/* replies are small and go at once: nothing is drained */
	if (web.metrics != NULL)
		evhttp_free(web.metrics);
	if (web.https != NULL)
		evhttp_free(web.https);
	event_free(web.sigterm_ev);
	if (web.periodic_ev != NULL)
		event_free(web.periodic_ev);
	event_base_free(web.base);
	ERR_clear_error();
	log_info("event=web-exit");
	return 0;
}

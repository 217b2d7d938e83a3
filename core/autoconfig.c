/* Mail client set-up documents and the parsers of what a request brings
 * (autoconfig.h). */
#include "core/autoconfig.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* ---- parsing ---- */

static bool is_ldh(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Copies a domain name of len bytes, lowercased, checking its labels. */
static int domain_copy(const char *src, size_t len, char *out, size_t size)
{
	if (len > 0 && src[len - 1] == '.')
		len--;
	if (len == 0 || len > AUTOCONFIG_DOMAIN_MAX || len >= size)
		return -1;
	size_t label = 0;
	for (size_t i = 0; i < len; i++) {
		char c = lower(src[i]);
		if (c == '.') {
			if (label == 0 || out[i - 1] == '-')
				return -1;
			label = 0;
		} else if (is_ldh(c) && !(c == '-' && label == 0) && label < 63) {
			label++;
		} else {
			return -1;
		}
		out[i] = c;
	}
	if (out[len - 1] == '-' || out[len - 1] == '.' || memchr(out, '.', len) == NULL)
		return -1;    /* a hosted domain has at least two labels */
	out[len] = '\0';
	return 0;
}

int autoconfig_host_domain(const char *host, const char *label, int required, char *out,
			   size_t size)
{
	size_t len = strcspn(host, ":");   /* no IPv6 literal is a hosted domain */
	if (host[0] == '[')
		return -1;
	if (domain_copy(host, len, out, size) < 0)
		return -1;
	size_t label_len = label != NULL ? strlen(label) : 0;
	if (label_len > 0 && strncmp(out, label, label_len) == 0 && out[label_len] == '.' &&
	    strchr(out + label_len + 1, '.') != NULL) {
		memmove(out, out + label_len + 1, strlen(out + label_len + 1) + 1);
		return 0;
	}
	return required ? -1 : 0;
}

static bool is_atext(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%*+-/=?^_`{|}~", c) != NULL);
}

int autoconfig_email_domain(const char *email, char *domain_out, size_t size)
{
	const char *at = strrchr(email, '@');
	size_t total = strlen(email);
	if (at == NULL || at == email || total > AUTOCONFIG_EMAIL_MAX)
		return -1;
	/* dot-atom only: what is echoed into XML needs no escaping beyond
	 * what the writer does anyway, and quoted local parts are rare */
	bool dot_ok = false;
	for (const char *p = email; p < at; p++) {
		if (*p == '.') {
			if (!dot_ok)
				return -1;
			dot_ok = false;
		} else if (is_atext(*p)) {
			dot_ok = true;
		} else {
			return -1;
		}
	}
	if (!dot_ok || (size_t)(at - email) > 64)
		return -1;
	return domain_copy(at + 1, strlen(at + 1), domain_out, size);
}

int autoconfig_autodiscover_email(const char *body, size_t len, char *out, size_t size)
{
	static const char name[] = "EMailAddress";
	const size_t name_len = sizeof(name) - 1;
	for (size_t i = 0; i + name_len < len; i++) {
		if (memcmp(body + i, name, name_len) != 0 || body[i + name_len] != '>')
			continue;
		/* the start tag: "<EMailAddress>" or "<prefix:EMailAddress>" */
		size_t j = i;
		if (j > 0 && body[j - 1] == ':') {
			j--;
			while (j > 0 && (is_ldh(lower(body[j - 1])) || body[j - 1] == '_'))
				j--;
		}
		if (j == 0 || body[j - 1] != '<')
			continue;
		size_t start = i + name_len + 1, end = start;
		while (end < len && body[end] != '<')
			end++;
		if (end == len)
			return -1;   /* cut short: not the whole address */
		while (start < end && (body[start] == ' ' || body[start] == '\t' ||
				       body[start] == '\r' || body[start] == '\n'))
			start++;
		while (end > start && (body[end - 1] == ' ' || body[end - 1] == '\t' ||
				       body[end - 1] == '\r' || body[end - 1] == '\n'))
			end--;
		if (end - start > AUTOCONFIG_EMAIL_MAX || end - start >= size)
			return -1;
		memcpy(out, body + start, end - start);
		out[end - start] = '\0';
		char domain[AUTOCONFIG_DOMAIN_MAX + 1];
		if (memchr(out, '\0', end - start) != NULL ||
		    autoconfig_email_domain(out, domain, sizeof(domain)) < 0)
			return -1;
		return 0;
	}
	return -1;
}

/* ---- documents ---- */

static void xml_text(struct buf *out, const char *s)
{
	for (; *s != '\0'; s++) {
		switch (*s) {
		case '<': buf_append_str(out, "&lt;"); break;
		case '>': buf_append_str(out, "&gt;"); break;
		case '&': buf_append_str(out, "&amp;"); break;
		case '"': buf_append_str(out, "&quot;"); break;
		case '\'': buf_append_str(out, "&apos;"); break;
		default:
			if ((unsigned char)*s >= 0x20)
				buf_append_char(out, *s);
		}
	}
}

/* A listener clients may use: its port, 0 when it is off. */
static int listener_port(const struct config *cfg, enum listener_kind kind)
{
	char host[256];
	int port;
	if (cfg->listen[kind] == NULL ||
	    config_split_hostport(cfg->listen[kind], host, sizeof(host), &port) < 0)
		return 0;
	return port;
}

struct offer {
	const char *type;           /* Thunderbird's, lower case */
	const char *pox_type;       /* Autodiscover's */
	bool incoming;
	enum listener_kind kind;
	bool implicit_tls;
};

/* In order of preference: implicit TLS before STARTTLS (RFC 8314 3.3),
 * IMAP before POP3. Port 25 is for other servers, never offered. */
static const struct offer offers[] = {
	{ "imap", "IMAP", true, LISTEN_IMAPS, true },
	{ "imap", "IMAP", true, LISTEN_IMAP, false },
	{ "pop3", "POP3", true, LISTEN_POP3S, true },
	{ "pop3", "POP3", true, LISTEN_POP3, false },
	{ "smtp", "SMTP", false, LISTEN_SUBMISSIONS, true },
	{ "smtp", "SMTP", false, LISTEN_SUBMISSION, false },
};

void autoconfig_thunderbird(const struct config *cfg, const char *domain, struct buf *out)
{
	buf_append_str(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
			    "<clientConfig version=\"1.1\">\n  <emailProvider id=\"");
	xml_text(out, domain);
	buf_append_str(out, "\">\n    <domain>");
	xml_text(out, domain);
	buf_append_str(out, "</domain>\n    <displayName>");
	xml_text(out, domain);
	buf_append_str(out, "</displayName>\n    <displayShortName>");
	xml_text(out, domain);
	buf_append_str(out, "</displayShortName>\n");
	for (size_t i = 0; i < sizeof(offers) / sizeof(offers[0]); i++) {
		int port = listener_port(cfg, offers[i].kind);
		if (port == 0)
			continue;
		const char *element = offers[i].incoming ? "incomingServer" : "outgoingServer";
		buf_printf(out, "    <%s type=\"%s\">\n      <hostname>", element, offers[i].type);
		xml_text(out, cfg->hostname);
		buf_printf(out, "</hostname>\n      <port>%d</port>\n"
			   "      <socketType>%s</socketType>\n"
			   "      <authentication>password-cleartext</authentication>\n"
			   "      <username>%%EMAILADDRESS%%</username>\n    </%s>\n",
			   port, offers[i].implicit_tls ? "SSL" : "STARTTLS", element);
	}
	buf_append_str(out, "  </emailProvider>\n</clientConfig>\n");
}

void autoconfig_autodiscover(const struct config *cfg, const char *email, struct buf *out)
{
	buf_append_str(out,
		"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
		"<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006\">\n"
		"  <Response xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a\">\n"
		"    <Account>\n      <AccountType>email</AccountType>\n      <Action>settings</Action>\n");
	const char *done = "";
	for (size_t i = 0; i < sizeof(offers) / sizeof(offers[0]); i++) {
		int port = listener_port(cfg, offers[i].kind);
		/* one entry per protocol: the preferred listener that is on */
		if (port == 0 || strcmp(done, offers[i].pox_type) == 0)
			continue;
		done = offers[i].pox_type;
		buf_printf(out, "      <Protocol>\n        <Type>%s</Type>\n        <Server>",
			   offers[i].pox_type);
		xml_text(out, cfg->hostname);
		buf_printf(out, "</Server>\n        <Port>%d</Port>\n"
			   "        <DomainRequired>off</DomainRequired>\n", port);
		if (email != NULL) {
			buf_append_str(out, "        <LoginName>");
			xml_text(out, email);
			buf_append_str(out, "</LoginName>\n");
		}
		buf_printf(out, "        <SPA>off</SPA>\n        <SSL>on</SSL>\n"
			   "        <Encryption>%s</Encryption>\n"
			   "        <AuthRequired>on</AuthRequired>\n",
			   offers[i].implicit_tls ? "SSL" : "TLS");
		if (!offers[i].incoming)
			buf_append_str(out, "        <UsePOPAuth>off</UsePOPAuth>\n"
					    "        <SMTPLast>off</SMTPLast>\n");
		buf_append_str(out, "      </Protocol>\n");
	}
	buf_append_str(out, "    </Account>\n  </Response>\n</Autodiscover>\n");
}

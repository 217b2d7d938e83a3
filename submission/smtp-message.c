#include "submission/smtp-message.h"
#include "core/core.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void smtp_rfc5322_date(time_t t, char *out, size_t out_size)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, out_size, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

void smtp_message_init(struct smtp_message *m, const char *trace, bool add_missing,
		       const char *hostname,
		       void (*write)(void *ctx, const char *data, size_t len), void *ctx)
{
	memset(m, 0, sizeof(*m));
	m->add_missing = add_missing;
	m->hostname = hostname;
	m->write = write;
	m->ctx = ctx;
	buf_init(&m->header);
	if (trace != NULL)
		write(ctx, trace, strlen(trace));
}

void smtp_message_free(struct smtp_message *m)
{
	buf_free(&m->header);
	for (int i = 0; i < m->from_count; i++)
		free(m->from[i]);
	m->from_count = 0;
}

/* ---- RFC 5322 address lists, just enough to find the addr-specs ---- */

struct addr_scan {
	const char *p, *end;
};

static void skip_cfws(struct addr_scan *s)
{
	for (;;) {
		while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\r' ||
					 *s->p == '\n'))
			s->p++;
		if (s->p < s->end && *s->p == '(') {
			int depth = 0;
			while (s->p < s->end) {
				if (*s->p == '\\' && s->p + 1 < s->end)
					s->p++;
				else if (*s->p == '(')
					depth++;
				else if (*s->p == ')' && --depth == 0) {
					s->p++;
					break;
				}
				s->p++;
			}
			continue;
		}
		return;
	}
}

/* Appends a word (atom, or quoted string kept with its quotes). */
static bool scan_word(struct addr_scan *s, struct buf *out)
{
	skip_cfws(s);
	if (s->p >= s->end)
		return false;
	if (*s->p == '"') {
		const char *start = s->p++;
		while (s->p < s->end && *s->p != '"') {
			if (*s->p == '\\' && s->p + 1 < s->end)
				s->p++;
			s->p++;
		}
		if (s->p >= s->end)
			return false;
		s->p++;
		buf_append(out, start, (size_t)(s->p - start));
		return true;
	}
	const char *start = s->p;
	while (s->p < s->end && strchr("()<>[]:;@\\,.\" \t\r\n", *s->p) == NULL)
		s->p++;
	if (s->p == start)
		return false;
	buf_append(out, start, (size_t)(s->p - start));
	return true;
}

/* word *("." word): a dot-atom local part or domain (obsolete forms with
 * comments around the dots allowed). */
static bool scan_dotted(struct addr_scan *s, struct buf *out)
{
	if (!scan_word(s, out))
		return false;
	for (;;) {
		skip_cfws(s);
		if (s->p >= s->end || *s->p != '.')
			return true;
		s->p++;
		buf_append_char(out, '.');
		if (!scan_word(s, out))
			return false;
	}
}

/* addr-spec = local-part "@" domain; the domain is lowercased. */
static char *scan_addr_spec(struct addr_scan *s)
{
	struct buf a = BUF_INIT;
	if (!scan_dotted(s, &a))
		goto fail;
	if (s->p >= s->end || *s->p != '@')
		goto fail;
	s->p++;
	buf_append_char(&a, '@');
	size_t domain_at = a.len;
	skip_cfws(s);
	if (s->p < s->end && *s->p == '[') {
		const char *start = s->p;
		while (s->p < s->end && *s->p != ']')
			s->p++;
		if (s->p >= s->end)
			goto fail;
		s->p++;
		buf_append(&a, start, (size_t)(s->p - start));
	} else if (!scan_dotted(s, &a)) {
		goto fail;
	}
	for (size_t i = domain_at; i < a.len; i++) {
		if (a.data[i] >= 'A' && a.data[i] <= 'Z')
			a.data[i] = (char)(a.data[i] + 32);
	}
	return a.data;
fail:
	buf_free(&a);
	return NULL;
}

int smtp_address_list(const char *value, size_t len, char **out, int max)
{
	struct addr_scan s = { value, value + len };
	int count = 0;
	for (;;) {
		skip_cfws(&s);
		if (s.p >= s.end)
			break;
		if (*s.p == ',' || *s.p == ';') {
			s.p++;
			continue;
		}
		/* find what ends this mailbox: '<' means name-addr, ':' a group */
		const char *q = s.p;
		bool in_quote = false;
		int depth = 0;
		char stop = '\0';
		for (; q < s.end; q++) {
			if (*q == '\\' && q + 1 < s.end) {
				q++;
				continue;
			}
			if (in_quote) {
				if (*q == '"')
					in_quote = false;
				continue;
			}
			if (*q == '"')
				in_quote = true;
			else if (*q == '(')
				depth++;
			else if (*q == ')' && depth > 0)
				depth--;
			else if (depth == 0 && strchr("<:,;", *q) != NULL) {
				stop = *q;
				break;
			}
		}
		char *addr;
		if (stop == ':') {          /* group: "name:" then its members */
			s.p = q + 1;
			continue;
		} else if (stop == '<') {
			s.p = q + 1;
			skip_cfws(&s);
			if (s.p < s.end && *s.p == '@') {   /* obsolete route */
				while (s.p < s.end && *s.p != ':')
					s.p++;
				if (s.p < s.end)
					s.p++;
			}
			addr = scan_addr_spec(&s);
			skip_cfws(&s);
			if (addr == NULL || s.p >= s.end || *s.p != '>') {
				free(addr);
				goto fail;
			}
			s.p++;
		} else {
			addr = scan_addr_spec(&s);
			if (addr == NULL)
				goto fail;
		}
		if (count < max)
			out[count++] = addr;
		else
			free(addr);
		skip_cfws(&s);
		if (s.p < s.end && *s.p != ',' && *s.p != ';')
			goto fail;
	}
	return count;
fail:
	for (int i = 0; i < count; i++)
		free(out[i]);
	return -1;
}

/* ---- header block ---- */

static bool field_is(const char *line, size_t len, const char *name)
{
	size_t n = strlen(name);
	if (len <= n || ascii_strncasecmp(line, name, n) != 0)
		return false;
	/* "Name:" or "Name :" */
	size_t i = n;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	return i < len && line[i] == ':';
}

static void analyze_field(struct smtp_message *m, const char *field, size_t len)
{
	if (field_is(field, len, "Received"))
		m->received_count++;
	else if (field_is(field, len, "Date"))
		m->has_date = true;
	else if (field_is(field, len, "Message-ID"))
		m->has_message_id = true;
	else if (field_is(field, len, "From")) {
		const char *colon = memchr(field, ':', len);
		if (m->has_from) {
			m->from_unparsable = true;   /* two From: fields */
			return;
		}
		m->has_from = true;
		int n = smtp_address_list(colon + 1, len - (size_t)(colon + 1 - field),
					  m->from + m->from_count,
					  SMTP_MAX_FROM_ADDRESSES - m->from_count);
		if (n <= 0)
			m->from_unparsable = true;
		else
			m->from_count += n;
	}
}

static void header_end(struct smtp_message *m, const char *blank, size_t blank_len)
{
	/* walk the held fields (a field = a line plus its continuation lines) */
	const char *h = buf_str(&m->header);
	size_t len = m->header.len;
	size_t start = 0, written = 0;
	for (size_t i = 0; i < len;) {
		const char *lf = memchr(h + i, '\n', len - i);
		size_t next = lf != NULL ? (size_t)(lf - h) + 1 : len;
		if (next < len && (h[next] == ' ' || h[next] == '\t')) {
			i = next;
			continue;
		}
		/* a Return-Path: is only ever added at final delivery (RFC 5321
		 * 4.4): one that comes with the message is dropped, as Postfix
		 * does (message_drop_headers) */
		if (field_is(h + start, next - start, "Return-Path")) {
			if (start > written)
				m->write(m->ctx, h + written, start - written);
			written = next;
		} else {
			analyze_field(m, h + start, next - start);
		}
		start = i = next;
	}
	if (len > written)
		m->write(m->ctx, h + written, len - written);
	if (m->add_missing) {
		char line[512];
		if (!m->has_date) {
			char date[64];
			smtp_rfc5322_date(time(NULL), date, sizeof(date));
			snprintf(line, sizeof(line), "Date: %s\r\n", date);
			m->write(m->ctx, line, strlen(line));
		}
		if (!m->has_message_id) {
			unsigned char rnd[12];
			char hex[25];
			if (RAND_bytes(rnd, sizeof(rnd)) != 1)
				fatal("event=rand-failed");
			for (size_t i = 0; i < sizeof(rnd); i++)
				snprintf(hex + i * 2, 3, "%02x", rnd[i]);
			snprintf(line, sizeof(line), "Message-ID: <%lld.%s@%s>\r\n",
				 (long long)time(NULL), hex, m->hostname);
			m->write(m->ctx, line, strlen(line));
		}
	}
	if (blank_len > 0)
		m->write(m->ctx, blank, blank_len);
	buf_free(&m->header);
	m->in_body = true;
}

/* Does this complete line look like a header field or a continuation? */
static bool header_line_ok(const char *line, size_t len)
{
	if (line[0] == ' ' || line[0] == '\t')
		return true;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if (c == ':')
			return i > 0;
		if (c <= 32 || c >= 127)
			return false;
	}
	return false;
}

void smtp_message_feed(struct smtp_message *m, const char *data, size_t len)
{
	size_t i = 0;
	while (i < len && !m->in_body) {
		const char *lf = memchr(data + i, '\n', len - i);
		size_t n = lf != NULL ? (size_t)(lf - (data + i)) + 1 : len - i;
		buf_append(&m->header, data + i, n);
		i += n;
		if (lf == NULL)
			break;
		/* a complete line sits at line_start */
		const char *line = m->header.data + m->line_start;
		size_t line_len = m->header.len - m->line_start;
		if (line_len <= 2 && (line[0] == '\r' || line[0] == '\n')) {
			m->header.len = m->line_start;   /* the blank line itself */
			header_end(m, line_len == 2 ? "\r\n" : "\n", line_len);
			break;
		}
		if (!header_line_ok(line, line_len)) {
			/* no blank line before the body: end the header block
			 * before this line and keep it as body */
			char *copy = xstrndup(line, line_len);
			size_t copy_len = line_len;
			m->header.len = m->line_start;
			header_end(m, "\r\n", 2);
			m->write(m->ctx, copy, copy_len);
			free(copy);
			break;
		}
		m->line_start = m->header.len;
		if (m->header.len > SMTP_MAX_HEADER_BLOCK) {
			header_end(m, NULL, 0);   /* absurd header: stop holding it */
			break;
		}
	}
	if (i < len)
		m->write(m->ctx, data + i, len - i);
}

void smtp_message_finish(struct smtp_message *m)
{
	if (!m->in_body)
		header_end(m, NULL, 0);
}

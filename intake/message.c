/* The bytes of a message, as they come: the line-ending rule, the header
 * block held and checked field by field, the fields written once, the
 * filters fed, and the one file written.
 *
 *   intake_write -> line rule (bare CR/LF refused or made CRLF, line
 *   length, size) -> header block (held, bounded) or body -> filters and
 *   the output file
 *
 * Everything past the line rule is CRLF text, except a BINARYMIME body,
 * which passes as it is. */
#include "intake/intake-private.h"
#include "core/services.h"
#include "mail/mail.h"
#include "queue/queue.h"
#include "store/store.h"

#include <errno.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_LINE 998   /* octets before CRLF (RFC 5321 4.5.3.1.6) */

/* ---- the output file ---------------------------------------------------- */

int message_out_flush(struct intake *job)
{
	const char *error;
	if (job->out_len == 0 || job->write_error != NULL) {
		job->out_len = 0;
		return job->write_error != NULL ? -1 : 0;
	}
	int r = 0;
	if (job->delivery != NULL) {
		r = store_delivery_write(job->delivery, job->out, job->out_len, &error);
		if (r < 0)
			job->write_nospace = r == STORE_ERR_NOSPACE;
	} else if (job->spool != NULL) {
		r = queue_writer_write(job->spool, job->out, job->out_len, &error);
		if (r < 0)
			job->write_nospace = errno == ENOSPC || errno == EDQUOT;
	} else {
		r = -1;
		error = "no output file";
	}
	job->out_len = 0;
	if (r < 0) {
		job->write_error = pool_strdup(job->pool, error);
		return -1;
	}
	return 0;
}

void message_out(struct intake *job, const char *data, size_t len)
{
	while (len > 0 && job->write_error == NULL) {
		if (job->out_len == sizeof(job->out))
			message_out_flush(job);
		size_t n = sizeof(job->out) - job->out_len;
		if (n > len)
			n = len;
		memcpy(job->out + job->out_len, data, n);
		job->out_len += n;
		data += n;
		len -= n;
	}
}

static void out_str(struct intake *job, const char *s)
{
	message_out(job, s, strlen(s));
}

/* ---- trace fields (RFC 5321 4.4) --------------------------------------- */

/* "Return-Path: <sender>", on the copies written into the store (final
 * delivery) and nowhere else. */
void message_return_path(const struct intake *job, struct buf *out)
{
	buf_append_str(out, "Return-Path: <");
	buf_append_sanitized(out, job->env.sender, strlen(job->env.sender));
	buf_append_str(out, ">\r\n");
}

static void received(const struct intake *job, struct buf *b)
{
	const struct intake_envelope *e = &job->env;
	const char *host = job->cfg->hostname;
	char date[MAIL_DATE_MAX];
	mail_date_format(time(NULL), date, sizeof(date));
	buf_append_str(b, "Received: ");
	if (e->origin == INTAKE_SUBMISSION || e->origin == INTAKE_INBOUND) {
		const char *with = e->smtputf8 ? "UTF8SMTP" : "ESMTP";
		const char *helo = e->helo != NULL ? e->helo : "unknown";
		buf_append_str(b, "from ");
		buf_append_sanitized(b, helo, strlen(helo));
		buf_printf(b, " ([%s])\r\n\tby %s (Postern) with %s%s%s id %s",
			   e->remote_ip != NULL ? e->remote_ip : "127.0.0.1", host,
			   !e->esmtp ? "SMTP" : with, e->tls != NULL ? "S" : "",
			   e->user != NULL ? "A" : "", job->id);
		if (e->tls != NULL) {
			buf_append_str(b, "\r\n\t(");
			buf_append_sanitized(b, e->tls, strlen(e->tls));
			buf_append_char(b, ')');
		}
		if (e->user != NULL) {
			buf_append_str(b, "\r\n\t(authenticated user ");
			buf_append_sanitized(b, e->user, strlen(e->user));
			buf_append_char(b, ')');
		}
	} else {
		buf_printf(b, "by %s (Postern) with %s id %s", host,
			   e->origin == INTAKE_REPORT ? "report" : "local", job->id);
	}
	if (job->rcpt_count == 1) {
		const char *to = job->rcpts[0].address;
		buf_append_str(b, "\r\n\tfor <");
		buf_append_sanitized(b, to, strlen(to));
		buf_append_char(b, '>');
	}
	buf_printf(b, ";\r\n\t%s\r\n", date);
}

/* ---- the header block -------------------------------------------------- */

static bool held(const struct intake *job)
{
	return job->write_error == NULL && (job->errors & ~(unsigned)BYTES_NUL) == 0;
}

/* Does this complete line start a header field ("Name:")? */
static bool field_line(const char *line, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if (c == ':')
			return i > 0;
		if (c <= 32 || c >= 127)
			return false;
	}
	return false;
}

static bool checks_header(const struct intake *job)
{
	return job->env.origin != INTAKE_RETRY;
}

/* A complete field: checked, shown to the filters, kept or dropped. */
static void field_done(struct intake *job)
{
	const char *f = job->field.data;
	size_t len = job->field.len;
	if (len == 0)
		return;
	bool keep = true;
	if (mail_field_is(f, len, "Return-Path")) {
		/* only ever added at final delivery (RFC 5321 4.4): one that
		 * comes with the message is dropped, as Postfix does */
		keep = false;
	} else if (mail_field_is(f, len, "Received")) {
		job->received_count++;
	} else if (mail_field_is(f, len, "Date")) {
		job->has_date = true;
	} else if (mail_field_is(f, len, "Message-ID")) {
		job->has_message_id = true;
	} else if (mail_field_is(f, len, "From")) {
		const char *colon = memchr(f, ':', len);
		char *value = mail_unfold(colon + 1, len - (size_t)(colon + 1 - f));
		if (job->from_fields++ > 0)
			buf_append_char(&job->from_values, '\n');
		if (job->from_values.len < 65536)
			buf_append_str(&job->from_values, value);
		free(value);
	}
	if (keep && job->run != NULL)
		keep = filter_run_header(job->run, f, len);
	if (keep)
		buf_append(&job->kept, f, len);
	buf_reset(&job->field);
}

static void add_field(struct intake *job, const char *field)
{
	if (job->run != NULL)
		filter_run_header(job->run, field, strlen(field));
	buf_append_str(&job->kept, field);
}

/* The header block ended (blank: with its blank line). Fields Postern
 * adds are added, the filters told, and the block written after the
 * trace fields. */
static void header_end(struct intake *job, bool blank)
{
	field_done(job);
	if (job->env.origin == INTAKE_SUBMISSION) {
		/* RFC 6409 8.3, 8.6 */
		char line[512];
		if (!job->has_date) {
			char date[MAIL_DATE_MAX];
			mail_date_format(time(NULL), date, sizeof(date));
			snprintf(line, sizeof(line), "Date: %s\r\n", date);
			add_field(job, line);
		}
		if (!job->has_message_id) {
			unsigned char rnd[12];
			char hex[25];
			if (RAND_bytes(rnd, sizeof(rnd)) != 1)
				fatal("event=rand-failed");
			for (size_t i = 0; i < sizeof(rnd); i++)
				snprintf(hex + i * 2, 3, "%02x", rnd[i]);
			snprintf(line, sizeof(line), "Message-ID: <%lld.%s@%s>\r\n",
				 (long long)time(NULL), hex, job->cfg->hostname);
			add_field(job, line);
		}
	}
	if (job->run != NULL)
		filter_run_header_end(job->run);
	if (held(job)) {
		message_out(job, job->kept.data != NULL ? job->kept.data : "", job->kept.len);
		if (blank)
			out_str(job, "\r\n");
	}
	buf_free(&job->kept);
	job->in_body = true;
}

static void body(struct intake *job, const char *data, size_t len)
{
	if (job->run != NULL)
		filter_run_body(job->run, data, len);
	message_out(job, data, len);
}

/* CRLF text after the line rule: lines of the header block (bounded by
 * the line rule, so pending_line stays small) until it ends, then body. */
static void take(struct intake *job, const char *data, size_t len)
{
	while (len > 0 && !job->in_body) {
		const char *lf = memchr(data, '\n', len);
		size_t n = lf != NULL ? (size_t)(lf - data) + 1 : len;
		buf_append(&job->pending_line, data, n);
		data += n;
		len -= n;
		if (job->header_size + job->pending_line.len > INTAKE_MAX_HEADER + 2) {
			/* a line that would not fit (long lines are only bounded
			 * by this for the origins without the SMTP line limit) */
			job->errors |= BYTES_HEADER_TOO_BIG;
			buf_free(&job->pending_line);
			buf_reset(&job->field);
			buf_reset(&job->kept);
			return;
		}
		if (lf == NULL)
			return;
		const char *line = job->pending_line.data;
		size_t line_len = job->pending_line.len;
		if (line_len == 2 && line[0] == '\r') {
			buf_reset(&job->pending_line);
			header_end(job, true);
			break;
		}
		job->header_size += line_len;
		if (job->header_size > INTAKE_MAX_HEADER) {
			job->errors |= BYTES_HEADER_TOO_BIG;
			buf_reset(&job->pending_line);
			buf_reset(&job->field);
			buf_reset(&job->kept);
			return;
		}
		if (line[0] == ' ' || line[0] == '\t') {
			buf_append(&job->field, line, line_len);   /* continuation */
		} else if (field_line(line, line_len)) {
			field_done(job);
			buf_append(&job->field, line, line_len);
		} else {
			/* no blank line before the body: the header ends before
			 * this line, which is body */
			job->header_size -= line_len;
			char *copy = xstrndup(line, line_len);
			buf_reset(&job->pending_line);
			header_end(job, true);
			body(job, copy, line_len);
			free(copy);
			break;
		}
		buf_reset(&job->pending_line);
	}
	if (len > 0)
		body(job, data, len);
}

/* ---- the line rule ----------------------------------------------------- */

static void emit(struct intake *job, const char *data, size_t len)
{
	if (!held(job) || len == 0)
		return;
	if (job->max_size != 0 && job->size + len > job->max_size) {
		job->errors |= BYTES_TOO_BIG;
		return;
	}
	job->size += len;
	take(job, data, len);
}

/* A CR or LF that is not part of a CRLF: refused, or a line end. */
static void bare(struct intake *job, unsigned int error, char c)
{
	if (job->in_body && job->binary_body) {
		emit(job, &c, 1);
	} else if (job->normalize) {
		emit(job, "\r\n", 2);
		job->line_len = 0;
	} else {
		job->errors |= error;
	}
}

static void line_rule(struct intake *job, const char *data, size_t len)
{
	size_t i = 0;
	while (i < len && held(job)) {
		if (job->pending_cr) {
			job->pending_cr = false;
			if (data[i] == '\n') {
				emit(job, "\r\n", 2);
				job->line_len = 0;
				i++;
				continue;
			}
			bare(job, BYTES_BARE_CR, '\r');
			continue;
		}
		size_t start = i;
		bool binary = job->in_body && job->binary_body;
		while (i < len && data[i] != '\r' && data[i] != '\n') {
			if (data[i] == '\0')
				job->errors |= BYTES_NUL;
			i++;
		}
		if (!binary && job->line_limit) {
			job->line_len += i - start;
			if (job->line_len > MAX_LINE)
				job->errors |= BYTES_LINE_TOO_LONG;
		}
		emit(job, data + start, i - start);
		if (i == len)
			break;
		if (data[i] == '\r')
			job->pending_cr = true;
		else
			bare(job, BYTES_BARE_LF, '\n');
		i++;
	}
}

/* ---- the job's side ---------------------------------------------------- */

static bool smtp_origin(const struct intake *job)
{
	return job->env.origin == INTAKE_SUBMISSION || job->env.origin == INTAKE_INBOUND;
}

void message_start(struct intake *job)
{
	const char *error;
	struct services *sv = job->sv;
	job->started = true;
	job->raw = !checks_header(job);
	job->normalize = smtp_origin(job) ? job->cfg->smtp_normalize_bare_lf : true;
	job->max_size = smtp_origin(job) || job->env.origin == INTAKE_LOCAL ||
			job->env.origin == INTAKE_INJECT ? job->cfg->smtp_max_message_size : 0;
	job->binary_body = job->env.body == INTAKE_BODY_BINARYMIME;
	/* RFC 5321 4.5.3.1.6 is SMTP's: a local MDA takes what it is given */
	job->line_limit = smtp_origin(job);
	if (!job->raw)
		job->run = filter_run_new(job);
	job->aside = job->local_count > 0 && job->run != NULL &&
		     filter_run_touches_stored(job->run);
	if (job->env.origin == INTAKE_INJECT)
		job->aside = false;   /* nothing is stored now: the spool is all */
	int r;
	if (job->local_count > 0 && !job->aside && job->env.origin != INTAKE_INJECT)
		r = store_delivery_begin(sv->store, &job->delivery, &error);
	else
		r = queue_writer_begin(sv->queue, &job->spool, &error);
	if (r < 0) {
		log_error("event=message-begin-failed error=\"%s\"", error);
		job->write_error = pool_strdup(job->pool, error);
		return;
	}
	/* the trace fields, above everything */
	struct buf trace = BUF_INIT;
	if (job->delivery != NULL)
		message_return_path(job, &trace);
	if (job->raw) {
		if (job->env.prepend != NULL)
			buf_append_str(&trace, job->env.prepend);
	} else {
		received(job, &trace);
	}
	message_out(job, buf_str(&trace), trace.len);
	buf_free(&trace);
}

bool intake_open(struct intake *job)
{
	if (!job->started)
		message_start(job);
	return job->write_error == NULL;
}

void intake_write(struct intake *job, const void *data, size_t len)
{
	if (!job->started)
		message_start(job);
	if (job->raw) {
		if (held(job)) {
			job->size += len;
			message_out(job, data, len);
		}
		return;
	}
	line_rule(job, data, len);
}

void message_finish(struct intake *job)
{
	if (!job->started)
		message_start(job);
	if (job->raw)
		return;
	if (job->pending_cr && held(job))
		bare(job, BYTES_BARE_CR, '\r');
	job->pending_cr = false;
	if (!job->in_body) {
		/* a header block that never ended, or a last line without CRLF */
		if (job->pending_line.len > 0) {
			const char *line = job->pending_line.data;
			size_t line_len = job->pending_line.len;
			job->header_size += line_len;
			if (job->header_size > INTAKE_MAX_HEADER) {
				job->errors |= BYTES_HEADER_TOO_BIG;
			} else if (line[0] == ' ' || line[0] == '\t' || field_line(line, line_len)) {
				if (line[0] != ' ' && line[0] != '\t')
					field_done(job);
				buf_append(&job->field, line, line_len);
				buf_append_str(&job->field, "\r\n");
			} else {
				char *copy = xstrndup(line, line_len);
				buf_reset(&job->pending_line);
				header_end(job, true);
				body(job, copy, line_len);
				free(copy);
			}
			buf_reset(&job->pending_line);
		}
		if (!job->in_body)
			header_end(job, false);
	}
}

void message_free(struct intake *job)
{
	store_delivery_free(&job->delivery);
	queue_writer_free(&job->spool);
	buf_free(&job->pending_line);
}

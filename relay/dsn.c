/* Delivery status notifications (RFC 3464, RFC 6522): a multipart/report
 * from the null sender with a human-readable part, the
 * message/delivery-status part and the original message (RET=FULL) or
 * its header (RET=HDRS). They are queued like any message (recipients
 * hosted here flagged local, so the relay hands them to the store) and
 * never sent for a message that came from the null sender. */
#include "relay/relay-private.h"
#include "auth/auth.h"
#include "mail/mail.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Without RET, the whole original comes back when it is small. */
#define DSN_FULL_DEFAULT_MAX (256 * 1024)
#define DSN_FULL_MAX (10 * 1024 * 1024)

static const char *const action_names[] = { "failed", "delayed", "delivered", "relayed" };
static const char *const action_subjects[] = {
	"Undelivered Mail Returned to Sender",
	"Delayed Mail (still being retried)",
	"Successful Mail Delivery Report",
	"Successful Mail Delivery Report (relayed)",
};
static const char *const action_texts[] = {
	"Your message could not be delivered to the following recipients. It will\r\n"
	"not be retried.\r\n",
	"Your message has not been delivered yet to the following recipients.\r\n"
	"Delivery is still being attempted; you need not send it again.\r\n",
	"Your message was delivered to the following recipients, as you asked.\r\n",
	"Your message was relayed to the following recipients' mail system, which\r\n"
	"cannot report its final delivery.\r\n",
};
static const char *const action_status[] = { "5.0.0", "4.0.0", "2.0.0", "2.0.0" };

bool dsn_wanted(const struct queue_rcpt *r, enum dsn_action action)
{
	if (r->notify & QUEUE_NOTIFY_NEVER)
		return false;
	if (action == DSN_DELIVERED || action == DSN_RELAYED)
		return (r->notify & QUEUE_NOTIFY_SUCCESS) != 0;
	if (r->notify == 0)
		return true;   /* RFC 3461 4.1: FAILURE (and, by our choice, DELAY) */
	return (r->notify & (action == DSN_FAILED ? QUEUE_NOTIFY_FAILURE : QUEUE_NOTIFY_DELAY)) != 0;
}

static void put_date(struct buf *b, time_t t)
{
	char text[MAIL_DATE_MAX];
	mail_date_format(t, text, sizeof(text));
	buf_append_str(b, text);
}

/* "550 5.1.1 text" -> "5.1.1"; a class-only default otherwise. */
static void status_of(const struct queue_rcpt *r, enum dsn_action action, char *out,
		      size_t size)
{
	const char *e = r->last_error;
	if (e != NULL && strlen(e) > 4) {
		const char *p = e + 4;
		size_t n = strspn(p, "0123456789.");
		if (n >= 5 && n < size && (p[0] == '2' || p[0] == '4' || p[0] == '5') &&
		    p[1] == '.') {
			memcpy(out, p, n);
			out[n] = '\0';   /* after expiry a 4.x.x stays (as Postfix does) */
			return;
		}
	}
	snprintf(out, size, "%s", action_status[action]);
}

static int emit(dsn_write_fn *write, void *ctx, struct buf *b, const char **error_r)
{
	int ret = write(ctx, b->data != NULL ? b->data : "", b->len, error_r);
	buf_reset(b);
	return ret;
}

/* Copies the original (or its header block) from the spool. */
static int copy_original(const char *spool_path, bool headers_only, dsn_write_fn *write,
			 void *ctx, const char **error_r)
{
	static char err[300];
	int fd = open(spool_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, sizeof(err), "cannot open %s: %s", spool_path, strerror(errno));
		*error_r = err;
		return -1;
	}
	char chunk[65536];
	bool line_start = true;
	int ret = 0;
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n < 0) {
				snprintf(err, sizeof(err), "reading %s: %s", spool_path,
					 strerror(errno));
				*error_r = err;
				ret = -1;
			}
			break;
		}
		size_t len = (size_t)n;
		if (headers_only) {
			/* stop after the empty line that ends the header */
			size_t i;
			bool end = false;
			for (i = 0; i < len && !end; i++) {
				char ch = chunk[i];
				if (ch == '\n') {
					if (line_start)
						end = true;
					line_start = true;
				} else if (ch != '\r') {
					line_start = false;
				}
			}
			len = i;
			if (write(ctx, chunk, len, error_r) < 0) {
				ret = -1;
				break;
			}
			if (end)
				break;
			continue;
		}
		if (write(ctx, chunk, len, error_r) < 0) {
			ret = -1;
			break;
		}
	}
	close(fd);
	return ret;
}

int dsn_compose(const char *hostname, const struct queue_entry *e, const bool *which,
		enum dsn_action action, time_t retry_until, const char *spool_path,
		dsn_write_fn *write, void *ctx, const char **error_r)
{
	struct buf b = BUF_INIT;
	time_t now = time(NULL);
	bool success = action == DSN_DELIVERED || action == DSN_RELAYED;
	/* a success report carries the whole message only when RET=FULL */
	bool full = e->ret == QUEUE_RET_FULL ? e->size <= DSN_FULL_MAX :
		    e->ret == QUEUE_RET_HDRS || success ? false : e->size <= DSN_FULL_DEFAULT_MAX;
	char boundary[96];
	snprintf(boundary, sizeof(boundary), "=_postern-dsn-%s-%lld", e->id, (long long)now);

	buf_printf(&b, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", hostname);
	buf_printf(&b, "To: <%s>\r\n", e->sender);
	buf_printf(&b, "Subject: %s\r\n", action_subjects[action]);
	buf_append_str(&b, "Date: ");
	put_date(&b, now);
	buf_printf(&b, "\r\nMessage-ID: <%s.%lld.dsn@%s>\r\n", e->id, (long long)now, hostname);
	buf_append_str(&b, "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n");
	buf_printf(&b, "Content-Type: multipart/report; report-type=delivery-status;\r\n"
		       "\tboundary=\"%s\"\r\n\r\n", boundary);
	buf_append_str(&b, "This is a MIME-encapsulated delivery status notification.\r\n\r\n");

	/* the human-readable part */
	buf_printf(&b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n"
		       "Content-Transfer-Encoding: 8bit\r\n\r\n", boundary);
	buf_printf(&b, "This is the mail system at %s.\r\n\r\n", hostname);
	buf_append_str(&b, action_texts[action]);
	buf_append_str(&b, "\r\n");
	for (size_t i = 0; i < e->rcpt_count; i++) {
		if (!which[i])
			continue;
		const struct queue_rcpt *r = &e->rcpts[i];
		buf_printf(&b, "<%s>: %s\r\n", r->address,
			   r->last_error != NULL ? r->last_error : "no reason recorded");
	}
	if (action == DSN_DELAYED) {
		buf_append_str(&b, "\r\nDelivery will be attempted until ");
		put_date(&b, retry_until);
		buf_append_str(&b, ".\r\n");
	}
	buf_append_str(&b, "\r\n");

	/* message/delivery-status */
	buf_printf(&b, "--%s\r\nContent-Type: message/%sdelivery-status\r\n\r\n", boundary,
		   e->smtputf8 ? "global-" : "");
	buf_printf(&b, "Reporting-MTA: dns; %s\r\nX-Postern-Queue-ID: %s\r\n", hostname, e->id);
	if (e->envid != NULL)
		buf_printf(&b, "Original-Envelope-Id: %s\r\n", e->envid);
	buf_append_str(&b, "Arrival-Date: ");
	put_date(&b, e->arrival);
	buf_append_str(&b, "\r\n");
	for (size_t i = 0; i < e->rcpt_count; i++) {
		if (!which[i])
			continue;
		const struct queue_rcpt *r = &e->rcpts[i];
		char status[16];
		status_of(r, action, status, sizeof(status));
		buf_append_str(&b, "\r\n");
		if (r->orcpt != NULL)
			buf_printf(&b, "Original-Recipient: %s\r\n", r->orcpt);
		buf_printf(&b, "Final-Recipient: %s; %s\r\n", e->smtputf8 ? "utf-8" : "rfc822",
			   r->address);
		buf_printf(&b, "Action: %s\r\nStatus: %s\r\n",
			   action_names[action], status);
		if (r->last_host != NULL)
			buf_printf(&b, "Remote-MTA: dns; %s\r\n", r->last_host);
		if (r->last_error != NULL)
			buf_printf(&b, "Diagnostic-Code: %s; %s\r\n",
				   r->last_host != NULL ? "smtp" : "x-postern", r->last_error);
		if (e->last_attempt != 0) {
			buf_append_str(&b, "Last-Attempt-Date: ");
			put_date(&b, e->last_attempt);
			buf_append_str(&b, "\r\n");
		}
		if (action == DSN_DELAYED) {
			buf_append_str(&b, "Will-Retry-Until: ");
			put_date(&b, retry_until);
			buf_append_str(&b, "\r\n");
		}
	}
	buf_append_str(&b, "\r\n");

	/* the original */
	const char *type = e->smtputf8 ? (full ? "message/global" : "message/global-headers") :
			   (full ? "message/rfc822" : "text/rfc822-headers");
	buf_printf(&b, "--%s\r\nContent-Type: %s\r\n", boundary, type);
	if (full && e->body != QUEUE_BODY_7BIT && e->body != QUEUE_BODY_UNSET)
		buf_append_str(&b, "Content-Transfer-Encoding: 8bit\r\n");
	buf_append_str(&b, "\r\n");
	if (emit(write, ctx, &b, error_r) < 0 ||
	    copy_original(spool_path, !full, write, ctx, error_r) < 0) {
		buf_free(&b);
		return -1;
	}
	buf_printf(&b, "\r\n--%s--\r\n", boundary);
	int ret = emit(write, ctx, &b, error_r);
	buf_free(&b);
	return ret;
}

static int dsn_queue_write(void *ctx, const void *data, size_t len, const char **error_r)
{
	return queue_writer_write(ctx, data, len, error_r);
}

int dsn_send(const struct config *cfg, struct services *services,
	     const struct queue_entry *e, const bool *which, enum dsn_action action,
	     time_t retry_until, const char **error_r)
{
	size_t wanted = 0;
	for (size_t i = 0; i < e->rcpt_count; i++)
		wanted += which[i] ? 1 : 0;
	if (wanted == 0)
		return 0;
	if (e->sender[0] == '\0') {
		log_info("event=dsn-suppressed id=%s reason=\"null sender\"", e->id);
		return 0;
	}
	struct auth_recipients list = { NULL, 0 };
	int r = auth_resolve_recipient(services->auth, e->sender, &list, error_r);
	if (r < 0)
		return -1;
	if (r == 0 || list.count == 0) {
		log_warn("event=dsn-dropped id=%s sender=%s reason=\"no such local user\"", e->id,
			 e->sender);
		auth_recipients_free(&list);
		return 0;
	}
	struct queue_writer *w = NULL;
	char *spool = queue_spool_path(services->queue, e->id);
	int ret = -1;
	if (queue_writer_begin(services->queue, &w, error_r) < 0)
		goto out;
	if (dsn_compose(cfg->hostname, e, which, action, retry_until, spool, dsn_queue_write, w,
			error_r) < 0)
		goto out;
	struct queue_entry dsn;
	memset(&dsn, 0, sizeof(dsn));
	dsn.sender = (char *)"";
	dsn.ret = QUEUE_RET_UNSET;
	dsn.body = e->body == QUEUE_BODY_7BIT ? QUEUE_BODY_7BIT : QUEUE_BODY_8BITMIME;
	dsn.smtputf8 = e->smtputf8;
	dsn.rcpts = xcalloc(list.count, sizeof(*dsn.rcpts));
	dsn.rcpt_count = list.count;
	for (size_t i = 0; i < list.count; i++) {
		dsn.rcpts[i].address = list.items[i].address;
		dsn.rcpts[i].local = list.items[i].local;
		dsn.rcpts[i].notify = QUEUE_NOTIFY_NEVER;
		dsn.rcpts[i].state = QUEUE_RCPT_PENDING;
	}
	ret = queue_writer_commit(w, &dsn, error_r);
	if (ret == 0)
		log_info("event=dsn-queued id=%s dsn_id=%s action=%s to=%s recipients=%zu", e->id,
			 dsn.id, action_names[action], e->sender, wanted);
	free(dsn.rcpts);
out:
	queue_writer_free(&w);
	free(spool);
	auth_recipients_free(&list);
	return ret;
}

/* Delivery status notifications (RFC 3464, RFC 6522): a multipart/report
 * from the null sender with a human-readable part, the
 * message/delivery-status part and the original message (RET=FULL) or
 * its header (RET=HDRS). They are queued like any message (recipients
 * hosted here flagged local, so the relay hands them to the store) and
 * never sent for a message that came from the null sender. */
#include "relay/relay-private.h"
#include "intake/intake.h"
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

static int dsn_intake_write(void *ctx, const void *data, size_t len, const char **error_r)
{
	intake_write(ctx, data, len);
	return 0;
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
	/* a report goes through the one door like any message: to the
	 * sender's mailbox when it is hosted here, else into the queue */
	static char err[400];
	struct intake_envelope env = {
		.origin = INTAKE_REPORT,
		.sender = "",
		.body = e->body == QUEUE_BODY_7BIT ? INTAKE_BODY_7BIT : INTAKE_BODY_8BITMIME,
		.smtputf8 = e->smtputf8,
	};
	struct intake *job;
	struct intake_status st;
	if (intake_begin(services, cfg, &env, &job, &st) < 0) {
		snprintf(err, sizeof(err), "%s", st.text);
		*error_r = err;
		return -1;
	}
	/* never a report about a report */
	struct intake_rcpt_params p = { INTAKE_NOTIFY_NEVER, NULL };
	if (intake_add_rcpt(job, e->sender, &p, &st) < 0) {
		intake_free(&job);
		if (st.reply >= 500) {
			log_warn("event=dsn-dropped id=%s sender=%s reason=\"%s\"", e->id, e->sender,
				 st.text);
			return 0;
		}
		snprintf(err, sizeof(err), "%s", st.text);
		*error_r = err;
		return -1;
	}
	char *spool = queue_spool_path(services->queue, e->id);
	int ret = dsn_compose(cfg->hostname, e, which, action, retry_until, spool,
			      dsn_intake_write, job, error_r);
	free(spool);
	if (ret == 0) {
		intake_end(job, NULL, NULL, NULL);
		const struct intake_status *res = intake_result(job);
		if (res->code == INTAKE_OK) {
			log_info("event=dsn-queued id=%s dsn_id=%s action=%s to=%s recipients=%zu",
				 e->id, intake_queue_id(job)[0] != '\0' ? intake_queue_id(job) :
				 intake_id(job), action_names[action], e->sender, wanted);
		} else {
			snprintf(err, sizeof(err), "%d %s %s", res->reply, res->enhanced, res->text);
			*error_r = err;
			ret = -1;
		}
	}
	intake_free(&job);
	return ret;
}

/* RETR and TOP (RFC 1939 7): the message file is streamed in chunks as
 * the output drains, never loaded whole; line ends become CRLF, lines
 * starting with '.' are dot-stuffed, and the octets sent (without the
 * stuffing) equal the size LIST announced: the index's CRLF size. */
#include "pop3/pop3-private.h"
#include "store/store.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STREAM_CHUNK 65536
#define STREAM_LOW_WATER 65536   /* refill when less than this is queued */

struct pop3_stream {
	int fd;
	struct pop3_msg *msg;
	bool retr;
	struct pop3_convert cv;
	struct buf out;
	char in[STREAM_CHUNK];
};

void pop3_convert_init(struct pop3_convert *cv, bool top, uint32_t body_lines)
{
	memset(cv, 0, sizeof(*cv));
	cv->top = top;
	cv->body_lines = body_lines;
	cv->line_start = true;
}

void pop3_convert(struct pop3_convert *cv, const char *data, size_t len, struct buf *out)
{
	while (len > 0 && !cv->done) {
		if (cv->line_start) {
			if (cv->top && cv->in_body && cv->body_lines == 0) {
				cv->done = true;
				break;
			}
			if (data[0] == '.')
				buf_append_char(out, '.');
			cv->line_start = false;
			cv->prev_cr = false;
			cv->line_bytes = 0;
		}
		const char *lf = memchr(data, '\n', len);
		size_t n = lf != NULL ? (size_t)(lf - data) : len;
		if (n > 0) {
			buf_append(out, data, n);
			cv->octets += n;
			cv->line_bytes += n;
			cv->prev_cr = data[n - 1] == '\r';
		}
		if (lf == NULL)
			break;
		if (!cv->prev_cr) {
			buf_append_char(out, '\r');
			cv->octets++;
		}
		buf_append_char(out, '\n');
		cv->octets++;
		bool empty = cv->line_bytes == 0 || (cv->line_bytes == 1 && cv->prev_cr);
		if (!cv->in_body)
			cv->in_body = empty;   /* the blank line ends the header */
		else if (cv->top && cv->body_lines > 0)
			cv->body_lines--;
		cv->line_start = true;
		data += n + 1;
		len -= n + 1;
	}
}

void pop3_convert_finish(struct pop3_convert *cv, struct buf *out)
{
	/* a last line without a line end: the CRLF belongs to the terminator
	 * (the index's size does not count it either) */
	if (!cv->line_start)
		buf_append_str(out, "\r\n");
	buf_append_str(out, ".\r\n");
}

void pop3_stream_free(struct pop3_session *s)
{
	struct pop3_stream *st = s->stream;
	if (st == NULL)
		return;
	if (st->fd >= 0)
		close(st->fd);

	buf_free(&st->out);
	free(st);
	s->stream = NULL;
}

static void stream_mark_seen(struct pop3_session *s, struct pop3_msg *m)
{
	struct store_uidset set = STORE_UIDSET_INIT;
	const char *error = NULL;
	store_uidset_add(&set, m->uid, m->uid);
	if (store_msg_set_flags(s->mbox, &set, STORE_FLAGS_ADD, STORE_FLAG_SEEN, NULL, 0, 0,
				NULL, &error) < 0)
		log_warn("event=pop3-seen-failed uid=%u error=\"%s\"", (unsigned)m->uid,
			 error != NULL ? error : "?");
	else
		m->retrieved = true;
	store_uidset_clear(&set);
}

static void stream_done(struct pop3_session *s)
{
	struct pop3_stream *st = s->stream;
	pop3_convert_finish(&st->cv, &st->out);
	conn_write(s->conn, st->out.data, st->out.len);
	if (st->retr) {
		if (st->cv.octets != st->msg->size)
			log_warn("event=pop3-size-mismatch uid=%u listed=%" PRIu64 " sent=%" PRIu64,
				 (unsigned)st->msg->uid, st->msg->size, st->cv.octets);
		if (!st->msg->retrieved)
			stream_mark_seen(s, st->msg);
	}
	pop3_stream_free(s);
	conn_on_output_drained(s->conn, 0, NULL);
	pop3_set_state(s, POP3_STATE_TRANSACTION);
	pop3_resume(s);
}

/* Called whenever the output queue fell below the low-water mark. */
static void stream_fill(void *ctx)
{
	struct pop3_session *s = ctx;
	struct pop3_stream *st = s->stream;
	ssize_t n;
	do {
		n = read(st->fd, st->in, sizeof(st->in));
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		/* the +OK is out: nothing but closing tells the client */
		log_error("event=pop3-read-failed uid=%u error=\"%s\"", (unsigned)st->msg->uid,
			  strerror(errno));
		conn_close(s->conn, "read-error");
		return;
	}
	if (n > 0)
		pop3_convert(&st->cv, st->in, (size_t)n, &st->out);
	if (n == 0 || st->cv.done) {
		stream_done(s);
		return;
	}
	conn_write(s->conn, st->out.data, st->out.len);
	buf_reset(&st->out);
	conn_on_output_drained(s->conn, STREAM_LOW_WATER, stream_fill);
}

static void stream_start(struct pop3_session *s, struct pop3_msg *m, bool top,
			 uint32_t body_lines)
{
	int fd = -1;
	const char *error = NULL;
	int ret = store_msg_open_fd(s->mbox, m->uid, &fd, &error);
	if (ret == STORE_ERR_NOTFOUND) {
		pop3_error(s, "-ERR Message was removed by another session");
		return;
	}
	if (ret < 0) {
		log_error("event=pop3-open-failed uid=%u error=\"%s\"", (unsigned)m->uid,
			  error != NULL ? error : "?");
		pop3_error(s, "-ERR [SYS/TEMP] Cannot read the message, try again later");
		return;
	}
	struct pop3_stream *st = xcalloc(1, sizeof(*st));
	st->fd = fd;
	st->msg = m;
	st->retr = !top;
	buf_init(&st->out);
	pop3_convert_init(&st->cv, top, body_lines);
	s->stream = st;
	if (top)
		pop3_reply(s, "+OK Top of message follows");
	else
		pop3_replyf(s, "+OK %" PRIu64 " octets", m->size);
	pop3_set_state(s, POP3_STATE_STREAMING);
	conn_on_output_drained(s->conn, STREAM_LOW_WATER, stream_fill);
}

void pop3_cmd_retr(struct pop3_session *s, const struct pop3_request *req)
{
	stream_start(s, req->msg[0], false, 0);
}

void pop3_cmd_top(struct pop3_session *s, const struct pop3_request *req)
{
	stream_start(s, req->msg[0], true, req->num[1]);
}

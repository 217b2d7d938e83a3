#include "submission/smtp-data.h"

#include <string.h>

enum {
	S_LINE_START,   /* after CRLF: a dot here is stuffing or the end */
	S_DOT,          /* "." at line start */
	S_DOT_CR,       /* ".\r" at line start */
	S_TEXT,         /* inside a line */
	S_CR,           /* "\r" inside a line (or after a stuffed dot) */
	S_DONE,
};

void smtp_data_init(struct smtp_data_decoder *d, uint64_t max_size, bool normalize,
		    void (*emit)(void *ctx, const char *data, size_t len), void *ctx)
{
	memset(d, 0, sizeof(*d));
	d->state = S_LINE_START;
	d->max_size = max_size;
	d->normalize = normalize;
	d->emit = emit;
	d->ctx = ctx;
}

static void flush(struct smtp_data_decoder *d)
{
	if (d->out_len > 0 && d->emit != NULL)
		d->emit(d->ctx, d->out, d->out_len);
	d->out_len = 0;
}

static void put(struct smtp_data_decoder *d, const char *s, size_t n)
{
	if (smtp_data_refused(d))
		return;
	if (d->size + n > d->max_size) {
		d->errors |= SMTP_DATA_TOO_BIG;
		return;
	}
	d->size += n;
	for (size_t i = 0; i < n; i++) {
		if (d->out_len == sizeof(d->out))
			flush(d);
		d->out[d->out_len++] = s[i];
	}
}

static void text_byte(struct smtp_data_decoder *d, char c)
{
	if (c == '\0')
		d->errors |= SMTP_DATA_NUL;
	if (++d->line_len > SMTP_DATA_MAX_LINE)
		d->errors |= SMTP_DATA_LINE_TOO_LONG;
	put(d, &c, 1);
}

/* A bare CR or LF: an error, or a line end when normalizing. It never
 * starts a line where a dot would mean anything. */
static void bare_newline(struct smtp_data_decoder *d, unsigned int error, char c)
{
	if (d->normalize) {
		put(d, "\r\n", 2);
		d->line_len = 0;
	} else {
		d->errors |= error;
		text_byte(d, c);
	}
}

/* One byte in S_TEXT (also after a stuffed dot). */
static void in_text(struct smtp_data_decoder *d, char c)
{
	if (c == '\r') {
		d->state = S_CR;
	} else if (c == '\n') {
		bare_newline(d, SMTP_DATA_BARE_LF, c);
		d->state = S_TEXT;
	} else {
		text_byte(d, c);
		d->state = S_TEXT;
	}
}

size_t smtp_data_feed(struct smtp_data_decoder *d, const char *data, size_t len,
		      bool *done_r)
{
	size_t i;
	*done_r = false;
	for (i = 0; i < len && d->state != S_DONE; i++) {
		char c = data[i];
		switch (d->state) {
		case S_LINE_START:
			if (c == '.')
				d->state = S_DOT;
			else
				in_text(d, c);
			break;
		case S_DOT:
			if (c == '\r')
				d->state = S_DOT_CR;
			else
				in_text(d, c);   /* the stuffed dot is dropped */
			break;
		case S_DOT_CR:
			if (c == '\n') {
				d->state = S_DONE;
			} else {
				/* ".<CR>x": the CR was bare */
				bare_newline(d, SMTP_DATA_BARE_CR, '\r');
				d->state = S_TEXT;
				if (c == '\r')
					d->state = S_CR;
				else
					in_text(d, c);
			}
			break;
		case S_TEXT:
			in_text(d, c);
			break;
		case S_CR:
			if (c == '\n') {
				put(d, "\r\n", 2);
				d->line_len = 0;
				d->state = S_LINE_START;
			} else {
				bare_newline(d, SMTP_DATA_BARE_CR, '\r');
				if (c == '\r')
					d->state = S_CR;
				else
					in_text(d, c);
			}
			break;
		}
	}
	flush(d);
	if (d->state == S_DONE)
		*done_r = true;
	return i;
}

bool smtp_data_refused(const struct smtp_data_decoder *d)
{
	return (d->errors & ~(unsigned int)SMTP_DATA_NUL) != 0;
}

const char *smtp_data_error_reply(const struct smtp_data_decoder *d)
{
	if (d->errors & SMTP_DATA_TOO_BIG)
		return "552 5.3.4 Message size exceeds fixed maximum message size";
	if (d->errors & (SMTP_DATA_BARE_LF | SMTP_DATA_BARE_CR))
		return "550 5.6.0 Message contains bare CR or LF line endings (see RFC 5321 2.3.8)";
	if (d->errors & SMTP_DATA_LINE_TOO_LONG)
		return "550 5.6.0 Message contains a line longer than 1000 octets";
	return "250 2.0.0 OK";
}

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

void smtp_data_init(struct smtp_data_decoder *d,
		    void (*emit)(void *ctx, const char *data, size_t len), void *ctx)
{
	memset(d, 0, sizeof(*d));
	d->state = S_LINE_START;
	d->emit = emit;
	d->ctx = ctx;
}

static void flush(struct smtp_data_decoder *d)
{
	if (d->out_len > 0 && d->emit != NULL)
		d->emit(d->ctx, d->out, d->out_len);
	d->out_len = 0;
}

static void put(struct smtp_data_decoder *d, char c)
{
	if (d->out_len == sizeof(d->out))
		flush(d);
	d->out[d->out_len++] = c;
	d->size++;
}

/* One byte in S_TEXT (also after a stuffed dot or a bare CR). */
static void in_text(struct smtp_data_decoder *d, char c)
{
	if (c == '\r') {
		d->state = S_CR;
	} else {
		put(d, c);   /* a bare LF is text too: no dot after it counts */
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
				break;
			}
			/* ".<CR>x": the CR was bare */
			put(d, '\r');
			in_text(d, c);
			break;
		case S_TEXT:
			in_text(d, c);
			break;
		case S_CR:
			if (c == '\n') {
				put(d, '\r');
				put(d, '\n');
				d->state = S_LINE_START;
			} else {
				put(d, '\r');   /* bare */
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

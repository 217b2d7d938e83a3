#ifndef POSTERN_SMTP_DATA_H
#define POSTERN_SMTP_DATA_H

/* The DATA decoder (RFC 5321 4.1.1.4, 4.5.2): removes dot-stuffing and
 * finds the end of the message, streaming, byte-split invariant.
 *
 * Only <CR><LF>.<CR><LF> ends the data (the message's first line being
 * "." counts, as the DATA command's CRLF precedes it). A bare LF or bare
 * CR is never a line end: "<LF>.<LF>", "<LF>.<CR><LF>" and "<CR>.<CR>" do
 * not end anything, and a dot after them is kept as it is, never taken as
 * stuffing (the SMTP smuggling defence). Such bytes are passed on
 * unchanged: intake applies the line-ending rule to DATA and BDAT alike
 * (refused, or made CRLF with normalize_bare_lf), and the size limit. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct smtp_data_decoder {
	int state;
	uint64_t size;               /* bytes passed on */
	/* output: called with decoded bytes */
	void (*emit)(void *ctx, const char *data, size_t len);
	void *ctx;
	char out[8192];
	size_t out_len;
};

void smtp_data_init(struct smtp_data_decoder *d,
		    void (*emit)(void *ctx, const char *data, size_t len), void *ctx);
/* Consumes bytes until the end marker (inclusive) or the input ends.
 * Returns how many were consumed; *done_r is set when the end was seen
 * (the rest of the input belongs to the next command). */
size_t smtp_data_feed(struct smtp_data_decoder *d, const char *data, size_t len,
		      bool *done_r);

#endif

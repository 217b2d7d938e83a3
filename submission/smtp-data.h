#ifndef POSTERN_SMTP_DATA_H
#define POSTERN_SMTP_DATA_H

/* The DATA decoder (RFC 5321 4.1.1.4, 4.5.2): removes dot-stuffing and
 * finds the end of the message, streaming, byte-split invariant.
 *
 * Only <CR><LF>.<CR><LF> ends the data (the message's first line being
 * "." counts, as the DATA command's CRLF precedes it). A bare LF or bare
 * CR is never a line end: "<LF>.<LF>", "<LF>.<CR><LF>" and "<CR>.<CR>" do
 * not end anything (the SMTP smuggling defence). Such bytes are flagged;
 * with `normalize` they are written out as CRLF instead (and a dot after
 * them is kept as it is, never taken as an end or as stuffing).
 * Lines over 1000 octets with CRLF are flagged too; bytes past max_size
 * are not written and flagged. Once an error is flagged no more output is
 * written, but the decoder still finds the end so the session stays in
 * step with the client. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum smtp_data_error {
	SMTP_DATA_BARE_LF = 1 << 0,
	SMTP_DATA_BARE_CR = 1 << 1,
	SMTP_DATA_LINE_TOO_LONG = 1 << 2,
	SMTP_DATA_TOO_BIG = 1 << 3,
	SMTP_DATA_NUL = 1 << 4,     /* noted; not an error for 8BITMIME use */
};

#define SMTP_DATA_MAX_LINE 998   /* octets before CRLF */

struct smtp_data_decoder {
	int state;
	bool normalize;
	uint64_t max_size;
	uint64_t size;               /* bytes written out */
	size_t line_len;
	unsigned int errors;         /* smtp_data_error bits */
	/* output: called with decoded bytes (CRLF line ends) */
	void (*emit)(void *ctx, const char *data, size_t len);
	void *ctx;
	char out[8192];
	size_t out_len;
};

void smtp_data_init(struct smtp_data_decoder *d, uint64_t max_size, bool normalize,
		    void (*emit)(void *ctx, const char *data, size_t len), void *ctx);
/* Consumes bytes until the end marker (inclusive) or the input ends.
 * Returns how many were consumed; *done_r is set when the end was seen
 * (the rest of the input belongs to the next command). */
size_t smtp_data_feed(struct smtp_data_decoder *d, const char *data, size_t len,
		      bool *done_r);
/* True when errors make the message unacceptable (NUL alone is not). */
bool smtp_data_refused(const struct smtp_data_decoder *d);
/* The reply for a refused message. */
const char *smtp_data_error_reply(const struct smtp_data_decoder *d);

#endif

#ifndef POSTERN_LINEREADER_H
#define POSTERN_LINEREADER_H

/* The one bounded line reader all protocols use. A line ends at LF; a CR
 * right before the LF is removed. Each protocol sets its cap (SMTP 512
 * for commands, POP3 512, IMAP its command cap): "max" counts the whole
 * line including CRLF. A line longer than that is answered once with
 * LR_TOO_LONG; the reader then discards up to and including the next LF
 * on its own, so the protocol replies with its error and the session goes
 * on. The result never depends on how the input was split.
 *
 * NUL bytes and bare CRs (a CR not followed by LF) are kept in the line
 * and reported through flags, so each protocol decides deliberately
 * (SMTP and POP3 reject such commands; IMAP treats them as syntax errors). */

#include <stdbool.h>
#include <stddef.h>

struct evbuffer;

enum lr_status { LR_NEED_MORE, LR_LINE, LR_TOO_LONG };

enum lr_flags {
	LR_FLAG_NUL = 1 << 0,        /* the line holds a NUL byte */
	LR_FLAG_BARE_CR = 1 << 1,    /* the line holds a CR not followed by LF */
	LR_FLAG_BARE_LF = 1 << 2,    /* the line ended with LF, not CRLF */
};

struct linereader {
	size_t max;          /* cap including CRLF; at least 3 */
	bool discarding;     /* inside an over-long line, dropping until LF */
	char *line;          /* max bytes, NUL-terminated copy of the last line */
	size_t line_len;     /* its length, without the line ending */
	unsigned int flags;  /* lr_flags of the last line */
};

void linereader_init(struct linereader *lr, size_t max);
void linereader_free(struct linereader *lr);
/* Changes the cap (e.g. after login); keeps the state. */
void linereader_set_max(struct linereader *lr, size_t max);
/* Forget a partly discarded line (STARTTLS: buffered input is dropped). */
void linereader_reset(struct linereader *lr);

/* Takes the next line out of in. On LR_LINE, lr->line/line_len/flags
 * hold it. On LR_TOO_LONG the bytes read so far are dropped. */
enum lr_status linereader_next(struct linereader *lr, struct evbuffer *in);

/* Same, on a plain byte array (for tests and fuzzing): advances data and
 * shrinks len as linereader_next drains the evbuffer. */
enum lr_status linereader_next_bytes(struct linereader *lr, const char **data,
				     size_t *len);

#endif

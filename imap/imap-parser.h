#ifndef POSTERN_IMAP_PARSER_H
#define POSTERN_IMAP_PARSER_H

/* Private to imap/: the command reader and the argument parser.
 *
 * The reader assembles one command from the input: its lines and its
 * literals (synchronising {N}, non-synchronising {N+} per RFC 7888, and
 * literal8 ~{N}), bounded by a cap on the non-literal text and one on the
 * literal bytes. What it produces is the command in wire form (lines joined
 * with CRLF, literals inline, no final CRLF), whatever way the input was
 * split. imap_parse() then turns that text into a tag, a command name and
 * a tree of arguments. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/linereader.h"

struct evbuffer;
struct pool;

enum imap_read_status {
	IMAP_READ_NEED_MORE,
	IMAP_READ_COMMAND,        /* reader.cmd holds a whole command */
	IMAP_READ_CONTINUE,       /* a synchronising literal was accepted: send "+ " */
	IMAP_READ_TOO_LONG,       /* text over the cap: command dropped, answer BAD */
	IMAP_READ_LITERAL_TOO_BIG,/* synchronising literal over the cap: dropped, answer NO/BAD */
	IMAP_READ_FATAL,          /* a non-synchronising literal we will not read: BYE */
};

/* What to do with a literal just announced (see imap_reader.literal_fn). */
enum imap_literal_action {
	IMAP_LITERAL_KEEP,        /* inline in cmd, within literal_max */
	IMAP_LITERAL_STREAM,      /* to stream_fn, within stream_max; cmd gets "{0}" */
};

struct imap_reader {
	struct linereader lr;
	struct buf cmd;           /* the command so far, wire form */
	size_t text_max;          /* cap on non-literal text of one command */
	size_t literal_max;       /* cap on the literal bytes of one command */
	size_t text_len, literal_len;
	uint64_t literal_left;    /* bytes of the current literal still to read */
	bool bad_chars;           /* a text line held NUL or a bare CR */
	bool sync_literal;        /* the last literal announced was synchronising */
	bool complete;            /* cmd holds a finished (or refused) command */
	/* Optional: asked for every literal with the command so far (its last
	 * line ends with the announcement); a streamed literal's bytes go to
	 * stream_fn instead of cmd (APPEND writes them to the store). */
	enum imap_literal_action (*literal_fn)(void *ctx, const char *cmd, size_t len,
					       uint64_t size);
	void (*stream_fn)(void *ctx, const void *data, size_t len);
	void *fn_ctx;
	uint64_t stream_max;
	bool streaming;
};

void imap_reader_init(struct imap_reader *r, size_t text_max, size_t literal_max);
void imap_reader_free(struct imap_reader *r);
/* Between commands only (e.g. after login). */
void imap_reader_set_limits(struct imap_reader *r, size_t text_max, size_t literal_max);
/* Forget the command in progress and any partly read line (STARTTLS). */
void imap_reader_reset(struct imap_reader *r);
enum imap_read_status imap_reader_next(struct imap_reader *r, struct evbuffer *in);
/* The tag of the command being read, sanitised into dst ("*" when it has
 * no valid tag yet): for the reply to a refused command. */
const char *imap_reader_tag(const struct imap_reader *r, char *dst, size_t size);

/* ---- arguments ---------------------------------------------------------- */

enum imap_arg_type {
	IMAP_ARG_ATOM,      /* includes NIL, numbers, flags, BODY[...]<..> */
	IMAP_ARG_QUOTED,
	IMAP_ARG_LITERAL,
	IMAP_ARG_LIST,
};

struct imap_arg {
	enum imap_arg_type type;
	const char *str;          /* NUL-terminated (a literal may also hold NUL) */
	size_t len;
	struct imap_arg *items;   /* IMAP_ARG_LIST */
	size_t count;
	bool literal8;
};

#define IMAP_MAX_TAG 64
#define IMAP_MAX_LIST_DEPTH 32

struct imap_command_line {
	const char *tag;
	const char *name;
	struct imap_arg *args;
	size_t count;
};

bool imap_tag_valid(const char *tag, size_t len);
/* Parses a command in wire form. On a syntax error returns -1 with a
 * message; tag_r (NULL when the tag itself is invalid) is still set so the
 * reply can be tagged. */
int imap_parse(struct pool *pool, const char *data, size_t len,
	       struct imap_command_line *cmd_r, const char **error_r);

/* Typed views of one argument. */
bool imap_arg_atom(const struct imap_arg *a, const char **s_r);
bool imap_arg_is_atom(const struct imap_arg *a, const char *word);   /* case-insensitive */
bool imap_arg_is_nil(const struct imap_arg *a);
/* astring: atom, quoted or literal (no NUL). */
bool imap_arg_astring(const struct imap_arg *a, const char **s_r);
/* string: quoted or literal (no NUL). */
bool imap_arg_string(const struct imap_arg *a, const char **s_r);
bool imap_arg_number(const struct imap_arg *a, uint64_t *n_r);

/* ---- sequence sets ------------------------------------------------------ */

#define IMAP_SEQ_STAR UINT32_MAX

struct imap_seq_range { uint32_t lo, hi; };   /* lo <= hi; IMAP_SEQ_STAR = "*" */
struct imap_seqset {
	struct imap_seq_range *ranges;
	size_t count;
	bool dollar;              /* "$" (SEARCHRES): the saved result */
};
/* sequence-set per RFC 9051 (numbers, "*", ranges in either order,
 * comma-separated); "$" alone when allow_dollar. */
int imap_seqset_parse(struct pool *pool, const char *s, bool allow_dollar,
		      struct imap_seqset *set_r);

#endif

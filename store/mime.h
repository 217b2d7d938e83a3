#ifndef POSTERN_MIME_H
#define POSTERN_MIME_H

/* MIME structure parser (store-private; store.h exposes what protocols
 * need). Streaming: feed the message in pieces of any size; the result
 * does not depend on how the input was split. Bounded: nesting depth,
 * header size and part count are capped; broken input (missing
 * boundaries, bare LF, 8-bit headers, duplicate headers) never fails,
 * it gives the best structure it can.
 *
 * Offsets are byte offsets in the input as given. IMAP sizes (RFC822.SIZE,
 * body part sizes and line counts in BODYSTRUCTURE, BODY[section] octets)
 * count every line ending as CRLF, whatever the file holds: the "crlf"
 * fields below. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct buf;

#define MIME_MAX_DEPTH 32
#define MIME_MAX_PARTS 2000
#define MIME_MAX_HEADER_SIZE (256 * 1024)
/* Added: bytes of ENVELOPE/BODYSTRUCTURE material kept for all parts
 * together; the headers of parts that start beyond it are ignored (those
 * parts get the default type). Bounds memory for hostile messages. */
#define MIME_MAX_STRUCTURE_SIZE (4 * 1024 * 1024)

struct mime_part {
	uint32_t parent;          /* index into parts[], UINT32_MAX for the root */
	uint32_t first_child;     /* UINT32_MAX when none */
	uint32_t next_sibling;    /* UINT32_MAX when none */
	uint64_t header_offset;   /* where this part's header starts */
	uint64_t body_offset;     /* where its body starts (after the blank line) */
	uint64_t body_end;        /* end of body (before the CRLF that precedes a boundary) */
	uint64_t header_crlf_size;
	uint64_t body_crlf_size;
	uint64_t body_lines;
	/* flags: multipart, message/rfc822 or message/global (its child is
	 * the embedded message) */
	unsigned int is_multipart : 1;
	unsigned int is_message : 1;
};

struct mime_message {
	/* IMAP strings, ready to send: "(...)" */
	char *envelope;
	char *body;              /* BODY (non-extensible form) */
	char *bodystructure;     /* BODYSTRUCTURE (extension data included) */
	uint64_t size;           /* bytes in the input */
	uint64_t crlf_size;      /* RFC822.SIZE */
	time_t date;             /* Date: header, 0 when missing/unparsable */
	int date_tz_minutes;     /* its zone offset */
	/* decoded (RFC 2047, converted to UTF-8) header values for SEARCH and
	 * SORT; NULL when absent */
	char *subject;
	char *from;
	char *to;
	char *cc;
	char *bcc;
	char *message_id;
	char *in_reply_to;
	char *references;
	/* part tree, parts[0] is the whole message */
	struct mime_part *parts;
	uint32_t part_count;
};

struct mime_parser;

struct mime_parser *mime_parser_new(void);
void mime_parser_feed(struct mime_parser *parser, const void *data, size_t len);
/* Finishes the parse; fills msg (caller frees with mime_message_free). */
void mime_parser_finish(struct mime_parser *parser, struct mime_message *msg);
void mime_parser_free(struct mime_parser **parser);

/* Convenience: parse a whole buffer or an open file (read from offset 0). */
void mime_parse_buffer(const void *data, size_t len, struct mime_message *msg);
int mime_parse_fd(int fd, struct mime_message *msg);
void mime_message_free(struct mime_message *msg);

/* Finds the part for an IMAP section path like "1.2" (NULL or "" = the
 * whole message); returns its index or -1. For a message/rfc822 part,
 * "N.HEADER"-style callers take the child. */
int mime_find_part(const struct mime_message *msg, const char *path);

/* Added: checks a parse result (IMAP syntax of the ENVELOPE, BODY and
 * BODYSTRUCTURE strings; part offsets in order and nested in their
 * parents; every part's section path leads back to it through
 * mime_find_part). 0 when sound, else -1 with a reason. For tests and
 * fuzzing. */
int mime_message_check(const struct mime_message *msg, const char **error_r);

/* RFC 2047 decoding of a header value into UTF-8 (unknown charsets are
 * kept as raw bytes); the result is malloc'ed. */
char *mime_decode_header(const char *value, size_t len);

/* Added: a part's body with its Content-Transfer-Encoding undone
 * (base64, quoted-printable; anything else as it is) and, when to_utf8
 * and the part is a text type, converted from its charset to UTF-8 (for
 * SEARCH BODY/TEXT; without to_utf8 for FETCH BINARY). header is the
 * part's header (header_offset..body_offset), body its body
 * (body_offset..body_end). malloc'ed, NUL-terminated, length in *len_r. */
char *mime_decode_body(const void *header, size_t header_len, const void *body,
		       size_t body_len, bool to_utf8, size_t *len_r);

/* Added: BODY[HEADER.FIELDS (...)] and HEADER.FIELDS.NOT: appends the
 * fields of header whose names are (exclude: are not) in names, as
 * written (folding kept, line ends as CRLF), then the blank line. */
void mime_header_filter(const void *header, size_t len, const char *const *names,
			size_t name_count, bool exclude, struct buf *out);

#endif

#ifndef POSTERN_MAIL_H
#define POSTERN_MAIL_H

/* mail/: mail syntax, no I/O, written once for every module: header
 * fields (walking, unfolding, folding), RFC 5322 dates and addresses,
 * xtext (RFC 3461) and IMAP strings. Used by store (the MIME parser's
 * ENVELOPE), intake (header checks, trace fields), the protocols and the
 * relay. Depends on core only. */

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "core/buf.h"

/* ---- header fields (RFC 5322 2.2) ------------------------------------- */

/* One field of a header block: its first line and continuation lines. */
struct mail_field {
	const char *start;
	size_t len;          /* line ends included */
	size_t name_len;     /* 0 when it is no field (no colon, stray continuation) */
	const char *value;   /* just after the colon (NULL when no field) */
};

/* The field at *pos (advanced past it); false at the end of data. A line
 * that starts with white space continues the field before it. */
bool mail_header_next(const char *data, size_t len, size_t *pos, struct mail_field *field);
/* Is this the field called name (case-insensitive; "Name :" allowed)? */
bool mail_field_is(const char *field, size_t len, const char *name);
/* The unfolded value: line ends dropped, leading white space trimmed
 * (trailing white space stays), NUL bytes as U+FFFD. Freed by the caller. */
char *mail_unfold(const char *value, size_t len);
/* Appends "Name: value\r\n", folded before white space so that lines stay
 * within 78 octets where the value allows it (RFC 5322 2.1.1). */
void mail_field_append(struct buf *out, const char *name, const char *value);

/* ---- dates (RFC 5322 3.3) ---------------------------------------------- */

#define MAIL_DATE_MAX 40
/* "Fri, 4 Dec 2026 14:45:41 +0000": UTC, English names whatever the
 * locale. out holds at least MAIL_DATE_MAX bytes. */
void mail_date_format(time_t t, char *out, size_t size);
/* Parses a date-time, obsolete forms of RFC 5322 4.3 included (two and
 * three digit years, named zones, comments, missing seconds). 0, or -1
 * when it is not a date. */
int mail_date_parse(const char *value, time_t *time_r, int *tz_minutes_r);

/* ---- addresses (RFC 5322 3.4) ------------------------------------------ */

enum mail_addr_kind {
	MAIL_ADDR_MAILBOX,
	MAIL_ADDR_GROUP_START,   /* name holds the group's display name */
	MAIL_ADDR_GROUP_END,
};

struct mail_addr {
	enum mail_addr_kind kind;
	struct buf name;         /* display name (quotes removed), or a comment */
	struct buf route;        /* obsolete route "@a,@b" */
	struct buf mailbox;      /* local part (quotes removed) */
	struct buf host;         /* domain as written */
	bool has_mailbox;
	bool has_host;
};

struct mail_addrs {
	struct mail_addr *items;
	size_t count;
	/* every mailbox has a local part and a domain, and nothing in the
	 * text had to be skipped or guessed: the strict reading agrees */
	bool clean;
};

/* Reads an address list, tolerantly (obsolete routes, groups, comments,
 * quoted strings, missing parts, junk skipped and noted). value may hold
 * several fields' values with '\n' between them; nothing runs across one. */
void mail_address_parse(const char *value, struct mail_addrs *out);
void mail_addrs_free(struct mail_addrs *addrs);
/* "local@domain", the local part quoted when it is not a dot-atom. */
void mail_addr_spec(const struct mail_addr *a, struct buf *out);
/* The domain of the list's one mailbox, lowercased into out: DMARC's and
 * DKIM's RFC5322.From domain. -1 when there is no mailbox, more than one,
 * no domain, or one with controls, spaces or NUL in it. */
int mail_single_domain(const char *value, char *out, size_t size);

/* 0-15 for a hex digit of either case, else -1. */
int mail_hex_value(char c);

/* ---- xtext (RFC 3461 4) ------------------------------------------------ */

/* "a+b" -> "a+2Bb". */
void mail_xtext_encode(struct buf *out, const char *text);
/* "a+2Bb" -> "a+b"; -1 when malformed (bad hex, a NUL, a stray '+'). */
int mail_xtext_decode(const char *text, struct buf *out);

/* ---- SMTP DATA out (RFC 5321 4.5.2) ------------------------------------- */

struct mail_data_encoder {
	bool at_bol;                 /* start with true */
	bool pending_cr;
};
#define MAIL_DATA_ENCODER_INIT { true, false }
/* Encodes n bytes into out (room for 2 * n + 2): CRLF line ends only, a
 * bare CR or LF made CRLF, a dot doubled at every line start. */
size_t mail_data_encode(struct mail_data_encoder *e, const char *in, size_t n, char *out);
/* The end of the data: a last line end when needed, then ".\r\n" (room
 * for 5). */
size_t mail_data_encode_end(struct mail_data_encoder *e, char *out);

/* ---- IMAP strings (RFC 3501 4.3, 9051 4.3) ----------------------------- */

#define MAIL_IMAP_MAX_QUOTED 1024
/* A quoted string, or a literal when the text holds CR, LF, NUL or 8-bit
 * bytes or is longer than MAIL_IMAP_MAX_QUOTED. */
void mail_imap_string(struct buf *out, const char *s, size_t len);
/* Always quoted (\ and " escaped); the caller knows the text may be. */
void mail_imap_quoted(struct buf *out, const char *s, size_t len);
/* NIL for NULL. */
void mail_imap_nstring(struct buf *out, const char *s);

#endif

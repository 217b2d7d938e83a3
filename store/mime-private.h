#ifndef POSTERN_MIME_PRIVATE_H
#define POSTERN_MIME_PRIVATE_H

/* Shared between the store/mime-*.c files; nothing outside store/mime*
 * includes this. */

#include "core/core.h"
#include "store/mime.h"
#include "mail/mail.h"

#include <stdlib.h>
#include <string.h>

#include <stdbool.h>

/* The header fields the parser looks at; the first occurrence wins. */
enum mime_field {
	MIME_F_CONTENT_TYPE,
	MIME_F_CONTENT_TRANSFER_ENCODING,
	MIME_F_CONTENT_ID,
	MIME_F_CONTENT_DESCRIPTION,
	MIME_F_CONTENT_DISPOSITION,
	MIME_F_CONTENT_LANGUAGE,
	MIME_F_CONTENT_LOCATION,
	MIME_F_CONTENT_MD5,
	MIME_F_MIME_VERSION,
	MIME_F_DATE,
	MIME_F_SUBJECT,
	MIME_F_FROM,
	MIME_F_SENDER,
	MIME_F_REPLY_TO,
	MIME_F_TO,
	MIME_F_CC,
	MIME_F_BCC,
	MIME_F_IN_REPLY_TO,
	MIME_F_MESSAGE_ID,
	MIME_F_REFERENCES,
	MIME_F_COUNT
};

/* Unfolded values (CR and LF removed, leading white space trimmed) of
 * one header block; NULL when the field is absent. Repeated address
 * fields are joined with '\n' between them (one header, one list: a
 * group never runs on into the next header). */
struct mime_headers {
	char *value[MIME_F_COUNT];
};

/* mime-header.c */
void mime_headers_parse(const char *data, size_t len, struct mime_headers *h);

void mime_headers_free(struct mime_headers *h);

/* What one part's header says, rendered for BODYSTRUCTURE. */
struct mime_part_info {
	char *basic;      /* leaf: type subtype params id desc enc; multipart: subtype */
	char *ext;        /* leaf: md5 disp lang loc; multipart: params disp lang loc */
	char *envelope;   /* set on message parts (root, embedded message) */
	char *boundary;   /* multipart boundary (raw), NULL when none */
	bool is_text;
	bool is_multipart;
	bool is_message;  /* message/rfc822 or message/global: its body is a message */
};

/* mime-content.c: Content-* fields into part info. default_type is
 * "text/plain" or, inside multipart/digest, "message/rfc822". */
void mime_part_info_fill(struct mime_part_info *info, const struct mime_headers *h,
			 bool digest_default);
void mime_part_info_free(struct mime_part_info *info);

/* mime-envelope.c */
char *mime_envelope_build(const struct mime_headers *h);
/* mime-address.c: RFC 5322 address list as IMAP (addr addr ...) or NIL */
void mime_address_list_append(struct buf *out, const char *value);

/* mime-decode.c */
void mime_base64_decode(const char *s, size_t len, struct buf *out);
void mime_charset_to_utf8(struct buf *out, const char *charset,
			  const char *data, size_t len);

/* mime-content.c: type and charset of a Content-Type value (defaults
 * when missing or invalid); malloc'ed */
void mime_content_type_get(const char *value, char **type_r, char **charset_r);

#endif

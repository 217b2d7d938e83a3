/* ENVELOPE (RFC 3501 7.4.2, RFC 9051 7.5.2): raw header values, address
 * lists parsed; Sender and Reply-To fall back to From. */

#include "store/mime-private.h"

static void append_addresses(struct buf *out, const struct mime_headers *h,
			     enum mime_field f)
{
	const char *value = h->value[f];
	if ((f == MIME_F_SENDER || f == MIME_F_REPLY_TO)) {
		struct buf list = BUF_INIT;
		if (value != NULL)
			mime_address_list_append(&list, value);
		if (value == NULL || strcmp(buf_str(&list), "NIL") == 0) {
			buf_reset(&list);
			mime_address_list_append(&list, h->value[MIME_F_FROM] == NULL ?
						 "" : h->value[MIME_F_FROM]);
		}
		buf_append(out, buf_str(&list), list.len);
		buf_free(&list);
		return;
	}
	mime_address_list_append(out, value == NULL ? "" : value);
}

char *mime_envelope_build(const struct mime_headers *h)
{
	struct buf out = BUF_INIT;
	buf_append_char(&out, '(');
	mail_imap_nstring(&out, h->value[MIME_F_DATE]);
	buf_append_char(&out, ' ');
	mail_imap_nstring(&out, h->value[MIME_F_SUBJECT]);
	static const enum mime_field addresses[] = {
		MIME_F_FROM, MIME_F_SENDER, MIME_F_REPLY_TO,
		MIME_F_TO, MIME_F_CC, MIME_F_BCC,
	};
	for (size_t i = 0; i < sizeof(addresses) / sizeof(addresses[0]); i++) {
		buf_append_char(&out, ' ');
		append_addresses(&out, h, addresses[i]);
	}
	buf_append_char(&out, ' ');
	mail_imap_nstring(&out, h->value[MIME_F_IN_REPLY_TO]);
	buf_append_char(&out, ' ');
	mail_imap_nstring(&out, h->value[MIME_F_MESSAGE_ID]);
	buf_append_char(&out, ')');
	char *envelope = xstrdup(buf_str(&out));
	buf_free(&out);
	return envelope;
}

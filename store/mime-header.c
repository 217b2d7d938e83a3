/* Splitting a header block into the fields the MIME parser needs. */

#include "store/mime-private.h"

#include <string.h>

static const char *const field_names[MIME_F_COUNT] = {
	[MIME_F_CONTENT_TYPE] = "Content-Type",
	[MIME_F_CONTENT_TRANSFER_ENCODING] = "Content-Transfer-Encoding",
	[MIME_F_CONTENT_ID] = "Content-ID",
	[MIME_F_CONTENT_DESCRIPTION] = "Content-Description",
	[MIME_F_CONTENT_DISPOSITION] = "Content-Disposition",
	[MIME_F_CONTENT_LANGUAGE] = "Content-Language",
	[MIME_F_CONTENT_LOCATION] = "Content-Location",
	[MIME_F_CONTENT_MD5] = "Content-MD5",
	[MIME_F_MIME_VERSION] = "MIME-Version",
	[MIME_F_DATE] = "Date",
	[MIME_F_SUBJECT] = "Subject",
	[MIME_F_FROM] = "From",
	[MIME_F_SENDER] = "Sender",
	[MIME_F_REPLY_TO] = "Reply-To",
	[MIME_F_TO] = "To",
	[MIME_F_CC] = "Cc",
	[MIME_F_BCC] = "Bcc",
	[MIME_F_IN_REPLY_TO] = "In-Reply-To",
	[MIME_F_MESSAGE_ID] = "Message-ID",
	[MIME_F_REFERENCES] = "References",
};

static int field_lookup(const char *name, size_t len)
{
	for (int i = 0; i < MIME_F_COUNT; i++) {
		if (strlen(field_names[i]) == len &&
		    ascii_strncasecmp(field_names[i], name, len) == 0)
			return i;
	}
	return -1;
}

static bool is_address_field(int f)
{
	return f >= MIME_F_FROM && f <= MIME_F_BCC;
}

/* Duplicates (Dovecot's rules): Content-* fields keep the first, address
 * fields are joined (in lists[], linear in the header size; '\n' between
 * them), the other envelope fields keep the last. */
static void field_set(struct mime_headers *h, struct buf *lists, int f, char *value)
{
	if (is_address_field(f)) {
		struct buf *list = &lists[f];
		if (list->data != NULL)
			buf_append_char(list, '\n');
		buf_append_str(list, value);
		free(value);
	} else if (h->value[f] == NULL) {
		h->value[f] = value;
	} else if (f <= MIME_F_MIME_VERSION) {
		free(value);
	} else {
		free(h->value[f]);
		h->value[f] = value;
	}
}

void mime_headers_parse(const char *data, size_t len, struct mime_headers *h)
{
	struct buf lists[MIME_F_COUNT];
	struct mail_field field;
	size_t pos = 0;
	memset(h, 0, sizeof(*h));
	for (int f = 0; f < MIME_F_COUNT; f++)
		buf_init(&lists[f]);
	while (mail_header_next(data, len, &pos, &field)) {
		int f = field.name_len == 0 ? -1 : field_lookup(field.start, field.name_len);
		if (f < 0)
			continue;
		size_t value_len = (size_t)(field.start + field.len - field.value);
		field_set(h, lists, f, mail_unfold(field.value, value_len));
	}
	for (int f = 0; f < MIME_F_COUNT; f++) {
		if (lists[f].data != NULL)
			h->value[f] = lists[f].data;   /* the buffer's string is handed over */
	}
}

void mime_headers_free(struct mime_headers *h)
{
	for (int i = 0; i < MIME_F_COUNT; i++) {
		free(h->value[i]);
		h->value[i] = NULL;
	}
}

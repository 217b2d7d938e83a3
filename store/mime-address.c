/* RFC 5322 address lists as IMAP ENVELOPE address structures
 * ((name adl mailbox host) ...), from mail/'s tolerant reader. Like
 * Dovecot, a missing local part or domain is written as
 * "MISSING_MAILBOX" / "MISSING_DOMAIN", a comment stands in for a missing
 * display name, and the strings keep their raw (undecoded) form. */

#include "store/mime-private.h"
#include "mail/mail.h"

static void append_nbuf(struct buf *out, const struct buf *b, bool present,
			const char *missing)
{
	if (present)
		mail_imap_string(out, buf_str(b), b->len);
	else
		buf_append_str(out, missing);
}

void mime_address_list_append(struct buf *out, const char *value)
{
	struct mail_addrs list;
	mail_address_parse(value, &list);
	if (list.count == 0) {
		buf_append_str(out, "NIL");
		mail_addrs_free(&list);
		return;
	}
	buf_append_char(out, '(');
	for (size_t i = 0; i < list.count; i++) {
		const struct mail_addr *a = &list.items[i];
		if (a->kind == MAIL_ADDR_GROUP_END) {
			buf_append_str(out, "(NIL NIL NIL NIL)");
			continue;
		}
		if (a->kind == MAIL_ADDR_GROUP_START) {
			buf_append_str(out, "(NIL NIL ");
			mail_imap_string(out, buf_str(&a->name), a->name.len);
			buf_append_str(out, " NIL)");
			continue;
		}
		buf_append_char(out, '(');
		append_nbuf(out, &a->name, a->name.len > 0, "NIL");
		buf_append_char(out, ' ');
		append_nbuf(out, &a->route, a->route.len > 0, "NIL");
		buf_append_char(out, ' ');
		append_nbuf(out, &a->mailbox, a->has_mailbox, "\"MISSING_MAILBOX\"");
		buf_append_char(out, ' ');
		append_nbuf(out, &a->host, a->has_host, "\"MISSING_DOMAIN\"");
		buf_append_char(out, ')');
	}
	buf_append_char(out, ')');
	mail_addrs_free(&list);
}

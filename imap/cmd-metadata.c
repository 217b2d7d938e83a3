/* METADATA and METADATA-SERVER (RFC 5464): GETMETADATA with MAXSIZE and
 * DEPTH, SETMETADATA, for the server ("" names it) and every mailbox,
 * /private and /shared entries, kept in the account's index. The server's
 * /shared entries would be seen by every user: they are read-only here. */
#include "imap/imap-private.h"
#include "store/store.h"

#include <stdlib.h>
#include <string.h>

#define METADATA_MAX_VALUE   (64 * 1024)   /* [METADATA MAXSIZE] beyond */
#define METADATA_MAX_ENTRIES 256           /* per mailbox and for the server */
#define METADATA_MAX_NAME    1024

/* "/private" or "/shared", then "/component"s of printable ASCII, no "*"
 * or "%", no empty component. */
bool imap_metadata_entry_valid(const char *e, bool set)
{
	size_t len = strlen(e);
	size_t top = ascii_strncasecmp(e, "/private", 8) == 0 ? 8
		   : ascii_strncasecmp(e, "/shared", 7) == 0 ? 7 : 0;
	if (top == 0 || len > METADATA_MAX_NAME || (e[top] != '\0' && e[top] != '/'))
		return false;
	if (e[top] == '\0')
		return !set;
	for (size_t i = top; i < len; i++) {
		unsigned char c = (unsigned char)e[i];
		if (c < 0x21 || c > 0x7e || c == '*' || c == '%' || (c == '/' && (e[i + 1] == '/' ||
									 e[i + 1] == '\0')))
			return false;
	}
	return true;
}

/* "" is the server; otherwise a mailbox name as the store spells it. */
static bool owner_arg(struct imap_session *s, struct imap_cmd *cmd, const struct imap_arg *arg,
		      const char **mailbox_r)
{
	const char *raw;
	if (!imap_arg_astring(arg, &raw)) {
		imap_bad(s, cmd->tag, "Invalid mailbox");
		return false;
	}
	if (raw[0] == '\0') {
		*mailbox_r = NULL;
		return true;
	}
	*mailbox_r = imap_mailbox_from_client(s, cmd->pool, raw);
	if (*mailbox_r == NULL) {
		imap_no(s, cmd->tag, "[CANNOT] Invalid mailbox name");
		return false;
	}
	return true;
}

static void append_owner(struct imap_session *s, struct buf *b, const char *mailbox)
{
	if (mailbox == NULL)
		buf_append_str(b, "\"\"");
	else
		imap_append_mailbox(s, b, mailbox);
}

/* A value: quoted or a literal, a literal8 when it holds a NUL. */
static void append_value(struct buf *b, const char *value, size_t len)
{
	if (memchr(value, '\0', len) != NULL) {
		buf_printf(b, "~{%zu}\r\n", len);
		buf_append(b, value, len);
	} else {
		imap_append_string(b, value, len);
	}
}

static int getmetadata_options(const struct imap_arg *opts, uint64_t *maxsize_r, int *depth_r)
{
	for (size_t i = 0; i < opts->count; i++) {
		const struct imap_arg *v = i + 1 < opts->count ? &opts->items[i + 1] : NULL;
		if (imap_arg_is_atom(&opts->items[i], "MAXSIZE") && imap_arg_number(v, maxsize_r)) {
			i++;
		} else if (imap_arg_is_atom(&opts->items[i], "DEPTH") && v != NULL) {
			if (imap_arg_is_atom(v, "0"))
				*depth_r = 0;
			else if (imap_arg_is_atom(v, "1"))
				*depth_r = 1;
			else if (imap_arg_is_atom(v, "infinity"))
				*depth_r = -1;
			else
				return -1;
			i++;
		} else {
			return -1;
		}
	}
	return 0;
}

void imap_cmd_getmetadata(struct imap_session *s, struct imap_cmd *cmd)
{
	uint64_t maxsize = UINT64_MAX;
	int depth = 0;
	size_t pos = 0;
	if (cmd->count == 3) {
		if (cmd->args[0].type != IMAP_ARG_LIST ||
		    getmetadata_options(&cmd->args[0], &maxsize, &depth) < 0) {
			imap_bad(s, cmd->tag, "Invalid GETMETADATA options");
			return;
		}
		pos = 1;
	} else if (cmd->count != 2) {
		imap_bad(s, cmd->tag, "Invalid arguments");
		return;
	}
	const char *mailbox, *error;
	if (!owner_arg(s, cmd, &cmd->args[pos], &mailbox))
		return;
	const struct imap_arg *list = &cmd->args[pos + 1];
	const struct imap_arg *names = list->type == IMAP_ARG_LIST ? list->items : list;
	size_t name_count = list->type == IMAP_ARG_LIST ? list->count : 1;
	for (size_t i = 0; i < name_count; i++) {
		const char *e;
		if (!imap_arg_astring(&names[i], &e) || !imap_metadata_entry_valid(e, false)) {
			imap_bad(s, cmd->tag, "Invalid entry name");
			return;
		}
	}
	if (name_count == 0) {
		imap_bad(s, cmd->tag, "Missing entry");
		return;
	}
	struct buf b = BUF_INIT;
	uint64_t longest = 0;
	size_t shown = 0;
	buf_append_str(&b, "* METADATA ");
	append_owner(s, &b, mailbox);
	buf_append_str(&b, " (");
	for (size_t i = 0; i < name_count; i++) {
		const char *e;
		imap_arg_astring(&names[i], &e);
		struct store_metadata md = { NULL, 0, 0 };
		int ret = store_metadata_get(s->account, mailbox, e, depth, &md, &error);
		if (ret < 0) {
			buf_free(&b);
			store_metadata_free(&md);
			imap_store_error(s, cmd->tag, ret, error);
			return;
		}
		if (md.count == 0) {
			/* asked for and absent: NIL */
			buf_append_str(&b, shown++ > 0 ? " " : "");
			imap_append_string(&b, e, strlen(e));
			buf_append_str(&b, " NIL");
		}
		for (size_t j = 0; j < md.count; j++) {
			const struct store_metadata_entry *me = &md.entries[j];
			if (me->len > maxsize) {
				/* RFC 5464 4.2.1: left out, the longest told */
				if (me->len > longest)
					longest = me->len;
				continue;
			}
			buf_append_str(&b, shown++ > 0 ? " " : "");
			imap_append_string(&b, me->name, strlen(me->name));
			buf_append_char(&b, ' ');
			append_value(&b, me->value, me->len);
		}
		store_metadata_free(&md);
	}
	buf_append_str(&b, ")\r\n");
	if (shown > 0)
		imap_write_buf(s, &b);
	buf_free(&b);
	if (longest > 0)
		imap_ok(s, cmd->tag, "[METADATA LONGENTRIES %llu] GETMETADATA completed",
			(unsigned long long)longest);
	else
		imap_ok(s, cmd->tag, "GETMETADATA completed");
}

void imap_cmd_setmetadata(struct imap_session *s, struct imap_cmd *cmd)
{
	const char *mailbox, *error;
	if (cmd->count != 2 || cmd->args[1].type != IMAP_ARG_LIST || cmd->args[1].count == 0 ||
	    cmd->args[1].count % 2 != 0) {
		imap_bad(s, cmd->tag, "Invalid arguments");
		return;
	}
	if (!owner_arg(s, cmd, &cmd->args[0], &mailbox))
		return;
	const struct imap_arg *list = &cmd->args[1];
	size_t n = list->count / 2;
	struct store_metadata_entry *entries = pool_alloc(cmd->pool, n * sizeof(*entries));
	for (size_t i = 0; i < n; i++) {
		const struct imap_arg *name = &list->items[2 * i], *value = &list->items[2 * i + 1];
		const char *e;
		if (!imap_arg_astring(name, &e) || !imap_metadata_entry_valid(e, true)) {
			imap_bad(s, cmd->tag, "Invalid entry name");
			return;
		}
		if (imap_arg_is_nil(value)) {
			entries[i] = (struct store_metadata_entry){ (char *)e, NULL, 0 };
		} else if (value->type == IMAP_ARG_QUOTED || value->type == IMAP_ARG_LITERAL) {
			entries[i] = (struct store_metadata_entry){ (char *)e, (char *)value->str,
								   value->len };
		} else {
			imap_bad(s, cmd->tag, "Invalid entry value");
			return;
		}
		if (mailbox == NULL && ascii_strncasecmp(e, "/shared", 7) == 0) {
			imap_no(s, cmd->tag, "[NOPERM] Server entries under /shared are read-only");
			return;
		}
		if (entries[i].value != NULL && entries[i].len > METADATA_MAX_VALUE) {
			imap_no(s, cmd->tag, "[METADATA MAXSIZE %d] Value too long",
				METADATA_MAX_VALUE);
			return;
		}
	}
	int ret = store_metadata_set(s->account, mailbox, entries, n, METADATA_MAX_ENTRIES, &error);
	if (ret == STORE_ERR_LIMIT) {
		imap_no(s, cmd->tag, "[METADATA TOOMANY] Too many entries");
		return;
	}
	if (ret < 0) {
		imap_store_error(s, cmd->tag, ret, error);
		return;
	}
	imap_ok(s, cmd->tag, "SETMETADATA completed");
}

/* LIST (RFC 3501 6.3.8 with LIST-EXTENDED RFC 5258, LIST-STATUS RFC 5819,
 * SPECIAL-USE RFC 6154, CHILDREN) and LSUB. The hierarchy separator is
 * '/'; names go out in modified UTF-7. */
#include "imap/imap-private.h"
#include "store/store.h"

#include <stdlib.h>
#include <string.h>

struct list_opts {
	bool extended;          /* selection or return options were given */
	bool subscribed;        /* selection SUBSCRIBED */
	bool recursive;         /* selection RECURSIVEMATCH */
	bool special_only;      /* selection SPECIAL-USE */
	bool ret_subscribed;
	const struct imap_arg *status;   /* RETURN (STATUS (...)) */
	bool lsub;
};

static void append_special_use(struct buf *b, uint32_t use)
{
	static const struct { uint32_t bit; const char *name; } uses[] = {
		{ STORE_SPECIAL_SENT, "\\Sent" }, { STORE_SPECIAL_DRAFTS, "\\Drafts" },
		{ STORE_SPECIAL_TRASH, "\\Trash" }, { STORE_SPECIAL_JUNK, "\\Junk" },
		{ STORE_SPECIAL_ARCHIVE, "\\Archive" }, { STORE_SPECIAL_ALL, "\\All" },
		{ STORE_SPECIAL_FLAGGED, "\\Flagged" },
	};
	for (size_t i = 0; i < sizeof(uses) / sizeof(uses[0]); i++)
		if (use & uses[i].bit)
			buf_printf(b, " %s", uses[i].name);
}

static void list_entry_write(struct imap_session *s, const struct list_opts *o,
			     const struct store_list_entry *e, bool childinfo, struct buf *b)
{
	struct buf attrs = BUF_INIT;
	bool nonexistent = e->attrs & STORE_LIST_NOSELECT;
	if (nonexistent)
		buf_append_str(&attrs, o->extended || (s->enabled & IMAP_ENABLED_IMAP4REV2)
					       ? " \\NonExistent" : " \\Noselect");
	if (!o->lsub)
		buf_append_str(&attrs, e->attrs & STORE_LIST_HASCHILDREN ? " \\HasChildren"
								 : " \\HasNoChildren");
	if ((o->subscribed || o->ret_subscribed) && (e->attrs & STORE_LIST_SUBSCRIBED))
		buf_append_str(&attrs, " \\Subscribed");
	append_special_use(&attrs, e->special_use);
	buf_printf(b, "* %s (%s) \"/\" ", o->lsub ? "LSUB" : "LIST",
		   attrs.len > 0 ? attrs.data + 1 : "");
	buf_free(&attrs);
	imap_append_mailbox(s, b, e->name);
	if (childinfo)
		buf_append_str(b, " (\"CHILDINFO\" (\"SUBSCRIBED\"))");
	buf_append_str(b, "\r\n");
	if (o->status != NULL && !nonexistent) {
		struct store_status st;
		const char *error;
		if (store_mailbox_status(s->account, e->name, &st, &error) == 0) {
			buf_append_str(b, "* STATUS ");
			imap_append_mailbox(s, b, e->name);
			buf_append_char(b, ' ');
			imap_status_items(s, e->name, o->status, &st, b);
			buf_append_str(b, "\r\n");
		}
	}
	if (b->len > 16384)
		imap_write_buf(s, b);
}

/* RECURSIVEMATCH: a match that is not subscribed itself but has a
 * subscribed descendant is listed with CHILDINFO. */
static void list_recursive(struct imap_session *s, const struct list_opts *o,
			   const char *pattern, struct buf *b)
{
	struct store_list all, subs;
	const char *error;
	if (store_mailbox_list(s->account, "*", true, &subs, &error) < 0)
		return;
	if (store_mailbox_list(s->account, pattern, false, &all, &error) < 0) {
		store_list_free(&subs);
		return;
	}
	for (size_t i = 0; i < all.count; i++) {
		const struct store_list_entry *e = &all.entries[i];
		if (e->attrs & STORE_LIST_SUBSCRIBED)
			continue;
		size_t len = strlen(e->name);
		for (size_t j = 0; j < subs.count; j++) {
			if (strncmp(subs.entries[j].name, e->name, len) == 0 &&
			    subs.entries[j].name[len] == '/') {
				list_entry_write(s, o, e, true, b);
				break;
			}
		}
	}
	store_list_free(&all);
	store_list_free(&subs);
}

static int list_pattern(struct imap_session *s, const struct list_opts *o, const char *ref,
			const char *raw, struct buf *b)
{
	if (raw[0] == '\0' && !o->extended) {
		buf_printf(b, "* %s (\\Noselect) \"/\" \"\"\r\n", o->lsub ? "LSUB" : "LIST");
		return 0;
	}
	char *joined = xasprintf("%s%s", ref, raw);
	char *pattern = ascii_strcasecmp(joined, "INBOX") == 0 ? xstrdup("INBOX")
							      : store_mutf7_decode(joined);
	free(joined);
	if (pattern == NULL)
		return 0;   /* matches nothing */
	struct store_list list;
	const char *error;
	bool subscribed_only = o->subscribed || o->lsub;
	int ret = store_mailbox_list(s->account, pattern, subscribed_only, &list, &error);
	if (ret < 0) {
		free(pattern);
		return ret;
	}
	for (size_t i = 0; i < list.count; i++) {
		const struct store_list_entry *e = &list.entries[i];
		if (o->special_only && e->special_use == 0)
			continue;
		/* RFC 5258: SUBSCRIBED lists subscriptions only, not their parents */
		if (o->subscribed && !(e->attrs & STORE_LIST_SUBSCRIBED))
			continue;
		list_entry_write(s, o, e, false, b);
	}
	if (o->recursive)
		list_recursive(s, o, pattern, b);
	store_list_free(&list);
	free(pattern);
	return 0;
}

static int list_selection(const struct imap_arg *a, struct list_opts *o)
{
	for (size_t i = 0; i < a->count; i++) {
		const struct imap_arg *opt = &a->items[i];
		if (imap_arg_is_atom(opt, "SUBSCRIBED"))
			o->subscribed = true;
		else if (imap_arg_is_atom(opt, "RECURSIVEMATCH"))
			o->recursive = true;
		else if (imap_arg_is_atom(opt, "SPECIAL-USE"))
			o->special_only = true;
		else if (!imap_arg_is_atom(opt, "REMOTE"))
			return -1;
	}
	/* RFC 5258 3.1: RECURSIVEMATCH needs another selection option */
	return o->recursive && !o->subscribed ? -1 : 0;
}

static int list_return(const struct imap_arg *a, struct list_opts *o)
{
	for (size_t i = 0; i < a->count; i++) {
		const struct imap_arg *opt = &a->items[i];
		if (imap_arg_is_atom(opt, "SUBSCRIBED"))
			o->ret_subscribed = true;
		else if (imap_arg_is_atom(opt, "STATUS") && i + 1 < a->count &&
			 a->items[i + 1].type == IMAP_ARG_LIST && a->items[i + 1].count > 0)
			o->status = &a->items[++i];
		else if (!imap_arg_is_atom(opt, "CHILDREN") && !imap_arg_is_atom(opt, "SPECIAL-USE"))
			return -1;
	}
	return 0;
}

static void list_run(struct imap_session *s, struct imap_cmd *cmd, struct list_opts *o)
{
	size_t i = 0;
	const char *ref, *raw;
	if (!o->lsub && cmd->count > 0 && cmd->args[0].type == IMAP_ARG_LIST) {
		o->extended = true;
		if (list_selection(&cmd->args[0], o) < 0) {
			imap_bad(s, cmd->tag, "Invalid selection options");
			return;
		}
		i++;
	}
	if (i + 2 > cmd->count || !imap_arg_astring(&cmd->args[i], &ref)) {
		imap_bad(s, cmd->tag, "Invalid arguments");
		return;
	}
	const struct imap_arg *patterns = &cmd->args[i + 1];
	size_t npatterns = 1;
	if (patterns->type == IMAP_ARG_LIST && !o->lsub) {
		o->extended = true;
		npatterns = patterns->count;
		patterns = patterns->items;
	}
	i += 2;
	if (i < cmd->count && !o->lsub) {
		if (i + 2 != cmd->count || !imap_arg_is_atom(&cmd->args[i], "RETURN") ||
		    cmd->args[i + 1].type != IMAP_ARG_LIST || list_return(&cmd->args[i + 1], o) < 0) {
			imap_bad(s, cmd->tag, "Invalid return options");
			return;
		}
		o->extended = true;
	} else if (i != cmd->count) {
		imap_bad(s, cmd->tag, "Invalid arguments");
		return;
	}
	for (size_t p = 0; p < npatterns; p++) {
		const struct imap_arg *pa = &patterns[p];
		/* list-mailbox: a string or atom-like text with wildcards */
		if (pa->type == IMAP_ARG_ATOM)
			raw = pa->str;
		else if (!imap_arg_string(pa, &raw)) {
			imap_bad(s, cmd->tag, "Invalid mailbox pattern");
			return;
		}
	}
	struct buf b = BUF_INIT;
	for (size_t p = 0; p < npatterns; p++) {
		raw = patterns[p].str;
		int ret = list_pattern(s, o, ref, raw, &b);
		if (ret < 0) {
			imap_write_buf(s, &b);
			buf_free(&b);
			imap_store_error(s, cmd->tag, ret, "List failed");
			return;
		}
	}
	imap_write_buf(s, &b);
	buf_free(&b);
	imap_ok(s, cmd->tag, "%s completed", cmd->name);
}

void imap_cmd_list(struct imap_session *s, struct imap_cmd *cmd)
{
	struct list_opts o = { 0 };
	list_run(s, cmd, &o);
}

void imap_cmd_lsub(struct imap_session *s, struct imap_cmd *cmd)
{
	struct list_opts o = { 0 };
	o.lsub = true;
	list_run(s, cmd, &o);
}

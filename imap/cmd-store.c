/* Changes to messages: STORE (RFC 3501 6.4.6), EXPUNGE and UID EXPUNGE
 * (RFC 4315), COPY with COPYUID (RFC 4315) and MOVE (RFC 6851), and their
 * UID forms. */
#include "imap/imap-private.h"
#include "store/store.h"

#include <stdlib.h>
#include <string.h>

#define READ_ONLY_REPLY "[CANNOT] Mailbox is read-only"

/* System flags and keywords of a flag list; -1 for an invalid flag. */
static int flags_parse(struct imap_cmd *cmd, const struct imap_arg *args, size_t count,
		       uint32_t *flags_r, const char ***keywords_r, size_t *kw_count_r)
{
	static const struct { const char *name; uint32_t bit; } system[] = {
		{ "\\Seen", STORE_FLAG_SEEN }, { "\\Answered", STORE_FLAG_ANSWERED },
		{ "\\Flagged", STORE_FLAG_FLAGGED }, { "\\Deleted", STORE_FLAG_DELETED },
		{ "\\Draft", STORE_FLAG_DRAFT },
	};
	*flags_r = 0;
	*kw_count_r = 0;
	*keywords_r = pool_alloc(cmd->pool, (count ? count : 1) * sizeof(**keywords_r));
	for (size_t i = 0; i < count; i++) {
		const char *flag;
		if (!imap_arg_atom(&args[i], &flag) || strpbrk(flag, "()[]{}%*\"") != NULL)
			return -1;
		if (flag[0] != '\\') {
			(*keywords_r)[(*kw_count_r)++] = flag;
			continue;
		}
		size_t j = 0;
		while (j < sizeof(system) / sizeof(system[0]) &&
		       ascii_strcasecmp(flag, system[j].name) != 0)
			j++;
		if (j == sizeof(system) / sizeof(system[0]))
			return -1;   /* \Recent and unknown system flags cannot be stored */
		*flags_r |= system[j].bit;
	}
	return 0;
}

int imap_flag_list_parse(struct imap_cmd *cmd, const struct imap_arg *list, uint32_t *flags_r,
			 const char ***keywords_r, size_t *kw_count_r)
{
	return flags_parse(cmd, list->items, list->count, flags_r, keywords_r, kw_count_r);
}

static bool uids_have(const struct store_uids *list, uint32_t uid)
{
	for (size_t i = 0; i < list->count; i++)
		if (list->uids[i] == uid)
			return true;
	return false;
}

/* RFC 7162 3.1.3: [MODIFIED set] for what UNCHANGEDSINCE left alone. */
static void store_modified(struct imap_session *s, struct imap_cmd *cmd,
			   const struct store_uids *failed)
{
	struct store_uids numbers = STORE_UIDS_INIT;
	for (size_t i = 0; i < failed->count; i++) {
		uint32_t n = cmd->uid ? failed->uids[i]
				      : store_mailbox_uid_to_seq(s->mbox, failed->uids[i]);
		if (n != 0)
			store_uids_push(&numbers, n);
	}
	struct buf b = BUF_INIT;
	imap_command_updates(s);
	buf_printf(&b, "%s OK [MODIFIED ", cmd->tag);
	imap_append_uid_list(&b, numbers.uids, numbers.count);
	buf_printf(&b, "] Conditional %s failed\r\n", cmd->name);
	imap_write_buf(s, &b);
	buf_free(&b);
	store_uids_clear(&numbers);
}

void imap_cmd_store(struct imap_session *s, struct imap_cmd *cmd)
{
	const char *op;
	uint64_t unchangedsince = 0;
	/* STORE set [(UNCHANGEDSINCE n)] item flags */
	if (cmd->count >= 2 && cmd->args[1].type == IMAP_ARG_LIST) {
		const struct imap_arg *m = &cmd->args[1];
		if (m->count != 2 || !imap_arg_is_atom(&m->items[0], "UNCHANGEDSINCE") ||
		    !imap_arg_number(&m->items[1], &unchangedsince)) {
			imap_bad(s, cmd->tag, "Invalid STORE modifier");
			return;
		}
		s->enabled |= IMAP_ENABLED_CONDSTORE;
		/* drop the modifier: the set, then the item and the flags */
		const struct imap_arg *orig = cmd->args;
		struct imap_arg *args = pool_alloc(cmd->pool, (cmd->count - 1) * sizeof(*args));
		args[0] = orig[0];
		memcpy(args + 1, orig + 2, (cmd->count - 2) * sizeof(*args));
		cmd->args = args;
		cmd->count--;
	}
	if (cmd->count < 3 || !imap_arg_atom(&cmd->args[1], &op)) {
		imap_bad(s, cmd->tag, "Invalid STORE arguments");
		return;
	}
	enum store_flag_op fop;
	const char *rest = op;
	if (*rest == '+' || *rest == '-')
		rest++;
	fop = op[0] == '+' ? STORE_FLAGS_ADD : op[0] == '-' ? STORE_FLAGS_REMOVE
							: STORE_FLAGS_REPLACE;
	bool silent = ascii_strcasecmp(rest, "FLAGS.SILENT") == 0;
	if (!silent && ascii_strcasecmp(rest, "FLAGS") != 0) {
		imap_bad(s, cmd->tag, "Invalid STORE item");
		return;
	}
	const struct imap_arg *fargs = &cmd->args[2];
	size_t fcount = cmd->count - 2;
	if (fcount == 1 && fargs->type == IMAP_ARG_LIST) {
		fcount = fargs->count;
		fargs = fargs->items;
	}
	uint32_t flags;
	const char **keywords;
	size_t kw_count;
	if (flags_parse(cmd, fargs, fcount, &flags, &keywords, &kw_count) < 0) {
		imap_bad(s, cmd->tag, "Invalid flag");
		return;
	}
	struct store_uidset set = STORE_UIDSET_INIT;
	if (imap_seqset_to_uids(s, cmd, &cmd->args[0], cmd->uid, &set) < 0)
		return;
	if (s->read_only) {
		store_uidset_clear(&set);
		imap_no(s, cmd->tag, READ_ONLY_REPLY);
		return;
	}
	const char *error;
	struct store_uids failed = STORE_UIDS_INIT;
	int ret = store_msg_set_flags(s->mbox, &set, fop, flags, keywords, kw_count,
				      unchangedsince, &failed, &error);
	if (ret < 0) {
		store_uidset_clear(&set);
		store_uids_clear(&failed);
		imap_store_error(s, cmd->tag, ret, error);
		return;
	}
	struct buf b = BUF_INIT;
	size_t count;
	const uint32_t *uids = store_mailbox_uids(s->mbox, &count);
	for (size_t i = 0; i < count; i++)
		if (store_uidset_contains(&set, uids[i]) && !uids_have(&failed, uids[i]))
			imap_append_fetch_flags(s, silent ? NULL : &b, uids[i], cmd->uid);
	imap_write_buf(s, &b);
	buf_free(&b);
	store_uidset_clear(&set);
	if (failed.count > 0)
		store_modified(s, cmd, &failed);
	else
		imap_ok(s, cmd->tag, "%s completed", cmd->name);
	store_uids_clear(&failed);
}

void imap_cmd_expunge(struct imap_session *s, struct imap_cmd *cmd)
{
	struct store_uidset set = STORE_UIDSET_INIT;
	if (cmd->uid) {
		if (cmd->count != 1 || imap_seqset_to_uids(s, cmd, &cmd->args[0], true, &set) < 0) {
			if (cmd->count != 1)
				imap_bad(s, cmd->tag, "Invalid arguments");
			return;
		}
	} else if (cmd->count != 0) {
		imap_bad(s, cmd->tag, "Invalid arguments");
		return;
	} else {
		store_uidset_add(&set, 1, UINT32_MAX);
	}
	if (s->read_only) {
		store_uidset_clear(&set);
		imap_no(s, cmd->tag, READ_ONLY_REPLY);
		return;
	}
	const char *error;
	int ret = store_msg_expunge(s->mbox, &set, true, NULL, &error);
	store_uidset_clear(&set);
	if (ret < 0) {
		imap_store_error(s, cmd->tag, ret, error);
		return;
	}
	imap_sync(s, true);
	imap_ok(s, cmd->tag, "%s completed", cmd->name);
}

/* "1:3,7" from an ascending list. */
void imap_append_uid_list(struct buf *b, const uint32_t *uids, size_t count)
{
	for (size_t i = 0; i < count;) {
		size_t j = i;
		while (j + 1 < count && uids[j + 1] == uids[j] + 1)
			j++;
		buf_printf(b, "%s%u", i > 0 ? "," : "", uids[i]);
		if (j > i)
			buf_printf(b, ":%u", uids[j]);
		i = j + 1;
	}
}

/* COPYUID wants the pairs in source order; the store gives both lists
 * matched, ascending source UIDs first. */
static void copyuid(struct buf *b, uint32_t uidvalidity, const struct store_uids *src,
		    const struct store_uids *dst)
{
	buf_printf(b, "[COPYUID %u ", uidvalidity);
	imap_append_uid_list(b, src->uids, src->count);
	buf_append_char(b, ' ');
	imap_append_uid_list(b, dst->uids, dst->count);
	buf_append_char(b, ']');
}

static void copy_or_move(struct imap_session *s, struct imap_cmd *cmd, bool move)
{
	const char *raw, *dest;
	if (cmd->count != 2 || !imap_arg_astring(&cmd->args[1], &raw)) {
		imap_bad(s, cmd->tag, "Invalid arguments");
		return;
	}
	dest = imap_mailbox_from_client(s, cmd->pool, raw);
	if (dest == NULL) {
		imap_no(s, cmd->tag, "[CANNOT] Invalid mailbox name");
		return;
	}
	struct store_uidset set = STORE_UIDSET_INIT;
	if (imap_seqset_to_uids(s, cmd, &cmd->args[0], cmd->uid, &set) < 0)
		return;
	if (move && s->read_only) {
		store_uidset_clear(&set);
		imap_no(s, cmd->tag, READ_ONLY_REPLY);
		return;
	}
	struct store_uids src = STORE_UIDS_INIT, dst = STORE_UIDS_INIT;
	uint32_t uidvalidity = 0;
	const char *error;
	int ret = store_msg_copy(s->mbox, &set, dest, move, &uidvalidity, &src, &dst, &error);
	store_uidset_clear(&set);
	if (ret == STORE_ERR_NOTFOUND) {
		imap_no(s, cmd->tag, "[TRYCREATE] Mailbox does not exist");
	} else if (ret < 0) {
		imap_store_error(s, cmd->tag, ret, error);
	} else {
		struct buf b = BUF_INIT;
		if (move && src.count > 0) {
			/* RFC 6851 4.3: COPYUID comes untagged, before the EXPUNGEs */
			buf_append_str(&b, "* OK ");
			copyuid(&b, uidvalidity, &src, &dst);
			buf_append_str(&b, " Moved\r\n");
			imap_write_buf(s, &b);
			imap_sync(s, true);
			buf_printf(&b, "%s OK %s completed\r\n", cmd->tag, cmd->name);
		} else {
			imap_command_updates(s);
			buf_printf(&b, "%s OK ", cmd->tag);
			if (src.count > 0) {
				copyuid(&b, uidvalidity, &src, &dst);
				buf_append_char(&b, ' ');
			}
			buf_printf(&b, "%s completed\r\n", cmd->name);
		}
		imap_write_buf(s, &b);
		buf_free(&b);
	}
	store_uids_clear(&src);
	store_uids_clear(&dst);
}

void imap_cmd_copy(struct imap_session *s, struct imap_cmd *cmd)
{
	copy_or_move(s, cmd, false);
}

void imap_cmd_move(struct imap_session *s, struct imap_cmd *cmd)
{
	copy_or_move(s, cmd, true);
}

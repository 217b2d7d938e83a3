/* QUOTA (RFC 9208) with QUOTA=RES-STORAGE and QUOTA=RES-MESSAGE: one
 * quota root, "", over every mailbox of the account. The limits are the
 * account database's at the moment of the command (and are pushed to the
 * store, which enforces them); the usage is the store index's. SETQUOTA
 * is refused: the administrator sets quotas (`postern user quota`). */
#include "imap/imap-private.h"
#include "auth/auth.h"
#include "store/store.h"

#include <string.h>

struct quota_now {
	uint64_t bytes, messages;               /* used */
	uint64_t bytes_limit, messages_limit;   /* 0 = none */
};

static int quota_now(struct imap_session *s, struct quota_now *q)
{
	struct auth_user info;
	const char *error;
	memset(q, 0, sizeof(*q));
	if (auth_user_lookup(s->services->auth, s->user, &info) == 1) {
		q->bytes_limit = info.quota;
		q->messages_limit = info.quota_messages;
		uint64_t used, limit;
		if (store_account_get_quota(s->account, &used, &limit, &error) == 0 &&
		    limit != info.quota)
			store_account_set_quota(s->account, info.quota, &error);
		store_account_set_message_quota(s->account, info.quota_messages, &error);
	}
	if (store_account_get_usage(s->account, &q->bytes, &q->messages, &error) < 0) {
		log_error("event=quota-usage-failed error=\"%s\"", error);
		return -1;
	}
	return 0;
}

static bool quota_limited(const struct quota_now *q)
{
	return q->bytes_limit != 0 || q->messages_limit != 0;
}

/* * QUOTA "" (STORAGE used limit MESSAGE used limit): the resources with
 * a limit; STORAGE in units of 1024 octets. */
static void append_quota(struct buf *b, const struct quota_now *q)
{
	buf_append_str(b, "* QUOTA \"\" (");
	if (q->bytes_limit != 0)
		buf_printf(b, "STORAGE %llu %llu", (unsigned long long)((q->bytes + 1023) / 1024),
			   (unsigned long long)(q->bytes_limit / 1024));
	if (q->messages_limit != 0)
		buf_printf(b, "%sMESSAGE %llu %llu", q->bytes_limit != 0 ? " " : "",
			   (unsigned long long)q->messages, (unsigned long long)q->messages_limit);
	buf_append_str(b, ")\r\n");
}

void imap_cmd_getquotaroot(struct imap_session *s, struct imap_cmd *cmd)
{
	const char *raw, *name, *error;
	struct store_status st;
	if (cmd->count != 1 || !imap_arg_astring(&cmd->args[0], &raw)) {
		imap_bad(s, cmd->tag, "Invalid arguments");
		return;
	}
	if ((name = imap_mailbox_from_client(s, cmd->pool, raw)) == NULL) {
		imap_no(s, cmd->tag, "[CANNOT] Invalid mailbox name");
		return;
	}
	int ret = store_mailbox_status(s->account, name, &st, &error);
	if (ret < 0) {
		imap_store_error(s, cmd->tag, ret, error);
		return;
	}
	struct quota_now q;
	if (quota_now(s, &q) < 0) {
		imap_no(s, cmd->tag, "[SERVERBUG] Quota unavailable");
		return;
	}
	struct buf b = BUF_INIT;
	buf_append_str(&b, "* QUOTAROOT ");
	imap_append_mailbox(s, &b, name);
	/* without a limit the account has no quota root at all */
	if (quota_limited(&q)) {
		buf_append_str(&b, " \"\"\r\n");
		append_quota(&b, &q);
	} else {
		buf_append_str(&b, "\r\n");
	}
	imap_write_buf(s, &b);
	buf_free(&b);
	imap_ok(s, cmd->tag, "GETQUOTAROOT completed");
}

void imap_cmd_getquota(struct imap_session *s, struct imap_cmd *cmd)
{
	const char *root;
	if (cmd->count != 1 || !imap_arg_astring(&cmd->args[0], &root)) {
		imap_bad(s, cmd->tag, "Invalid arguments");
		return;
	}
	struct quota_now q;
	if (quota_now(s, &q) < 0) {
		imap_no(s, cmd->tag, "[SERVERBUG] Quota unavailable");
		return;
	}
	if (root[0] != '\0' || !quota_limited(&q)) {
		imap_no(s, cmd->tag, "[NONEXISTENT] No such quota root");
		return;
	}
	struct buf b = BUF_INIT;
	append_quota(&b, &q);
	imap_write_buf(s, &b);
	buf_free(&b);
	imap_ok(s, cmd->tag, "GETQUOTA completed");
}

void imap_cmd_setquota(struct imap_session *s, struct imap_cmd *cmd)
{
	const char *root;
	if (cmd->count != 2 || !imap_arg_astring(&cmd->args[0], &root) ||
	    cmd->args[1].type != IMAP_ARG_LIST) {
		imap_bad(s, cmd->tag, "Invalid arguments");
		return;
	}
	imap_no(s, cmd->tag, "[NOPERM] Quotas are set by the administrator");
}

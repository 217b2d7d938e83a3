/* APPEND (RFC 3501 6.3.11) with MULTIAPPEND (RFC 3502), APPENDUID
 * (RFC 4315) and APPENDLIMIT (RFC 7889). The message literals never sit in
 * memory: the command reader asks imap_append_literal() about every
 * literal, and those in message position stream into store deliveries
 * while the command is still being read. */
#include "imap/imap-private.h"
#include "intake/intake.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define IMAP_APPEND_DEFAULT_LIMIT (64u * 1024 * 1024)

uint64_t imap_append_limit(const struct imap_session *s)
{
	size_t max = conn_config(s->conn)->smtp_max_message_size;
	return max > 0 ? max : IMAP_APPEND_DEFAULT_LIMIT;
}

void imap_append_reset(struct imap_session *s)
{
	for (size_t i = 0; i < s->append_count; i++)
		if (s->appends[i] != NULL)
			store_delivery_free(&s->appends[i]);
	s->append_count = 0;
	s->append_failed = false;
}

enum imap_literal_action imap_append_literal(void *ctx, const char *cmd, size_t len,
					     uint64_t size)
{
	(void)size;
	struct imap_session *s = ctx;
	if (s->state == IMAP_STATE_NOT_AUTHENTICATED)
		return IMAP_LITERAL_KEEP;
	/* the command without the announcement: "tag APPEND box [flags] [date]" */
	size_t end = len;
	while (end > 0 && cmd[end - 1] != '{')
		end--;
	if (end == 0)
		return IMAP_LITERAL_KEEP;
	end--;
	if (end > 0 && cmd[end - 1] == '~')
		end--;
	while (end > 0 && cmd[end - 1] == ' ')
		end--;
	struct imap_command_line line;
	const char *error;
	if (imap_parse(s->cmd_pool, cmd, end, &line, &error) < 0 ||
	    ascii_strcasecmp(line.name, "APPEND") != 0 || line.count < 1)
		return IMAP_LITERAL_KEEP;
	/* a literal after the mailbox name is a message */
	if (s->append_count == s->append_cap) {
		s->append_cap = s->append_cap ? s->append_cap * 2 : 4;
		s->appends = xrealloc(s->appends, s->append_cap * sizeof(*s->appends));
	}
	struct store_delivery *d = NULL;
	if (store_delivery_begin(s->services->store, &d, &error) < 0) {
		log_error("event=append-begin-failed error=\"%s\"", error);
		s->append_failed = true;
		d = NULL;
	}
	s->appends[s->append_count++] = d;
	return IMAP_LITERAL_STREAM;
}

void imap_append_stream(void *ctx, const void *data, size_t len)
{
	struct imap_session *s = ctx;
	struct store_delivery *d = s->append_count > 0 ? s->appends[s->append_count - 1] : NULL;
	const char *error;
	if (d == NULL || s->append_failed)
		return;
	if (store_delivery_write(d, data, len, &error) < 0) {
		log_error("event=append-write-failed error=\"%s\"", error);
		s->append_failed = true;
	}
}

/* date-time = "dd-Mon-yyyy hh:mm:ss +zzzz" (day may be " d" or "d") */
static int parse_date_time(const char *text, time_t *t_r)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	char mon[4], zone[6];
	int day, year, hh, mm, ss, used = 0;
	while (*text == ' ')
		text++;
	if (sscanf(text, "%2d-%3s-%4d %2d:%2d:%2d %5s%n", &day, mon, &year, &hh, &mm, &ss, zone,
		   &used) != 7 || text[used] != '\0')
		return -1;
	const char *m = strstr(months, mon);
	if (m == NULL || (m - months) % 3 != 0 || strlen(mon) != 3)
		return -1;
	if ((zone[0] != '+' && zone[0] != '-') || strlen(zone) != 5 || day < 1 || day > 31 ||
	    year < 1970 || hh > 23 || mm > 59 || ss > 60)
		return -1;
	for (int i = 1; i < 5; i++)
		if (zone[i] < '0' || zone[i] > '9')
			return -1;
	struct tm tm = { .tm_mday = day, .tm_mon = (int)((m - months) / 3), .tm_year = year - 1900,
			 .tm_hour = hh, .tm_min = mm, .tm_sec = ss };
	int offset = ((zone[1] - '0') * 10 + (zone[2] - '0')) * 3600 +
		     ((zone[3] - '0') * 10 + (zone[4] - '0')) * 60;
	*t_r = timegm(&tm) - (zone[0] == '-' ? -offset : offset);
	return 0;
}

struct append_msg {
	uint32_t flags;
	const char **keywords;
	size_t kw_count;
	time_t date;
	const struct imap_arg *literal;
};

static int append_parse(struct imap_cmd *cmd, struct append_msg *msgs, size_t *count_r)
{
	size_t i = 1, n = 0;
	while (i < cmd->count) {
		struct append_msg *m = &msgs[n];
		memset(m, 0, sizeof(*m));
		if (cmd->args[i].type == IMAP_ARG_LIST) {
			if (imap_flag_list_parse(cmd, &cmd->args[i], &m->flags, &m->keywords,
						 &m->kw_count) < 0)
				return -1;
			i++;
		}
		if (i < cmd->count && cmd->args[i].type == IMAP_ARG_QUOTED) {
			if (parse_date_time(cmd->args[i].str, &m->date) < 0)
				return -1;
			i++;
		}
		if (i >= cmd->count || cmd->args[i].type != IMAP_ARG_LITERAL)
			return -1;
		m->literal = &cmd->args[i++];
		n++;
	}
	*count_r = n;
	return n > 0 ? 0 : -1;
}

void imap_cmd_append(struct imap_session *s, struct imap_cmd *cmd)
{
	const char *raw, *mailbox, *error;
	struct append_msg *msgs = pool_alloc(cmd->pool, (cmd->count + 1) * sizeof(*msgs));
	size_t count;
	if (cmd->count < 2 || !imap_arg_astring(&cmd->args[0], &raw) ||
	    append_parse(cmd, msgs, &count) < 0) {
		imap_bad(s, cmd->tag, "Invalid APPEND arguments");
		return;
	}
	mailbox = imap_mailbox_from_client(s, cmd->pool, raw);
	if (mailbox == NULL) {
		imap_no(s, cmd->tag, "[CANNOT] Invalid mailbox name");
		return;
	}
	if (s->append_failed || s->append_count != count) {
		imap_no(s, cmd->tag, "[SERVERBUG] Could not store the message");
		return;
	}
	for (size_t i = 0; i < count; i++) {
		if (msgs[i].literal->len != 0 || s->appends[i] == NULL) {
			imap_no(s, cmd->tag, "[SERVERBUG] Could not store the message");
			return;
		}
	}
	/* RFC 3502 3: all of a MULTIAPPEND in one store transaction, or none */
	struct store_append_item *items = pool_alloc(cmd->pool, (count + 1) * sizeof(*items));
	for (size_t i = 0; i < count; i++) {
		items[i] = (struct store_append_item){ s->appends[i], msgs[i].flags,
						       msgs[i].keywords, msgs[i].kw_count,
						       msgs[i].date, 0 };
	}
	uint32_t uidvalidity = 0;
	/* the quota as the account database says it now (the store holds it) */
	intake_quota_refresh(s->services, s->account, s->user);
	int ret = store_delivery_append_many(items, count, s->account, mailbox, &uidvalidity,
					     &error);
	if (ret < 0) {
		if (ret == STORE_ERR_NOTFOUND)
			imap_no(s, cmd->tag, "[TRYCREATE] Mailbox does not exist");
		else
			imap_store_error(s, cmd->tag, ret, error);
		return;
	}
	struct store_uids uids = STORE_UIDS_INIT;
	for (size_t i = 0; i < count; i++)
		store_uids_push(&uids, items[i].uid);
	imap_sync(s, true);
	struct buf b = BUF_INIT;
	buf_printf(&b, "%s OK [APPENDUID %u ", cmd->tag, uidvalidity);
	imap_append_uid_list(&b, uids.uids, uids.count);
	buf_append_str(&b, "] APPEND completed\r\n");
	imap_write_buf(s, &b);
	buf_free(&b);
	store_uids_clear(&uids);
}

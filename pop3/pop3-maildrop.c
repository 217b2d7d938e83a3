/* The maildrop: INBOX as it was at login (RFC 1939 5), locked against a
 * second POP3 session, and the TRANSACTION commands answered from the
 * index alone: STAT, LIST, UIDL, DELE, RSET; the UPDATE state at QUIT. */
#include "pop3/pop3-private.h"
#include "store/store.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Loads sizes from the index in one pass over the snapshot (no message
 * file is opened). */
static int maildrop_load(struct pop3_session *s, const char **error_r)
{
	size_t count = 0;
	const uint32_t *uids = store_mailbox_uids(s->mbox, &count);
	s->msgs = xcalloc(count > 0 ? count : 1, sizeof(*s->msgs));
	struct store_iter *iter = store_iter_new(s->mbox, NULL);
	struct store_msg msg;
	size_t n = 0;
	while (store_iter_next(iter, &msg)) {
		/* the index may already know newer messages than the snapshot */
		while (n < count && uids[n] < msg.uid)
			n++;   /* expunged meanwhile: not in the maildrop */
		if (n == count)
			break;
		if (uids[n] != msg.uid)
			continue;
		struct pop3_msg *m = &s->msgs[s->msg_count++];
		m->uid = msg.uid;
		m->size = msg.crlf_size;
		m->retrieved = (msg.flags & STORE_FLAG_SEEN) != 0;
		n++;
	}
	store_iter_free(&iter);
	*error_r = NULL;
	return 0;
}

int pop3_maildrop_open(struct pop3_session *s, const char *user)
{
	struct store *store = conn_services(s->conn)->store;
	const char *error = NULL;
	int ret = store_account_open(store, user, &s->acct, &error);
	if (ret == 0) {
		ret = store_account_lock(s->acct, "pop3", &s->lock, &error);
		if (ret == STORE_ERR_INUSE) {
			log_info("event=pop3-in-use");
			pop3_error(s, "-ERR [IN-USE] Mailbox is locked by another POP3 session");
			pop3_maildrop_close(s);
			return -1;
		}
	}
	if (ret == 0)
		ret = store_mailbox_open(s->acct, "INBOX", 0, &s->mbox, &error);
	if (ret == 0)
		ret = maildrop_load(s, &error);
	if (ret < 0) {
		log_error("event=pop3-maildrop-failed error=\"%s\"", error != NULL ? error : "?");
		pop3_error(s, "-ERR [SYS/TEMP] Cannot open the mailbox, try again later");
		pop3_maildrop_close(s);
		return -1;
	}
	struct store_status status;
	store_mailbox_get_status(s->mbox, &status);
	s->uidvalidity = status.uidvalidity;
	log_info("event=pop3-maildrop messages=%u", (unsigned)s->msg_count);
	return 0;
}

void pop3_maildrop_close(struct pop3_session *s)
{
	store_mailbox_close(&s->mbox);
	store_lock_release(&s->lock);
	store_account_close(&s->acct);
	free(s->msgs);
	s->msgs = NULL;
	s->msg_count = 0;
}

struct pop3_msg *pop3_msg_lookup(struct pop3_session *s, uint32_t num, const char **error_r)
{
	if (num == 0 || num > s->msg_count) {
		*error_r = "-ERR No such message";
		return NULL;
	}
	struct pop3_msg *m = &s->msgs[num - 1];
	if (m->deleted) {
		*error_r = "-ERR Message already deleted";
		return NULL;
	}
	return m;
}

static uint32_t msg_number(const struct pop3_session *s, const struct pop3_msg *m)
{
	return (uint32_t)(m - s->msgs) + 1;
}

void pop3_cmd_stat(struct pop3_session *s, const struct pop3_request *req)
{
	uint32_t count = 0;
	uint64_t size = 0;
	for (uint32_t i = 0; i < s->msg_count; i++) {
		if (s->msgs[i].deleted)
			continue;
		count++;
		size += s->msgs[i].size;
	}
	pop3_replyf(s, "+OK %" PRIu32 " %" PRIu64, count, size);
}

/* LIST and UIDL: one message, or a listing of every one not deleted. */
static void list_messages(struct pop3_session *s, const struct pop3_request *req, bool uidl)
{
	struct buf b = BUF_INIT;
	if (req->argc == 1) {
		const struct pop3_msg *m = req->msg[0];
		if (uidl)
			pop3_replyf(s, "+OK %" PRIu32 " %08X%08X", msg_number(s, m),
				    (unsigned)m->uid, (unsigned)s->uidvalidity);
		else
			pop3_replyf(s, "+OK %" PRIu32 " %" PRIu64, msg_number(s, m), m->size);
		return;
	}
	buf_append_str(&b, uidl ? "+OK Unique-ID listing follows\r\n" :
		       "+OK Scan listing follows\r\n");
	for (uint32_t i = 0; i < s->msg_count; i++) {
		const struct pop3_msg *m = &s->msgs[i];
		if (m->deleted)
			continue;
		if (uidl)
			buf_printf(&b, "%" PRIu32 " %08X%08X\r\n", i + 1, (unsigned)m->uid,
				   (unsigned)s->uidvalidity);
		else
			buf_printf(&b, "%" PRIu32 " %" PRIu64 "\r\n", i + 1, m->size);
		if (b.len >= 65536) {
			conn_write(s->conn, b.data, b.len);
			buf_reset(&b);
		}
	}
	buf_append_str(&b, ".\r\n");
	conn_write(s->conn, b.data, b.len);
	buf_free(&b);
}

void pop3_cmd_list(struct pop3_session *s, const struct pop3_request *req)
{
	list_messages(s, req, false);
}

void pop3_cmd_uidl(struct pop3_session *s, const struct pop3_request *req)
{
	list_messages(s, req, true);
}

void pop3_cmd_dele(struct pop3_session *s, const struct pop3_request *req)
{
	req->msg[0]->deleted = true;
	pop3_replyf(s, "+OK Message %" PRIu32 " deleted", msg_number(s, req->msg[0]));
}

void pop3_cmd_rset(struct pop3_session *s, const struct pop3_request *req)
{
	for (uint32_t i = 0; i < s->msg_count; i++)
		s->msgs[i].deleted = false;
	pop3_replyf(s, "+OK %" PRIu32 " messages", s->msg_count);
}

const char *pop3_maildrop_update(struct pop3_session *s)
{
	struct store_uidset set = STORE_UIDSET_INIT;
	size_t count = 0;
	for (uint32_t i = 0; i < s->msg_count; i++) {
		if (s->msgs[i].deleted) {
			store_uidset_add(&set, s->msgs[i].uid, s->msgs[i].uid);
			count++;
		}
	}
	const char *reply = "+OK Postern POP3 server signing off";
	if (count > 0) {
		const char *error = NULL;
		if (store_msg_expunge(s->mbox, &set, false, NULL, &error) < 0) {
			log_error("event=pop3-expunge-failed error=\"%s\"",
				  error != NULL ? error : "?");
			reply = "-ERR [SYS/TEMP] Some deleted messages were not removed";
		} else {
			log_info("event=pop3-update expunged=%zu", count);
		}
	}
	store_uidset_clear(&set);
	return reply;
}

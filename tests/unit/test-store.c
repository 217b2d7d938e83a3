#include "test.h"
#include "store/store.h"
#include "core/core.h"

#include <dirent.h>
#include <lmdb.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct store *store;
static unsigned int dir_counter;

/* A fresh store per test, so tests do not see each other's mail. */
static const char *fresh_store(void)
{
	static char dir[512];
	const char *error;
	snprintf(dir, sizeof(dir), "%s/s%u", test_tmpdir(), ++dir_counter);
	mkdir(dir, 0700);
	TEST_ASSERT_INT(store_open(dir, NULL, &store, &error), 0);
	return dir;
}

static void close_store(void)
{
	store_free(&store);
}

static int deliver(const char *address, const char *text, uint32_t *uid_r)
{
	struct store_delivery *d;
	const char *error;
	TEST_ASSERT_INT(store_delivery_begin(store, &d, &error), 0);
	TEST_ASSERT_INT(store_delivery_write(d, text, strlen(text), &error), 0);
	struct store_recipient r = { .address = address };
	int ret = store_delivery_commit(d, &r, 1);
	store_delivery_free(&d);
	if (uid_r != NULL)
		*uid_r = r.uid;
	return ret == 0 ? r.result : ret;
}

static int append(struct store_account *acct, const char *mailbox, const char *text,
		  uint32_t flags, const char *keyword, uint32_t *uid_r)
{
	struct store_delivery *d;
	const char *error;
	uint32_t uidvalidity;
	TEST_ASSERT_INT(store_delivery_begin(store, &d, &error), 0);
	TEST_ASSERT_INT(store_delivery_write(d, text, strlen(text), &error), 0);
	const char *kws[1] = { keyword };
	int ret = store_delivery_append(d, acct, mailbox, flags, kws, keyword != NULL ? 1 : 0,
					1600000000, &uidvalidity, uid_r, &error);
	store_delivery_free(&d);
	return ret;
}

static const char msg1[] = "Subject: hello\r\nFrom: a@b\r\n\r\nbody one\r\n";
static const char msg_lf[] = "Subject: bare\nFrom: a@b\n\nline1\nline2\n";

static void test_account_create(void)
{
	const char *data = fresh_store();
	struct store_account *acct, *again;
	const char *error;
	TEST_ASSERT_INT(store_account_open(store, "User@Example.ORG", &acct, &error), 0);
	TEST_ASSERT_INT(store_account_open(store, "User@example.org", &again, &error), 0);
	TEST_ASSERT(acct == again);
	store_account_close(&again);
	TEST_ASSERT(again == NULL);
	char path[600];
	snprintf(path, sizeof(path), "%s/mail/example.org/User/.Sent/cur", data);
	struct stat st;
	TEST_ASSERT_INT(stat(path, &st), 0);
	snprintf(path, sizeof(path), "%s/mail/example.org/User/postern-index.lmdb", data);
	TEST_ASSERT_INT(stat(path, &st), 0);

	struct store_list list;
	TEST_ASSERT_INT(store_mailbox_list(acct, "*", false, &list, &error), 0);
	TEST_ASSERT_INT(list.count, 6);
	TEST_ASSERT_STR(list.entries[0].name, "INBOX");
	TEST_ASSERT_STR(list.entries[1].name, "Archive");
	TEST_ASSERT_INT(list.entries[1].special_use, STORE_SPECIAL_ARCHIVE);
	TEST_ASSERT(list.entries[1].attrs & STORE_LIST_SUBSCRIBED);
	store_list_free(&list);
	TEST_ASSERT_INT(store_reader_check(store), 0);
	TEST_ASSERT(store_account_open(store, "../x@example.org", &again, &error) < 0);
	TEST_ASSERT(store_account_open(store, "nodomain", &again, &error) < 0);
	store_account_close(&acct);
	close_store();
}

static void test_deliver_and_read(void)
{
	fresh_store();
	struct store_account *acct;
	struct store_mailbox *mbox;
	const char *error;
	uint32_t uid1, uid2;
	TEST_ASSERT_INT(deliver("u@d", msg1, &uid1), 0);
	TEST_ASSERT_INT(deliver("u@d", msg_lf, &uid2), 0);
	TEST_ASSERT_INT(uid1, 1);
	TEST_ASSERT_INT(uid2, 2);
	TEST_ASSERT_INT(store_account_open(store, "u@d", &acct, &error), 0);
	TEST_ASSERT_INT(store_mailbox_open(acct, "inbox", 0, &mbox, &error), 0);
	size_t count;
	const uint32_t *uids = store_mailbox_uids(mbox, &count);
	TEST_ASSERT_INT(count, 2);
	TEST_ASSERT_INT(uids[1], 2);
	TEST_ASSERT_INT(store_mailbox_uid_to_seq(mbox, 2), 2);
	TEST_ASSERT(store_mailbox_is_recent(mbox, 1));

	struct store_msg msg;
	TEST_ASSERT_INT(store_msg_get(mbox, 2, &msg, &error), 0);
	TEST_ASSERT_INT(msg.size, strlen(msg_lf));
	TEST_ASSERT_INT(msg.crlf_size, strlen(msg_lf) + 5);
	TEST_ASSERT_INT(msg.flags, 0);
	TEST_ASSERT(strstr(msg.path, "/new/") != NULL);
	TEST_ASSERT(strstr(msg.path, ",W=") != NULL);

	struct store_cache cache;
	TEST_ASSERT_INT(store_msg_cache(mbox, 1, &cache, &error), 0);
	TEST_ASSERT_STR(cache.subject, "hello");
	TEST_ASSERT(store_cache_field_contains(&cache, STORE_SEARCH_SUBJECT, "ELL"));
	TEST_ASSERT(!store_cache_field_contains(&cache, STORE_SEARCH_SUBJECT, "bye"));
	TEST_ASSERT(cache.part_count >= 1);

	int fd;
	TEST_ASSERT_INT(store_msg_open_fd(mbox, 1, &fd, &error), 0);
	char buf[256];
	ssize_t n = read(fd, buf, sizeof(buf));
	close(fd);
	TEST_ASSERT_INT(n, strlen(msg1));
	bool found;
	TEST_ASSERT_INT(store_msg_text_contains(mbox, 1, "BODY ONE", true, &found, &error), 0);
	TEST_ASSERT(found);
	TEST_ASSERT_INT(store_msg_text_contains(mbox, 1, "hello", true, &found, &error), 0);
	TEST_ASSERT(!found);
	TEST_ASSERT_INT(store_msg_text_contains(mbox, 1, "hello", false, &found, &error), 0);
	TEST_ASSERT(found);

	struct store_status st;
	store_mailbox_get_status(mbox, &st);
	TEST_ASSERT_INT(st.messages, 2);
	TEST_ASSERT_INT(st.uidnext, 3);
	TEST_ASSERT_INT(st.unseen, 2);
	TEST_ASSERT_INT(st.recent, 2);
	TEST_ASSERT_INT(st.size, strlen(msg1) + strlen(msg_lf) + 5);
	store_mailbox_close(&mbox);

	/* \Recent went to the first read-write view */
	TEST_ASSERT_INT(store_mailbox_status(acct, "INBOX", &st, &error), 0);
	TEST_ASSERT_INT(st.recent, 0);
	TEST_ASSERT_INT(st.messages, 2);
	uint64_t used, limit;
	TEST_ASSERT_INT(store_account_get_quota(acct, &used, &limit, &error), 0);
	TEST_ASSERT_INT(used, strlen(msg1) + strlen(msg_lf));
	store_account_close(&acct);
	close_store();
}

static void test_multi_recipient(void)
{
	fresh_store();
	struct store_delivery *d;
	const char *error;
	TEST_ASSERT_INT(store_delivery_begin(store, &d, &error), 0);
	for (int i = 0; i < 100; i++)
		TEST_ASSERT_INT(store_delivery_write(d, "x", 1, &error), 0);
	struct store_recipient r[3] = {
		{ .address = "a@d" }, { .address = "b@d", .mailbox = "Archive" },
		{ .address = "bad" },
	};
	TEST_ASSERT_INT(store_delivery_commit(d, r, 3), 0);
	store_delivery_free(&d);
	TEST_ASSERT_INT(r[0].result, 0);
	TEST_ASSERT_INT(r[1].result, 0);
	TEST_ASSERT_INT(r[0].uid, 1);
	TEST_ASSERT(r[2].result < 0);
	TEST_ASSERT(r[2].error != NULL);
	struct store_account *acct;
	struct store_status st;
	TEST_ASSERT_INT(store_account_open(store, "b@d", &acct, &error), 0);
	TEST_ASSERT_INT(store_mailbox_status(acct, "Archive", &st, &error), 0);
	TEST_ASSERT_INT(st.messages, 1);
	TEST_ASSERT_INT(st.size, 100);
	store_account_close(&acct);
	close_store();
}

static void test_quota(void)
{
	fresh_store();
	struct store_account *acct;
	const char *error;
	TEST_ASSERT_INT(store_account_open(store, "q@d", &acct, &error), 0);
	TEST_ASSERT_INT(store_account_set_quota(acct, strlen(msg1) * 2 + 1, &error), 0);
	TEST_ASSERT_INT(deliver("q@d", msg1, NULL), 0);
	TEST_ASSERT_INT(deliver("q@d", msg1, NULL), 0);
	TEST_ASSERT_INT(deliver("q@d", msg1, NULL), STORE_ERR_OVERQUOTA);
	uint32_t uid;
	TEST_ASSERT_INT(append(acct, "Sent", msg1, 0, NULL, &uid), STORE_ERR_OVERQUOTA);
	/* expunging frees space */
	struct store_mailbox *mbox;
	struct store_uidset set = STORE_UIDSET_INIT;
	store_uidset_add(&set, 1, 1);
	TEST_ASSERT_INT(store_mailbox_open(acct, "INBOX", 0, &mbox, &error), 0);
	TEST_ASSERT_INT(store_msg_copy(mbox, &set, "Trash", false, &uid, NULL, NULL, &error),
			STORE_ERR_OVERQUOTA);
	TEST_ASSERT_INT(store_msg_expunge(mbox, &set, false, NULL, &error), 0);
	TEST_ASSERT_INT(deliver("q@d", msg1, NULL), 0);
	store_uidset_clear(&set);
	store_mailbox_close(&mbox);
	store_account_close(&acct);
	close_store();
}

static void test_flags_modseq(void)
{
	fresh_store();
	struct store_account *acct;
	struct store_mailbox *mbox;
	const char *error;
	uint32_t uid;
	TEST_ASSERT_INT(store_account_open(store, "f@d", &acct, &error), 0);
	for (int i = 0; i < 3; i++)
		TEST_ASSERT_INT(append(acct, "INBOX", msg1, i == 0 ? STORE_FLAG_SEEN : 0,
				       i == 1 ? "$Important" : NULL, &uid), 0);
	TEST_ASSERT_INT(store_mailbox_open(acct, "INBOX", 0, &mbox, &error), 0);
	struct store_msg msg;
	TEST_ASSERT_INT(store_msg_get(mbox, 1, &msg, &error), 0);
	TEST_ASSERT_INT(msg.flags, STORE_FLAG_SEEN);
	TEST_ASSERT_INT(msg.internaldate, 1600000000);
	TEST_ASSERT(strstr(msg.path, "/cur/") != NULL && strstr(msg.path, ":2,S") != NULL);
	TEST_ASSERT_INT(store_msg_get(mbox, 2, &msg, &error), 0);
	TEST_ASSERT_INT(msg.keywords, 1);
	TEST_ASSERT_STR(store_mailbox_keyword(mbox, 0), "$Important");
	TEST_ASSERT(strstr(msg.path, ":2,a") != NULL);

	struct store_status st;
	store_mailbox_get_status(mbox, &st);
	uint64_t base = st.highestmodseq;
	TEST_ASSERT_INT(st.unseen, 2);

	struct store_uidset set = STORE_UIDSET_INIT;
	store_uidset_add(&set, 1, 3);
	const char *kw[] = { "$Junk" };
	TEST_ASSERT_INT(store_msg_set_flags(mbox, &set, STORE_FLAGS_ADD, STORE_FLAG_FLAGGED,
					    kw, 1, 0, NULL, &error), 0);
	struct store_sync sync;
	TEST_ASSERT_INT(store_mailbox_sync(mbox, &sync, &error), 0);
	TEST_ASSERT_INT(sync.changed.count, 3);
	TEST_ASSERT_INT(sync.added.count, 0);
	store_sync_free(&sync);
	store_mailbox_get_status(mbox, &st);
	TEST_ASSERT_INT(st.highestmodseq, base + 3);
	TEST_ASSERT_INT(store_msg_get(mbox, 3, &msg, &error), 0);
	TEST_ASSERT_INT(msg.flags, STORE_FLAG_FLAGGED);
	TEST_ASSERT_INT(msg.modseq, base + 3);
	TEST_ASSERT(strstr(msg.path, ":2,Fb") != NULL);

	const char *bad_kw[] = { "two words" };
	TEST_ASSERT_INT(store_msg_set_flags(mbox, &set, STORE_FLAGS_ADD, 0, bad_kw, 1, 0, NULL,
					    &error), STORE_ERR_LIMIT);

	/* no change: no new MODSEQ */
	TEST_ASSERT_INT(store_msg_set_flags(mbox, &set, STORE_FLAGS_ADD, STORE_FLAG_FLAGGED,
					    NULL, 0, 0, NULL, &error), 0);
	TEST_ASSERT_INT(store_msg_get(mbox, 3, &msg, &error), 0);
	TEST_ASSERT_INT(msg.modseq, base + 3);

	/* UNCHANGEDSINCE: message 1 modified at base+1 passes base+1, 2 and 3 fail */
	struct store_uids failed = STORE_UIDS_INIT;
	TEST_ASSERT_INT(store_msg_set_flags(mbox, &set, STORE_FLAGS_REPLACE, STORE_FLAG_DELETED,
					    NULL, 0, base + 1, &failed, &error), 0);
	TEST_ASSERT_INT(failed.count, 2);
	TEST_ASSERT_INT(failed.uids[0], 2);
	store_uids_clear(&failed);
	TEST_ASSERT_INT(store_msg_get(mbox, 1, &msg, &error), 0);
	TEST_ASSERT_INT(msg.flags, STORE_FLAG_DELETED);
	TEST_ASSERT_INT(msg.keywords, 0);
	TEST_ASSERT_INT(msg.modseq, base + 4);

	struct store_uids changed = STORE_UIDS_INIT, vanished = STORE_UIDS_INIT;
	TEST_ASSERT_INT(store_changes_since(mbox, base + 2, &changed, &vanished, &error), 0);
	TEST_ASSERT_INT(changed.count, 2);   /* 3 (base+3) and 1 (base+4) */
	TEST_ASSERT_INT(changed.uids[0], 1);
	TEST_ASSERT_INT(vanished.count, 0);
	store_uids_clear(&changed);

	/* EXPUNGE only takes \Deleted ones */
	struct store_uids expunged = STORE_UIDS_INIT;
	TEST_ASSERT_INT(store_msg_expunge(mbox, &set, true, &expunged, &error), 0);
	TEST_ASSERT_INT(expunged.count, 1);
	TEST_ASSERT_INT(expunged.uids[0], 1);
	store_uids_clear(&expunged);
	TEST_ASSERT_INT(store_changes_since(mbox, base + 4, &changed, &vanished, &error), 0);
	TEST_ASSERT_INT(vanished.count, 1);
	TEST_ASSERT_INT(vanished.uids[0], 1);
	TEST_ASSERT_INT(changed.count, 0);
	store_uids_clear(&changed);
	store_uids_clear(&vanished);
	TEST_ASSERT_INT(store_mailbox_sync(mbox, &sync, &error), 0);
	TEST_ASSERT_INT(sync.expunged.count, 1);
	TEST_ASSERT_INT(sync.expunged.uids[0], 1);
	store_sync_free(&sync);
	size_t count;
	store_mailbox_uids(mbox, &count);
	TEST_ASSERT_INT(count, 2);
	TEST_ASSERT_INT(store_mailbox_uid_to_seq(mbox, 3), 2);

	/* the cache along an iteration */
	struct store_iter *iter = store_iter_new(mbox, NULL);
	size_t seen = 0;
	while (store_iter_next(iter, &msg)) {
		struct store_cache c;
		TEST_ASSERT_INT(store_iter_cache(iter, &c, &error), 0);
		TEST_ASSERT_STR(c.subject, "hello");
		TEST_ASSERT(c.envelope[0] == '(');
		seen++;
	}
	store_iter_free(&iter);
	TEST_ASSERT_INT(seen, 2);

	/* search from the index */
	struct store_search crit = { 0 };
	struct store_uids res = STORE_UIDS_INIT;
	crit.flags_set = STORE_FLAG_FLAGGED;
	crit.keywords_set = (uint64_t)1 << store_mailbox_keyword_index(mbox, "$IMPORTANT");
	TEST_ASSERT_INT(store_search_index(mbox, &crit, &res, &error), 0);
	TEST_ASSERT_INT(res.count, 1);
	TEST_ASSERT_INT(res.uids[0], 2);
	store_uids_clear(&res);
	memset(&crit, 0, sizeof(crit));
	crit.flags_unset = STORE_FLAG_SEEN;
	crit.larger = 10;
	crit.before = 1600000001;
	TEST_ASSERT_INT(store_search_index(mbox, &crit, &res, &error), 0);
	TEST_ASSERT_INT(res.count, 2);
	store_uids_clear(&res);

	/* read-only views cannot write */
	struct store_mailbox *ro;
	TEST_ASSERT_INT(store_mailbox_open(acct, "INBOX", STORE_OPEN_READ_ONLY, &ro, &error), 0);
	TEST_ASSERT_INT(store_msg_expunge(ro, &set, false, NULL, &error), STORE_ERR_READONLY);
	store_mailbox_close(&ro);
	store_uidset_clear(&set);
	store_mailbox_close(&mbox);
	store_account_close(&acct);
	close_store();
}

static void test_copy_move(void)
{
	fresh_store();
	struct store_account *acct;
	struct store_mailbox *mbox;
	const char *error;
	uint32_t uid, uidvalidity;
	TEST_ASSERT_INT(store_account_open(store, "c@d", &acct, &error), 0);
	for (int i = 0; i < 4; i++)
		TEST_ASSERT_INT(append(acct, "INBOX", msg1, STORE_FLAG_SEEN, "work", &uid), 0);
	TEST_ASSERT_INT(store_mailbox_open(acct, "INBOX", 0, &mbox, &error), 0);
	struct store_uidset set = STORE_UIDSET_INIT;
	store_uidset_add(&set, 2, 3);
	struct store_uids src = STORE_UIDS_INIT, dst = STORE_UIDS_INIT;
	TEST_ASSERT_INT(store_msg_copy(mbox, &set, "Archive", false, &uidvalidity, &src, &dst,
				       &error), 0);
	TEST_ASSERT_INT(src.count, 2);
	TEST_ASSERT_INT(dst.uids[0], 1);
	TEST_ASSERT_INT(dst.uids[1], 2);
	store_uids_clear(&src);
	store_uids_clear(&dst);
	struct store_status st;
	TEST_ASSERT_INT(store_mailbox_status(acct, "Archive", &st, &error), 0);
	TEST_ASSERT_INT(st.uidvalidity, uidvalidity);
	TEST_ASSERT_INT(st.messages, 2);
	TEST_ASSERT_INT(st.unseen, 0);

	store_uidset_clear(&set);
	store_uidset_add(&set, 1, 1);
	store_uidset_add(&set, 4, 4);
	TEST_ASSERT_INT(store_msg_copy(mbox, &set, "Trash", true, &uidvalidity, &src, &dst,
				       &error), 0);
	TEST_ASSERT_INT(dst.count, 2);
	store_uids_clear(&src);
	store_uids_clear(&dst);
	TEST_ASSERT_INT(store_mailbox_status(acct, "INBOX", &st, &error), 0);
	TEST_ASSERT_INT(st.messages, 2);
	struct store_mailbox *trash;
	TEST_ASSERT_INT(store_mailbox_open(acct, "Trash", STORE_OPEN_READ_ONLY, &trash, &error), 0);
	struct store_msg msg;
	TEST_ASSERT_INT(store_msg_get(trash, 2, &msg, &error), 0);
	TEST_ASSERT_INT(msg.flags, STORE_FLAG_SEEN);
	TEST_ASSERT_STR(store_mailbox_keyword(trash, 0), "work");
	TEST_ASSERT_INT(msg.keywords, 1);
	struct store_cache cache;
	TEST_ASSERT_INT(store_msg_cache(trash, 2, &cache, &error), 0);
	TEST_ASSERT_STR(cache.subject, "hello");
	store_mailbox_close(&trash);
	TEST_ASSERT_INT(store_msg_copy(mbox, &set, "Nope", false, &uidvalidity, NULL, NULL,
				       &error), STORE_ERR_NOTFOUND);
	store_uidset_clear(&set);
	store_mailbox_close(&mbox);
	uint64_t used, limit;
	TEST_ASSERT_INT(store_account_get_quota(acct, &used, &limit, &error), 0);
	TEST_ASSERT_INT(used, 6 * strlen(msg1));
	store_account_close(&acct);
	close_store();
}

static void test_mailbox_ops(void)
{
	const char *data = fresh_store();
	struct store_account *acct;
	const char *error;
	uint32_t uid;
	TEST_ASSERT_INT(store_account_open(store, "m@d", &acct, &error), 0);
	TEST_ASSERT_INT(store_mailbox_create(acct, "Projects", 0, &error), 0);
	TEST_ASSERT_INT(store_mailbox_create(acct, "Projects/Älpha", 0, &error), 0);
	TEST_ASSERT_INT(store_mailbox_create(acct, "Projects/Älpha/Deep", 0, &error), 0);
	TEST_ASSERT_INT(store_mailbox_create(acct, "Projects", 0, &error), STORE_ERR_EXISTS);
	TEST_ASSERT_INT(store_mailbox_create(acct, "a.b", 0, &error), STORE_ERR_INVALID);
	TEST_ASSERT_INT(store_mailbox_create(acct, "a/../b", 0, &error), STORE_ERR_INVALID);
	TEST_ASSERT_INT(store_mailbox_create(acct, "/x", 0, &error), STORE_ERR_INVALID);
	TEST_ASSERT_INT(store_mailbox_create(acct, "x*", 0, &error), STORE_ERR_INVALID);
	TEST_ASSERT_INT(append(acct, "Projects/Älpha", msg1, 0, NULL, &uid), 0);
	char path[600];
	struct stat st;
	snprintf(path, sizeof(path), "%s/mail/d/m/.Projects.&AMQ-lpha/cur", data);
	TEST_ASSERT_INT(stat(path, &st), 0);

	struct store_list list;
	TEST_ASSERT_INT(store_mailbox_list(acct, "Projects/%", false, &list, &error), 0);
	TEST_ASSERT_INT(list.count, 1);
	TEST_ASSERT_STR(list.entries[0].name, "Projects/Älpha");
	TEST_ASSERT(list.entries[0].attrs & STORE_LIST_HASCHILDREN);
	store_list_free(&list);
	TEST_ASSERT_INT(store_mailbox_list(acct, "Proj*", false, &list, &error), 0);
	TEST_ASSERT_INT(list.count, 3);
	store_list_free(&list);
	TEST_ASSERT_INT(store_mailbox_list(acct, "inbox", false, &list, &error), 0);
	TEST_ASSERT_INT(list.count, 1);
	store_list_free(&list);

	/* rename with children keeps messages and UIDVALIDITY */
	struct store_status before, after;
	TEST_ASSERT_INT(store_mailbox_status(acct, "Projects/Älpha", &before, &error), 0);
	TEST_ASSERT_INT(store_mailbox_rename(acct, "Projects", "Old/Projects", &error), 0);
	TEST_ASSERT_INT(store_mailbox_status(acct, "Old/Projects/Älpha", &after, &error), 0);
	TEST_ASSERT_INT(after.uidvalidity, before.uidvalidity);
	TEST_ASSERT_INT(after.messages, 1);
	TEST_ASSERT_INT(store_mailbox_status(acct, "Old/Projects/Älpha/Deep", &after, &error), 0);
	TEST_ASSERT_INT(store_mailbox_status(acct, "Projects", &after, &error), STORE_ERR_NOTFOUND);
	TEST_ASSERT_INT(store_mailbox_list(acct, "Old", false, &list, &error), 0);
	TEST_ASSERT_INT(list.count, 1);
	TEST_ASSERT(list.entries[0].attrs & STORE_LIST_NOSELECT);
	TEST_ASSERT(list.entries[0].attrs & STORE_LIST_HASCHILDREN);
	store_list_free(&list);
	TEST_ASSERT_INT(store_mailbox_rename(acct, "Old", "Old/Sub", &error),
			STORE_ERR_NOTPOSSIBLE);
	TEST_ASSERT_INT(store_mailbox_rename(acct, "Sent", "Old/Projects", &error),
			STORE_ERR_EXISTS);

	/* INBOX rename moves the messages, INBOX stays */
	TEST_ASSERT_INT(deliver("m@d", msg1, NULL), 0);
	TEST_ASSERT_INT(deliver("m@d", msg1, NULL), 0);
	TEST_ASSERT_INT(store_mailbox_rename(acct, "INBOX", "Saved", &error), 0);
	TEST_ASSERT_INT(store_mailbox_status(acct, "Saved", &after, &error), 0);
	TEST_ASSERT_INT(after.messages, 2);
	TEST_ASSERT_INT(store_mailbox_status(acct, "INBOX", &after, &error), 0);
	TEST_ASSERT_INT(after.messages, 0);
	TEST_ASSERT_INT(after.uidnext, 3);

	/* delete; recreate gets a new UIDVALIDITY */
	TEST_ASSERT_INT(store_mailbox_status(acct, "Saved", &before, &error), 0);
	TEST_ASSERT_INT(store_mailbox_delete(acct, "Saved", &error), 0);
	TEST_ASSERT_INT(store_mailbox_delete(acct, "Saved", &error), STORE_ERR_NOTFOUND);
	TEST_ASSERT_INT(store_mailbox_delete(acct, "INBOX", &error), STORE_ERR_NOTPOSSIBLE);
	TEST_ASSERT_INT(store_mailbox_create(acct, "Saved", 0, &error), 0);
	TEST_ASSERT_INT(store_mailbox_status(acct, "Saved", &after, &error), 0);
	TEST_ASSERT(after.uidvalidity != before.uidvalidity);
	TEST_ASSERT_INT(after.messages, 0);
	uint64_t used, limit;
	TEST_ASSERT_INT(store_account_get_quota(acct, &used, &limit, &error), 0);
	TEST_ASSERT_INT(used, strlen(msg1));

	/* subscriptions */
	TEST_ASSERT_INT(store_mailbox_subscribe(acct, "Gone/Away", true, &error), 0);
	TEST_ASSERT_INT(store_mailbox_list(acct, "Gone/*", true, &list, &error), 0);
	TEST_ASSERT_INT(list.count, 1);
	TEST_ASSERT(list.entries[0].attrs & STORE_LIST_NOSELECT);
	TEST_ASSERT(list.entries[0].attrs & STORE_LIST_SUBSCRIBED);
	store_list_free(&list);
	TEST_ASSERT_INT(store_mailbox_subscribe(acct, "Gone/Away", false, &error), 0);
	TEST_ASSERT_INT(store_mailbox_list(acct, "Gone/*", true, &list, &error), 0);
	TEST_ASSERT_INT(list.count, 0);
	store_list_free(&list);
	store_account_close(&acct);
	close_store();
}

/* The subscribed names matching pattern, joined with spaces. */
static const char *subscribed(struct store_account *acct, const char *pattern)
{
	static char out[1024];
	struct store_list list;
	const char *error;
	out[0] = '\0';
	TEST_ASSERT_INT(store_mailbox_list(acct, pattern, true, &list, &error), 0);
	for (size_t i = 0; i < list.count; i++) {
		if ((list.entries[i].attrs & STORE_LIST_SUBSCRIBED) == 0)
			continue;
		size_t len = strlen(out);
		snprintf(out + len, sizeof(out) - len, "%s%s", len > 0 ? " " : "",
			 list.entries[i].name);
	}
	store_list_free(&list);
	return out;
}

static void test_rename_subscriptions(void)
{
	fresh_store();
	struct store_account *acct;
	const char *error;
	TEST_ASSERT_INT(store_account_open(store, "r@d", &acct, &error), 0);
	TEST_ASSERT_INT(store_mailbox_create(acct, "Work", 0, &error), 0);
	TEST_ASSERT_INT(store_mailbox_create(acct, "Work/Äb", 0, &error), 0);
	TEST_ASSERT_INT(store_mailbox_create(acct, "Workshop", 0, &error), 0);
	const char *subs[] = { "Work", "Work/Äb", "Work/Gone", "Workshop", "Other" };
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
		TEST_ASSERT_INT(store_mailbox_subscribe(acct, subs[i], true, &error), 0);
	TEST_ASSERT_INT(store_mailbox_rename(acct, "Work", "Old/Job", &error), 0);
	/* the mailbox, its children (also a subscribed name that does not
	 * exist) move; "Workshop" is not a child */
	TEST_ASSERT_STR(subscribed(acct, "Old/*"), "Old/Job Old/Job/Gone Old/Job/Äb");
	TEST_ASSERT_STR(subscribed(acct, "Work*"), "Workshop");
	TEST_ASSERT_STR(subscribed(acct, "Other"), "Other");

	/* a failed rename moves nothing */
	TEST_ASSERT_INT(store_mailbox_rename(acct, "Old/Job", "Workshop", &error),
			STORE_ERR_EXISTS);
	TEST_ASSERT_STR(subscribed(acct, "Old/*"), "Old/Job Old/Job/Gone Old/Job/Äb");

	/* up the hierarchy: the new name of one is the old name of another */
	TEST_ASSERT_INT(store_mailbox_create(acct, "A/B", 0, &error), 0);
	TEST_ASSERT_INT(store_mailbox_subscribe(acct, "A/B/B/C", true, &error), 0);
	TEST_ASSERT_INT(store_mailbox_subscribe(acct, "A/B/C", true, &error), 0);
	TEST_ASSERT_INT(store_mailbox_rename(acct, "A/B", "A", &error), 0);
	TEST_ASSERT_STR(subscribed(acct, "A/*"), "A/B/C A/C");

	/* renaming INBOX leaves INBOX (and its subscription) in place */
	TEST_ASSERT_INT(deliver("r@d", msg1, NULL), 0);
	TEST_ASSERT_STR(subscribed(acct, "INBOX"), "INBOX");
	TEST_ASSERT_INT(store_mailbox_rename(acct, "INBOX", "Saved", &error), 0);
	TEST_ASSERT_STR(subscribed(acct, "INBOX"), "INBOX");
	TEST_ASSERT_STR(subscribed(acct, "Saved"), "");
	store_account_close(&acct);
	close_store();
}

/* Records in the index's expunge log (the store must be closed). */
static size_t expunge_log_size(const char *data, const char *account_dir)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/mail/%s/postern-index.lmdb", data, account_dir);
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_stat st = { 0 };
	TEST_ASSERT_INT(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 16);
	TEST_ASSERT_INT(mdb_env_open(env, path, MDB_NOSUBDIR | MDB_RDONLY, 0600), 0);
	TEST_ASSERT_INT(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	TEST_ASSERT_INT(mdb_dbi_open(txn, "expunged", MDB_INTEGERKEY, &dbi), 0);
	mdb_stat(txn, dbi, &st);
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return st.ms_entries;
}

/* uids[0..] starts with exactly lo..hi. */
static void expect_uid_range(const struct store_uids *uids, uint32_t lo, uint32_t hi)
{
	bool in_order = uids->count >= hi - lo + 1;
	for (size_t i = 0; in_order && i < hi - lo + 1; i++)
		in_order = uids->uids[i] == lo + i;
	TEST_ASSERT(in_order);
}

static void expunge_range(struct store_mailbox *mbox, uint32_t lo, uint32_t hi)
{
	struct store_uidset set = STORE_UIDSET_INIT;
	const char *error;
	store_uidset_add(&set, lo, hi);
	TEST_ASSERT_INT(store_msg_expunge(mbox, &set, false, NULL, &error), 0);
	store_uidset_clear(&set);
}

static void test_expunge_log_bounded(void)
{
	const char *data = fresh_store();
	struct store_account *acct;
	struct store_mailbox *mbox;
	const char *error;
	uint32_t uid, uidvalidity;
	TEST_ASSERT_INT(store_account_open(store, "x@d", &acct, &error), 0);
	TEST_ASSERT_INT(append(acct, "INBOX", msg1, 0, NULL, &uid), 0);
	TEST_ASSERT_INT(store_mailbox_open(acct, "INBOX", 0, &mbox, &error), 0);
	/* 16384 messages: copies of copies, one transaction each */
	struct store_uidset all = STORE_UIDSET_INIT;
	store_uidset_add(&all, 1, UINT32_MAX);
	for (int i = 0; i < 14; i++)
		TEST_ASSERT_INT(store_msg_copy(mbox, &all, "INBOX", false, &uidvalidity, NULL,
					       NULL, &error), 0);
	store_uidset_clear(&all);
	struct store_status st;
	TEST_ASSERT_INT(store_mailbox_status(acct, "INBOX", &st, &error), 0);
	TEST_ASSERT_INT(st.messages, 16384);
	uint64_t before = st.highestmodseq;

	/* more expunges than the log keeps, in two steps and then one by one */
	expunge_range(mbox, 1, 8000);
	TEST_ASSERT_INT(store_mailbox_status(acct, "INBOX", &st, &error), 0);
	uint64_t middle = st.highestmodseq;
	expunge_range(mbox, 8001, 14000);
	for (uint32_t u = 16384; u > 16380; u--)
		expunge_range(mbox, u, u);
	TEST_ASSERT_INT(store_mailbox_status(acct, "INBOX", &st, &error), 0);
	uint64_t late = st.highestmodseq - 2;   /* before the last two */

	/* a modseq older than the log: every UID gone, none that exists */
	struct store_uids changed = STORE_UIDS_INIT, vanished = STORE_UIDS_INIT;
	TEST_ASSERT_INT(store_changes_since(mbox, before, &changed, &vanished, &error), 0);
	TEST_ASSERT_INT(changed.count, 0);
	TEST_ASSERT_INT(vanished.count, 14004);
	expect_uid_range(&vanished, 1, 14000);
	if (vanished.count == 14004) {
		TEST_ASSERT_INT(vanished.uids[14000], 16381);
		TEST_ASSERT_INT(vanished.uids[14003], 16384);
	}
	store_uids_clear(&vanished);
	/* within the log: exact */
	TEST_ASSERT_INT(store_changes_since(mbox, middle, NULL, &vanished, &error), 0);
	TEST_ASSERT_INT(vanished.count, 6004);
	expect_uid_range(&vanished, 8001, 14000);
	store_uids_clear(&vanished);
	TEST_ASSERT_INT(store_changes_since(mbox, late, NULL, &vanished, &error), 0);
	TEST_ASSERT_INT(vanished.count, 2);
	if (vanished.count == 2) {
		TEST_ASSERT_INT(vanished.uids[0], 16381);
		TEST_ASSERT_INT(vanished.uids[1], 16382);
	}
	store_uids_clear(&vanished);

	/* a flag change after the pruning still shows as a change only */
	struct store_uidset one = STORE_UIDSET_INIT;
	store_uidset_add(&one, 14001, 14001);
	TEST_ASSERT_INT(store_msg_set_flags(mbox, &one, STORE_FLAGS_ADD, STORE_FLAG_SEEN, NULL,
					    0, 0, NULL, &error), 0);
	store_uidset_clear(&one);
	TEST_ASSERT_INT(store_changes_since(mbox, before, &changed, &vanished, &error), 0);
	TEST_ASSERT_INT(changed.count, 1);
	TEST_ASSERT_INT(vanished.count, 14004);
	store_uids_clear(&changed);
	store_uids_clear(&vanished);
	store_mailbox_close(&mbox);
	store_account_close(&acct);
	close_store();
	/* the log is bounded */
	size_t logged = expunge_log_size(data, "d/x");
	TEST_ASSERT_INT(logged, 10002);   /* pruned at 12,001 (twice) to 10,000 */
}

/* A delivery that finds the index's map full grows it and goes on. */
/* The UID list of views read at one (mailbox, UIDVALIDITY, HIGHESTMODSEQ)
 * is shared within the process: every change must show in the next open. */
static void expect_view(struct store_account *acct, const char *name, const uint32_t *want,
			size_t n)
{
	struct store_mailbox *mbox;
	const char *error;
	TEST_ASSERT_INT(store_mailbox_open(acct, name, 0, &mbox, &error), 0);
	size_t count;
	const uint32_t *uids = store_mailbox_uids(mbox, &count);
	TEST_ASSERT_INT(count, n);
	for (size_t i = 0; i < n && i < count; i++)
		TEST_ASSERT_INT(uids[i], want[i]);
	store_mailbox_close(&mbox);
}

static void test_view_snapshot_shared(void)
{
	fresh_store();
	struct store_account *acct;
	struct store_mailbox *held;
	const char *error;
	uint32_t uid;
	TEST_ASSERT_INT(store_account_open(store, "v@d", &acct, &error), 0);
	TEST_ASSERT_INT(store_mailbox_create(acct, "Other", 0, &error), 0);
	for (int i = 0; i < 3; i++)
		TEST_ASSERT_INT(append(acct, "INBOX", msg1, 0, NULL, &uid), 0);
	TEST_ASSERT_INT(append(acct, "Other", msg1, 0, NULL, &uid), 0);
	TEST_ASSERT_INT(store_mailbox_open(acct, "INBOX", 0, &held, &error), 0);
	expect_view(acct, "INBOX", (const uint32_t[]){ 1, 2, 3 }, 3);
	expect_view(acct, "Other", (const uint32_t[]){ 1 }, 1);
	expect_view(acct, "INBOX", (const uint32_t[]){ 1, 2, 3 }, 3);
	TEST_ASSERT_INT(deliver("v@d", msg1, NULL), 0);
	expect_view(acct, "INBOX", (const uint32_t[]){ 1, 2, 3, 4 }, 4);
	expunge_range(held, 2, 2);
	expect_view(acct, "INBOX", (const uint32_t[]){ 1, 3, 4 }, 3);
	/* a sync that walked leaves its list for the next open */
	struct store_sync sync;
	TEST_ASSERT_INT(store_mailbox_sync(held, &sync, &error), 0);
	TEST_ASSERT_INT(sync.expunged.count, 1);
	TEST_ASSERT_INT(sync.added.count, 1);
	store_sync_free(&sync);
	expect_view(acct, "INBOX", (const uint32_t[]){ 1, 3, 4 }, 3);
	store_mailbox_close(&held);
	/* a mailbox recreated under the same name is another mailbox */
	expect_view(acct, "Other", (const uint32_t[]){ 1 }, 1);
	TEST_ASSERT_INT(store_mailbox_delete(acct, "Other", &error), 0);
	TEST_ASSERT_INT(store_mailbox_create(acct, "Other", 0, &error), 0);
	expect_view(acct, "Other", NULL, 0);
	store_account_close(&acct);
	close_store();
}

/* A batch shares one read snapshot; a file renamed behind it (by another
 * session or from outside) is still opened: the batch ends and the
 * lookup runs again on fresh state. */
static void test_batch_snapshot(void)
{
	fresh_store();
	struct store_account *acct;
	struct store_mailbox *mbox;
	const char *error;
	TEST_ASSERT_INT(store_account_open(store, "b@d", &acct, &error), 0);
	TEST_ASSERT_INT(deliver("b@d", msg1, NULL), 0);
	TEST_ASSERT_INT(deliver("b@d", msg1, NULL), 0);
	TEST_ASSERT_INT(store_mailbox_open(acct, "INBOX", 0, &mbox, &error), 0);
	store_mailbox_batch_begin(mbox);
	struct store_msg msg;
	TEST_ASSERT_INT(store_msg_get(mbox, 1, &msg, &error), 0);
	char from[700], to[700];
	snprintf(from, sizeof(from), "%s", msg.path);
	snprintf(to, sizeof(to), "%s", msg.path);
	char *slash = strstr(to, "/new/");
	TEST_ASSERT(slash != NULL);
	if (slash != NULL)
		memcpy(slash, "/cur/", 5);
	strcat(to, ":2,S");
	TEST_ASSERT_INT(rename(from, to), 0);
	int fd = -1;
	TEST_ASSERT_INT(store_msg_open_fd(mbox, 1, &fd, &error), 0);
	TEST_ASSERT(fd >= 0);
	if (fd >= 0)
		close(fd);
	TEST_ASSERT_INT(store_msg_get(mbox, 1, &msg, &error), 0);
	TEST_ASSERT_INT(msg.flags, STORE_FLAG_SEEN);
	store_mailbox_batch_begin(mbox);
	TEST_ASSERT_INT(store_msg_get(mbox, 2, &msg, &error), 0);
	TEST_ASSERT(store_msg_get(mbox, 9, &msg, &error) < 0);
	struct store_cache cache;
	TEST_ASSERT_INT(store_msg_cache(mbox, 2, &cache, &error), 0);
	TEST_ASSERT(cache.subject != NULL && strcmp(cache.subject, "hello") == 0);
	/* closed with the batch still open: released with the view */
	store_mailbox_close(&mbox);
	store_account_close(&acct);
	close_store();
}

static void test_map_grows(void)
{
	const char *data = fresh_store();
	struct store_account *acct;
	struct store_mailbox *mbox;
	const char *error;
	/* a 30 KB Subject: ~90 KB of cache (Subject, ENVELOPE) a message */
	size_t subject_len = 30000;
	char *text = xmalloc(subject_len + 64);
	memcpy(text, "Subject: ", 9);
	memset(text + 9, 'x', subject_len);
	strcpy(text + 9 + subject_len, "\r\nFrom: a@b\r\n\r\nbody\r\n");
	for (int round = 0; round < 2; round++) {
		/* a map this small holds the new account and a few messages */
		store_set_index_mapsize(store, 256 * 1024);
		TEST_ASSERT_INT(store_account_open(store, "g@d", &acct, &error), 0);
		for (unsigned int i = 1; i <= 12; i++) {
			uint32_t uid = 0;
			TEST_ASSERT_INT(deliver("g@d", text, &uid), 0);
			TEST_ASSERT_INT(uid, round * 13 + i);
		}
		uint32_t uid = 0;
		TEST_ASSERT_INT(append(acct, "INBOX", text, STORE_FLAG_SEEN, "$big", &uid), 0);
		TEST_ASSERT_INT(uid, round * 13 + 13);
		TEST_ASSERT_INT(store_mailbox_open(acct, "INBOX", 0, &mbox, &error), 0);
		struct store_status st;
		store_mailbox_get_status(mbox, &st);
		TEST_ASSERT_INT(st.messages, round * 13 + 13);
		struct store_cache cache;
		TEST_ASSERT_INT(store_msg_cache(mbox, round * 13 + 12, &cache, &error), 0);
		TEST_ASSERT_INT(strlen(cache.subject), subject_len);
		store_mailbox_close(&mbox);
		store_account_close(&acct);
		/* reopened with the small map again (the file holds more):
		 * deliveries grow it again */
		close_store();
		TEST_ASSERT_INT(store_open(data, NULL, &store, &error), 0);
	}
	char path[600];
	struct stat st;
	snprintf(path, sizeof(path), "%s/mail/d/g/postern-index.lmdb", data);
	TEST_ASSERT_INT(stat(path, &st), 0);
	TEST_ASSERT(st.st_size > 1024 * 1024);
	close_store();
	free(text);
}

static void test_patterns_and_names(void)
{
	TEST_ASSERT(store_pattern_match("*", "a/b/c"));
	TEST_ASSERT(store_pattern_match("%", "a"));
	TEST_ASSERT(!store_pattern_match("%", "a/b"));
	TEST_ASSERT(store_pattern_match("a/%", "a/b"));
	TEST_ASSERT(store_pattern_match("a*c", "a/b/c"));
	TEST_ASSERT(!store_pattern_match("a%c", "a/b/c"));
	TEST_ASSERT(store_pattern_match("InBox", "INBOX"));
	TEST_ASSERT(store_pattern_match("inbox/%", "INBOX/x"));
	TEST_ASSERT(!store_pattern_match("inbox", "Inbox2"));
	TEST_ASSERT(store_pattern_match("a*%", "a/b"));
	TEST_ASSERT(store_pattern_match("%/%", "a/b"));
	TEST_ASSERT(!store_pattern_match("%/%", "a/b/c"));
	TEST_ASSERT(store_pattern_match("*/c", "a/b/c"));
	TEST_ASSERT(store_pattern_match("", "") && !store_pattern_match("", "a"));
	/* backtracking would take ages here */
	char hostile[200], name[520];
	for (size_t i = 0; i < 60; i++) {
		hostile[2 * i] = '*';
		hostile[2 * i + 1] = 'a';
	}
	strcpy(hostile + 120, "*b");
	memset(name, 'a', 500);
	name[500] = '\0';
	TEST_ASSERT(!store_pattern_match(hostile, name));

	char *s = store_mutf7_encode("Entwürfe");
	TEST_ASSERT_STR(s, "Entw&APw-rfe");
	free(s);
	s = store_mutf7_encode("A&B");
	TEST_ASSERT_STR(s, "A&-B");
	free(s);
	s = store_mutf7_encode("日本語");
	TEST_ASSERT_STR(s, "&ZeVnLIqe-");
	char *back = store_mutf7_decode(s);
	TEST_ASSERT_STR(back, "日本語");
	free(back);
	free(s);
	s = store_mutf7_encode("\xf0\x9f\x93\xa7 mail");   /* outside the BMP */
	back = store_mutf7_decode(s);
	TEST_ASSERT_STR(back, "\xf0\x9f\x93\xa7 mail");
	free(back);
	free(s);
	TEST_ASSERT(store_mutf7_decode("&AGE-") == NULL);   /* 'a' must not be encoded */
	TEST_ASSERT(store_mutf7_decode("&ZeVn") == NULL);   /* unterminated */
	TEST_ASSERT(store_mutf7_decode("a\x80") == NULL);
	TEST_ASSERT(store_mutf7_encode("\xff") == NULL);

	struct store_uidset set = STORE_UIDSET_INIT;
	store_uidset_add(&set, 5, 7);
	store_uidset_add(&set, 1, 2);
	store_uidset_add(&set, 3, 4);
	store_uidset_add(&set, 10, 9);
	TEST_ASSERT_INT(set.count, 2);
	TEST_ASSERT_INT(set.ranges[0].hi, 7);
	TEST_ASSERT(store_uidset_contains(&set, 9));
	TEST_ASSERT(!store_uidset_contains(&set, 8));
	store_uidset_clear(&set);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
}

static void test_self_heal(void)
{
	const char *data = fresh_store();
	struct store_account *acct;
	struct store_mailbox *mbox;
	const char *error;
	TEST_ASSERT_INT(store_account_open(store, "h@d", &acct, &error), 0);
	TEST_ASSERT_INT(deliver("h@d", msg1, NULL), 0);
	TEST_ASSERT_INT(deliver("h@d", msg1, NULL), 0);
	TEST_ASSERT_INT(store_mailbox_open(acct, "INBOX", 0, &mbox, &error), 0);
	char path[700], path2[700];
	/* another MDA drops a file; an admin flags one by renaming; one vanishes */
	snprintf(path, sizeof(path), "%s/mail/d/h/new/1700000000.outside.host", data);
	write_file(path, "Subject: outside\n\nhi\n");
	struct store_msg msg;
	TEST_ASSERT_INT(store_msg_get(mbox, 1, &msg, &error), 0);
	snprintf(path2, sizeof(path2), "%s", msg.path);
	char *slash = strstr(path2, "/new/");
	memcpy(slash, "/cur/", 5);
	strcat(path2, ":2,FS");
	TEST_ASSERT_INT(rename(msg.path, path2), 0);
	TEST_ASSERT_INT(store_msg_get(mbox, 2, &msg, &error), 0);
	TEST_ASSERT_INT(unlink(msg.path), 0);

	struct store_sync sync;
	TEST_ASSERT_INT(store_mailbox_sync(mbox, &sync, &error), 0);
	TEST_ASSERT_INT(sync.added.count, 1);
	TEST_ASSERT_INT(sync.added.uids[0], 3);
	TEST_ASSERT_INT(sync.expunged.count, 1);
	TEST_ASSERT_INT(sync.expunged.uids[0], 2);
	TEST_ASSERT_INT(sync.changed.count, 1);
	TEST_ASSERT_INT(sync.changed.uids[0], 1);
	store_sync_free(&sync);
	TEST_ASSERT_INT(store_msg_get(mbox, 1, &msg, &error), 0);
	TEST_ASSERT_INT(msg.flags, STORE_FLAG_FLAGGED | STORE_FLAG_SEEN);
	struct store_cache cache;
	TEST_ASSERT_INT(store_msg_cache(mbox, 3, &cache, &error), 0);
	TEST_ASSERT_STR(cache.subject, "outside");
	store_mailbox_close(&mbox);

	/* the index is lost: rebuilt with the same UIDVALIDITY and UIDs from
	 * the dovecot-uidlist the store keeps up to date */
	struct store_status before, after;
	TEST_ASSERT_INT(store_mailbox_status(acct, "INBOX", &before, &error), 0);
	store_account_close(&acct);
	close_store();   /* the process must let go of the environment */
	snprintf(path, sizeof(path), "%s/mail/d/h/postern-index.lmdb", data);
	TEST_ASSERT_INT(unlink(path), 0);
	TEST_ASSERT_INT(store_open(data, NULL, &store, &error), 0);
	TEST_ASSERT_INT(store_account_open(store, "h@d", &acct, &error), 0);
	TEST_ASSERT_INT(store_mailbox_status(acct, "INBOX", &after, &error), 0);
	TEST_ASSERT_INT(after.uidvalidity, before.uidvalidity);
	TEST_ASSERT_INT(after.messages, 2);
	TEST_ASSERT_INT(after.uidnext, 4);
	TEST_ASSERT_INT(store_mailbox_open(acct, "INBOX", STORE_OPEN_READ_ONLY, &mbox, &error), 0);
	size_t count;
	const uint32_t *uids = store_mailbox_uids(mbox, &count);
	TEST_ASSERT_INT(count, 2);
	TEST_ASSERT_INT(uids[0], 1);
	TEST_ASSERT_INT(uids[1], 3);
	TEST_ASSERT_INT(store_msg_get(mbox, 1, &msg, &error), 0);
	TEST_ASSERT_INT(msg.flags, STORE_FLAG_FLAGGED | STORE_FLAG_SEEN);
	store_mailbox_close(&mbox);
	store_account_close(&acct);
	close_store();

	/* a damaged index is moved aside and rebuilt */
	write_file(path, "this is not an LMDB file, not at all, really not...........");
	TEST_ASSERT_INT(store_open(data, NULL, &store, &error), 0);
	TEST_ASSERT_INT(store_account_open(store, "h@d", &acct, &error), 0);
	TEST_ASSERT_INT(store_mailbox_status(acct, "INBOX", &after, &error), 0);
	TEST_ASSERT_INT(after.uidvalidity, before.uidvalidity);
	TEST_ASSERT_INT(after.messages, 2);
	store_account_close(&acct);
	close_store();
}

static void test_dovecot_import(void)
{
	const char *data = fresh_store();
	char root[600], path[700];
	/* a Dovecot Maildir copied in before the account was ever opened */
	snprintf(root, sizeof(root), "%s/mail/example.com/dove", data);
	const char *dirs[] = { "", "/cur", "/new", "/tmp", "/.Work", "/.Work/cur",
			       "/.Work/new", "/.Work/tmp", "/.Entw&APw-rfe", "/.Entw&APw-rfe/cur",
			       "/.Entw&APw-rfe/new", "/.Entw&APw-rfe/tmp" };
	snprintf(path, sizeof(path), "%s/mail/example.com", data);
	mkdir(path, 0700);
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(path, sizeof(path), "%s%s", root, dirs[i]);
		TEST_ASSERT_INT(mkdir(path, 0700), 0);
	}
	snprintf(path, sizeof(path), "%s/dovecot-uidlist", root);
	write_file(path, "3 V1234567 N120 G0123456789abcdef\n"
		   "17 :1500000000.M1P1.host,S=20,W=21\n"
		   "105 G1234 :1500000001.M2P2.host,S=20,W=21\n");
	snprintf(path, sizeof(path), "%s/dovecot-keywords", root);
	write_file(path, "0 $Forwarded\n1 Work\n");
	snprintf(path, sizeof(path), "%s/cur/1500000000.M1P1.host,S=20,W=21:2,RSb", root);
	write_file(path, "Subject: one\n\nbody\n");
	snprintf(path, sizeof(path), "%s/new/1500000001.M2P2.host,S=20,W=21", root);
	write_file(path, "Subject: two\n\nbody\n");
	snprintf(path, sizeof(path), "%s/cur/1600000000.M3P3.host:2,", root);
	write_file(path, "Subject: three, not in the uidlist\n\nbody\n");
	snprintf(path, sizeof(path), "%s/.Work/dovecot-uidlist", root);
	write_file(path, "1 777 5\n3 1500000002.M4P4.host\n");
	snprintf(path, sizeof(path), "%s/.Work/cur/1500000002.M4P4.host:2,S", root);
	write_file(path, "Subject: work\n\nbody\n");

	struct store_account *acct;
	struct store_mailbox *mbox;
	const char *error;
	TEST_ASSERT_INT(store_account_open(store, "dove@example.com", &acct, &error), 0);
	TEST_ASSERT_INT(store_mailbox_open(acct, "INBOX", 0, &mbox, &error), 0);
	struct store_status st;
	store_mailbox_get_status(mbox, &st);
	TEST_ASSERT_INT(st.uidvalidity, 1234567);
	TEST_ASSERT_INT(st.messages, 3);
	TEST_ASSERT_INT(st.uidnext, 121);
	size_t count;
	const uint32_t *uids = store_mailbox_uids(mbox, &count);
	TEST_ASSERT_INT(count, 3);
	TEST_ASSERT_INT(uids[0], 17);
	TEST_ASSERT_INT(uids[1], 105);
	TEST_ASSERT_INT(uids[2], 120);
	struct store_msg msg;
	TEST_ASSERT_INT(store_msg_get(mbox, 17, &msg, &error), 0);
	TEST_ASSERT_INT(msg.flags, STORE_FLAG_ANSWERED | STORE_FLAG_SEEN);
	TEST_ASSERT_INT(msg.keywords, 2);
	TEST_ASSERT_STR(store_mailbox_keyword(mbox, 1), "Work");
	store_mailbox_close(&mbox);
	TEST_ASSERT_INT(store_mailbox_status(acct, "Work", &st, &error), 0);
	TEST_ASSERT_INT(st.uidvalidity, 777);
	TEST_ASSERT_INT(st.uidnext, 5);
	TEST_ASSERT_INT(st.messages, 1);
	TEST_ASSERT_INT(store_mailbox_status(acct, "Entwürfe", &st, &error), 0);
	/* a new delivery continues after the uidlist's UIDs */
	uint32_t uid;
	TEST_ASSERT_INT(deliver("dove@example.com", msg1, &uid), 0);
	TEST_ASSERT_INT(uid, 121);
	store_account_close(&acct);
	close_store();
}

static void test_adopt_after_create(void)
{
	const char *data = fresh_store();
	struct store_account *acct;
	const char *error;
	/* the admin created the account first, then copied the Maildir in */
	TEST_ASSERT_INT(store_account_open(store, "late@d", &acct, &error), 0);
	char path[700];
	snprintf(path, sizeof(path), "%s/mail/d/late/dovecot-uidlist", data);
	/* with the leftovers of a transaction that never committed: a name
	 * listed twice (the later UID wins) and a UID given to two names */
	write_file(path, "3 V42 N9\n8 :1500000000.M1P1.host\n3 :dup\n6 :dup\n6 :other\n");
	snprintf(path, sizeof(path), "%s/mail/d/late/cur/1500000000.M1P1.host:2,S", data);
	write_file(path, "Subject: old\n\nbody\n");
	snprintf(path, sizeof(path), "%s/mail/d/late/new/dup", data);
	write_file(path, "Subject: dup\n\nbody\n");
	snprintf(path, sizeof(path), "%s/mail/d/late/new/other", data);
	write_file(path, "Subject: other\n\nbody\n");
	struct store_status st;
	TEST_ASSERT_INT(store_mailbox_status(acct, "INBOX", &st, &error), 0);
	TEST_ASSERT_INT(st.uidvalidity, 42);
	TEST_ASSERT_INT(st.uidnext, 10);
	TEST_ASSERT_INT(st.messages, 3);
	struct store_mailbox *mbox;
	TEST_ASSERT_INT(store_mailbox_open(acct, "INBOX", STORE_OPEN_READ_ONLY, &mbox, &error), 0);
	struct store_cache cache;
	TEST_ASSERT_INT(store_msg_cache(mbox, 6, &cache, &error), 0);
	TEST_ASSERT_STR(cache.subject, "dup");
	TEST_ASSERT_INT(store_msg_cache(mbox, 9, &cache, &error), 0);
	TEST_ASSERT_STR(cache.subject, "other");
	store_mailbox_close(&mbox);
	/* the full scan compacted the uidlist */
	snprintf(path, sizeof(path), "%s/mail/d/late/dovecot-uidlist", data);
	FILE *f = fopen(path, "r");
	char text[512];
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	TEST_ASSERT_STR(text, "3 V42 N10\n6 :dup\n8 :1500000000.M1P1.host\n9 :other\n");
	store_account_close(&acct);
	close_store();
}

static const char msg_multi[] =
	"From: Ann <ann@example.org>\r\nTo: bob@example.net\r\n"
	"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\nMIME-Version: 1.0\r\n"
	"Content-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n"
	"--XX\r\nContent-Type: text/plain; charset=utf-8\r\n"
	"Content-Transfer-Encoding: base64\r\n\r\n"
	"aGlkZGVuIHRyZWFzdXJlIGhlcmU=\r\n"
	"--XX\r\nContent-Type: message/rfc822\r\n\r\n"
	"Subject: inner\r\nX-Tag: needle-in-inner-header\r\n\r\ninner body\r\n"
	"--XX--\r\n";

static void test_fetch_helpers(void)
{
	fresh_store();
	struct store_account *acct;
	struct store_mailbox *mbox;
	const char *error;
	uint32_t uid;
	TEST_ASSERT_INT(store_account_open(store, "x@d", &acct, &error), 0);
	TEST_ASSERT_INT(deliver("x@d", msg_multi, &uid), 0);
	TEST_ASSERT_INT(store_mailbox_open(acct, "INBOX", 0, &mbox, &error), 0);
	struct store_cache cache;
	TEST_ASSERT_INT(store_msg_cache(mbox, uid, &cache, &error), 0);
	TEST_ASSERT_STR(cache.subject, "Grüße");
	TEST_ASSERT(strstr(cache.envelope, "\"ann\" \"example.org\"") != NULL);
	TEST_ASSERT(strncmp(cache.bodystructure, "((\"text\" \"plain\"", 16) == 0);
	TEST_ASSERT(strstr(cache.from, "ann@example.org") != NULL);
	TEST_ASSERT_INT(store_cache_find_part(&cache, ""), 0);
	int p1 = store_cache_find_part(&cache, "1");
	int p2 = store_cache_find_part(&cache, "2");
	TEST_ASSERT(p1 > 0 && p2 > 0);
	TEST_ASSERT(cache.parts[p2].is_message);
	TEST_ASSERT(store_cache_find_part(&cache, "3") < 0);
	TEST_ASSERT(store_cache_find_part(&cache, "2.1") > 0);

	/* BODY[1] by offsets, then decoded */
	int fd;
	TEST_ASSERT_INT(store_msg_open_fd(mbox, uid, &fd, &error), 0);
	const struct store_part *part = &cache.parts[p1];
	char raw[256];
	size_t hlen = (size_t)(part->body_offset - part->header_offset);
	size_t blen = (size_t)(part->body_end - part->body_offset);
	TEST_ASSERT(hlen + blen < sizeof(raw));
	TEST_ASSERT_INT(pread(fd, raw, hlen + blen, (off_t)part->header_offset), hlen + blen);
	close(fd);
	raw[hlen + blen] = '\0';
	TEST_ASSERT(strncmp(raw + hlen, "aGlkZGVu", 8) == 0);
	size_t dlen;
	char *dec = store_decode_body(raw, hlen, raw + hlen, blen, false, &dlen);
	TEST_ASSERT_STR(dec, "hidden treasure here");
	free(dec);
	struct buf out = BUF_INIT;
	const char *names[] = { "content-type" };
	store_header_filter(raw, hlen, names, 1, false, &out);
	TEST_ASSERT_STR(buf_str(&out), "Content-Type: text/plain; charset=utf-8\r\n\r\n");
	buf_free(&out);
	char *h = store_decode_header("=?ISO-8859-1?Q?Caf=E9?=", 23);
	TEST_ASSERT_STR(h, "Café");
	free(h);

	/* SEARCH BODY/TEXT look into decoded parts and attached headers */
	bool found;
	TEST_ASSERT_INT(store_msg_text_contains(mbox, uid, "TREASURE", true, &found, &error), 0);
	TEST_ASSERT(found);
	TEST_ASSERT_INT(store_msg_text_contains(mbox, uid, "needle-in-inner", true, &found,
						&error), 0);
	TEST_ASSERT(found);
	TEST_ASSERT_INT(store_msg_text_contains(mbox, uid, "Grüße", true, &found, &error), 0);
	TEST_ASSERT(!found);
	TEST_ASSERT_INT(store_msg_text_contains(mbox, uid, "Grüße", false, &found, &error), 0);
	TEST_ASSERT(found);
	TEST_ASSERT_INT(store_msg_text_contains(mbox, uid, "bob@example", false, &found,
						&error), 0);
	TEST_ASSERT(found);
	TEST_ASSERT_INT(store_msg_text_contains(mbox, uid, "absent", false, &found, &error), 0);
	TEST_ASSERT(!found);

	/* one POP3 session per maildrop */
	int lock1 = -1, lock2 = -1;
	TEST_ASSERT_INT(store_account_lock(acct, "pop3", &lock1, &error), 0);
	TEST_ASSERT_INT(store_account_lock(acct, "pop3", &lock2, &error), STORE_ERR_INUSE);
	store_lock_release(&lock1);
	TEST_ASSERT_INT(store_account_lock(acct, "pop3", &lock2, &error), 0);
	store_lock_release(&lock2);
	TEST_ASSERT_INT(lock2, -1);
	store_mailbox_close(&mbox);
	store_account_close(&acct);
	close_store();
}

/* White-box: the layout of postern-intent (store/heal.c). */
struct test_intent {
	uint32_t id, pad;
	uint64_t seq;
};

static void test_trust_and_intent(void)
{
	const char *data = fresh_store();
	struct store_account *acct;
	struct store_mailbox *mbox;
	const char *error;
	char path[800], newdir[700];
	TEST_ASSERT_INT(store_account_open(store, "t@d", &acct, &error), 0);
	TEST_ASSERT_INT(deliver("t@d", msg1, NULL), 0);
	/* the scan sees fresh mtimes (not trusted yet) ... */
	TEST_ASSERT_INT(store_mailbox_open(acct, "INBOX", 0, &mbox, &error), 0);
	/* ... and the store's own change puts the index in step: trusted, so
	 * busy mailboxes are not rescanned at every sync */
	TEST_ASSERT_INT(deliver("t@d", msg1, NULL), 0);
	struct store_sync sync;
	TEST_ASSERT_INT(store_mailbox_sync(mbox, &sync, &error), 0);
	TEST_ASSERT_INT(sync.added.count, 1);
	store_sync_free(&sync);

	/* what a crash between link() and commit in the same timestamp tick
	 * leaves: a file, an unchanged directory mtime */
	snprintf(newdir, sizeof(newdir), "%s/mail/d/t/new", data);
	struct stat st;
	TEST_ASSERT_INT(stat(newdir, &st), 0);
	snprintf(path, sizeof(path), "%s/1.crashed.host", newdir);
	FILE *f = fopen(path, "w");
	fputs("Subject: orphan\n\nx\n", f);
	fclose(f);
	struct timespec times[2] = { st.st_atim, st.st_mtim };
	TEST_ASSERT_INT(utimensat(AT_FDCWD, newdir, times, 0), 0);
	TEST_ASSERT_INT(store_mailbox_sync(mbox, &sync, &error), 0);
	TEST_ASSERT_INT(sync.added.count, 0);   /* trusted: no rescan */
	store_sync_free(&sync);
	/* ... plus the intent the crashed change wrote: now it is found */
	snprintf(path, sizeof(path), "%s/mail/d/t/postern-intent", data);
	struct test_intent in = { 1, 0, UINT64_MAX };
	f = fopen(path, "w");
	fwrite(&in, sizeof(in), 1, f);
	fclose(f);
	TEST_ASSERT_INT(store_mailbox_sync(mbox, &sync, &error), 0);
	TEST_ASSERT_INT(sync.added.count, 1);
	store_sync_free(&sync);
	struct store_cache cache;
	TEST_ASSERT_INT(store_msg_cache(mbox, 3, &cache, &error), 0);
	TEST_ASSERT_STR(cache.subject, "orphan");
	store_mailbox_close(&mbox);
	store_account_close(&acct);
	close_store();
}

static void test_run_as(void)
{
	struct passwd *pw = getpwnam("nobody");
	if (geteuid() != 0 || pw == NULL)
		return;   /* only root hands files over */
	uid_t nobody = pw->pw_uid;
	const char *data = fresh_store();
	const char *error;
	close_store();
	TEST_ASSERT_INT(store_open(data, "nobody", &store, &error), 0);
	struct store_account *acct;
	TEST_ASSERT_INT(store_account_open(store, "r@d", &acct, &error), 0);
	uint32_t uid;
	TEST_ASSERT_INT(deliver("r@d", msg1, &uid), 0);
	TEST_ASSERT_INT(append(acct, "INBOX", msg1, 0, "kw", &uid), 0);
	struct store_mailbox *mbox;
	struct store_msg msg;
	TEST_ASSERT_INT(store_mailbox_open(acct, "INBOX", STORE_OPEN_READ_ONLY, &mbox, &error), 0);
	TEST_ASSERT_INT(store_msg_get(mbox, 1, &msg, &error), 0);
	const char *files[] = { "", "/cur", "/.Sent/new", "/postern-index.lmdb",
				"/postern-index.lmdb-lock", "/postern-notify", "/postern-intent",
				"/dovecot-uidlist", "/dovecot-keywords" };
	char path[700];
	struct stat st;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/mail/d/r%s", data, files[i]);
		TEST_ASSERT_INT(stat(path, &st), 0);
		if (st.st_uid != nobody)
			TEST_ASSERT_STR(path, "(owned by nobody)");
	}
	TEST_ASSERT_INT(stat(msg.path, &st), 0);
	TEST_ASSERT_INT(st.st_uid, nobody);
	store_mailbox_close(&mbox);
	store_account_close(&acct);
	close_store();
}

/* issue 17 part 2: the message-count quota, METADATA entries, the save
 * date and the EMAILID a copy keeps */
static void test_message_quota(void)
{
	fresh_store();
	struct store_account *acct;
	const char *error;
	uint64_t bytes, messages;
	uint32_t uid;
	TEST_ASSERT_INT(store_account_open(store, "m@d", &acct, &error), 0);
	TEST_ASSERT_INT(store_account_set_message_quota(acct, 2, &error), 0);
	TEST_ASSERT_INT(deliver("m@d", msg1, NULL), 0);
	TEST_ASSERT_INT(append(acct, "Sent", msg1, 0, NULL, &uid), 0);
	TEST_ASSERT_INT(deliver("m@d", msg1, NULL), STORE_ERR_OVERQUOTA);
	TEST_ASSERT_INT(append(acct, "Sent", msg1, 0, NULL, &uid), STORE_ERR_OVERQUOTA);
	TEST_ASSERT_INT(store_account_get_usage(acct, &bytes, &messages, &error), 0);
	TEST_ASSERT_INT(messages, 2);
	TEST_ASSERT_INT(bytes, 2 * strlen(msg1));
	struct store_mailbox *mbox;
	struct store_uidset set = STORE_UIDSET_INIT;
	store_uidset_add(&set, 1, 1);
	TEST_ASSERT_INT(store_mailbox_open(acct, "INBOX", 0, &mbox, &error), 0);
	TEST_ASSERT_INT(store_msg_copy(mbox, &set, "Trash", false, &uid, NULL, NULL, &error),
			STORE_ERR_OVERQUOTA);
	/* a move adds no message */
	TEST_ASSERT_INT(store_msg_copy(mbox, &set, "Trash", true, &uid, NULL, NULL, &error), 0);
	TEST_ASSERT_INT(store_account_set_message_quota(acct, 0, &error), 0);
	TEST_ASSERT_INT(deliver("m@d", msg1, NULL), 0);
	store_uidset_clear(&set);
	store_mailbox_close(&mbox);
	store_account_close(&acct);
	close_store();
}

static void test_metadata(void)
{
	fresh_store();
	struct store_account *acct;
	const char *error;
	TEST_ASSERT_INT(store_account_open(store, "md@d", &acct, &error), 0);
	struct store_metadata_entry set[] = {
		{ "/private/Vendor/a", "1", 1 }, { "/private/vendor/a/b", "22", 2 },
		{ "/private/vendor/c", "3", 1 }, { "/shared/comment", "x\0y", 3 },
	};
	TEST_ASSERT_INT(store_metadata_set(acct, "Sent", set, 4, 10, &error), 0);
	TEST_ASSERT_INT(store_metadata_set(acct, NULL, set, 1, 10, &error), 0);
	struct store_metadata md = { NULL, 0, 0 };
	TEST_ASSERT_INT(store_metadata_get(acct, "Sent", "/private/vendor", 1, &md, &error), 0);
	TEST_ASSERT_INT(md.count, 2);
	TEST_ASSERT_STR(md.entries[0].name, "/private/vendor/a");
	TEST_ASSERT_STR(md.entries[1].name, "/private/vendor/c");
	store_metadata_free(&md);
	TEST_ASSERT_INT(store_metadata_get(acct, "Sent", "/private", -1, &md, &error), 0);
	TEST_ASSERT_INT(md.count, 3);
	store_metadata_free(&md);
	TEST_ASSERT_INT(store_metadata_get(acct, "Sent", "/shared/comment", 0, &md, &error), 0);
	TEST_ASSERT(md.count == 1 && md.entries[0].len == 3 && memcmp(md.entries[0].value, "x\0y", 3) == 0);
	store_metadata_free(&md);
	/* the server's entries are apart from the mailbox's */
	TEST_ASSERT_INT(store_metadata_get(acct, NULL, "/private", -1, &md, &error), 0);
	TEST_ASSERT_INT(md.count, 1);
	store_metadata_free(&md);
	/* over the count nothing of the call is kept */
	struct store_metadata_entry more[] = { { "/private/vendor/c", NULL, 0 },
					       { "/private/new1", "n", 1 }, { "/private/new2", "n", 1 } };
	TEST_ASSERT_INT(store_metadata_set(acct, "Sent", more, 3, 4, &error), STORE_ERR_LIMIT);
	TEST_ASSERT_INT(store_metadata_get(acct, "Sent", "/private/vendor/c", 0, &md, &error), 0);
	TEST_ASSERT_INT(md.count, 1);
	store_metadata_free(&md);
	TEST_ASSERT_INT(store_metadata_set(acct, "Sent", more, 2, 4, &error), 0);
	/* RENAME keeps, DELETE drops */
	TEST_ASSERT_INT(store_mailbox_rename(acct, "Sent", "Old", &error), 0);
	TEST_ASSERT_INT(store_metadata_get(acct, "Old", "/private/new1", 0, &md, &error), 0);
	TEST_ASSERT_INT(md.count, 1);
	store_metadata_free(&md);
	TEST_ASSERT_INT(store_mailbox_delete(acct, "Old", &error), 0);
	TEST_ASSERT_INT(store_mailbox_create(acct, "Old", 0, &error), 0);
	TEST_ASSERT_INT(store_metadata_get(acct, "Old", "/private", -1, &md, &error), 0);
	TEST_ASSERT_INT(md.count, 0);
	TEST_ASSERT_INT(store_metadata_get(acct, "Nope", "/private", -1, &md, &error),
			STORE_ERR_NOTFOUND);
	store_account_close(&acct);
	close_store();
}

static void test_savedate_emailid(void)
{
	fresh_store();
	struct store_account *acct;
	struct store_mailbox *mbox;
	const char *error;
	uint32_t uid, uidvalidity;
	time_t before = time(NULL);
	TEST_ASSERT_INT(store_account_open(store, "e@d", &acct, &error), 0);
	TEST_ASSERT_INT(append(acct, "INBOX", msg1, 0, NULL, &uid), 0);
	TEST_ASSERT_INT(append(acct, "INBOX", msg1, 0, NULL, &uid), 0);
	TEST_ASSERT_INT(store_mailbox_open(acct, "INBOX", 0, &mbox, &error), 0);
	struct store_msg m1, m2;
	TEST_ASSERT_INT(store_msg_get(mbox, 1, &m1, &error), 0);
	/* APPEND's INTERNALDATE is old; the save date is now */
	TEST_ASSERT(m1.internaldate == 1600000000 && m1.savedate >= before &&
		    m1.savedate <= time(NULL));
	uint64_t id1 = store_msg_emailid(mbox, &m1);
	TEST_ASSERT_INT(store_msg_get(mbox, 2, &m2, &error), 0);
	TEST_ASSERT(store_msg_emailid(mbox, &m2) != id1);
	struct store_uidset set = STORE_UIDSET_INIT;
	store_uidset_add(&set, 1, 1);
	struct store_uids dst = STORE_UIDS_INIT;
	TEST_ASSERT_INT(store_msg_copy(mbox, &set, "Archive", true, &uidvalidity, NULL, &dst,
				       &error), 0);
	struct store_mailbox *archive;
	TEST_ASSERT_INT(store_mailbox_open(acct, "Archive", 0, &archive, &error), 0);
	TEST_ASSERT_INT(store_msg_get(archive, dst.uids[0], &m1, &error), 0);
	TEST_ASSERT(store_msg_emailid(archive, &m1) == id1);
	store_uids_clear(&dst);
	store_uidset_clear(&set);
	store_mailbox_close(&archive);
	store_mailbox_close(&mbox);
	store_account_close(&acct);
	close_store();
}

int main(void)
{
	log_init("test-store", LOG_LEVEL_ERROR);
	test_run("account_create", test_account_create);
	test_run("deliver_and_read", test_deliver_and_read);
	test_run("multi_recipient", test_multi_recipient);
	test_run("quota", test_quota);
	test_run("flags_modseq", test_flags_modseq);
	test_run("copy_move", test_copy_move);
	test_run("mailbox_ops", test_mailbox_ops);
	test_run("rename_subscriptions", test_rename_subscriptions);
	test_run("expunge_log_bounded", test_expunge_log_bounded);
	test_run("view_snapshot_shared", test_view_snapshot_shared);
	test_run("batch_snapshot", test_batch_snapshot);
	test_run("map_grows", test_map_grows);
	test_run("patterns_and_names", test_patterns_and_names);
	test_run("self_heal", test_self_heal);
	test_run("dovecot_import", test_dovecot_import);
	test_run("adopt_after_create", test_adopt_after_create);
	test_run("fetch_helpers", test_fetch_helpers);
	test_run("trust_and_intent", test_trust_and_intent);
	test_run("run_as", test_run_as);
	test_run("message_quota", test_message_quota);
	test_run("metadata", test_metadata);
	test_run("savedate_emailid", test_savedate_emailid);
	return test_end();
}

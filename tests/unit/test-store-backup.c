/* store_backup_account() while another process flags (renames), moves,
 * expunges and delivers: each copy opens as a store in which every
 * message of the snapshot that nobody touched is in INBOX under its UID,
 * a message moved meanwhile is in exactly one folder, none is there
 * twice, the UIDVALIDITY is the original's, and the index matches the
 * files. */
#include "test.h"
#include "store/store.h"
#include "core/core.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ADDRESS "a@t"
#define MESSAGES 200
#define BACKUPS 12

static char live_dir[600];
static uint32_t uid_of[MESSAGES];

/* i % 10: 0 may be expunged, 5 may be moved, the rest only change flags */
static bool expungeable(int i) { return i % 10 == 0; }
static bool movable(int i) { return i % 10 == 5; }

static int deliver(struct store *store, const char *id, uint32_t *uid_r)
{
	struct store_delivery *d;
	const char *error;
	char text[200];
	snprintf(text, sizeof(text), "Subject: %s\r\nMessage-ID: <%s@t>\r\n\r\nbody %s\r\n", id,
		 id, id);
	if (store_delivery_begin(store, &d, &error) < 0)
		return -1;
	store_delivery_write(d, text, strlen(text), &error);
	struct store_recipient r = { .address = ADDRESS };
	int ret = store_delivery_commit(d, &r, 1);
	store_delivery_free(&d);
	if (uid_r != NULL)
		*uid_r = r.uid;
	return ret == 0 ? r.result : ret;
}

/* The other process: changes the account until stop is readable. */
static void churn(int stop)
{
	struct store *store;
	struct store_account *acct;
	struct store_mailbox *mbox;
	const char *error;
	srand((unsigned int)getpid());
	if (store_open(live_dir, NULL, &store, &error) < 0 ||
	    store_account_open(store, ADDRESS, &acct, &error) < 0 ||
	    store_mailbox_open(acct, "INBOX", 0, &mbox, &error) < 0)
		_exit(2);
	fcntl(stop, F_SETFL, O_NONBLOCK);
	for (unsigned int n = 0;; n++) {
		char c;
		if (read(stop, &c, 1) == 0 || n > 200000)
			break;
		int i = rand() % MESSAGES;
		struct store_uidset set = STORE_UIDSET_INIT;
		store_uidset_add(&set, uid_of[i], uid_of[i]);
		int op = rand() % 20, ret = 0;
		if (expungeable(i) && op == 0) {
			ret = store_msg_expunge(mbox, &set, false, NULL, &error);
		} else if (movable(i) && op == 1) {
			uint32_t validity;
			ret = store_msg_copy(mbox, &set, "Other", true, &validity, NULL, NULL, &error);
		} else if (op == 2) {
			char id[32];
			snprintf(id, sizeof(id), "new%u", n);
			ret = deliver(store, id, NULL);
		} else {
			uint32_t flag = rand() % 2 ? STORE_FLAG_SEEN : STORE_FLAG_FLAGGED;
			const char *kw[] = { "$Work" };
			ret = store_msg_set_flags(mbox, &set, rand() % 2 ? STORE_FLAGS_ADD :
						  STORE_FLAGS_REMOVE, flag, kw, rand() % 2, 0, NULL,
						  &error);
		}
		store_uidset_clear(&set);
		if (ret < 0 && ret != STORE_ERR_NOTFOUND)
			_exit(3);
	}
	store_mailbox_close(&mbox);
	store_account_close(&acct);
	store_free(&store);
	_exit(0);
}

struct seen {
	int where[MESSAGES];        /* 0 nowhere, 1 INBOX, 2 Other, 3+ twice */
	uint32_t uid[MESSAGES];
	int news;
};

static void scan(struct store_account *acct, const char *name, int which, struct seen *seen,
		 const char *root)
{
	struct store_mailbox *mbox;
	const char *error;
	TEST_ASSERT_INT(store_mailbox_open(acct, name, STORE_OPEN_READ_ONLY, &mbox, &error), 0);
	struct store_iter *iter = store_iter_new(mbox, NULL);
	struct store_msg msg;
	size_t messages = 0;
	while (store_iter_next(iter, &msg)) {
		struct store_cache cache;
		messages++;
		TEST_ASSERT(access(msg.path, R_OK) == 0);
		TEST_ASSERT_INT(store_iter_cache(iter, &cache, &error), 0);
		int i;
		if (sscanf(cache.message_id, "<m%d@t>", &i) == 1 && i >= 0 && i < MESSAGES) {
			seen->where[i] = seen->where[i] == 0 ? which : 3;
			seen->uid[i] = msg.uid;
		} else if (strncmp(cache.message_id, "<new", 4) == 0) {
			seen->news++;
		} else {
			TEST_ASSERT(!"a message the test never made");
		}
	}
	store_iter_free(&iter);
	store_mailbox_close(&mbox);
	char *dir = strcmp(name, "INBOX") == 0 ? xstrdup(root) : xasprintf("%s/.%s", root, name);
	TEST_ASSERT_INT(test_count_files(dir, "new") + test_count_files(dir, "cur"), messages);
	free(dir);
}

static void check_copy(const char *copy_dir, uint32_t uidvalidity)
{
	struct store *store;
	struct store_account *acct;
	struct store_status st;
	const char *error;
	struct seen seen;
	memset(&seen, 0, sizeof(seen));
	TEST_ASSERT_INT(store_open(copy_dir, NULL, &store, &error), 0);
	TEST_ASSERT_INT(store_account_open(store, ADDRESS, &acct, &error), 0);
	TEST_ASSERT_INT(store_mailbox_status(acct, "INBOX", &st, &error), 0);
	TEST_ASSERT_INT(st.uidvalidity, uidvalidity);
	char *root = xasprintf("%s/mail/t/a", copy_dir);
	scan(acct, "INBOX", 1, &seen, root);
	scan(acct, "Other", 2, &seen, root);
	free(root);
	for (int i = 0; i < MESSAGES; i++) {
		TEST_ASSERT(seen.where[i] != 3);   /* never twice */
		if (expungeable(i))
			TEST_ASSERT(seen.where[i] != 2);
		else if (movable(i))
			TEST_ASSERT(seen.where[i] == 1 || seen.where[i] == 2);
		else
			TEST_ASSERT(seen.where[i] == 1);
		if (seen.where[i] == 1)
			TEST_ASSERT_INT(seen.uid[i], uid_of[i]);
	}
	printf("copy %s: %d new messages\n", copy_dir, seen.news);
	store_account_close(&acct);
	store_free(&store);
}

static void test_backup_while_changing(void)
{
	struct store *store;
	struct store_account *acct;
	struct store_status st;
	const char *error;
	snprintf(live_dir, sizeof(live_dir), "%s/live", test_tmpdir());
	mkdir(live_dir, 0700);
	TEST_ASSERT_INT(store_open(live_dir, NULL, &store, &error), 0);
	for (int i = 0; i < MESSAGES; i++) {
		char id[16];
		snprintf(id, sizeof(id), "m%d", i);
		TEST_ASSERT_INT(deliver(store, id, &uid_of[i]), 0);
	}
	TEST_ASSERT_INT(store_account_open(store, ADDRESS, &acct, &error), 0);
	TEST_ASSERT_INT(store_mailbox_create(acct, "Other", 0, &error), 0);
	TEST_ASSERT_INT(store_mailbox_status(acct, "INBOX", &st, &error), 0);
	store_account_close(&acct);
	store_free(&store);   /* no environment crosses the fork */

	int pipefd[2];
	TEST_ASSERT_INT(pipe(pipefd), 0);
	pid_t pid = fork();
	if (pid == 0) {
		close(pipefd[1]);
		churn(pipefd[0]);
	}
	close(pipefd[0]);
	struct timespec pause = { 0, 50 * 1000 * 1000 };
	nanosleep(&pause, NULL);
	char *root = xasprintf("%s/mail/t/a", live_dir);
	char *copies[BACKUPS];
	uint64_t renamed = 0, extra = 0, missing = 0;
	int made = 0;
	time_t deadline = time(NULL) + 8;
	/* until the copies met each kind of change, within reason */
	for (int k = 0; k < BACKUPS && (k < 3 || ((renamed == 0 || extra == 0) &&
						  time(NULL) < deadline)); k++) {
		struct store_backup_count count;
		memset(&count, 0, sizeof(count));
		copies[k] = xasprintf("%s/copy%d", test_tmpdir(), k);
		char *dest_parent = xasprintf("%s/mail/t", copies[k]);
		const char *mkerr;
		TEST_ASSERT_INT(privs_mkdir_p(dest_parent, 0700, NULL, &mkerr), 0);
		char *dest = xasprintf("%s/a", dest_parent);
		TEST_ASSERT_INT(store_backup_account(root, dest, NULL, &count, &error), 0);
		printf("backup %d: %llu mailboxes, %llu messages, %llu renamed, %llu missing, "
		       "%llu extra\n", k, (unsigned long long)count.mailboxes,
		       (unsigned long long)count.messages, (unsigned long long)count.renamed,
		       (unsigned long long)count.missing, (unsigned long long)count.extra);
		TEST_ASSERT(count.messages >= MESSAGES - MESSAGES / 5);
		renamed += count.renamed;
		extra += count.extra;
		missing += count.missing;
		made++;
		free(dest);
		free(dest_parent);
	}
	close(pipefd[1]);
	int status;
	waitpid(pid, &status, 0);
	TEST_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	for (int k = 0; k < made; k++) {
		check_copy(copies[k], st.uidvalidity);
		free(copies[k]);
	}
	printf("over %d backups: %llu renamed, %llu missing, %llu extra\n", made,
	       (unsigned long long)renamed, (unsigned long long)missing,
	       (unsigned long long)extra);
	free(root);
}

int main(void)
{
	log_init("test-store-backup", LOG_LEVEL_WARN);
	test_run("backup_while_changing", test_backup_while_changing);
	return test_end();
}

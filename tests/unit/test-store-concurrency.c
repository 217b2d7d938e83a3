/* Several processes deliver, flag, copy and expunge on one account at once;
 * afterwards the index matches the Maildir, the counters match the
 * messages and no UID was handed out twice. Also: a change made by one
 * process wakes another's watch fd within a second. */
#include "test.h"
#include "store/store.h"
#include "core/core.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WORKERS 4
#define OPS 60
#define ADDRESS "busy@test"

static char data_dir[600];
static char ledger_path[700];

static int deliver(struct store *store, const char *text, uint32_t *uid_r)
{
	struct store_delivery *d;
	const char *error;
	if (store_delivery_begin(store, &d, &error) < 0)
		return -1;
	store_delivery_write(d, text, strlen(text), &error);
	struct store_recipient r = { .address = ADDRESS };
	int ret = store_delivery_commit(d, &r, 1);
	store_delivery_free(&d);
	*uid_r = r.uid;
	return ret == 0 ? r.result : ret;
}

static void worker(unsigned int id)
{
	struct store *store;
	struct store_account *acct;
	struct store_mailbox *mbox;
	const char *error;
	srand(id * 7919u + (unsigned int)getpid());
	if (store_open(data_dir, NULL, &store, &error) < 0 ||
	    store_account_open(store, ADDRESS, &acct, &error) < 0 ||
	    store_mailbox_open(acct, "INBOX", 0, &mbox, &error) < 0)
		_exit(2);
	int ledger = open(ledger_path, O_WRONLY | O_APPEND | O_CLOEXEC);
	for (unsigned int n = 0; n < OPS; n++) {
		char text[200];
		uint32_t uid;
		struct store_uidset set = STORE_UIDSET_INIT;
		int op = rand() % 10;
		struct store_sync sync;
		if (op < 5) {
			snprintf(text, sizeof(text), "Subject: w%u-%u\r\n\r\n%*s\r\n", id, n,
				 rand() % 100, "x");
			if (deliver(store, text, &uid) < 0)
				_exit(3);
			char line[32];
			int l = snprintf(line, sizeof(line), "%u\n", uid);
			if (write(ledger, line, (size_t)l) != l)
				_exit(4);
			continue;
		}
		if (store_mailbox_sync(mbox, &sync, &error) < 0)
			_exit(5);
		store_sync_free(&sync);
		size_t count;
		const uint32_t *uids = store_mailbox_uids(mbox, &count);
		if (count == 0)
			continue;
		uint32_t pick = uids[(size_t)rand() % count];
		store_uidset_add(&set, pick, pick + (uint32_t)(rand() % 3));
		int ret = 0;
		if (op < 8) {
			const char *kw[] = { rand() % 2 ? "$Label1" : "Work" };
			ret = store_msg_set_flags(mbox, &set, op == 7 ? STORE_FLAGS_REMOVE
						  : STORE_FLAGS_ADD, STORE_FLAG_SEEN |
						  (op == 6 ? STORE_FLAG_DELETED : 0),
						  kw, 1, 0, NULL, &error);
		} else if (op == 8) {
			uint32_t uidvalidity;
			ret = store_msg_copy(mbox, &set, "Archive", rand() % 2, &uidvalidity,
					     NULL, NULL, &error);
		} else {
			ret = store_msg_expunge(mbox, &set, false, NULL, &error);
		}
		if (ret < 0) {
			fprintf(stderr, "worker %u op %d: %s\n", id, op, error);
			_exit(6);
		}
		store_uidset_clear(&set);
	}
	close(ledger);
	store_mailbox_close(&mbox);
	store_account_close(&acct);
	store_free(&store);
	_exit(0);
}

static void check_mailbox(struct store_account *acct, const char *name, const char *dir,
			  uint64_t *bytes_r)
{
	struct store_mailbox *mbox;
	const char *error;
	TEST_ASSERT_INT(store_mailbox_open(acct, name, STORE_OPEN_READ_ONLY, &mbox, &error), 0);
	struct store_status st;
	store_mailbox_get_status(mbox, &st);
	struct store_iter *iter = store_iter_new(mbox, NULL);
	struct store_msg msg;
	uint32_t messages = 0, unseen = 0, deleted = 0;
	uint64_t size = 0, maxmodseq = 0;
	while (store_iter_next(iter, &msg)) {
		messages++;
		unseen += (msg.flags & STORE_FLAG_SEEN) == 0;
		deleted += (msg.flags & STORE_FLAG_DELETED) != 0;
		size += msg.crlf_size;
		*bytes_r += msg.size;
		TEST_ASSERT(access(msg.path, R_OK) == 0);
		TEST_ASSERT(msg.uid < st.uidnext);
		if (msg.modseq > maxmodseq)
			maxmodseq = msg.modseq;
	}
	store_iter_free(&iter);
	TEST_ASSERT_INT(st.messages, messages);
	TEST_ASSERT_INT(st.unseen, unseen);
	TEST_ASSERT_INT(st.deleted, deleted);
	TEST_ASSERT_INT(st.size, size);
	TEST_ASSERT(maxmodseq <= st.highestmodseq);
	TEST_ASSERT_INT(test_count_files(dir, "new") + test_count_files(dir, "cur"), messages);
	store_mailbox_close(&mbox);
}

static void test_concurrency(void)
{
	snprintf(data_dir, sizeof(data_dir), "%s/conc", test_tmpdir());
	mkdir(data_dir, 0700);
	snprintf(ledger_path, sizeof(ledger_path), "%s/ledger", data_dir);
	close(open(ledger_path, O_WRONLY | O_CREAT, 0600));
	/* create the account once, before the workers race */
	struct store *store;
	struct store_account *acct;
	const char *error;
	TEST_ASSERT_INT(store_open(data_dir, NULL, &store, &error), 0);
	TEST_ASSERT_INT(store_account_open(store, ADDRESS, &acct, &error), 0);
	store_account_close(&acct);
	store_free(&store);

	pid_t pids[WORKERS];
	for (unsigned int i = 0; i < WORKERS; i++) {
		pids[i] = fork();
		if (pids[i] == 0)
			worker(i);
	}
	for (unsigned int i = 0; i < WORKERS; i++) {
		int status;
		waitpid(pids[i], &status, 0);
		TEST_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	/* no UID handed out twice */
	FILE *f = fopen(ledger_path, "r");
	unsigned int uid;
	static unsigned char seen[WORKERS * OPS + 16];
	size_t delivered = 0;
	while (fscanf(f, "%u", &uid) == 1) {
		delivered++;
		TEST_ASSERT(uid >= 1 && uid < sizeof(seen));
		if (uid < sizeof(seen)) {
			TEST_ASSERT(!seen[uid]);
			seen[uid] = 1;
		}
	}
	fclose(f);
	TEST_ASSERT(delivered > 0);
	printf("delivered=%zu\n", delivered);

	TEST_ASSERT_INT(store_open(data_dir, NULL, &store, &error), 0);
	TEST_ASSERT_INT(store_account_open(store, ADDRESS, &acct, &error), 0);
	char root[800];
	uint64_t bytes = 0;
	snprintf(root, sizeof(root), "%s/mail/test/busy", data_dir);
	check_mailbox(acct, "INBOX", root, &bytes);
	snprintf(root, sizeof(root), "%s/mail/test/busy/.Archive", data_dir);
	check_mailbox(acct, "Archive", root, &bytes);
	uint64_t used, limit;
	TEST_ASSERT_INT(store_account_get_quota(acct, &used, &limit, &error), 0);
	TEST_ASSERT_INT(used, bytes);
	store_account_close(&acct);
	store_free(&store);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void test_notify(void)
{
	snprintf(data_dir, sizeof(data_dir), "%s/notify", test_tmpdir());
	mkdir(data_dir, 0700);
	struct store *store;
	struct store_account *acct;
	struct store_mailbox *mbox;
	const char *error;
	TEST_ASSERT_INT(store_open(data_dir, NULL, &store, &error), 0);
	TEST_ASSERT_INT(store_account_open(store, ADDRESS, &acct, &error), 0);
	TEST_ASSERT_INT(store_mailbox_open(acct, "INBOX", 0, &mbox, &error), 0);
	/* a second account in the same process shares the one fd */
	struct store_account *other;
	TEST_ASSERT_INT(store_account_open(store, "other@test", &other, &error), 0);
	TEST_ASSERT_INT(store_account_watch(other, &error), 0);
	TEST_ASSERT_INT(store_account_watch(acct, &error), 0);
	int fd = store_watch_fd(store);
	TEST_ASSERT(fd >= 0);
	store_watch_consume(store);
	uint64_t seen = store_account_changes(acct);
	struct pollfd pfd = { fd, POLLIN, 0 };
	TEST_ASSERT_INT(poll(&pfd, 1, 0), 0);

	int pipefd[2];
	TEST_ASSERT_INT(pipe(pipefd), 0);
	pid_t pid = fork();
	if (pid == 0) {
		/* a separate process (it never touches the parent's env):
		 * exec-like discipline, a fresh store handle */
		char c;
		if (read(pipefd[0], &c, 1) != 1)
			_exit(1);
		struct store *s2;
		uint32_t uid;
		if (store_open(data_dir, NULL, &s2, &error) < 0)
			_exit(1);
		_exit(deliver(s2, "Subject: wake up\r\n\r\nnow\r\n", &uid) == 0 ? 0 : 1);
	}
	double start = now_s();
	if (write(pipefd[1], "g", 1) != 1)
		TEST_ASSERT(0);
	int ready = poll(&pfd, 1, 1000);
	double elapsed = now_s() - start;
	TEST_ASSERT_INT(ready, 1);
	TEST_ASSERT(elapsed < 1.0);
	printf("notify latency %.1f ms (includes the child's delivery)\n", elapsed * 1000);
	store_watch_consume(store);
	TEST_ASSERT(store_account_changes(acct) > seen);
	TEST_ASSERT_INT(store_account_changes(other), 0);
	int status;
	waitpid(pid, &status, 0);
	TEST_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	struct store_sync sync;
	TEST_ASSERT_INT(store_mailbox_sync(mbox, &sync, &error), 0);
	TEST_ASSERT_INT(sync.added.count, 1);
	store_sync_free(&sync);

	/* a file dropped into new/ by another MDA wakes it too */
	store_watch_consume(store);
	seen = store_account_changes(acct);
	char path[800];
	snprintf(path, sizeof(path), "%s/mail/test/busy/new/1.outside.host", data_dir);
	FILE *f = fopen(path, "w");
	fputs("Subject: x\n\nx\n", f);
	fclose(f);
	TEST_ASSERT_INT(poll(&pfd, 1, 1000), 1);
	store_watch_consume(store);
	TEST_ASSERT(store_account_changes(acct) > seen);
	TEST_ASSERT_INT(poll(&pfd, 1, 0), 0);

	/* the one-session conveniences */
	TEST_ASSERT_INT(store_account_watch_fd(acct), fd);
	store_account_watch_consume(acct);
	TEST_ASSERT(!store_account_watch_consume(acct));
	TEST_ASSERT_INT(store_mailbox_create(acct, "Fresh", 0, &error), 0);
	TEST_ASSERT_INT(poll(&pfd, 1, 1000), 1);
	TEST_ASSERT(store_account_watch_consume(acct));
	TEST_ASSERT(!store_account_watch_consume(other));
	close(pipefd[0]);
	close(pipefd[1]);
	store_mailbox_close(&mbox);
	store_account_close(&other);
	store_account_close(&acct);
	store_free(&store);
}

int main(void)
{
	log_init("test-store-concurrency", LOG_LEVEL_ERROR);
	test_run("concurrency", test_concurrency);
	test_run("notify", test_notify);
	return test_end();
}

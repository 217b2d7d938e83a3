/* Crash test: a child delivers (and flags) in a loop, writing a ledger
 * line after each acknowledged delivery; the parent SIGKILLs it at random
 * moments, then reopens the store and checks that every acknowledged
 * message is present exactly once, that the index matches the Maildir and
 * that no UID ever changes its message or is reused. */
#include "test.h"
#include "store/store.h"
#include "core/core.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KILLS 220
#define ADDRESS "crash@test"

static char data_dir[600];
static char ledger_path[700];

static void child_loop(unsigned int round)
{
	struct store *store;
	struct store_account *acct;
	struct store_mailbox *mbox = NULL;
	const char *error;
	if (store_open(data_dir, NULL, &store, &error) < 0 ||
	    store_account_open(store, ADDRESS, &acct, &error) < 0)
		_exit(2);
	int ledger = open(ledger_path, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (ledger < 0)
		_exit(2);
	store_mailbox_open(acct, "INBOX", 0, &mbox, &error);
	for (unsigned int n = 0;; n++) {
		char text[256], token[64];
		snprintf(token, sizeof(token), "t-%u-%u", round, n);
		int len = snprintf(text, sizeof(text),
				   "Subject: %s\r\nFrom: x@y\r\n\r\nbody of %s\r\n", token, token);
		struct store_delivery *d;
		if (store_delivery_begin(store, &d, &error) < 0)
			_exit(3);
		/* in pieces, as SMTP DATA would */
		store_delivery_write(d, text, 10, &error);
		store_delivery_write(d, text + 10, (size_t)len - 10, &error);
		struct store_recipient r = { .address = ADDRESS };
		if (store_delivery_commit(d, &r, 1) == 0 && r.result == 0) {
			char line[128];
			int l = snprintf(line, sizeof(line), "%u %s\n", r.uid, token);
			if (write(ledger, line, (size_t)l) != l)
				_exit(4);
		}
		store_delivery_free(&d);
		if (mbox != NULL && n % 3 == 0) {
			struct store_uidset set = STORE_UIDSET_INIT;
			store_uidset_add(&set, r.uid > 5 ? r.uid - 5 : 1, r.uid);
			store_msg_set_flags(mbox, &set, n % 2 ? STORE_FLAGS_ADD : STORE_FLAGS_REMOVE,
					    STORE_FLAG_SEEN, NULL, 0, 0, NULL, &error);
			store_uidset_clear(&set);
		}
	}
}

static char **known;        /* uid -> token of every UID ever seen */
static size_t known_cap;

static void remember(uint32_t uid, const char *token)
{
	if (uid >= known_cap) {
		size_t cap = known_cap == 0 ? 1024 : known_cap;
		while (cap <= uid)
			cap *= 2;
		known = xrealloc(known, cap * sizeof(*known));
		memset(known + known_cap, 0, (cap - known_cap) * sizeof(*known));
		known_cap = cap;
	}
	if (known[uid] == NULL)
		known[uid] = xstrdup(token);
	else
		TEST_ASSERT_STR(known[uid], token);   /* a UID keeps its message */
}

/* Cuts the ledger after its last newline. */
static void ledger_drop_last_line(void)
{
	int fd = open(ledger_path, O_RDWR);
	TEST_ASSERT(fd >= 0);
	if (fd < 0)
		return;
	off_t size = lseek(fd, 0, SEEK_END), keep = 0;
	char c;
	for (off_t i = size - 1; i >= 0; i--) {
		if (pread(fd, &c, 1, i) == 1 && c == '\n') {
			keep = i + 1;
			break;
		}
	}
	TEST_ASSERT_INT(ftruncate(fd, keep), 0);
	close(fd);
}

static int token_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void check_round(void)
{
	struct store *store;
	struct store_account *acct;
	struct store_mailbox *mbox;
	const char *error;
	TEST_ASSERT_INT(store_open(data_dir, NULL, &store, &error), 0);
	TEST_ASSERT_INT(store_account_open(store, ADDRESS, &acct, &error), 0);
	TEST_ASSERT_INT(store_mailbox_open(acct, "INBOX", STORE_OPEN_READ_ONLY, &mbox, &error), 0);

	size_t count;
	store_mailbox_uids(mbox, &count);
	char **tokens = xcalloc(count + 1, sizeof(*tokens));
	size_t n = 0;
	struct store_iter *iter = store_iter_new(mbox, NULL);
	struct store_msg msg;
	uint32_t prev = 0;
	while (store_iter_next(iter, &msg)) {
		TEST_ASSERT(msg.uid > prev);
		prev = msg.uid;
		TEST_ASSERT(access(msg.path, R_OK) == 0);
		struct store_cache cache;
		char *path = xstrdup(msg.path);
		uint32_t uid = msg.uid;
		TEST_ASSERT_INT(store_msg_cache(mbox, uid, &cache, &error), 0);
		remember(uid, cache.subject);
		if (n < count)
			tokens[n++] = xstrdup(cache.subject);
		free(path);
	}
	store_iter_free(&iter);
	TEST_ASSERT_INT(n, count);
	/* every message exactly once */
	qsort(tokens, n, sizeof(*tokens), token_cmp);
	for (size_t i = 1; i < n; i++)
		if (strcmp(tokens[i - 1], tokens[i]) == 0)
			TEST_ASSERT_STR(tokens[i], "(a duplicate)");
	/* every acknowledged message present, under its acknowledged UID */
	FILE *f = fopen(ledger_path, "r");
	unsigned int uid;
	char token[64];
	size_t acked = 0, torn = 0;
	char *line = NULL;
	size_t cap = 0;
	ssize_t got;
	while ((got = getline(&line, &cap, f)) > 0) {
		/* the child may die inside its write of the last line, which the
		 * file then holds cut short or padded with NULs: that write's
		 * delivery was never acknowledged to anyone but the ledger */
		if ((size_t)got != strlen(line) || line[got - 1] != '\n' ||
		    sscanf(line, "%u %63s", &uid, token) != 2) {
			torn++;
			continue;
		}
		TEST_ASSERT_INT(torn, 0);   /* only ever the last line */
		acked++;
		TEST_ASSERT(uid < known_cap && known[uid] != NULL);
		if (uid < known_cap && known[uid] != NULL)
			TEST_ASSERT_STR(known[uid], token);
	}
	free(line);
	fclose(f);
	if (torn > 0) {
		/* rewritten without it, so the next child appends after a
		 * whole line */
		TEST_ASSERT_INT(torn, 1);
		ledger_drop_last_line();
	}
	TEST_ASSERT(acked <= count);
	/* the index matches the Maildir */
	char root[800];
	snprintf(root, sizeof(root), "%s/mail/test/crash", data_dir);
	TEST_ASSERT_INT(test_count_files(root, "new") + test_count_files(root, "cur"), count);
	struct store_status st;
	store_mailbox_get_status(mbox, &st);
	TEST_ASSERT_INT(st.messages, count);
	for (size_t i = 0; i < n; i++)
		free(tokens[i]);
	free(tokens);
	store_mailbox_close(&mbox);
	store_account_close(&acct);
	store_free(&store);
}

static void test_crash(void)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : test_tmpdir();
	snprintf(data_dir, sizeof(data_dir), "%s/postern-crash-XXXXXX", base);
	TEST_ASSERT(mkdtemp(data_dir) != NULL);
	snprintf(ledger_path, sizeof(ledger_path), "%s/ledger", data_dir);
	close(open(ledger_path, O_WRONLY | O_CREAT, 0600));
	srand((unsigned int)time(NULL));
	unsigned int kills = 0;
	for (unsigned int round = 0; round < KILLS && test_failures == 0; round++) {
		pid_t pid = fork();
		if (pid == 0)
			child_loop(round);
		/* at random moments, including very early ones (open, heal) */
		usleep((useconds_t)(rand() % 15000));
		kill(pid, SIGKILL);
		int status;
		waitpid(pid, &status, 0);
		if (WIFSIGNALED(status))
			kills++;
		check_round();
	}
	printf("kills=%u uids=%zu\n", kills, known_cap);
	TEST_ASSERT(kills >= 200);
	char cmd[800];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", data_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup failed\n");
	for (size_t i = 0; i < known_cap; i++)
		free(known[i]);
	free(known);
}

int main(void)
{
	log_init("test-store-crash", LOG_LEVEL_ERROR);
	test_run("crash", test_crash);
	return test_end();
}

/* Accounts that end: the store's address rules, removing an account's
 * mail (or keeping it aside), the marks of ended accounts, a cached handle
 * of a removed account never reused, and the UIDVALIDITY floor. */
#include "test.h"
#include "core/account-end.h"
#include "core/core.h"
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

static unsigned int dir_counter;

static const char *fresh_dir(void)
{
	static char dir[512];
	snprintf(dir, sizeof(dir), "%s/r%u", test_tmpdir(), ++dir_counter);
	mkdir(dir, 0700);
	return dir;
}

static int deliver(struct store *store, const char *address, const char *text)
{
	struct store_delivery *d;
	const char *error;
	TEST_ASSERT_INT(store_delivery_begin(store, &d, &error), 0);
	TEST_ASSERT_INT(store_delivery_write(d, text, strlen(text), &error), 0);
	struct store_recipient r = { .address = address };
	int ret = store_delivery_commit(d, &r, 1);
	store_delivery_free(&d);
	return ret == 0 ? r.result : ret;
}

static uint32_t inbox_uidvalidity(struct store *store, const char *address, uint32_t *messages_r)
{
	struct store_account *acct;
	struct store_status st;
	const char *error;
	TEST_ASSERT_INT(store_account_open(store, address, &acct, &error), 0);
	TEST_ASSERT_INT(store_mailbox_status(acct, "INBOX", &st, &error), 0);
	store_account_close(&acct);
	if (messages_r != NULL)
		*messages_r = st.messages;
	return st.uidvalidity;
}

static bool exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

static void test_address_rules(void)
{
	const char *why;
	static const char *const good[] = {
		"bob@example.org", "\"a b\"@example.org", "\"..\"@example.org",
		"Bob.Smith+tag@example.org", "\"a@b\"@example.org",
	};
	static const char *const bad[] = {
		"\"a/b\"@example.org", "\"../x\"@example.org", "a/b@example.org", ".@example.org",
		"..@example.org", ".hidden@example.org", "bob@.example.org", "bob@exa/mple.org",
		"noat", "@example.org", "bob@", "a\tb@example.org", "a\x7f@example.org",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		TEST_ASSERT_INT(store_account_address_check(good[i], &why), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		TEST_ASSERT_INT(store_account_address_check(bad[i], &why), STORE_ERR_INVALID);
		TEST_ASSERT(why != NULL && why[0] != '\0');
	}
	/* store_account_open applies the same rules */
	struct store *store;
	struct store_account *acct;
	const char *dir = fresh_dir();
	TEST_ASSERT_INT(store_open(dir, NULL, &store, &why), 0);
	TEST_ASSERT_INT(store_account_open(store, "\"../x\"@example.org", &acct, &why),
			STORE_ERR_INVALID);
	TEST_ASSERT_INT(store_account_open(store, "\"a b\"@example.org", &acct, &why), 0);
	store_account_close(&acct);
	store_free(&store);
}

static void test_remove_and_readd(void)
{
	const char *dir = fresh_dir(), *error;
	struct store *store;
	char *kept = (char *)"unset";
	uint32_t messages;
	TEST_ASSERT_INT(store_open(dir, NULL, &store, &error), 0);
	TEST_ASSERT_INT(deliver(store, "Gone@example.org", "Subject: one\r\n\r\nx\r\n"), 0);
	TEST_ASSERT_INT(deliver(store, "Gone@example.org", "Subject: two\r\n\r\nx\r\n"), 0);
	uint32_t old = inbox_uidvalidity(store, "Gone@example.org", &messages);
	TEST_ASSERT_INT(messages, 2);

	char *root = xasprintf("%s/mail/example.org/Gone", dir);
	TEST_ASSERT(exists(root));
	TEST_ASSERT_INT(store_account_remove(store, "Gone@example.org", false, &kept, &error), 0);
	TEST_ASSERT(kept == NULL);
	TEST_ASSERT(!exists(root));
	char *deleted = xasprintf("%s/mail/.deleted/example.org", dir);
	TEST_ASSERT_INT(test_count_files(deleted, NULL), 0);
	/* removing what is not there is no error */
	TEST_ASSERT_INT(store_account_remove(store, "Gone@example.org", false, &kept, &error), 0);

	/* the handle this process cached is not reused: a new, empty account,
	 * whose UIDVALIDITY is above the old one even within the same second */
	uint32_t now = inbox_uidvalidity(store, "Gone@example.org", &messages);
	TEST_ASSERT_INT(messages, 0);
	TEST_ASSERT(now > old + 5);   /* INBOX plus five default folders were handed out */
	store_free(&store);

	/* another process (a fresh store) sees the same */
	TEST_ASSERT_INT(store_open(dir, NULL, &store, &error), 0);
	TEST_ASSERT_INT(inbox_uidvalidity(store, "Gone@example.org", &messages), now);
	TEST_ASSERT_INT(messages, 0);
	store_free(&store);
	free(deleted);
	free(root);
}

static void test_keep_mail(void)
{
	const char *dir = fresh_dir(), *error;
	struct store *store;
	char *kept = NULL;
	TEST_ASSERT_INT(store_open(dir, NULL, &store, &error), 0);
	TEST_ASSERT_INT(deliver(store, "kept@example.org", "Subject: keep\r\n\r\nx\r\n"), 0);
	TEST_ASSERT_INT(store_account_remove(store, "kept@example.org", true, &kept, &error), 0);
	TEST_ASSERT(kept != NULL);
	if (kept != NULL) {
		char *prefix = xasprintf("%s/mail/.deleted/example.org/kept.", dir);
		TEST_ASSERT(strncmp(kept, prefix, strlen(prefix)) == 0);
		TEST_ASSERT_INT(test_count_files(kept, "new") + test_count_files(kept, "cur"), 1);
		free(prefix);
	}
	/* a second removal the same second gets its own name */
	char *kept2 = NULL;
	TEST_ASSERT_INT(deliver(store, "kept@example.org", "Subject: again\r\n\r\nx\r\n"), 0);
	TEST_ASSERT_INT(store_account_remove(store, "kept@example.org", true, &kept2, &error), 0);
	TEST_ASSERT(kept2 != NULL && kept != NULL && strcmp(kept, kept2) != 0);
	free(kept);
	free(kept2);
	store_free(&store);
}

struct seen {
	int count;
	char last[300];
};

static void seen_fn(const char *address, void *ctx)
{
	struct seen *seen = ctx;
	seen->count++;
	snprintf(seen->last, sizeof(seen->last), "%s", address);
}

static void test_marks(void)
{
	const char *dir = fresh_dir(), *error;
	struct store *store;
	struct store_account *acct;
	TEST_ASSERT_INT(store_open(dir, NULL, &store, &error), 0);
	int fd = account_end_watch(dir, &error);
	TEST_ASSERT(fd >= 0);

	TEST_ASSERT(!account_end_marked(dir, "bob@example.org"));
	TEST_ASSERT_INT(account_end_mark(dir, "Bob@example.org", NULL, &error), 0);
	TEST_ASSERT(account_end_marked(dir, "bob@EXAMPLE.org"));
	TEST_ASSERT(!account_end_marked(dir, "bobby@example.org"));
	/* a marked account is not opened, so a late delivery finds nothing */
	TEST_ASSERT_INT(store_account_open(store, "Bob@example.org", &acct, &error),
			STORE_ERR_NOTFOUND);
	TEST_ASSERT_INT(deliver(store, "Bob@example.org", "Subject: late\r\n\r\nx\r\n"),
			STORE_ERR_NOTFOUND);
	char *root = xasprintf("%s/mail/example.org/Bob", dir);
	TEST_ASSERT(!exists(root));

	/* the watch reports the address once */
	struct pollfd pfd = { fd, POLLIN, 0 };
	TEST_ASSERT_INT(poll(&pfd, 1, 1000), 1);
	struct seen seen = { 0, "" };
	account_end_consume(fd, dir, seen_fn, &seen);
	TEST_ASSERT_INT(seen.count, 1);
	TEST_ASSERT_STR(seen.last, "Bob@example.org");

	TEST_ASSERT_INT(account_end_clear(dir, "BOB@example.org", &error), 0);
	TEST_ASSERT_INT(account_end_clear(dir, "BOB@example.org", &error), 0);
	TEST_ASSERT(!account_end_marked(dir, "Bob@example.org"));
	TEST_ASSERT_INT(store_account_open(store, "Bob@example.org", &acct, &error), 0);
	store_account_close(&acct);
	close(fd);
	free(root);
	store_free(&store);
}

/* A session keeps its handle while another process removes the account
 * and a new one is made: the handle stays usable for the old session (it
 * is ended by its worker), and a new open gets the new account. */
static void test_open_handle_of_removed_account(void)
{
	const char *dir = fresh_dir(), *error;
	struct store *mine, *other;
	struct store_account *held, *fresh;
	char *kept = NULL;
	uint32_t messages;
	TEST_ASSERT_INT(store_open(dir, NULL, &mine, &error), 0);
	TEST_ASSERT_INT(store_open(dir, NULL, &other, &error), 0);
	TEST_ASSERT_INT(deliver(mine, "sam@example.org", "Subject: old\r\n\r\nx\r\n"), 0);
	TEST_ASSERT_INT(store_account_open(mine, "sam@example.org", &held, &error), 0);
	TEST_ASSERT_INT(store_account_remove(other, "sam@example.org", false, &kept, &error), 0);
	TEST_ASSERT_INT(deliver(other, "sam@example.org", "Subject: new\r\n\r\nx\r\n"), 0);

	TEST_ASSERT_INT(store_account_open(mine, "sam@example.org", &fresh, &error), 0);
	TEST_ASSERT(fresh != held);
	struct store_status st;
	TEST_ASSERT_INT(store_mailbox_status(fresh, "INBOX", &st, &error), 0);
	TEST_ASSERT_INT(st.messages, 1);
	store_account_close(&fresh);
	store_account_close(&held);   /* frees the detached handle */
	TEST_ASSERT_INT(inbox_uidvalidity(mine, "sam@example.org", &messages) > 0, 1);
	TEST_ASSERT_INT(messages, 1);
	store_free(&mine);
	store_free(&other);
}

int main(void)
{
	log_init("test-store-remove", LOG_LEVEL_WARN);
	test_run("address_rules", test_address_rules);
	test_run("remove_and_readd", test_remove_and_readd);
	test_run("keep_mail", test_keep_mail);
	test_run("marks", test_marks);
	test_run("open_handle_of_removed_account", test_open_handle_of_removed_account);
	return test_end();
}

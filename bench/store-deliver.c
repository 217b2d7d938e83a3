/* Store benchmark: deliver N messages of mixed sizes into one account,
 * then time a warm open of INBOX and a listing of every UID and its
 * flags, and report index bytes per message.
 *
 *   build/bench/store-deliver DATA_DIR N [small]
 *
 * "small" keeps every message at 2-5 KB (for 100,000 messages in tmpfs).
 * --emit writes the same messages as DIR/NNNNNN.eml for bench/dovecot-lda.sh.
 */
#include "store/store.h"
#include "core/core.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ADDRESS "bench@example.org"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Mostly small messages, some medium, a few large: roughly a mailbox. */
static bool small_only;

static size_t pick_size(unsigned int i)
{
	unsigned int r = (i * 2654435761u) % 100;
	if (small_only)
		return 2000 + r * 30;
	if (r < 60)
		return 2000 + r * 50;
	if (r < 90)
		return 10000 + r * 500;
	if (r < 99)
		return 100000;
	return 1000000;
}

/* Produces message i through out(); the same bytes for the store and for
 * the files --emit writes (dovecot-lda comparison). */
static void make_message(unsigned int i, const char *body,
			 void (*out)(void *ctx, const void *data, size_t len), void *ctx)
{
	char head[512];
	size_t size = pick_size(i);
	int hlen = snprintf(head, sizeof(head),
		"From: Sender %u <s%u@example.net>\r\nTo: bench@example.org\r\n"
		"Subject: benchmark message %u\r\nDate: Sun, 29 Nov 2026 12:00:00 +0000\r\n"
		"Message-ID: <%u@bench>\r\nMIME-Version: 1.0\r\n"
		"Content-Type: text/plain; charset=us-ascii\r\n\r\n", i, i, i, i);
	out(ctx, head, (size_t)hlen);
	for (size_t done = 0; done < size;) {
		size_t n = size - done < 65536 ? size - done : 65536;
		out(ctx, body, n);
		done += n;
	}
}

static void out_delivery(void *ctx, const void *data, size_t len)
{
	const char *error;
	if (store_delivery_write(ctx, data, len, &error) < 0)
		fatal("write: %s", error);
}

static void out_file(void *ctx, const void *data, size_t len)
{
	if (fwrite(data, 1, len, ctx) != len)
		fatal("fwrite failed");
}

static void deliver_one(struct store *store, unsigned int i, char *body)
{
	struct store_delivery *d;
	const char *error;
	if (store_delivery_begin(store, &d, &error) < 0)
		fatal("delivery_begin: %s", error);
	make_message(i, body, out_delivery, d);
	struct store_recipient r = { .address = ADDRESS };
	if (store_delivery_commit(d, &r, 1) < 0)
		fatal("commit: %s", r.error);
	store_delivery_free(&d);
}

static char *make_body(void)
{
	char *body = xmalloc(65536);
	for (size_t i = 0; i < 65536; i++)
		body[i] = (i % 78 == 76) ? '\r' : (i % 78 == 77) ? '\n' : (char)('a' + i % 26);
	return body;
}

static int emit(const char *dir, unsigned int n)
{
	char *body = make_body();
	mkdir(dir, 0755);
	for (unsigned int i = 0; i < n; i++) {
		char path[1024];
		snprintf(path, sizeof(path), "%s/%06u.eml", dir, i);
		FILE *f = fopen(path, "w");
		if (f == NULL)
			fatal("create %s", path);
		make_message(i, body, out_file, f);
		fclose(f);
	}
	free(body);
	return 0;
}

struct bench_view {
	struct store *store;
	struct store_account *acct;
	struct store_mailbox *mbox;
};

static void view_open(const char *data_dir, struct bench_view *v)
{
	const char *error;
	if (store_open(data_dir, NULL, &v->store, &error) < 0 ||
	    store_account_open(v->store, ADDRESS, &v->acct, &error) < 0 ||
	    store_mailbox_open(v->acct, "INBOX", STORE_OPEN_READ_ONLY, &v->mbox, &error) < 0)
		fatal("open: %s", error);
}

static void view_close(struct bench_view *v)
{
	store_mailbox_close(&v->mbox);
	store_account_close(&v->acct);
	store_free(&v->store);
}

/* FETCH 1:* (ENVELOPE BODYSTRUCTURE) from the cache: ms for all. */
static double fetch_envelopes(const char *data_dir, size_t *bytes_r)
{
	struct bench_view v;
	const char *error;
	view_open(data_dir, &v);
	double start = now_s();
	struct store_iter *iter = store_iter_new(v.mbox, NULL);
	struct store_msg msg;
	struct store_cache cache;
	size_t bytes = 0;
	while (store_iter_next(iter, &msg)) {
		if (store_iter_cache(iter, &cache, &error) < 0)
			fatal("cache: %s", error);
		bytes += strlen(cache.envelope) + strlen(cache.bodystructure);
	}
	store_iter_free(&iter);
	double elapsed = now_s() - start;
	view_close(&v);
	*bytes_r = bytes;
	return elapsed;
}

static double open_and_list(const char *data_dir, size_t *count_r, unsigned int *seen_r,
			    double *list_r)
{
	struct bench_view v;
	double start = now_s();
	view_open(data_dir, &v);
	double list_start = now_s();
	struct store_iter *iter = store_iter_new(v.mbox, NULL);
	struct store_msg msg;
	size_t count = 0;
	unsigned int seen = 0;
	while (store_iter_next(iter, &msg)) {
		count++;
		seen += (msg.flags & STORE_FLAG_SEEN) != 0;
		seen += msg.uid == 0;
	}
	store_iter_free(&iter);
	double elapsed = now_s() - start;
	*list_r = now_s() - list_start;
	view_close(&v);
	*count_r = count;
	*seen_r = seen;
	return elapsed;
}

int main(int argc, char **argv)
{
	if (argc < 3 || argc > 5) {
		fprintf(stderr, "usage: %s DATA_DIR N [small]\n"
			"       %s --emit DIR N [small]\n", argv[0], argv[0]);
		return 2;
	}
	small_only = strcmp(argv[argc - 1], "small") == 0;
	if (strcmp(argv[1], "--emit") == 0)
		return emit(argv[2], (unsigned int)strtoul(argv[3], NULL, 10));
	log_init("store-deliver", LOG_LEVEL_WARN);
	const char *data_dir = argv[1];
	unsigned int n = (unsigned int)strtoul(argv[2], NULL, 10);
	struct store *store;
	const char *error;
	mkdir(data_dir, 0700);
	if (store_open(data_dir, NULL, &store, &error) < 0)
		fatal("store_open: %s", error);
	char *body = make_body();
	uint64_t bytes = 0;
	double start = now_s();
	for (unsigned int i = 0; i < n; i++) {
		deliver_one(store, i, body);
		bytes += pick_size(i);
	}
	double elapsed = now_s() - start;
	store_free(&store);
	free(body);
	printf("delivered %u messages (%.1f MB) in %.2f s: %.0f msg/s\n", n, bytes / 1e6,
	       elapsed, n / elapsed);

	size_t count;
	unsigned int seen;
	double list;
	double first = open_and_list(data_dir, &count, &seen, &list);
	printf("open + list %zu UIDs+flags right after delivery (directories still "
	       "fresh: full rescan): %.1f ms\n", count, first * 1000);
	/* past the self-healing trust window: the steady state */
	sleep(2);
	open_and_list(data_dir, &count, &seen, &list);
	double warm = open_and_list(data_dir, &count, &seen, &list);
	printf("warm open + list %zu UIDs+flags: %.1f ms (of which listing %.1f ms)\n",
	       count, warm * 1000, list * 1000);
	/* a delivery by the store itself keeps the index in step with the
	 * directories: no rescan follows */
	if (store_open(data_dir, NULL, &store, &error) < 0)
		fatal("store_open: %s", error);
	body = xmalloc(65536);
	memset(body, 'x', 65536);
	deliver_one(store, n, body);
	free(body);
	store_free(&store);
	warm = open_and_list(data_dir, &count, &seen, &list);
	printf("open + list right after one more delivery: %.1f ms\n", warm * 1000);

	size_t env_bytes;
	double fetch = fetch_envelopes(data_dir, &env_bytes);
	printf("ENVELOPE+BODYSTRUCTURE of all %zu from the cache: %.1f ms (%.1f MB)\n",
	       count, fetch * 1000, env_bytes / 1e6);

	char path[1024];
	snprintf(path, sizeof(path), "%s/mail/example.org/bench/postern-index.lmdb", data_dir);
	struct stat st;
	if (stat(path, &st) == 0)
		printf("index %.1f MB, %.0f bytes/message\n", st.st_size / 1e6,
		       (double)st.st_size / (count > 0 ? count : 1));
	return 0;
}

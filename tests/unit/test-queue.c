#include "test.h"
#include "core/core.h"
#include "queue/queue.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static void fill(struct queue_entry *e)
{
	memset(e, 0, sizeof(*e));
	e->sender = xstrdup("s\xc3\xa9nder with space%@example.org");
	e->envid = xstrdup("ENV-1");
	e->ret = QUEUE_RET_HDRS;
	e->body = QUEUE_BODY_8BITMIME;
	e->smtputf8 = true;
	e->user = NULL;
	e->rcpt_count = 2;
	e->rcpts = xcalloc(2, sizeof(*e->rcpts));
	e->rcpts[0].address = xstrdup("a@remote.example");
	e->rcpts[0].notify = QUEUE_NOTIFY_FAILURE | QUEUE_NOTIFY_DELAY;
	e->rcpts[0].orcpt = xstrdup("rfc822;a@remote.example");
	e->rcpts[1].address = xstrdup("-b@local.example");
	e->rcpts[1].local = true;
	e->rcpts[1].state = QUEUE_RCPT_FAILED;
	e->rcpts[1].attempts = 3;
	e->rcpts[1].last_error = xstrdup("550 5.1.1 no\nsuch user");
	e->rcpts[1].last_host = xstrdup("");
}

static void test_serialize_roundtrip(void)
{
	struct queue_entry e, back;
	fill(&e);
	memcpy(e.id, "0123456789ABCDEF", QUEUE_ID_LEN + 1);
	e.arrival = 1700000000;
	e.next_attempt = 1700000300;
	size_t len;
	char *data = queue_entry_serialize(&e, &len);
	TEST_ASSERT_INT(queue_entry_parse(data, len, &back), 0);
	TEST_ASSERT_STR(back.id, e.id);
	TEST_ASSERT_STR(back.sender, e.sender);
	TEST_ASSERT_STR(back.envid, "ENV-1");
	TEST_ASSERT(back.user == NULL);
	TEST_ASSERT_INT(back.ret, QUEUE_RET_HDRS);
	TEST_ASSERT_INT(back.body, QUEUE_BODY_8BITMIME);
	TEST_ASSERT(back.smtputf8);
	TEST_ASSERT_INT(back.arrival, 1700000000);
	TEST_ASSERT_INT(back.next_attempt, 1700000300);
	TEST_ASSERT_INT(back.rcpt_count, 2);
	TEST_ASSERT_STR(back.rcpts[0].orcpt, "rfc822;a@remote.example");
	TEST_ASSERT_INT(back.rcpts[0].notify, QUEUE_NOTIFY_FAILURE | QUEUE_NOTIFY_DELAY);
	TEST_ASSERT_STR(back.rcpts[1].address, "-b@local.example");
	TEST_ASSERT_STR(back.rcpts[1].last_error, "550 5.1.1 no\nsuch user");
	TEST_ASSERT_STR(back.rcpts[1].last_host, "");
	TEST_ASSERT(back.rcpts[1].orcpt == NULL && back.rcpts[1].local);
	TEST_ASSERT_INT(back.rcpts[1].state, QUEUE_RCPT_FAILED);
	TEST_ASSERT_INT(back.rcpts[1].attempts, 3);
	queue_entry_free(&back);
	/* damaged records are refused, never half-read */
	TEST_ASSERT_INT(queue_entry_parse("v 2\n", 4, &back), -1);
	TEST_ASSERT_INT(queue_entry_parse("id x\n", 5, &back), -1);
	TEST_ASSERT_INT(queue_entry_parse(data, len / 2, &back), -1);
	free(data);
	queue_entry_free(&e);
}

static int count_cb(const struct queue_entry *e, void *ctx)
{
	(*(int *)ctx)++;
	return 0;
}

static void test_write_commit_list_remove(void)
{
	struct queue *q;
	const char *error = NULL;
	TEST_ASSERT_INT(queue_open(test_tmpdir(), NULL, &q, &error), 0);
	struct queue_writer *w;
	TEST_ASSERT_INT(queue_writer_begin(q, &w, &error), 0);
	TEST_ASSERT_INT(queue_writer_write(w, "Subject: x\r\n\r\nbody\r\n", 20, &error), 0);
	struct queue_entry e;
	fill(&e);
	TEST_ASSERT_INT(queue_writer_commit(w, &e, &error), 0);
	queue_writer_free(&w);
	TEST_ASSERT_INT(strlen(e.id), QUEUE_ID_LEN);
	TEST_ASSERT_INT(e.size, 20);
	char *spool = queue_spool_path(q, e.id);
	struct stat st;
	TEST_ASSERT(stat(spool, &st) == 0 && st.st_size == 20);

	struct queue_entry got;
	TEST_ASSERT_INT(queue_entry_get(q, e.id, &got, &error), 1);
	TEST_ASSERT_STR(got.rcpts[0].address, "a@remote.example");
	got.rcpts[0].state = QUEUE_RCPT_DONE;
	got.attempts = 1;
	TEST_ASSERT_INT(queue_entry_update(q, &got, &error), 0);
	queue_entry_free(&got);
	TEST_ASSERT_INT(queue_entry_get(q, e.id, &got, &error), 1);
	TEST_ASSERT_INT(got.rcpts[0].state, QUEUE_RCPT_DONE);
	queue_entry_free(&got);

	/* an abandoned writer leaves nothing */
	TEST_ASSERT_INT(queue_writer_begin(q, &w, &error), 0);
	TEST_ASSERT_INT(queue_writer_write(w, "x", 1, &error), 0);
	queue_writer_free(&w);
	int n = 0;
	TEST_ASSERT_INT(queue_list(q, count_cb, &n, &error), 0);
	TEST_ASSERT_INT(n, 1);

	/* a spool file without a record is removed by recovery */
	char *orphan = queue_spool_path(q, "00000000DEADBEEF");
	FILE *f = fopen(orphan, "w");
	fclose(f);
	TEST_ASSERT_INT(queue_recover(q, &error), 0);
	TEST_ASSERT(access(orphan, F_OK) != 0);
	TEST_ASSERT(access(spool, F_OK) == 0);

	TEST_ASSERT_INT(queue_entry_remove(q, e.id, &error), 0);
	TEST_ASSERT(access(spool, F_OK) != 0);
	TEST_ASSERT_INT(queue_entry_get(q, e.id, &got, &error), 0);
	free(orphan);
	free(spool);
	queue_entry_free(&e);
	queue_close(&q);
}

static void test_notify(void)
{
	struct queue *q;
	const char *error;
	TEST_ASSERT_INT(queue_open(test_tmpdir(), NULL, &q, &error), 0);
	int fd = queue_notify_fd(q);
	TEST_ASSERT(fd >= 0);
	queue_kick(q);
	char buf[256];
	TEST_ASSERT(read(fd, buf, sizeof(buf)) > 0);
	queue_notify_consume(q);
	TEST_ASSERT(read(fd, buf, sizeof(buf)) < 0);
	queue_close(&q);
}

static off_t body_start_of(const char *text)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/spool-head", test_tmpdir());
	FILE *f = fopen(path, "w");
	TEST_ASSERT(f != NULL);
	if (f == NULL)
		return -1;
	fputs(text, f);
	fclose(f);
	int fd = open(path, O_RDONLY);
	off_t off = queue_spool_body_start(fd);
	close(fd);
	return off;
}

static void test_spool_body_start(void)
{
	TEST_ASSERT_INT(body_start_of("Return-Path: <a@b>\r\nReceived: x\r\n\r\nbody"), 20);
	TEST_ASSERT_INT(body_start_of("return-path: <>\nSubject: x\n\nbody"), 16);
	TEST_ASSERT_INT(body_start_of("Received: x\r\nReturn-Path: <a@b>\r\n\r\n"), 0);
	TEST_ASSERT_INT(body_start_of("Return-Path: <a@b>\r\n\tfolded\r\n\r\n"), 0);
	TEST_ASSERT_INT(body_start_of("Return-Path: <a@b>"), 0);
	TEST_ASSERT_INT(body_start_of("Return-Path: <a@b>\r\n"), 0);
	TEST_ASSERT_INT(body_start_of(""), 0);
}

int main(void)
{
	test_run("queue record round trip", test_serialize_roundtrip);
	test_run("queue write, commit, list, recover, remove", test_write_commit_list_remove);
	test_run("queue notification", test_notify);
	test_run("spool body start", test_spool_body_start);
	return test_end();
}

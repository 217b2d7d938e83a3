/* intake/: the byte path (line rule, header block, fields written once)
 * fed whole and in small pieces, recipients and quota, and the filter
 * hook (header drop, body stream, prepend for stored and remote copies,
 * folder, reject, defer), against a real account database, store and
 * queue in a temp dir. */
#include "test.h"
#include "auth/auth.h"
#include "core/config.h"
#include "core/core.h"
#include "core/services.h"
#include "intake/intake.h"
#include "queue/queue.h"
#include "store/store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static struct config cfg;
static struct services sv;
static char data_dir[512];

static void setup(void)
{
	const char *error;
	static int n;
	snprintf(data_dir, sizeof(data_dir), "%s/data%d", test_tmpdir(), n++);
	config_init_defaults(&cfg);
	free(cfg.hostname);
	cfg.hostname = xstrdup("mx.test.example");
	cfg.relay_mode = RELAY_MX;
	memset(&sv, 0, sizeof(sv));
	if (auth_db_open(data_dir, NULL, &sv.auth, &error) < 0 ||
	    store_open(data_dir, NULL, &sv.store, &error) < 0 ||
	    queue_open(data_dir, NULL, &sv.queue, &error) < 0) {
		fprintf(stderr, "setup: %s\n", error);
		exit(1);
	}
	if (auth_domain_add(sv.auth, "example.org", &error) < 0 ||
	    auth_user_add(sv.auth, "alice@example.org", "pw-alice-1", 0, true, &error) < 0 ||
	    auth_user_add(sv.auth, "bob@example.org", "pw-bob-1", 0, true, &error) < 0 ||
	    auth_alias_add(sv.auth, "team@example.org", "bob@example.org,far@remote.example",
			   &error) < 0) {
		fprintf(stderr, "setup: %s\n", error);
		exit(1);
	}
}

static void teardown(void)
{
	queue_close(&sv.queue);
	store_free(&sv.store);
	auth_db_close(&sv.auth);
	intake_filter_reset();
	config_free(&cfg);
}

/* The newest message file of a mailbox (INBOX when folder is NULL). */
static char *stored(const char *local, const char *folder)
{
	char dir[1024];
	snprintf(dir, sizeof(dir), "%s/mail/example.org/%s/%s%s/new", data_dir, local,
		 folder != NULL ? "." : "", folder != NULL ? folder : "");
	DIR *d = opendir(dir);
	if (d == NULL)
		return NULL;
	struct dirent *de;
	char *found = NULL;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char path[1400];
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		int fd = open(path, O_RDONLY);
		struct buf b = BUF_INIT;
		char chunk[4096];
		ssize_t n;
		while ((n = read(fd, chunk, sizeof(chunk))) > 0)
			buf_append(&b, chunk, (size_t)n);
		close(fd);
		free(found);
		found = xstrdup(buf_str(&b));
		buf_free(&b);
	}
	closedir(d);
	return found;
}

static bool starts(const char *s, const char *prefix)
{
	return s != NULL && strncmp(s, prefix, strlen(prefix)) == 0;
}

static struct intake *begin(enum intake_origin origin, const char *sender, const char *user)
{
	struct intake_envelope env = {
		.origin = origin, .sender = sender, .user = user, .helo = "client.example",
		.remote_ip = "192.0.2.1", .esmtp = true,
	};
	struct intake *job;
	struct intake_status st;
	TEST_ASSERT_INT(intake_begin(&sv, &cfg, &env, &job, &st), 0);
	return job;
}

static void feed(struct intake *job, const char *msg, size_t step)
{
	size_t len = strlen(msg);
	for (size_t i = 0; i < len;) {
		size_t n = step == 0 || len - i < step ? len - i : step;
		intake_write(job, msg + i, n);
		i += n;
	}
}

static void test_header_fields_written_once(void)
{
	for (size_t step = 0; step <= 5; step++) {
		setup();
		struct intake *job = begin(INTAKE_SUBMISSION, "alice@example.org",
					   "alice@example.org");
		struct intake_status st;
		TEST_ASSERT_INT(intake_add_rcpt(job, "bob@example.org", NULL, &st), 0);
		feed(job, "Return-Path: <forged@x.example>\r\nFrom: A <alice@Example.ORG>\r\n"
			  "Received: x\r\nReceived: y\r\nSubject: hi\r\n\r\nbody\r\n"
			  "From: not a header\r\n", step);
		intake_end(job, NULL, NULL, NULL);
		TEST_ASSERT_INT(intake_result(job)->code, INTAKE_OK);
		TEST_ASSERT(intake_rcpt_uid(job, 0) != 0);
		char *m = stored("bob", NULL);
		TEST_ASSERT(starts(m, "Return-Path: <alice@example.org>\r\n"
				      "Received: from client.example ([192.0.2.1])"));
		TEST_ASSERT(m != NULL && strstr(m, "forged") == NULL);
		TEST_ASSERT(m != NULL && strstr(m, "\r\nFrom: A <alice@Example.ORG>\r\nReceived: x\r\n"
						   "Received: y\r\nSubject: hi\r\nDate: ") != NULL);
		TEST_ASSERT(m != NULL && strstr(m, "@mx.test.example>\r\n\r\nbody\r\n"
						   "From: not a header\r\n") != NULL);
		free(m);
		intake_free(&job);
		teardown();
	}
}

static void test_refusals(void)
{
	static const struct {
		const char *msg;
		enum intake_code code;
	} cases[] = {
		{ "From: bob@example.org\r\n\r\nx\r\n", INTAKE_FROM_NOT_OWNED },
		{ "From: alice@example.org\r\nFrom: alice@example.org\r\n\r\nx\r\n",
		  INTAKE_FROM_UNPARSABLE },
		{ "From: alice@example.org <bob@example.org>\r\n\r\nx\r\n", INTAKE_FROM_UNPARSABLE },
		{ "From: alice@example.org, bob@example.org\r\n\r\nx\r\n", INTAKE_FROM_NOT_OWNED },
		{ "From: \"Alice\" <alice@example.org>\r\n\r\nx\r\n", INTAKE_OK },
		{ "Subject: a\rFrom: bob@example.org\r\n\r\nx\r\n", INTAKE_BARE_NEWLINE },
		{ "Subject: a\n\r\nx\r\n", INTAKE_BARE_NEWLINE },
		{ "Subject: a\r\n\r\nx\r", INTAKE_BARE_NEWLINE },
		{ "Subject: no end\r\n\r\nno final line end", INTAKE_OK },
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		for (size_t step = 0; step <= 3; step++) {
			setup();
			struct intake *job = begin(INTAKE_SUBMISSION, "alice@example.org",
						   "alice@example.org");
			struct intake_status st;
			TEST_ASSERT_INT(intake_add_rcpt(job, "bob@example.org", NULL, &st), 0);
			feed(job, cases[c].msg, step);
			intake_end(job, NULL, NULL, NULL);
			if (intake_result(job)->code != cases[c].code)
				fprintf(stderr, "  case %zu step %zu: %d\n", c, step,
					intake_result(job)->code);
			TEST_ASSERT_INT(intake_result(job)->code, cases[c].code);
			char *m = stored("bob", NULL);
			TEST_ASSERT(cases[c].code == INTAKE_OK ? m != NULL : m == NULL);
			free(m);
			intake_free(&job);
			teardown();
		}
	}
	/* the loop count, and normalising instead of refusing */
	setup();
	cfg.smtp_max_received = 2;
	struct intake *job = begin(INTAKE_INBOUND, "x@remote.example", NULL);
	struct intake_status st;
	TEST_ASSERT_INT(intake_add_rcpt(job, "bob@example.org", NULL, &st), 0);
	feed(job, "Received: 1\r\nReceived: 2\r\nReceived: 3\r\n\r\nx\r\n", 0);
	intake_end(job, NULL, NULL, NULL);
	TEST_ASSERT_INT(intake_result(job)->code, INTAKE_LOOP);
	TEST_ASSERT_INT(intake_result(job)->reply, 554);
	intake_free(&job);
	cfg.smtp_normalize_bare_lf = true;
	job = begin(INTAKE_INBOUND, "x@remote.example", NULL);
	TEST_ASSERT_INT(intake_add_rcpt(job, "bob@example.org", NULL, &st), 0);
	feed(job, "Subject: a\rFrom: b@c.example\n\nline\rtwo\n.dot\r\n", 1);
	intake_end(job, NULL, NULL, NULL);
	TEST_ASSERT_INT(intake_result(job)->code, INTAKE_OK);
	char *m = stored("bob", NULL);
	TEST_ASSERT(m != NULL && strstr(m, "\r\nSubject: a\r\nFrom: b@c.example\r\n\r\n"
					   "line\r\ntwo\r\n.dot\r\n") != NULL);
	free(m);
	intake_free(&job);
	teardown();
}

static void test_recipients(void)
{
	setup();
	struct intake *job = begin(INTAKE_INBOUND, "x@remote.example", NULL);
	struct intake_status st;
	TEST_ASSERT_INT(intake_add_rcpt(job, "nobody@example.org", NULL, &st), -1);
	TEST_ASSERT_INT(st.code, INTAKE_UNKNOWN_USER);
	TEST_ASSERT_INT(st.reply, 550);
	TEST_ASSERT_STR(st.enhanced, "5.1.1");
	TEST_ASSERT_INT(intake_add_rcpt(job, "someone@remote.example", NULL, &st), -1);
	TEST_ASSERT_INT(st.code, INTAKE_RELAY_DENIED);
	/* an alias with an outside target: bob now, far@ through the queue */
	TEST_ASSERT_INT(intake_add_rcpt(job, "team@example.org", NULL, &st), 0);
	feed(job, "Subject: team\r\n\r\nx\r\n", 0);
	intake_end(job, NULL, NULL, NULL);
	TEST_ASSERT_INT(intake_result(job)->code, INTAKE_OK);
	TEST_ASSERT(intake_queue_id(job)[0] != '\0');
	struct queue_entry e;
	const char *error;
	TEST_ASSERT_INT(queue_entry_get(sv.queue, intake_queue_id(job), &e, &error), 1);
	TEST_ASSERT_INT(e.rcpt_count, 1);
	if (e.rcpt_count == 1) {
		TEST_ASSERT_STR(e.rcpts[0].address, "far@remote.example");
		TEST_ASSERT_STR(e.rcpts[0].orcpt, "rfc822;team@example.org");
	}
	queue_entry_free(&e);
	char *m = stored("bob", NULL);
	TEST_ASSERT(m != NULL && strstr(m, "Subject: team") != NULL);
	free(m);
	intake_free(&job);

	/* quota, as the account database says it at the moment of asking */
	TEST_ASSERT_INT(auth_user_set_quota(sv.auth, "bob@example.org", 10, &error), 0);
	job = begin(INTAKE_LOCAL, "", NULL);
	TEST_ASSERT_INT(intake_add_rcpt(job, "bob@example.org", NULL, &st), -1);
	TEST_ASSERT_INT(st.code, INTAKE_OVER_QUOTA);
	TEST_ASSERT_INT(st.reply, 552);
	TEST_ASSERT_INT(intake_add_rcpt(job, "far@remote.example", NULL, &st), -1);
	TEST_ASSERT_INT(st.code, INTAKE_NOT_LOCAL);
	intake_free(&job);
	cfg.smtp_quota_full_tempfail = true;
	job = begin(INTAKE_LOCAL, "", NULL);
	TEST_ASSERT_INT(intake_add_rcpt(job, "bob@example.org", NULL, &st), -1);
	TEST_ASSERT_INT(st.reply, 452);
	TEST_ASSERT_STR(st.enhanced, "4.2.2");
	intake_free(&job);
	TEST_ASSERT_INT(auth_user_set_quota(sv.auth, "bob@example.org", 0, &error), 0);
	job = begin(INTAKE_LOCAL, "", NULL);
	TEST_ASSERT_INT(intake_add_rcpt(job, "bob@example.org", NULL, &st), 0);
	intake_free(&job);
	teardown();
}

/* ---- the filter hook ---- */

struct tf_state {
	int fields, dropped;
	size_t body;
	bool ended;
};

static int tf_mode;   /* 0 accept and add, 1 reject, 2 defer */

static void *tf_begin(const struct intake_info *info)
{
	if (info->env->origin != INTAKE_INBOUND)
		return NULL;
	return xcalloc(1, sizeof(struct tf_state));
}

static bool tf_header(void *state, const char *field, size_t len)
{
	struct tf_state *st = state;
	st->fields++;
	if (len > 13 && ascii_strncasecmp(field, "X-Drop-Me:", 10) == 0) {
		st->dropped++;
		return false;
	}
	return true;
}

static void tf_body(void *state, const char *data, size_t len)
{
	((struct tf_state *)state)->body += len;
}

static void tf_end(void *state, const struct intake_info *info, struct intake_verdict *v)
{
	struct tf_state *st = state;
	st->ended = true;
	if (tf_mode == 1) {
		v->action = INTAKE_REJECT;
		snprintf(v->reply, sizeof(v->reply), "5.7.1 refused by the test filter");
		return;
	}
	if (tf_mode == 2) {
		v->action = INTAKE_DEFER;
		snprintf(v->reply, sizeof(v->reply), "4.7.1 later, says the test filter");
		return;
	}
	buf_printf(&v->prepend, "X-Test: fields=%d dropped=%d body=%zu from=%s\r\n", st->fields,
		   st->dropped, st->body, info->from_domain != NULL ? info->from_domain : "-");
	buf_append_str(&v->prepend_remote, "X-Remote-Only: yes\r\n");
	v->folder = "Junk";
}

static void tf_free(void *state)
{
	free(state);
}

static const struct intake_filter test_filter = {
	.name = "test", .begin = tf_begin, .header = tf_header, .body = tf_body,
	.end = tf_end, .free = tf_free,
};

static void test_filter_hook(void)
{
	for (size_t step = 0; step <= 3; step += 3) {
		setup();
		intake_filter_register(&test_filter);
		tf_mode = 0;
		struct intake *job = begin(INTAKE_INBOUND, "x@remote.example", NULL);
		struct intake_status st;
		TEST_ASSERT_INT(intake_add_rcpt(job, "team@example.org", NULL, &st), 0);
		feed(job, "From: Eve <eve@Remote.Example>\r\nX-Drop-Me: yes\r\nSubject: f\r\n\r\n"
			  "0123456789\r\n", step);
		intake_end(job, NULL, NULL, NULL);
		TEST_ASSERT_INT(intake_result(job)->code, INTAKE_OK);
		/* stored: Return-Path, the filter's field, our Received, the rest */
		char *m = stored("bob", "Junk");
		TEST_ASSERT(starts(m, "Return-Path: <x@remote.example>\r\n"
				      "X-Test: fields=3 dropped=1 body=12 from=remote.example\r\n"
				      "Received: "));
		TEST_ASSERT(m != NULL && strstr(m, "X-Drop-Me") == NULL);
		TEST_ASSERT(m != NULL && strstr(m, "X-Remote-Only") == NULL);
		free(m);
		m = stored("bob", NULL);
		TEST_ASSERT(m == NULL);
		/* the remote copy: both fields in the queue record, no Return-Path */
		struct queue_entry e;
		const char *error;
		TEST_ASSERT_INT(queue_entry_get(sv.queue, intake_queue_id(job), &e, &error), 1);
		TEST_ASSERT(e.prepend != NULL && strncmp(e.prepend, "X-Test: ", 8) == 0);
		TEST_ASSERT(e.prepend_remote != NULL &&
			    strcmp(e.prepend_remote, "X-Remote-Only: yes\r\n") == 0);
		char *spool = queue_spool_path(sv.queue, e.id);
		int fd = open(spool, O_RDONLY);
		char head[32] = "";
		TEST_ASSERT(read(fd, head, 9) == 9 && memcmp(head, "Received:", 9) == 0);
		close(fd);
		free(spool);
		queue_entry_free(&e);
		intake_free(&job);
		teardown();
	}
	/* reject and defer: nothing stored, nothing queued */
	for (tf_mode = 1; tf_mode <= 2; tf_mode++) {
		setup();
		intake_filter_register(&test_filter);
		struct intake *job = begin(INTAKE_INBOUND, "x@remote.example", NULL);
		struct intake_status st;
		TEST_ASSERT_INT(intake_add_rcpt(job, "bob@example.org", NULL, &st), 0);
		feed(job, "Subject: f\r\n\r\nx\r\n", 0);
		intake_end(job, NULL, NULL, NULL);
		const struct intake_status *r = intake_result(job);
		TEST_ASSERT_INT(r->code, tf_mode == 1 ? INTAKE_FILTER_REJECT : INTAKE_FILTER_TEMPFAIL);
		TEST_ASSERT_INT(r->reply, tf_mode == 1 ? 550 : 451);
		TEST_ASSERT_STR(r->enhanced, tf_mode == 1 ? "5.7.1" : "4.7.1");
		TEST_ASSERT(strstr(r->text, "test filter") != NULL);
		TEST_ASSERT(stored("bob", NULL) == NULL);
		TEST_ASSERT(intake_queue_id(job)[0] == '\0');
		intake_free(&job);
		teardown();
	}
	/* a submission: the filter stays out */
	setup();
	intake_filter_register(&test_filter);
	tf_mode = 1;
	struct intake *job = begin(INTAKE_SUBMISSION, "alice@example.org", "alice@example.org");
	struct intake_status st;
	TEST_ASSERT_INT(intake_add_rcpt(job, "bob@example.org", NULL, &st), 0);
	feed(job, "Subject: f\r\n\r\nx\r\n", 0);
	intake_end(job, NULL, NULL, NULL);
	TEST_ASSERT_INT(intake_result(job)->code, INTAKE_OK);
	intake_free(&job);
	teardown();
}

int main(void)
{
	test_run("intake header fields written once", test_header_fields_written_once);
	test_run("intake refusals", test_refusals);
	test_run("intake recipients and quota", test_recipients);
	test_run("intake filter hook", test_filter_hook);
	return test_end();
}

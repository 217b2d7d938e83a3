#include "test.h"
#include "core/config.h"
#include "core/buf.h"
#include "core/mtasts.h"

#include <stdio.h>
#include <string.h>

static const char *write_file(const char *name, const char *text)
{
	static char path[512];
	snprintf(path, sizeof(path), "%s/%s", test_tmpdir(), name);
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	return path;
}

static void test_defaults(void)
{
	struct config cfg;
	config_init_defaults(&cfg);
	TEST_ASSERT_STR(cfg.data_dir, "/var/lib/postern");
	TEST_ASSERT_INT(cfg.auth_plaintext, PLAINTEXT_LOOPBACK);
	TEST_ASSERT_INT(cfg.relay_retry_count, 7);
	TEST_ASSERT_INT(cfg.relay_retry_schedule[0], 300);
	TEST_ASSERT_INT(cfg.relay_retry_schedule[6], 4 * 3600);
	TEST_ASSERT_INT(cfg.relay_max_lifetime, 5 * 86400);
	TEST_ASSERT(cfg.listen[LISTEN_IMAP] == NULL);
	config_free(&cfg);
}

static void test_full_file(void)
{
	struct config cfg;
	const char *error = NULL;
	const char *path = write_file("full.conf",
		"# comment\n"
		"hostname = mail.example.org   # trailing comment\n"
		"data_dir = /srv/mail\n"
		"workers = 3\n"
		"[tls]\ncert = /c.pem\nkey = /k.pem\n"
		"[listen]\nsubmission = 0.0.0.0:587\nimaps = [::1]:993\npop3 = *:110\n"
		"[auth]\nplaintext = never\n"
		"[smtp]\nmax_message_size = 20M\n"
		"[relay]\nmode = smarthost\nsmarthost = relay.example.net:587\n"
		"retry_schedule = 1s 2s 3s\nmax_lifetime = 2h\n");
	config_init_defaults(&cfg);
	TEST_ASSERT_INT(config_load(&cfg, path, &error), 0);
	TEST_ASSERT_STR(cfg.hostname, "mail.example.org");
	TEST_ASSERT_STR(cfg.data_dir, "/srv/mail");
	TEST_ASSERT_INT(cfg.workers, 3);
	TEST_ASSERT_STR(cfg.listen[LISTEN_SUBMISSION], "0.0.0.0:587");
	TEST_ASSERT_STR(cfg.listen[LISTEN_IMAPS], "[::1]:993");
	TEST_ASSERT(cfg.listen[LISTEN_SMTP] == NULL);
	TEST_ASSERT_INT(cfg.auth_plaintext, PLAINTEXT_NEVER);
	TEST_ASSERT_INT(cfg.smtp_max_message_size, 20 * 1024 * 1024);
	TEST_ASSERT_INT(cfg.relay_mode, RELAY_SMARTHOST);
	TEST_ASSERT_INT(cfg.relay_retry_count, 3);
	TEST_ASSERT_INT(cfg.relay_retry_schedule[2], 3);
	TEST_ASSERT_INT(cfg.relay_max_lifetime, 7200);
	config_free(&cfg);

	/* an indented key is just a key, not the continuation of the one
	 * before it; CRLF line ends are fine */
	path = write_file("indent.conf", "hostname = a.example\r\n   workers = 2\r\n"
			  "[smtp]\r\n\tmax_message_size = 1M\r\n");
	config_init_defaults(&cfg);
	TEST_ASSERT_INT(config_load(&cfg, path, &error), 0);
	TEST_ASSERT_STR(cfg.hostname, "a.example");
	TEST_ASSERT_INT(cfg.workers, 2);
	TEST_ASSERT_INT(cfg.smtp_max_message_size, 1024 * 1024);
	config_free(&cfg);
}

static void expect_error(const char *text, const char *want)
{
	struct config cfg;
	const char *error = NULL;
	const char *path = write_file("bad.conf", text);
	config_init_defaults(&cfg);
	TEST_ASSERT_INT(config_load(&cfg, path, &error), -1);
	TEST_ASSERT(error != NULL && strstr(error, want) != NULL);
	if (error != NULL && strstr(error, want) == NULL)
		fprintf(stderr, "  error was: %s\n  wanted:    %s\n", error, want);
	config_free(&cfg);
}

static void test_errors(void)
{
	expect_error("hostname = a\nbogus = 1\n", "bad.conf:2: unknown key 'bogus'");
	expect_error("\n\n[nosuch]\nx = 1\n", "bad.conf:4: unknown section [nosuch]");
	expect_error("workers = many\n", "bad.conf:1: workers: must be a whole number");
	expect_error("workers = -1\n", "bad.conf:1: workers");
	expect_error("[listen]\nimap = 143\n", "bad.conf:2: imap: must be ADDRESS:PORT");
	expect_error("[listen]\nimap = 1.2.3.4:99999\n", "bad.conf:2: imap");
	expect_error("[listen]\nimap = ::1:143\n", "bad.conf:2: imap");
	expect_error("[auth]\nplaintext = sometimes\n", "plaintext: must be never");
	expect_error("[relay]\nmax_lifetime = 5 days\n", "max_lifetime: must be a duration");
	expect_error("[relay]\nretry_schedule = \n", "bad.conf:2");
	expect_error("[smtp]\nmax_message_size = lots\n", "max_message_size: must be a size");
	expect_error("this is not ini\n", "bad.conf:1:");
	/* inih would split a long line in two and read the tail as a line */
	char long_line[400];
	snprintf(long_line, sizeof(long_line), "hostname = a\ndata_dir = /%0300d\n", 0);
	expect_error(long_line, "bad.conf:2: line too long");
	{
		static const char nul_text[] = "workers = 2\nhostname = a\0b\n";
		FILE *f = fmemopen((void *)nul_text, sizeof(nul_text) - 1, "r");
		struct config cfg;
		const char *error = NULL;
		config_init_defaults(&cfg);
		TEST_ASSERT_INT(config_load_stream(&cfg, f, "nul.conf", &error), -1);
		TEST_ASSERT(error != NULL && strstr(error, "nul.conf:2: NUL byte") != NULL);
		fclose(f);
		config_free(&cfg);
	}
	expect_error("hostname = a\vb\n", "bad.conf:1: hostname: control character");
	char long_value[500];
	snprintf(long_value, sizeof(long_value), "# %0250d\ndata_dir =/%0165d\n", 0, 0);
	expect_error(long_value, "bad.conf:2: data_dir: value too long");
	expect_error("hostname =;x\n", "bad.conf:1: hostname: a value cannot start with ';'");
	expect_error("[listen]\nimap = a b:143\n", "bad.conf:2: imap: must be ADDRESS:PORT");
	expect_error("[listen]\nimap = 1.2.3.4: 143\n", "bad.conf:2: imap: must be ADDRESS:PORT");

	struct config cfg;
	const char *error = NULL;
	config_init_defaults(&cfg);
	TEST_ASSERT_INT(config_load(&cfg, "/nonexistent/x.conf", &error), -1);
	TEST_ASSERT(error != NULL && strstr(error, "No such file") != NULL);
	config_free(&cfg);
}

static void test_parsers(void)
{
	int secs;
	size_t bytes;
	char host[64];
	int port;
	TEST_ASSERT(config_parse_duration("90", &secs) == 0 && secs == 90);
	TEST_ASSERT(config_parse_duration("5m", &secs) == 0 && secs == 300);
	TEST_ASSERT(config_parse_duration("1d", &secs) == 0 && secs == 86400);
	TEST_ASSERT(config_parse_duration("5x", &secs) < 0);
	TEST_ASSERT(config_parse_duration("5mm", &secs) < 0);
	TEST_ASSERT(config_parse_duration("", &secs) < 0);
	TEST_ASSERT(config_parse_duration("99999999999d", &secs) < 0);
	TEST_ASSERT(config_parse_size("10k", &bytes) == 0 && bytes == 10240);
	TEST_ASSERT(config_parse_size("-1", &bytes) < 0);
	TEST_ASSERT(config_split_hostport("127.0.0.1:25", host, sizeof(host), &port) == 0);
	TEST_ASSERT_STR(host, "127.0.0.1");
	TEST_ASSERT_INT(port, 25);
	TEST_ASSERT(config_split_hostport("[::1]:143", host, sizeof(host), &port) == 0);
	TEST_ASSERT_STR(host, "::1");
	TEST_ASSERT(config_split_hostport("*:110", host, sizeof(host), &port) == 0);
	TEST_ASSERT_STR(host, "");
	TEST_ASSERT(config_split_hostport("host:", host, sizeof(host), &port) < 0);
	TEST_ASSERT(config_split_hostport(":25", host, sizeof(host), &port) < 0);
	TEST_ASSERT(config_split_hostport("[::1]143", host, sizeof(host), &port) < 0);
}

/* The deliverability keys: defaults, and what validation refuses. */
static void test_deliverability_keys(void)
{
	struct config cfg;
	const char *error = NULL;
	config_init_defaults(&cfg);
	TEST_ASSERT(cfg.relay_mta_sts && cfg.relay_dane);
	TEST_ASSERT(cfg.relay_mta_sts_ca_file == NULL);
	TEST_ASSERT_INT(cfg.relay_mta_sts_port, 443);
	TEST_ASSERT_STR(cfg.relay_dane_trust_anchor, "/usr/share/dns/root.key");
	TEST_ASSERT_STR(cfg.mta_sts_mode, "testing");
	TEST_ASSERT_INT(cfg.mta_sts_max_age, 7 * 86400);
	config_free(&cfg);

	static const struct {
		const char *text, *why;
	} bad[] = {
		{ "[mta_sts]\nmode = strict\n", "[mta_sts] mode" },
		{ "[mta_sts]\nmax_age = 400d\n", "[mta_sts] max_age" },
		{ "[relay]\nmta_sts_ca_file = /nonexistent/ca.pem\n", "mta_sts_ca_file" },
		{ "[relay]\ndane_trust_anchor = /nonexistent/root.key\n", "dane_trust_anchor" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		config_init_defaults(&cfg);
		struct buf text = BUF_INIT;
		buf_printf(&text, "hostname = mail.example.org\ndata_dir = /tmp/x\n%s", bad[i].text);
		const char *path = write_file("deliver.conf", buf_str(&text));
		TEST_ASSERT_INT(config_load(&cfg, path, &error), 0);
		TEST_ASSERT_INT(config_validate(&cfg, &error), -1);
		TEST_ASSERT(error != NULL && strstr(error, bad[i].why) != NULL);
		buf_free(&text);
		config_free(&cfg);
	}
	/* the published policy and its id (core/mtasts.c) */
	config_init_defaults(&cfg);
	free(cfg.hostname);
	cfg.hostname = xstrdup("mail.example.org");
	struct buf policy = BUF_INIT;
	mtasts_policy(&cfg, &policy);
	TEST_ASSERT_STR(buf_str(&policy), "version: STSv1\r\nmode: testing\r\n"
			"mx: mail.example.org\r\nmax_age: 604800\r\n");
	buf_free(&policy);
	char id1[17], id2[17];
	mtasts_policy_id(&cfg, id1, sizeof(id1));
	TEST_ASSERT_INT(strlen(id1), 16);
	TEST_ASSERT_INT(strspn(id1, "0123456789abcdef"), 16);
	free(cfg.mta_sts_mode);
	cfg.mta_sts_mode = xstrdup("enforce");
	mtasts_policy_id(&cfg, id2, sizeof(id2));
	TEST_ASSERT(strcmp(id1, id2) != 0);
	config_free(&cfg);

	/* without MX delivery the anchor is not needed */
	config_init_defaults(&cfg);
	const char *path = write_file("deliver.conf", "hostname = h\ndata_dir = /tmp/x\n[relay]\n"
				      "mode = none\ndane_trust_anchor = /nonexistent\n");
	TEST_ASSERT_INT(config_load(&cfg, path, &error), 0);
	TEST_ASSERT_INT(config_validate(&cfg, &error), 0);
	config_free(&cfg);
}

int main(void)
{
	test_run("config defaults", test_defaults);
	test_run("config full file", test_full_file);
	test_run("config errors name file and line", test_errors);
	test_run("config value parsers", test_parsers);
	test_run("config deliverability keys", test_deliverability_keys);
	return test_end();
}

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

/* Loads text (which must load) and returns config_validate's verdict. */
static int validate_text(const char *text, const char **error_r)
{
	static char saved[700];
	struct config cfg;
	const char *path = write_file("check.conf", text);
	config_init_defaults(&cfg);
	int ret = config_load(&cfg, path, error_r);
	TEST_ASSERT_INT(ret, 0);
	if (ret == 0)
		ret = config_validate(&cfg, error_r);
	if (ret < 0) {
		snprintf(saved, sizeof(saved), "%s", *error_r);
		*error_r = saved;
	}
	config_free(&cfg);
	return ret;
}

static void expect_invalid(const char *text, const char *want)
{
	const char *error = NULL;
	TEST_ASSERT_INT(validate_text(text, &error), -1);
	TEST_ASSERT(error != NULL && strstr(error, want) != NULL);
	if (error != NULL && strstr(error, want) == NULL)
		fprintf(stderr, "  error was: %s\n  wanted:    %s\n", error, want);
}

/* issue 18: `postern check` refuses what would only fail later */
static void test_strict_check(void)
{
	/* a key given twice: the second would silently win */
	expect_error("hostname = a.example\nworkers = 2\nhostname = b.example\n",
		     "bad.conf:3: duplicate key 'hostname' (first on line 1)");
	expect_error("[listen]\nimap = 127.0.0.1:143\n[auth]\nplaintext = never\n"
		     "[listen]\nimap = 127.0.0.1:1143\n",
		     "bad.conf:6: duplicate key 'imap' in [listen] (first on line 2)");
	/* the same name in two sections is two keys */
	const char *error = NULL;
	TEST_ASSERT_INT(validate_text("hostname = mail.example.org\nrun_as = nobody\n"
				      "[limits]\nmax_connections = 5\n"
				      "[relay]\nmax_connections = 6\n", &error), 0);

	/* run_as must exist (and not be root) */
	expect_invalid("hostname = mail.example.org\n\nrun_as = no-such-user-xq\n",
		       "check.conf:3: run_as: no such system user 'no-such-user-xq'");
	expect_invalid("hostname = mail.example.org\nrun_as = root\n",
		       "check.conf:2: run_as: must not be root");

	/* hostname must be a domain name */
	static const char *const bad_hosts[] = {
		"mail_1.example.org", "-mail.example.org", "mail-.example.org",
		"mail..example.org", ".example.org", "mail.example.org.", "192.0.2.1",
		"mail.example.123", "a b.example.org", "m\xc3\xa4il.example.org",
	};
	for (size_t i = 0; i < sizeof(bad_hosts) / sizeof(bad_hosts[0]); i++) {
		char text[300], want[300];
		snprintf(text, sizeof(text), "run_as = nobody\n# x\nhostname = %s\n", bad_hosts[i]);
		snprintf(want, sizeof(want), "check.conf:3: hostname: '%s' is not a valid domain name",
			 bad_hosts[i]);
		expect_invalid(text, want);
	}
	char long_label[200];
	snprintf(long_label, sizeof(long_label), "run_as = nobody\nhostname = %064d.example\n", 0);
	expect_invalid(long_label, "check.conf:2: hostname: '");
	static const char *const good_hosts[] = {
		"mail.example.org", "localhost", "MX1.Example.ORG", "xn--mil-moa.example.org",
		"a-b.c-d.example", "1mail.example.org",
	};
	for (size_t i = 0; i < sizeof(good_hosts) / sizeof(good_hosts[0]); i++) {
		char text[300];
		snprintf(text, sizeof(text), "run_as = nobody\nhostname = %s\n", good_hosts[i]);
		error = NULL;
		TEST_ASSERT_INT(validate_text(text, &error), 0);
		if (error != NULL)
			fprintf(stderr, "  %s: %s\n", good_hosts[i], error);
	}
	/* other checks name the file and line too */
	expect_invalid("run_as = nobody\nhostname = a.example\ndata_dir = rel/ative\n",
		       "check.conf:3: data_dir: must be an absolute path");
	expect_invalid("run_as = nobody\nhostname = a.example\n[tls]\ncert = /nonexistent.pem\n"
		       "[listen]\nimap = 127.0.0.1:143\n",
		       "check.conf:4: [tls] cert: cannot read /nonexistent.pem");
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
	test_run("config strict check", test_strict_check);
	return test_end();
}

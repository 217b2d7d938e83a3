/* The web process's pure parts: the parsers of what an HTTPS request
 * brings (Host, e-mail address, Autodiscover body), the documents, the
 * MTA-STS policy and its id, the [listen] metrics/https and [mta_sts]
 * keys, and the Prometheus rendering of the shared counters. */
#include "test.h"
#include "core/autoconfig.h"
#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/mtasts.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_host_domain(void)
{
	char d[AUTOCONFIG_DOMAIN_MAX + 1];
	TEST_ASSERT_INT(autoconfig_host_domain("mta-sts.Example.ORG:443", "mta-sts", 1, d,
					       sizeof(d)), 0);
	TEST_ASSERT_STR(d, "example.org");
	TEST_ASSERT_INT(autoconfig_host_domain("mta-sts.example.org.", "mta-sts", 1, d, sizeof(d)), 0);
	TEST_ASSERT_STR(d, "example.org");
	/* required: only mta-sts.DOMAIN */
	TEST_ASSERT_INT(autoconfig_host_domain("example.org", "mta-sts", 1, d, sizeof(d)), -1);
	TEST_ASSERT_INT(autoconfig_host_domain("mta-sts.org", "mta-sts", 1, d, sizeof(d)), -1);
	/* optional: autoconfig.DOMAIN or DOMAIN */
	TEST_ASSERT_INT(autoconfig_host_domain("autoconfig.example.org", "autoconfig", 0, d,
					       sizeof(d)), 0);
	TEST_ASSERT_STR(d, "example.org");
	TEST_ASSERT_INT(autoconfig_host_domain("example.org", "autoconfig", 0, d, sizeof(d)), 0);
	TEST_ASSERT_STR(d, "example.org");
	static const char *const bad[] = {
		"", ":443", "[::1]:443", "localhost", "example.org..", "a..b", ".example.org",
		"-a.example.org", "a-.example.org", "exa mple.org", "exa/mple.org",
		"exa\"mple.org", "example.org\r\nX: y", "xn--\xc3\xa4.org",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		TEST_ASSERT_INT(autoconfig_host_domain(bad[i], NULL, 0, d, sizeof(d)), -1);
	char longname[300];
	memset(longname, 'a', sizeof(longname));
	longname[60] = '.';
	longname[299] = '\0';
	TEST_ASSERT_INT(autoconfig_host_domain(longname, NULL, 0, d, sizeof(d)), -1);
}

static void test_email(void)
{
	char d[AUTOCONFIG_DOMAIN_MAX + 1], e[AUTOCONFIG_EMAIL_MAX + 1];
	TEST_ASSERT_INT(autoconfig_email_domain("Fred.Smith+x@Example.ORG", d, sizeof(d)), 0);
	TEST_ASSERT_STR(d, "example.org");
	static const char *const bad[] = {
		"fred", "@example.org", "fred@", ".fred@example.org", "fred.@example.org",
		"fr..ed@example.org", "\"fred\"@example.org", "fr<ed@example.org",
		"fred@exa_mple.org", "fr ed@example.org", "fréd@example.org",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		TEST_ASSERT_INT(autoconfig_email_domain(bad[i], d, sizeof(d)), -1);

	const char *body = "<?xml version=\"1.0\"?><Autodiscover xmlns=\"x\"><Request>"
			   "<EMailAddress>\r\n  fred@example.org \t</EMailAddress>"
			   "<AcceptableResponseSchema>y</AcceptableResponseSchema></Request>"
			   "</Autodiscover>";
	TEST_ASSERT_INT(autoconfig_autodiscover_email(body, strlen(body), e, sizeof(e)), 0);
	TEST_ASSERT_STR(e, "fred@example.org");
	const char *prefixed = "<a:Autodiscover><a:Request><a:EMailAddress>b@example.org"
			       "</a:EMailAddress></a:Request></a:Autodiscover>";
	TEST_ASSERT_INT(autoconfig_autodiscover_email(prefixed, strlen(prefixed), e, sizeof(e)), 0);
	TEST_ASSERT_STR(e, "b@example.org");
	static const char *const bad_bodies[] = {
		"", "<EMailAddress>", "EMailAddress>a@b.org<", "</EMailAddress>a@b.org<",
		"<EMailAddress>a<b@example.org</EMailAddress>",
		"<EMailAddress>a&amp;b@example.org</EMailAddress>",
		"<XEMailAddress>a@example.org</XEMailAddress>",
	};
	for (size_t i = 0; i < sizeof(bad_bodies) / sizeof(bad_bodies[0]); i++)
		TEST_ASSERT_INT(autoconfig_autodiscover_email(bad_bodies[i], strlen(bad_bodies[i]),
							      e, sizeof(e)), -1);
	/* a NUL inside the address is not an address */
	const char nul[] = "<EMailAddress>a\0b@example.org</EMailAddress>";
	TEST_ASSERT_INT(autoconfig_autodiscover_email(nul, sizeof(nul) - 1, e, sizeof(e)), -1);
	/* cut anywhere: never an address that was not there whole */
	for (size_t cut = 0; cut < strlen(body); cut++) {
		int ret = autoconfig_autodiscover_email(body, cut, e, sizeof(e));
		TEST_ASSERT(ret == -1 || strcmp(e, "fred@example.org") == 0);
	}
}

static struct config test_config(void)
{
	struct config cfg;
	config_init_defaults(&cfg);
	free(cfg.hostname);
	cfg.hostname = xstrdup("mail.example.org");
	cfg.listen[LISTEN_IMAPS] = xstrdup("*:993");
	cfg.listen[LISTEN_SUBMISSION] = xstrdup("0.0.0.0:587");
	cfg.listen[LISTEN_SMTP] = xstrdup("0.0.0.0:25");
	return cfg;
}

static void test_documents(void)
{
	struct config cfg = test_config();
	struct buf out = BUF_INIT;
	autoconfig_thunderbird(&cfg, "example.org", &out);
	const char *t = buf_str(&out);
	TEST_ASSERT(strstr(t, "<emailProvider id=\"example.org\">") != NULL);
	TEST_ASSERT(strstr(t, "<incomingServer type=\"imap\">\n      <hostname>mail.example.org"
			      "</hostname>\n      <port>993</port>\n      <socketType>SSL"
			      "</socketType>") != NULL);
	TEST_ASSERT(strstr(t, "<port>587</port>\n      <socketType>STARTTLS</socketType>") != NULL);
	TEST_ASSERT(strstr(t, "<port>25</port>") == NULL);     /* port 25 is for servers */
	TEST_ASSERT(strstr(t, "pop3") == NULL);                /* POP3 is off */
	buf_reset(&out);
	autoconfig_autodiscover(&cfg, "fred@example.org", &out);
	t = buf_str(&out);
	TEST_ASSERT(strstr(t, "<Type>IMAP</Type>") != NULL && strstr(t, "<Type>POP3</Type>") == NULL);
	TEST_ASSERT(strstr(t, "<Port>587</Port>") != NULL);
	TEST_ASSERT(strstr(t, "<Encryption>TLS</Encryption>") != NULL);
	TEST_ASSERT(strstr(t, "<LoginName>fred@example.org</LoginName>") != NULL);
	/* what comes from the configuration is escaped */
	free(cfg.hostname);
	cfg.hostname = xstrdup("a&b<c");
	buf_reset(&out);
	autoconfig_autodiscover(&cfg, NULL, &out);
	TEST_ASSERT(strstr(buf_str(&out), "<Server>a&amp;b&lt;c</Server>") != NULL);
	TEST_ASSERT(strstr(buf_str(&out), "LoginName") == NULL);
	buf_free(&out);
	config_free(&cfg);
}

static void test_mtasts(void)
{
	struct config cfg = test_config();
	struct buf out = BUF_INIT;
	char id[17];
	mtasts_policy(&cfg, &out);
	TEST_ASSERT_STR(buf_str(&out), "version: STSv1\r\nmode: testing\r\nmx: mail.example.org\r\n"
					"max_age: 604800\r\n");
	mtasts_policy_id(&cfg, id, sizeof(id));
	/* printf 'version: STSv1\r\nmode: testing\r\nmx: mail.example.org\r\nmax_age:
	 * 604800\r\n' | sha256sum | cut -c1-16 */
	TEST_ASSERT_STR(id, "53489ece145c54a1");
	free(cfg.mta_sts_mode);
	cfg.mta_sts_mode = xstrdup("enforce");
	char id2[17];
	mtasts_policy_id(&cfg, id2, sizeof(id2));
	TEST_ASSERT(strlen(id2) == 16 && strcmp(id, id2) != 0);
	buf_free(&out);
	config_free(&cfg);
}

static void test_config_keys(void)
{
	struct config cfg;
	const char *error;
	char path[512];
	snprintf(path, sizeof(path), "%s/web.conf", test_tmpdir());
	FILE *f = fopen(path, "w");
	fputs("[listen]\nmetrics = 9100\nhttps = *:443\n[mta_sts]\nmode = enforce\n"
	      "max_age = 1d\n", f);
	fclose(f);
	config_init_defaults(&cfg);
	TEST_ASSERT(cfg.listen_metrics == NULL && cfg.listen_https == NULL);
	TEST_ASSERT_STR(cfg.mta_sts_mode, "testing");
	TEST_ASSERT_INT(cfg.mta_sts_max_age, 604800);
	TEST_ASSERT_INT(config_load(&cfg, path, &error), 0);
	TEST_ASSERT_STR(cfg.listen_metrics, "127.0.0.1:9100");    /* loopback by default */
	TEST_ASSERT_STR(cfg.listen_https, "*:443");
	TEST_ASSERT_STR(cfg.mta_sts_mode, "enforce");
	TEST_ASSERT_INT(cfg.mta_sts_max_age, 86400);
	config_free(&cfg);

	static const char *const bad[] = {
		"[listen]\nmetrics = 99999\n", "[listen]\nmetrics = x\n", "[listen]\nhttps = 443\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		f = fopen(path, "w");
		fputs(bad[i], f);
		fclose(f);
		config_init_defaults(&cfg);
		TEST_ASSERT_INT(config_load(&cfg, path, &error), -1);
		TEST_ASSERT(strstr(error, "web.conf:2:") != NULL);
		config_free(&cfg);
	}
	/* mode and max_age are checked with the rest */
	config_init_defaults(&cfg);
	free(cfg.mta_sts_mode);
	cfg.mta_sts_mode = xstrdup("strict");
	TEST_ASSERT_INT(config_validate(&cfg, &error), -1);
	TEST_ASSERT(strstr(error, "[mta_sts] mode") != NULL);
	free(cfg.mta_sts_mode);
	cfg.mta_sts_mode = xstrdup("none");
	cfg.mta_sts_max_age = 40000000;
	TEST_ASSERT_INT(config_validate(&cfg, &error), -1);
	TEST_ASSERT(strstr(error, "[mta_sts] max_age") != NULL);
	config_free(&cfg);
}

static void test_metrics_render(void)
{
	const char *error;
	const struct metrics *m;
	struct config cfg = test_config();
	TEST_ASSERT(metrics_current() == NULL);
	metrics_count(METRIC_MESSAGES_ACCEPTED);     /* no mapping: nothing, no crash */
	TEST_ASSERT_INT(metrics_setup(test_tmpdir(), NULL, 4, &error), 0);
	metrics_count_listener(METRIC_CONNECTIONS, LISTEN_IMAPS);
	metrics_count_listener(METRIC_CONNECTIONS, LISTEN_IMAPS);
	metrics_connection_open(1, LISTEN_IMAPS, 1);
	metrics_connection_open(2, LISTEN_IMAPS, 1);
	metrics_connection_open(3, LISTEN_IMAPS, 1);
	metrics_connection_open(3, LISTEN_IMAPS, -1);
	metrics_connection_open(99, LISTEN_IMAPS, 1);   /* no such slot: ignored */
	metrics_login("imap", true);
	metrics_login("pop", false);
	metrics_login("sieve", true);                   /* not counted */
	metrics_relay_result(250, false);
	metrics_relay_result(250, true);
	metrics_relay_result(451, false);
	metrics_relay_result(550, false);
	metrics_count(METRIC_EXPIRED);
	metrics_set_certificate_expiry(1900000000);

	/* another process's view of the same file */
	TEST_ASSERT_INT(metrics_attach(test_tmpdir(), &m, &error), 0);
	TEST_ASSERT_INT(metrics_value(m, METRIC_CONNECTIONS + LISTEN_IMAPS), 2);
	TEST_ASSERT_INT(metrics_open_connections(m, LISTEN_IMAPS), 2);
	TEST_ASSERT_INT(metrics_value(m, METRIC_LOGINS_OK + METRICS_IMAP), 1);
	TEST_ASSERT_INT(metrics_value(m, METRIC_LOGINS_FAILED + METRICS_POP3), 1);
	TEST_ASSERT_INT(metrics_value(m, METRIC_DELIVERED_REMOTE), 1);
	TEST_ASSERT_INT(metrics_master_pid(m), getpid());
	TEST_ASSERT(metrics_server_running(m));
	metrics_clear_slot(1);
	TEST_ASSERT_INT(metrics_open_connections(m, LISTEN_IMAPS), 1);

	struct buf out = BUF_INIT;
	struct metrics_queue queue = { true, 3, 1000 };
	metrics_render(m, &cfg, &queue, 1600, &out);
	const char *t = buf_str(&out);
	TEST_ASSERT(strstr(t, "\npostern_connections_total{listener=\"imaps\"} 2\n") != NULL);
	TEST_ASSERT(strstr(t, "listener=\"pop3\"") == NULL);   /* not configured */
	TEST_ASSERT(strstr(t, "\npostern_connections_open{listener=\"imaps\"} 1\n") != NULL);
	TEST_ASSERT(strstr(t, "postern_logins_total{protocol=\"pop3\",result=\"failed\"} 1\n"));
	TEST_ASSERT(strstr(t, "postern_relay_attempts_total{result=\"sent\"} 2\n") != NULL);
	TEST_ASSERT(strstr(t, "postern_messages_delivered_total{destination=\"remote\"} 1\n"));
	TEST_ASSERT(strstr(t, "\npostern_messages_bounced_total 2\n") != NULL);
	TEST_ASSERT(strstr(t, "\npostern_messages_deferred_total 1\n") != NULL);
	TEST_ASSERT(strstr(t, "\npostern_queue_messages 3\n") != NULL);
	TEST_ASSERT(strstr(t, "\npostern_queue_oldest_age_seconds 600\n") != NULL);
	TEST_ASSERT(strstr(t, "postern_tls_certificate_expiry_timestamp_seconds 1900000000\n"));
	/* every family has HELP and TYPE before its samples */
	size_t helps = 0, types = 0;
	for (const char *p = t; (p = strstr(p, "# HELP ")) != NULL; p++)
		helps++;
	for (const char *p = t; (p = strstr(p, "# TYPE ")) != NULL; p++)
		types++;
	TEST_ASSERT(helps == types && helps >= 15);
	buf_free(&out);
	metrics_detach(&m);

	/* not ours: refused */
	char path[512];
	snprintf(path, sizeof(path), "%s/bad", test_tmpdir());
	mkdir(path, 0700);
	char file[600];
	snprintf(file, sizeof(file), "%s/metrics.shm", path);
	FILE *f = fopen(file, "w");
	fputs("not a metrics file, but long enough to be mapped as one: ........................"
	      "..................................................................................",
	      f);
	fclose(f);
	TEST_ASSERT_INT(metrics_attach(path, &m, &error), -1);
	config_free(&cfg);
}

int main(void)
{
	log_init("test-web", LOG_LEVEL_WARN);
	test_run("host_domain", test_host_domain);
	test_run("email", test_email);
	test_run("documents", test_documents);
	test_run("mtasts", test_mtasts);
	test_run("config_keys", test_config_keys);
	test_run("metrics_render", test_metrics_render);
	return test_end();
}

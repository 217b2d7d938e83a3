/* `postern status`: the facts the metrics endpoint gives, for a person.
 * It reads the counters the running server shares (DATA/metrics.shm,
 * core/metrics.h), the queue (relay/queue.h) and the certificate. Exit
 * status 0 while the server runs, 1 (with one line on stderr) when it
 * does not, after printing what can be known without it. */
#include "cli/cli.h"
#include "core/metrics.h"
#include "core/tls.h"
#include "queue/queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* "3d 4h", "2h 5m", "40s": a duration for a person. */
static void human_duration(long long secs, char *out, size_t size)
{
	if (secs < 0)
		secs = 0;
	if (secs >= 86400)
		snprintf(out, size, "%lldd %lldh", secs / 86400, secs % 86400 / 3600);
	else if (secs >= 3600)
		snprintf(out, size, "%lldh %lldm", secs / 3600, secs % 3600 / 60);
	else if (secs >= 60)
		snprintf(out, size, "%lldm %llds", secs / 60, secs % 60);
	else
		snprintf(out, size, "%llds", secs);
}

static void human_time(time_t t, char *out, size_t size)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, size, "%Y-%m-%d %H:%M UTC", &tm);
}

static unsigned long long value(const struct metrics *m, int id)
{
	return (unsigned long long)metrics_value(m, (enum metric)id);
}

static void print_counters(const struct metrics *m, const struct config *cfg)
{
	printf("\n%-12s %-22s %6s %12s %8s %8s %10s\n", "listener", "address", "open",
	       "connections", "refused", "TLS ok", "TLS failed");
	for (int i = 0; i < LISTEN_COUNT; i++) {
		if (cfg->listen[i] == NULL)
			continue;
		printf("%-12s %-22s %6llu %12llu %8llu %8llu %10llu\n", listener_kind_name(i),
		       cfg->listen[i],
		       (unsigned long long)metrics_open_connections(m, (enum listener_kind)i),
		       value(m, METRIC_CONNECTIONS + i), value(m, METRIC_CONNECTIONS_REFUSED + i),
		       value(m, METRIC_TLS_HANDSHAKES + i), value(m, METRIC_TLS_FAILURES + i));
	}
	printf("\nlogins       ");
	for (int p = 0; p < METRICS_PROTO_COUNT; p++)
		printf("%s%s %llu ok, %llu failed", p > 0 ? "; " : "",
		       metrics_proto_name((enum metrics_proto)p), value(m, METRIC_LOGINS_OK + p),
		       value(m, METRIC_LOGINS_FAILED + p));
	printf("\nmessages     %llu accepted; delivered %llu here, %llu remote; "
	       "%llu deferred; %llu bounced\n",
	       value(m, METRIC_MESSAGES_ACCEPTED), value(m, METRIC_DELIVERED_LOCAL),
	       value(m, METRIC_DELIVERED_REMOTE), value(m, METRIC_RELAY_DEFERRED),
	       value(m, METRIC_RELAY_BOUNCED) + value(m, METRIC_EXPIRED));
	printf("relay        %llu sent, %llu deferred, %llu bounced (one per recipient and attempt)\n",
	       value(m, METRIC_RELAY_SENT), value(m, METRIC_RELAY_DEFERRED),
	       value(m, METRIC_RELAY_BOUNCED));
	printf("restarts     ");
	for (int c = 0; c < METRICS_CHILD_COUNT; c++)
		printf("%s%s %llu", c > 0 ? ", " : "", metrics_child_name((enum metrics_child)c),
		       value(m, METRIC_RESTARTS + c));
	putchar('\n');
}

static void print_queue(const struct config *cfg, time_t now)
{
	char *db = xasprintf("%s/queue.lmdb", cfg->data_dir);
	bool present = access(db, F_OK) == 0;
	free(db);
	if (!present) {
		printf("queue        empty (no queue yet)\n");
		return;
	}
	struct queue *q;
	const char *error;
	uint64_t messages;
	time_t oldest;
	if (queue_open(cfg->data_dir, cfg->run_as, &q, &error) < 0 ||
	    queue_stats(q, &messages, &oldest, &error) < 0) {
		printf("queue        unreadable: %s\n", error);
		return;
	}
	queue_close(&q);
	if (messages == 0) {
		printf("queue        empty\n");
		return;
	}
	char age[32];
	human_duration(oldest > 0 ? (long long)(now - oldest) : 0, age, sizeof(age));
	printf("queue        %llu message%s, the oldest %s old\n", (unsigned long long)messages,
	       messages == 1 ? "" : "s", age);
}

static void print_certificate(const struct config *cfg, const struct metrics *m, time_t now)
{
	const char *error = NULL;
	time_t expiry = m != NULL ? metrics_certificate_expiry(m) : 0;
	if (expiry == 0 && tls_cert_not_after(cfg->tls_cert, &expiry, &error) < 0) {
		printf("certificate  %s: %s\n", cfg->tls_cert, error);
		return;
	}
	char when[64], left[32];
	human_time(expiry, when, sizeof(when));
	human_duration((long long)(expiry - now), left, sizeof(left));
	printf("certificate  %s expires %s (%s%s)%s\n", cfg->tls_cert, when,
	       expiry < now ? "expired" : "in ", expiry < now ? "" : left,
	       expiry - now < 14 * 86400 ? "  RENEW IT" : "");
}

int cmd_status(int argc, char **argv)
{
	const char *path = cli_take_config_arg(&argc, argv);
	if (path == NULL)
		return EXIT_USAGE;
	if (argc > 0)
		return cli_usage("status: unexpected argument '%s'", argv[0]);
	struct config cfg;
	if (cli_load_config(path, &cfg, false) < 0)
		return EXIT_USER_ERROR;

	const struct metrics *m = NULL;
	const char *error = NULL;
	time_t now = time(NULL);
	bool running = metrics_attach(cfg.data_dir, &m, &error) == 0 &&
		       metrics_server_running(m);
	printf("Postern %s\n", POSTERN_VERSION);
	if (running) {
		char up[32], since[64];
		human_duration((long long)(now - metrics_started(m)), up, sizeof(up));
		human_time(metrics_started(m), since, sizeof(since));
		printf("server       running, pid %d, up %s (since %s)\n",
		       (int)metrics_master_pid(m), up, since);
	} else {
		printf("server       not running\n");
	}
	printf("config       %s\ndata         %s\n", cfg.path, cfg.data_dir);
	printf("metrics      %s%s%s\nhttps        %s\n",
	       cfg.listen_metrics != NULL ? "http://" : "off",
	       cfg.listen_metrics != NULL ? cfg.listen_metrics : "",
	       cfg.listen_metrics != NULL ? "/metrics" : "",
	       cfg.listen_https != NULL ? cfg.listen_https : "off");
	print_queue(&cfg, now);
	print_certificate(&cfg, running ? m : NULL, now);
	if (running)
		print_counters(m, &cfg);
	if (m != NULL)
		metrics_detach(&m);
	int ret = 0;
	if (!running)
		ret = cli_error("the server is not running (%s)",
				error != NULL ? error : "its master process is gone");
	config_free(&cfg);
	return ret;
}

/* `postern serve [-c FILE] [--demo [DIR]]` */
#include "cli/cli.h"
#include "auth/auth.h"
#include "core/metrics.h"
#include "core/ratelimit.h"
#include "core/sandbox.h"
#include "core/server.h"
#include "store/store.h"
#include "core/tls.h"
#include "queue/queue.h"
#include "relay/relay.h"
#include "imap/imap.h"
#include "pop3/pop3.h"
#include "submission/smtp.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEMO_DEFAULT_DIR "./postern-demo"
/* where the demo keeps its data when the service user cannot reach DIR */
#define DEMO_OUTSIDE_DIR "/var/lib/postern-demo"

static const char *serve_config_path;

static const struct {
	enum listener_kind kind;
	int port;
	const char *what;
} demo_ports[] = {
	{ LISTEN_SUBMISSION, 1587, "SMTP submission, STARTTLS" },
	{ LISTEN_SUBMISSIONS, 1465, "SMTP submission, implicit TLS" },
	{ LISTEN_SMTP, 1025, "SMTP inbound (MX)" },
	{ LISTEN_POP3, 1110, "POP3, STLS" },
	{ LISTEN_POP3S, 1995, "POP3, implicit TLS" },
	{ LISTEN_IMAP, 1143, "IMAP, STARTTLS" },
	{ LISTEN_IMAPS, 1993, "IMAP, implicit TLS" },
};

/* Each worker and the relay, after the fork and the privilege drop: the
 * link to the auth process (accounts are its alone), and their own LMDB
 * environments. */
static int serve_child_init(const struct config *cfg, struct services *services,
			    const char **error_r)
{
	if (auth_client_open(cfg, services->auth_fd[0], services->auth_fd[1], &services->auth,
			     error_r) < 0)
		return -1;
	services->auth_fd[0] = services->auth_fd[1] = -1;   /* the client's now */
	if (store_open(cfg->data_dir, cfg->run_as, &services->store, error_r) < 0)
		return -1;
	if (queue_open(cfg->data_dir, cfg->run_as, &services->queue, error_r) < 0)
		return -1;
	if (ratelimit_open(cfg->data_dir, cfg->run_as, &services->ratelimit, error_r) < 0)
		return -1;
	/* what the sandbox lets a child reach must be there before it closes
	 * (Landlock rules name existing paths): the signing keys `postern
	 * dkim` adds later, the relay's MTA-STS cache */
	static const char *const dirs[] = { "dkim", "mta-sts" };
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		char *dir = xasprintf("%s/%s", cfg->data_dir, dirs[i]);
		int r = privs_mkdir_p(dir, 0700, NULL, error_r);
		free(dir);
		if (r < 0)
			return -1;
	}
	/* workers (submitted mail) and the relay (its reports) sign */
	cli_register_filters();
	return 0;
}

static void serve_child_deinit(struct services *services)
{
	if (services->queue != NULL)
		queue_close(&services->queue);
	ratelimit_close(&services->ratelimit);
	if (services->store != NULL)
		store_free(&services->store);
	if (services->auth != NULL)
		auth_db_close(&services->auth);
	auth_client_close();
}

/* The auth process: accounts.lmdb, throttling, the SASL server. */
static int serve_auth_sandbox(const struct config *cfg, const char **error_r)
{
	return sandbox_enter(cfg, SANDBOX_AUTH, error_r);
}

static int serve_auth_main(const struct config *cfg, int ctl_fd)
{
	return auth_service_main(cfg, ctl_fd, serve_auth_sandbox);
}

/* Readers of killed processes stay in LMDB's reader tables until someone
 * clears them; every worker does, now and then. */
static void serve_child_periodic(struct services *services)
{
	int cleared = auth_db_reader_check(services->auth) + store_reader_check(services->store);
	if (cleared > 0)
		log_info("event=lmdb-stale-readers-cleared count=%d", cleared);
}

/* The web process's questions (core/http.c). */
static bool serve_domain_hosted(struct services *services, const char *domain)
{
	return auth_domain_is_local(services->auth, domain);
}

static void serve_queue_state(struct services *services, struct metrics_queue *state)
{
	const char *error;
	state->known = queue_stats(services->queue, &state->messages, &state->oldest_arrival,
				   &error) == 0;
	if (!state->known)
		log_warn("event=queue-stats-failed error=\"%s\"", error);
}

static int serve_reload(struct config *cfg, const char **error_r)
{
	config_init_defaults(cfg);
	if (config_load(cfg, serve_config_path, error_r) < 0 ||
	    config_validate(cfg, error_r) < 0) {
		config_free(cfg);
		return -1;
	}
	return 0;
}

static const char *demo_run_as(void)
{
	if (!privs_is_root()) {
		struct passwd *pw = getpwuid(geteuid());
		return pw != NULL ? pw->pw_name : "nobody";
	}
	return getpwnam("postern") != NULL ? "postern" : "nobody";
}

/* The demo's data_dir: DIR/data, unless the service user cannot reach DIR
 * (a checkout in a 0700 directory, run as root): then a directory of its
 * own under DEMO_OUTSIDE_DIR, named after DIR. */
static char *demo_data_dir(const char *dir, const char *run_as, const char **why_r)
{
	*why_r = NULL;
	if (privs_user_can_reach(run_as, dir, X_OK, why_r) == 0)
		return xasprintf("%s/data", dir);
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	if (EVP_Digest(dir, strlen(dir), digest, &len, EVP_sha256(), NULL) != 1 || len < 8)
		fatal("event=digest-failed");
	char hex[17];
	for (int i = 0; i < 8; i++)
		snprintf(hex + 2 * i, 3, "%02x", digest[i]);
	return xasprintf("%s/%s", DEMO_OUTSIDE_DIR, hex);
}

/* Makes DIR with a certificate and a config file (kept across runs), and
 * returns the config path. */
static char *demo_prepare(const char *dir_arg)
{
	const char *error;
	if (mkdir(dir_arg, 0755) < 0 && errno != EEXIST) {
		cli_error("demo: cannot create %s: %s", dir_arg, strerror(errno));
		return NULL;
	}
	char dir[PATH_MAX];
	if (realpath(dir_arg, dir) == NULL) {
		cli_error("demo: %s: %s", dir_arg, strerror(errno));
		return NULL;
	}
	char host[256] = "localhost";
	char *cert = xasprintf("%s/cert.pem", dir);
	char *key = xasprintf("%s/key.pem", dir);
	char *conf = xasprintf("%s/postern.conf", dir);
	if (access(cert, R_OK) != 0 || access(key, R_OK) != 0) {
		if (tls_make_self_signed(cert, key, host, &error) < 0) {
			cli_error("demo: %s", error);
			return NULL;
		}
	}
	if (access(conf, R_OK) != 0) {
		FILE *f = fopen(conf, "w");
		if (f == NULL) {
			cli_error("demo: cannot write %s: %s", conf, strerror(errno));
			return NULL;
		}
		const char *run_as = demo_run_as(), *why;
		char *data_dir = demo_data_dir(dir, run_as, &why);
		fprintf(f, "# Postern demo configuration, made by `postern serve --demo`.\n"
			   "# Edit freely; it is reused by the next demo run.\n");
		if (why != NULL)
			fprintf(f, "# data_dir is outside this directory: %s\n", why);
		fprintf(f, "hostname = %s\ndata_dir = %s\nrun_as = %s\n\n"
			   "[tls]\ncert = %s\nkey = %s\n\n[listen]\n",
			host, data_dir, run_as, cert, key);
		free(data_dir);
		for (size_t i = 0; i < sizeof(demo_ports) / sizeof(demo_ports[0]); i++)
			fprintf(f, "%-11s = 127.0.0.1:%d\n", listener_kind_name(demo_ports[i].kind),
				demo_ports[i].port);
		fprintf(f, "\n[auth]\nplaintext = loopback\n\n[relay]\nmode = none\n");
		if (fclose(f) != 0) {
			cli_error("demo: cannot write %s", conf);
			return NULL;
		}
	}
	free(cert);
	free(key);
	return conf;
}

/* The demo domain and user, made once; the password is kept in
 * DIR/demo-password (mode 0600) and printed at every start. Runs in the
 * master before any fork, and closes the database again (LMDB must not
 * cross a fork). */
static int demo_account(const struct config *cfg, const char *dir, char *password,
			size_t password_size)
{
	const char *error;
	char *path = xasprintf("%s/demo-password", dir);
	FILE *f = fopen(path, "r");
	if (f != NULL) {
		if (fgets(password, (int)password_size, f) == NULL)
			password[0] = '\0';
		fclose(f);
		password[strcspn(password, "\r\n")] = '\0';
	} else {
		unsigned char rnd[12];
		static const char alphabet[] =
			"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
		if (RAND_bytes(rnd, sizeof(rnd)) != 1 || password_size < sizeof(rnd) + 1)
			fatal("event=rand-failed");
		for (size_t i = 0; i < sizeof(rnd); i++)
			password[i] = alphabet[rnd[i] % (sizeof(alphabet) - 1)];
		password[sizeof(rnd)] = '\0';
	}
	struct auth_db *db;
	if (privs_mkdir_p(cfg->data_dir, 0750, cfg->run_as, &error) < 0) {
		free(path);
		return cli_error("demo: %s", error);
	}
	if (auth_db_open(cfg->data_dir, cfg->run_as, &db, &error) < 0) {
		free(path);
		return cli_error("demo: %s", error);
	}
	int ret = 0;
	struct auth_user user;
	if (auth_domain_is_local(db, "example.org") == false &&
	    auth_domain_add(db, "example.org", &error) < 0)
		ret = cli_error("demo: %s", error);
	else if (auth_user_lookup(db, "demo@example.org", &user) == 1)
		ret = auth_user_set_password(db, "demo@example.org", password, &error);
	else
		ret = auth_user_add(db, "demo@example.org", password, 0, true, &error);
	if (ret < 0)
		ret = cli_error("demo: %s", error);
	auth_db_close(&db);
	if (ret == 0) {
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0 || dprintf(fd, "%s\n", password) < 0 || close(fd) < 0)
			ret = cli_error("demo: cannot write %s: %s", path, strerror(errno));
	}
	free(path);
	return ret;
}

static void demo_banner(const struct config *cfg, const char *password, const char *dir)
{
	printf("Postern %s demo\n  config:  %s\n  data:    %s\n", POSTERN_VERSION, cfg->path,
	       cfg->data_dir);
	if (strncmp(cfg->data_dir, dir, strlen(dir)) != 0)
		printf("           (outside %s: user %s cannot reach it)\n", dir, cfg->run_as);
	for (int i = 0; i < LISTEN_COUNT; i++) {
		if (cfg->listen[i] == NULL)
			continue;
		const char *what = "";
		for (size_t j = 0; j < sizeof(demo_ports) / sizeof(demo_ports[0]); j++) {
			if ((int)demo_ports[j].kind == i)
				what = demo_ports[j].what;
		}
		printf("  %-11s %-16s %s\n", listener_kind_name(i), cfg->listen[i], what);
	}
	printf("  user:    demo@example.org\n  password: %s   (kept in %s/demo-password)\n",
	       password, dir);
	printf("  try:     openssl s_client -quiet -connect 127.0.0.1:1993\n"
	       "           openssl s_client -quiet -starttls smtp -connect 127.0.0.1:1587\n"
	       "Stop with Ctrl-C.\n");
	fflush(stdout);
}

int cmd_serve(int argc, char **argv)
{
	bool demo = false;
	const char *demo_dir = NULL;
	bool config_given = false;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 || strncmp(argv[i], "--config", 8) == 0)
			config_given = true;
	}
	const char *path = cli_take_config_arg(&argc, argv);
	if (path == NULL)
		return EXIT_USAGE;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--demo") == 0) {
			demo = true;
			if (i + 1 < argc && argv[i + 1][0] != '-')
				demo_dir = argv[++i];
		} else {
			return cli_usage("serve: unexpected argument '%s'", argv[i]);
		}
	}
	if (demo && config_given)
		return cli_usage("serve: --demo makes its own configuration; drop -c");
	char *demo_conf = NULL;
	if (demo) {
		demo_conf = demo_prepare(demo_dir != NULL ? demo_dir : DEMO_DEFAULT_DIR);
		if (demo_conf == NULL)
			return EXIT_USER_ERROR;
		path = demo_conf;
	}
	serve_config_path = path;

	struct config cfg;
	if (cli_load_config(path, &cfg, true) < 0)
		return EXIT_USER_ERROR;
	if (demo) {
		char password[64];
		char *dir = xstrdup(path);
		*strrchr(dir, '/') = '\0';
		int ret = demo_account(&cfg, dir, password, sizeof(password));
		if (ret == 0)
			demo_banner(&cfg, password, dir);
		free(dir);
		if (ret != 0) {
			config_free(&cfg);
			free(demo_conf);
			return EXIT_USER_ERROR;
		}
	}

	struct server_setup setup;
	memset(&setup, 0, sizeof(setup));
	setup.cfg = &cfg;
	setup.protos[LISTEN_SUBMISSION] = &smtp_proto;
	setup.protos[LISTEN_SUBMISSIONS] = &smtp_proto;
	setup.protos[LISTEN_SMTP] = &smtp_proto;
	setup.protos[LISTEN_POP3] = &pop3_proto;
	setup.protos[LISTEN_POP3S] = &pop3_proto;
	setup.protos[LISTEN_IMAP] = &imap_proto;
	setup.protos[LISTEN_IMAPS] = &imap_proto;
	setup.implicit_tls[LISTEN_SUBMISSIONS] = true;
	setup.implicit_tls[LISTEN_POP3S] = true;
	setup.implicit_tls[LISTEN_IMAPS] = true;
	setup.reload_config = serve_reload;
	setup.child_init = serve_child_init;
	setup.child_deinit = serve_child_deinit;
	setup.child_periodic = serve_child_periodic;
	setup.auth_main = serve_auth_main;
	setup.relay_main = relay_main;
	setup.domain_hosted = serve_domain_hosted;
	setup.queue_state = serve_queue_state;

	int ret = server_run(&setup);
	config_free(&cfg);
	free(demo_conf);
	return ret;
}

#include "cli/cli.h"
#include "core/tls.h"
#include "dkim/dkim.h"
#include "intake/intake.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
	"usage: postern COMMAND [ARGS]   (every command takes -c FILE)\n"
	"\n"
	"  serve   [-c FILE] [--demo [DIR]]     run the server in the foreground\n"
	"  check   [-c FILE]                     validate config, print effective settings\n"
	"  domain  add|del DOMAIN | list\n"
	"  user    add ADDRESS | del ADDRESS [--keep-mail] | passwd ADDRESS | list [DOMAIN]\n"
	"          quota ADDRESS BYTES [--messages N]\n"
	"  alias   add ALIAS TARGET[,TARGET...] | del ALIAS | list\n"
	"  queue   list | show ID | flush [ID] | delete ID [--bounce]\n"
	"  deliver [-f SENDER] [--mailbox NAME] ADDRESS...   deliver a message from stdin locally\n"
	"  dkim    generate DOMAIN [--selector S] [--algorithm rsa|ed25519]   new signing key\n"
	"  dkim    list | show DOMAIN | del DOMAIN SELECTOR\n"
	"  dns     DOMAIN                        every DNS record to publish, as zone-file lines\n"
	"  status                                what the running server is doing\n"
	"  backup  DIR                           consistent copy of data_dir while the server runs\n"
	"  restore DIR                           into an empty data_dir, server stopped\n"
	"  version\n"
	"\n"
	"The configuration file is -c FILE, else $POSTERN_CONFIG, else "
	CONFIG_DEFAULT_PATH ".\n";

static int vreport(const char *fmt, va_list ap)
{
	fputs("postern: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	return 0;
}

int cli_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport(fmt, ap);
	va_end(ap);
	return EXIT_USER_ERROR;
}

int cli_usage(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport(fmt, ap);
	va_end(ap);
	fputs("run 'postern help' for usage\n", stderr);
	return EXIT_USAGE;
}

static void remove_args(int *argc, char **argv, int at, int count)
{
	for (int i = at; i + count <= *argc; i++)
		argv[i] = argv[i + count];
	*argc -= count;
}

const char *cli_take_config_arg(int *argc, char **argv)
{
	const char *path = NULL;
	for (int i = 0; i < *argc;) {
		if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) {
			if (i + 1 >= *argc) {
				cli_usage("%s needs a file name", argv[i]);
				return NULL;
			}
			path = argv[i + 1];
			remove_args(argc, argv, i, 2);
		} else if (strncmp(argv[i], "--config=", 9) == 0) {
			path = argv[i] + 9;
			remove_args(argc, argv, i, 1);
		} else {
			i++;
		}
	}
	if (path == NULL)
		path = getenv("POSTERN_CONFIG");
	if (path == NULL || path[0] == '\0')
		path = CONFIG_DEFAULT_PATH;
	return path;
}

bool cli_take_flag(int *argc, char **argv, const char *flag)
{
	bool found = false;
	for (int i = 0; i < *argc;) {
		if (strcmp(argv[i], flag) == 0) {
			remove_args(argc, argv, i, 1);
			found = true;
		} else {
			i++;
		}
	}
	return found;
}

/* Removes "--name VALUE" or "--name=VALUE"; *value_r stays NULL when
 * absent. Returns -1 (usage printed) when VALUE is missing. */
int cli_take_option(int *argc, char **argv, const char *name, const char **value_r)
{
	size_t len = strlen(name);
	for (int i = 0; i < *argc; i++) {
		int used;
		if (strcmp(argv[i], name) == 0) {
			if (i + 1 >= *argc) {
				cli_usage("%s needs a value", name);
				return -1;
			}
			*value_r = argv[i + 1];
			used = 2;
		} else if (strncmp(argv[i], name, len) == 0 && argv[i][len] == '=') {
			*value_r = argv[i] + len + 1;
			used = 1;
		} else {
			continue;
		}
		for (int j = i; j + used <= *argc; j++)
			argv[j] = argv[j + used];
		*argc -= used;
		return 0;
	}
	return 0;
}

void cli_register_filters(void)
{
	static bool done;
	if (done)
		return;
	done = true;
	/* last: it signs what the filters before it let through, and reads
	 * their Authentication-Results */
	intake_filter_register(&dkim_sign_filter);
}

int cli_load_config(const char *path, struct config *cfg, bool validate)
{
	const char *error;
	config_init_defaults(cfg);
	if (config_load(cfg, path, &error) < 0 ||
	    (validate && config_validate(cfg, &error) < 0)) {
		cli_error("%s", error);
		config_free(cfg);
		return -1;
	}
	log_set_level(cfg->log_level);
	return 0;
}

static void print_warning(void *context, const char *text)
{
	fprintf(stderr, "postern: warning: %s\n", text);
}

/* Warnings, not errors: the server runs with such a certificate, but
 * clients will soon (or already) refuse it. */
static void check_certificate(const struct config *cfg)
{
	const char *error;
	for (int i = 0; i < LISTEN_COUNT; i++) {
		if (cfg->listen[i] == NULL)
			continue;
		if (tls_cert_check(cfg->tls_cert, cfg->hostname, CERT_WARN_DAYS, print_warning,
				   NULL, &error) < 0)
			print_warning(NULL, error);
		return;
	}
}

int cmd_check(int argc, char **argv)
{
	const char *path = cli_take_config_arg(&argc, argv);
	if (path == NULL)
		return EXIT_USAGE;
	if (argc > 0)
		return cli_usage("check: unexpected argument '%s'", argv[0]);
	struct config cfg;
	if (cli_load_config(path, &cfg, true) < 0)
		return EXIT_USER_ERROR;
	config_print(&cfg, stdout);
	check_certificate(&cfg);
	config_free(&cfg);
	return 0;
}

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
} commands[] = {
	{ "serve", cmd_serve },
	{ "check", cmd_check },
	{ "domain", cmd_domain },
	{ "user", cmd_user },
	{ "alias", cmd_alias },
	{ "queue", cmd_queue },
	{ "deliver", cmd_deliver },
	{ "dkim", cmd_dkim },
	{ "dns", cmd_dns },
	{ "status", cmd_status },
	{ "backup", cmd_backup },
	{ "restore", cmd_restore },
};

int main(int argc, char **argv)
{
	log_init("postern", LOG_LEVEL_INFO);
	if (argc < 2) {
		fputs(usage_text, stderr);
		return EXIT_USAGE;
	}
	const char *name = argv[1];
	if (strcmp(name, "help") == 0 || strcmp(name, "--help") == 0 ||
	    strcmp(name, "-h") == 0) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (strcmp(name, "version") == 0 || strcmp(name, "--version") == 0) {
		printf("postern %s\n", POSTERN_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(name, commands[i].name) == 0)
			return commands[i].fn(argc - 2, argv + 2);
	}
	return cli_usage("unknown command '%s'", name);
}

#include "cli/cli.h"

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
	"  alias   add ALIAS TARGET[,TARGET...] | del ALIAS | list\n"
	"  queue   list | show ID | flush [ID] | delete ID [--bounce]\n"
	"  deliver [--mailbox NAME] ADDRESS...   deliver a message from stdin locally\n"
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

/* postern domain|user|alias: the account database from the command line
 * (CONTRACT.md). The database is opened directly; a running server sees
 * every change at its next lookup. */
#include "cli/cli.h"
#include "auth/auth.h"
#include "core/account-end.h"
#include "store/store.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define PASSWORD_MAX 1024

/* ---- shared helpers ----------------------------------------------- */

/* Opens the account database of the configuration; cfg_r (may be NULL)
 * keeps the configuration for the caller, who then frees it. */
static int open_db(const char *config_path, struct auth_db **db_r, struct config *cfg_r)
{
	struct config cfg;
	const char *error;
	if (cli_load_config(config_path, &cfg, false) < 0)
		return -1;
	int ret = auth_db_open(cfg.data_dir, cfg.run_as, db_r, &error);
	if (ret < 0)
		cli_error("%s", error);
	if (ret == 0 && cfg_r != NULL)
		*cfg_r = cfg;
	else
		config_free(&cfg);
	return ret;
}

/* Any "-x" left after the known flags were taken is a usage error. */
static int check_no_options(int argc, char **argv, const char *cmd)
{
	for (int i = 0; i < argc; i++) {
		if (argv[i][0] == '-' && argv[i][1] != '\0')
			return cli_usage("%s: unknown option '%s'", cmd, argv[i]);
	}
	return 0;
}

static void json_string(const char *s)
{
	putchar('"');
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

struct list_state {
	bool json;
	bool first;
};

static void list_begin(struct list_state *st)
{
	st->first = true;
	if (st->json)
		putchar('[');
}

static void list_item_begin(struct list_state *st)
{
	if (st->json && !st->first)
		putchar(',');
	st->first = false;
}

static void list_end(struct list_state *st)
{
	if (st->json)
		puts("]");
}

/* Reports a failed operation and closes the database. error may point
 * into db, so it is printed first. */
static int finish(struct auth_db **db, int ret, const char *error)
{
	if (ret == -1)
		cli_error("%s", error);
	auth_db_close(db);
	return ret < 0 ? EXIT_USER_ERROR : 0;
}

/* ---- ending accounts ---------------------------------------------- */

/* After the account left the database (no new login or delivery finds
 * it): its mark ends its sessions in every worker within moments and
 * keeps the store from opening it again, then its mail is removed, or
 * moved aside with keep (core/account-end.h, store_account_remove()).
 * Returns 0, or -2 once the failure is reported. */
static int account_finish_removal(const struct config *cfg, const char *address, bool keep)
{
	struct store *store;
	const char *error;
	char *kept = NULL;
	if (account_end_mark(cfg->data_dir, address, cfg->run_as, &error) < 0) {
		cli_error("%s deleted, but its sessions were not ended: %s", address, error);
		return -2;
	}
	if (store_open(cfg->data_dir, cfg->run_as, &store, &error) < 0) {
		cli_error("%s deleted, but its mail stays: %s", address, error);
		return -2;
	}
	int ret = 0;
	if (store_account_remove(store, address, keep, &kept, &error) < 0) {
		cli_error("%s deleted, but its mail stays: %s", address, error);
		ret = -2;
	} else if (kept != NULL) {
		printf("mail of %s kept in %s\n", address, kept);
	}
	free(kept);
	store_free(&store);
	return ret;
}

/* Before a new account: mail an earlier account of the address left (one
 * deleted by an older version, or brought back by a restore) is moved
 * aside, so the new account never inherits it. -2 once reported. */
static int account_take_leftover(struct auth_db *db, const struct config *cfg,
				 const char *address)
{
	struct auth_user user;
	int exists = auth_user_lookup(db, address, &user);
	OPENSSL_cleanse(&user, sizeof(user));
	if (exists != 0)
		return 0;   /* the add refuses it; its mail is its own */
	const char *error;
	char *kept = NULL;
	int ret = 0;
	if (store_set_aside_leftover(cfg->data_dir, cfg->run_as, address, &kept, &error) < 0) {
		cli_error("mail left by an earlier %s cannot be moved aside: %s", address, error);
		ret = -2;
	} else if (kept != NULL) {
		printf("mail left by an earlier account %s moved to %s\n", address, kept);
	}
	free(kept);
	return ret;
}

struct address_list {
	char **items;
	size_t count;
};

static int collect_user(const struct auth_user *user, void *ctx)
{
	struct address_list *list = ctx;
	list->items = xrealloc(list->items, (list->count + 1) * sizeof(char *));
	list->items[list->count++] = xstrdup(user->address);
	return 0;
}

/* `domain del --force`: its users end as `user del` ends one. */
static int domain_del(struct auth_db *db, const struct config *cfg, const char *domain,
		      bool force, bool keep, const char **error_r)
{
	struct address_list users = { NULL, 0 };
	int ret = force ? auth_user_list(db, domain, collect_user, &users, error_r) : 0;
	if (ret == 0)
		ret = auth_domain_del(db, domain, force, error_r);
	for (size_t i = 0; i < users.count; i++) {
		if (ret == 0 && account_finish_removal(cfg, users.items[i], keep) < 0)
			ret = -2;
		free(users.items[i]);
	}
	free(users.items);
	return ret;
}

static int user_del(struct auth_db *db, const struct config *cfg, const char *address,
		    bool keep, const char **error_r)
{
	struct auth_user user;
	/* the canonical spelling names the mailbox, whatever the admin typed */
	int found = auth_user_lookup(db, address, &user);
	char *canonical = found == 1 ? xstrdup(user.address) : NULL;
	OPENSSL_cleanse(&user, sizeof(user));
	int ret = auth_user_del(db, address, error_r);
	if (ret == 0 && canonical != NULL)
		ret = account_finish_removal(cfg, canonical, keep);
	free(canonical);
	return ret;
}

/* ---- passwords ---------------------------------------------------- */

/* Reads one line from fd 0 into buf, without its newline. */
static int read_line(char *buf, size_t size)
{
	size_t len = 0;
	for (;;) {
		char c;
		ssize_t n = read(STDIN_FILENO, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (c == '\n') {
			buf[len] = '\0';
			return 0;
		}
		if (c == '\0' || len + 1 >= size)
			return -1;
		buf[len++] = c;
	}
	buf[len] = '\0';
	return len > 0 ? 0 : -1;
}

/* The terminal settings to put back if a signal ends the prompt: the one
 * piece of process state a signal handler needs. */
static struct termios prompt_saved_tty;

static void prompt_interrupted(int sig)
{
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &prompt_saved_tty);
	signal(sig, SIG_DFL);
	raise(sig);
}

static int prompt_password(const char *prompt, char *buf, size_t size)
{
	static const int signals[] = { SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGTSTP };
	struct sigaction act, old_act[sizeof(signals) / sizeof(signals[0])];
	struct termios noecho;
	if (tcgetattr(STDIN_FILENO, &prompt_saved_tty) < 0)
		return -1;
	memset(&act, 0, sizeof(act));
	act.sa_handler = prompt_interrupted;
	for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
		sigaction(signals[i], &act, &old_act[i]);
	noecho = prompt_saved_tty;
	noecho.c_lflag &= ~(tcflag_t)ECHO;
	noecho.c_lflag |= ECHONL;
	/* echo off before the prompt shows, so nothing typed after it is
	 * flushed or echoed */
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &noecho);
	fputs(prompt, stderr);
	fflush(stderr);
	int ret = read_line(buf, size);
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &prompt_saved_tty);
	for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
		sigaction(signals[i], &old_act[i], NULL);
	return ret;
}

/* From stdin when it is not a terminal (one line), else prompted twice. */
static int get_password(char *buf, size_t size)
{
	if (!isatty(STDIN_FILENO)) {
		if (read_line(buf, size) < 0)
			return cli_error("no password on standard input (one line expected)");
	} else {
		char again[PASSWORD_MAX];
		if (prompt_password("Password: ", buf, size) < 0 ||
		    prompt_password("Again: ", again, sizeof(again)) < 0)
			return cli_error("no password given");
		bool same = strcmp(buf, again) == 0;
		OPENSSL_cleanse(again, sizeof(again));
		if (!same)
			return cli_error("the passwords do not match");
	}
	if (buf[0] == '\0')
		return cli_error("empty password");
	return 0;
}

/* ---- domain ------------------------------------------------------- */

static int print_domain(const struct auth_domain_info *info, void *ctx)
{
	struct list_state *st = ctx;
	list_item_begin(st);
	if (st->json) {
		printf("{\"name\":");
		json_string(info->name);
		printf(",\"created\":%lld}", (long long)info->created);
	} else {
		printf("%s\n", info->name);
	}
	return 0;
}

int cmd_domain(int argc, char **argv)
{
	const char *path = cli_take_config_arg(&argc, argv);
	if (path == NULL)
		return EXIT_USAGE;
	bool json = cli_take_flag(&argc, argv, "--json");
	bool force = cli_take_flag(&argc, argv, "--force");
	bool keep = cli_take_flag(&argc, argv, "--keep-mail");
	if (check_no_options(argc, argv, "domain") != 0)
		return EXIT_USAGE;
	if (argc < 1)
		return cli_usage("domain: add|del DOMAIN [--force [--keep-mail]] | list [--json]");
	const char *sub = argv[0];
	bool is_list = strcmp(sub, "list") == 0;
	bool is_add = strcmp(sub, "add") == 0, is_del = strcmp(sub, "del") == 0;
	if (!is_list && !is_add && !is_del)
		return cli_usage("domain: unknown subcommand '%s'", sub);
	if ((is_list && argc != 1) || (!is_list && argc != 2))
		return cli_usage("domain %s: wrong number of arguments", sub);
	if ((json && !is_list) || (force && !is_del) || (keep && !force))
		return cli_usage("domain %s: %s not allowed here", sub,
				 json ? "--json" : force ? "--force" : "--keep-mail (only with del --force)");

	struct auth_db *db;
	struct config cfg;
	const char *error;
	int ret;
	if (open_db(path, &db, &cfg) < 0)
		return EXIT_USER_ERROR;
	if (is_list) {
		struct list_state st = { .json = json };
		list_begin(&st);
		ret = auth_domain_list(db, print_domain, &st, &error);
		list_end(&st);
	} else if (is_add) {
		ret = auth_domain_add(db, argv[1], &error);
	} else {
		ret = domain_del(db, &cfg, argv[1], force, keep, &error);
	}
	config_free(&cfg);
	return finish(&db, ret, error);
}

/* ---- user --------------------------------------------------------- */

static int print_user(const struct auth_user *user, void *ctx)
{
	struct list_state *st = ctx;
	list_item_begin(st);
	if (st->json) {
		printf("{\"address\":");
		json_string(user->address);
		printf(",\"enabled\":%s,\"quota\":%" PRIu64 ",\"created\":%lld"
		       ",\"quota_messages\":%" PRIu64 "}",
		       user->enabled ? "true" : "false", user->quota,
		       (long long)user->created, user->quota_messages);
	} else {
		printf("%s\t%s\tquota=%" PRIu64 "\tmessages=%" PRIu64 "\n", user->address,
		       user->enabled ? "enabled" : "disabled", user->quota, user->quota_messages);
	}
	return 0;
}

static int user_with_password(struct auth_db *db, const struct config *cfg,
			      const char *address, bool add, uint64_t quota, bool enabled,
			      const char **error_r)
{
	char password[PASSWORD_MAX];
	struct auth_address addr;
	int ret;

	/* refuse a bad address before asking for a password: what the
	 * address syntax allows, and what the store can hold */
	if (auth_address_parse(address, &addr, error_r) < 0) {
		cli_error("bad address '%s': %s", address, *error_r);
		return -2;
	}
	if (add && store_account_address_check(addr.address, error_r) < 0) {
		cli_error("bad address '%s': %s", address, *error_r);
		return -2;
	}
	if (get_password(password, sizeof(password)) != 0)
		return -2;
	if (add && account_take_leftover(db, cfg, addr.address) < 0) {
		OPENSSL_cleanse(password, sizeof(password));
		return -2;
	}
	if (add)
		ret = auth_user_add(db, address, password, quota, enabled, error_r);
	else
		ret = auth_user_set_password(db, address, password, error_r);
	OPENSSL_cleanse(password, sizeof(password));
	/* an address that was deleted before may have a mailbox again */
	if (add && ret == 0 && account_end_clear(cfg->data_dir, addr.address, error_r) < 0) {
		cli_error("%s added, but it cannot receive mail yet: %s", addr.address, *error_r);
		return -2;
	}
	return ret;
}

int cmd_user(int argc, char **argv)
{
	const char *path = cli_take_config_arg(&argc, argv);
	const char *quota_text = NULL, *messages_text = NULL;
	if (path == NULL || cli_take_option(&argc, argv, "--quota", &quota_text) < 0 ||
	    cli_take_option(&argc, argv, "--messages", &messages_text) < 0)
		return EXIT_USAGE;
	bool json = cli_take_flag(&argc, argv, "--json");
	bool disabled = cli_take_flag(&argc, argv, "--disabled");
	bool keep = cli_take_flag(&argc, argv, "--keep-mail");
	if (check_no_options(argc, argv, "user") != 0)
		return EXIT_USAGE;
	if (argc < 1)
		return cli_usage("user: add ADDRESS [--quota BYTES] [--disabled] | "
				 "del ADDRESS [--keep-mail] | "
				 "passwd ADDRESS | enable|disable ADDRESS | "
				 "quota ADDRESS BYTES [--messages N] | list [DOMAIN] [--json]");
	const char *sub = argv[0];
	static const struct { const char *name; int min, max; } subs[] = {
		{ "add", 2, 2 }, { "del", 2, 2 }, { "passwd", 2, 2 }, { "enable", 2, 2 },
		{ "disable", 2, 2 }, { "quota", 3, 3 }, { "list", 1, 2 },
	};
	size_t i;
	for (i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		if (strcmp(sub, subs[i].name) == 0)
			break;
	}
	if (i == sizeof(subs) / sizeof(subs[0]))
		return cli_usage("user: unknown subcommand '%s'", sub);
	if (argc < subs[i].min || argc > subs[i].max)
		return cli_usage("user %s: wrong number of arguments", sub);
	bool is_add = strcmp(sub, "add") == 0, is_list = strcmp(sub, "list") == 0;
	if (json && !is_list)
		return cli_usage("user %s: --json not allowed here", sub);
	if ((quota_text != NULL || disabled) && !is_add)
		return cli_usage("user %s: --quota/--disabled only go with add", sub);
	if (keep && strcmp(sub, "del") != 0)
		return cli_usage("user %s: --keep-mail only goes with del", sub);
	size_t quota = 0;
	const char *size_text = strcmp(sub, "quota") == 0 ? argv[2] : quota_text;
	if (size_text != NULL && config_parse_size(size_text, &quota) < 0)
		return cli_usage("user %s: bad size '%s'", sub, size_text);
	uint64_t messages = 0;
	if (messages_text != NULL) {
		char *end;
		if (strcmp(sub, "quota") != 0)
			return cli_usage("user %s: --messages only goes with quota", sub);
		errno = 0;
		messages = strtoull(messages_text, &end, 10);
		if (errno != 0 || end == messages_text || *end != '\0' || messages_text[0] == '-')
			return cli_usage("user quota: bad message count '%s'", messages_text);
	}

	struct auth_db *db;
	struct config cfg;
	const char *error = NULL;
	int ret;
	if (open_db(path, &db, &cfg) < 0)
		return EXIT_USER_ERROR;
	if (is_list) {
		struct list_state st = { .json = json };
		list_begin(&st);
		ret = auth_user_list(db, argc > 1 ? argv[1] : NULL, print_user, &st, &error);
		list_end(&st);
	} else if (is_add || strcmp(sub, "passwd") == 0) {
		ret = user_with_password(db, &cfg, argv[1], is_add, quota, !disabled, &error);
	} else if (strcmp(sub, "del") == 0) {
		ret = user_del(db, &cfg, argv[1], keep, &error);
	} else if (strcmp(sub, "quota") == 0) {
		ret = auth_user_set_quota(db, argv[1], quota, &error);
		if (ret == 0 && messages_text != NULL)
			ret = auth_user_set_quota_messages(db, argv[1], messages, &error);
	} else {
		ret = auth_user_set_enabled(db, argv[1], strcmp(sub, "enable") == 0, &error);
	}
	config_free(&cfg);
	return finish(&db, ret, error);   /* -2: already reported */
}

/* ---- alias -------------------------------------------------------- */

static int print_alias(const struct auth_alias_info *info, void *ctx)
{
	struct list_state *st = ctx;
	list_item_begin(st);
	if (!st->json) {
		printf("%s\t%s\n", info->alias, info->targets);
		return 0;
	}
	printf("{\"alias\":");
	json_string(info->alias);
	printf(",\"targets\":[");
	char targets[sizeof(info->targets)];
	memcpy(targets, info->targets, sizeof(targets));
	char *save = NULL;
	bool first = true;
	for (char *t = strtok_r(targets, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
		if (!first)
			putchar(',');
		first = false;
		json_string(t);
	}
	printf("]}");
	return 0;
}

int cmd_alias(int argc, char **argv)
{
	const char *path = cli_take_config_arg(&argc, argv);
	if (path == NULL)
		return EXIT_USAGE;
	bool json = cli_take_flag(&argc, argv, "--json");
	if (check_no_options(argc, argv, "alias") != 0)
		return EXIT_USAGE;
	if (argc < 1)
		return cli_usage("alias: add ALIAS TARGET[,TARGET...] | del ALIAS | list [--json]");
	const char *sub = argv[0];
	bool is_add = strcmp(sub, "add") == 0, is_del = strcmp(sub, "del") == 0;
	bool is_list = strcmp(sub, "list") == 0;
	if (!is_add && !is_del && !is_list)
		return cli_usage("alias: unknown subcommand '%s'", sub);
	/* "alias add a@x b@y c@z" is taken as a list too */
	if ((is_add && argc < 3) || (is_del && argc != 2) || (is_list && argc != 1))
		return cli_usage("alias %s: wrong number of arguments", sub);
	if (json && !is_list)
		return cli_usage("alias %s: --json not allowed here", sub);

	struct auth_db *db;
	const char *error = NULL;
	int ret;
	if (open_db(path, &db, NULL) < 0)
		return EXIT_USER_ERROR;
	if (is_list) {
		struct list_state st = { .json = json };
		list_begin(&st);
		ret = auth_alias_list(db, print_alias, &st, &error);
		list_end(&st);
	} else if (is_add) {
		struct buf targets = BUF_INIT;
		for (int i = 2; i < argc; i++) {
			if (i > 2)
				buf_append_char(&targets, ',');
			buf_append_str(&targets, argv[i]);
		}
		ret = auth_alias_add(db, argv[1], buf_str(&targets), &error);
		buf_free(&targets);
	} else {
		ret = auth_alias_del(db, argv[1], &error);
	}
	return finish(&db, ret, error);
}

/* `postern deliver [-c FILE] [--mailbox NAME] ADDRESS...`: local delivery
 * of one message read from standard input, like an MDA (dovecot-lda):
 * aliases are expanded, every local recipient gets the message through
 * the store (durably, before the exit status says so). Exit 0 when every
 * recipient got it, 1 otherwise (one line per failure on stderr). */
#include "cli/cli.h"
#include "auth/auth.h"
#include "store/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cmd_deliver(int argc, char **argv)
{
	const char *mailbox = NULL;
	const char *path = cli_take_config_arg(&argc, argv);
	if (path == NULL)
		return EXIT_USAGE;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--mailbox") == 0 || strcmp(argv[i], "-m") == 0) {
			if (i + 1 >= argc)
				return cli_usage("deliver: %s needs a mailbox name", argv[i]);
			mailbox = argv[i + 1];
			memmove(&argv[i], &argv[i + 2], (size_t)(argc - i - 2) * sizeof(char *));
			argc -= 2;
			i--;
		}
	}
	if (argc == 0)
		return cli_usage("deliver: ADDRESS needed");

	struct config cfg;
	const char *error;
	if (cli_load_config(path, &cfg, false) < 0)
		return EXIT_USER_ERROR;
	struct auth_db *db = NULL;
	struct store *store = NULL;
	struct store_delivery *d = NULL;
	struct store_recipient *rcpts = NULL;
	struct auth_recipients *lists = xcalloc((size_t)argc, sizeof(*lists));
	size_t nrcpt = 0;
	int ret = EXIT_USER_ERROR;

	if (auth_db_open(cfg.data_dir, cfg.run_as, &db, &error) < 0 ||
	    store_open(cfg.data_dir, cfg.run_as, &store, &error) < 0) {
		cli_error("%s", error);
		goto out;
	}
	for (int i = 0; i < argc; i++) {
		int r = auth_resolve_recipient(db, argv[i], &lists[i], &error);
		if (r <= 0) {
			cli_error("%s: %s", argv[i], r == 0 ? "no such local user" : error);
			goto out;
		}
		nrcpt += lists[i].count;
	}
	rcpts = xcalloc(nrcpt, sizeof(*rcpts));
	size_t n = 0;
	for (int i = 0; i < argc; i++) {
		for (size_t j = 0; j < lists[i].count; j++) {
			if (!lists[i].items[j].local) {
				cli_error("%s: expands to %s, which is not local (use SMTP)",
					  argv[i], lists[i].items[j].address);
				goto out;
			}
			rcpts[n].address = lists[i].items[j].address;
			rcpts[n].mailbox = mailbox;
			n++;
		}
	}
	if (store_delivery_begin(store, &d, &error) < 0) {
		cli_error("%s", error);
		goto out;
	}
	char chunk[65536];
	ssize_t got;
	while ((got = read(STDIN_FILENO, chunk, sizeof(chunk))) != 0) {
		if (got < 0) {
			if (errno == EINTR)
				continue;
			cli_error("reading the message: %s", strerror(errno));
			goto out;
		}
		if (store_delivery_write(d, chunk, (size_t)got, &error) < 0) {
			cli_error("%s", error);
			goto out;
		}
	}
	store_delivery_commit(d, rcpts, n);
	ret = 0;
	for (size_t i = 0; i < n; i++) {
		if (rcpts[i].result < 0) {
			cli_error("%s: %s", rcpts[i].address, rcpts[i].error);
			ret = EXIT_USER_ERROR;
		}
	}
out:
	store_delivery_free(&d);
	for (int i = 0; i < argc; i++)
		auth_recipients_free(&lists[i]);
	free(lists);
	free(rcpts);
	if (store != NULL)
		store_free(&store);
	auth_db_close(&db);
	config_free(&cfg);
	return ret;
}

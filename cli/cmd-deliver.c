/* `postern deliver [-c FILE] [-f SENDER] [--mailbox NAME] ADDRESS...`:
 * local delivery of one message read from standard input, like an MDA
 * (dovecot-lda), through intake like every other message: aliases
 * expanded, quota as the account database says now, Return-Path and
 * Received written once (a Return-Path in the message is dropped; without
 * -f its address is the envelope sender, else <>), LF line ends made
 * CRLF, and every hosted recipient gets it durably before the exit status
 * says so. Exit 0 when every recipient got it, 1 otherwise (one line per
 * failure on stderr). */
#include "cli/cli.h"
#include "auth/auth.h"
#include "core/services.h"
#include "intake/intake.h"
#include "mail/mail.h"
#include "queue/queue.h"
#include "store/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int take_value(int *argc, char **argv, const char *name, const char *alias,
		      const char **value_r)
{
	for (int i = 0; i < *argc; i++) {
		if (strcmp(argv[i], name) != 0 && (alias == NULL || strcmp(argv[i], alias) != 0))
			continue;
		if (i + 1 >= *argc)
			return cli_usage("deliver: %s needs a value", argv[i]);
		*value_r = argv[i + 1];
		memmove(&argv[i], &argv[i + 2], (size_t)(*argc - i - 2) * sizeof(char *));
		*argc -= 2;
		i--;
	}
	return 0;
}

/* The envelope sender from a Return-Path at the top of the message, read
 * from the first block of input (kept in head for intake afterwards). */
static void sender_from_head(const char *head, size_t len, struct buf *sender)
{
	struct mail_field f;
	size_t pos = 0;
	while (mail_header_next(head, len, &pos, &f) && f.name_len > 0) {
		if (!mail_field_is(f.start, f.len, "Return-Path"))
			continue;
		if (pos >= len)
			return;   /* maybe cut: not trusted */
		char *value = mail_unfold(f.value, (size_t)(f.start + f.len - f.value));
		struct mail_addrs list;
		mail_address_parse(value, &list);
		if (list.count == 1 && list.items[0].has_mailbox && list.items[0].has_host)
			mail_addr_spec(&list.items[0], sender);
		mail_addrs_free(&list);
		free(value);
		return;
	}
}

int cmd_deliver(int argc, char **argv)
{
	const char *mailbox = NULL, *from = NULL;
	const char *path = cli_take_config_arg(&argc, argv);
	if (path == NULL || take_value(&argc, argv, "--mailbox", "-m", &mailbox) != 0 ||
	    take_value(&argc, argv, "-f", "--from", &from) != 0)
		return EXIT_USAGE;
	if (argc == 0)
		return cli_usage("deliver: ADDRESS needed");

	struct config cfg;
	const char *error;
	if (cli_load_config(path, &cfg, false) < 0)
		return EXIT_USER_ERROR;
	struct services sv = { 0 };
	struct intake *job = NULL;
	struct buf sender = BUF_INIT;
	int ret = EXIT_USER_ERROR;
	char head[65536];
	ssize_t got = 0;

	if (auth_db_open(cfg.data_dir, cfg.run_as, &sv.auth, &error) < 0 ||
	    store_open(cfg.data_dir, cfg.run_as, &sv.store, &error) < 0 ||
	    queue_open(cfg.data_dir, cfg.run_as, &sv.queue, &error) < 0) {
		cli_error("%s", error);
		goto out;
	}
	do
		got = read(STDIN_FILENO, head, sizeof(head));
	while (got < 0 && errno == EINTR);
	if (got < 0) {
		cli_error("reading the message: %s", strerror(errno));
		goto out;
	}
	if (from != NULL)
		buf_append_str(&sender, from);
	else
		sender_from_head(head, (size_t)got, &sender);
	struct intake_envelope env = {
		.origin = INTAKE_LOCAL,
		.sender = buf_str(&sender),
		.mailbox = mailbox,
	};
	struct intake_status st;
	if (intake_begin(&sv, &cfg, &env, &job, &st) < 0) {
		cli_error("%s", st.text);
		goto out;
	}
	for (int i = 0; i < argc; i++) {
		if (intake_add_rcpt(job, argv[i], NULL, &st) < 0) {
			cli_error("%s: %d %s %s", argv[i], st.reply, st.enhanced,
				  st.code == INTAKE_UNKNOWN_USER ? "no such local user" :
				  st.code == INTAKE_NOT_LOCAL ?
				  "not a hosted mailbox, or it expands outside (use SMTP)" : st.text);
			goto out;
		}
	}
	while (got > 0) {
		intake_write(job, head, (size_t)got);
		do
			got = read(STDIN_FILENO, head, sizeof(head));
		while (got < 0 && errno == EINTR);
	}
	if (got < 0) {
		cli_error("reading the message: %s", strerror(errno));
		goto out;
	}
	intake_end(job, NULL, NULL, NULL);
	ret = 0;
	if (intake_result(job)->code != INTAKE_OK && intake_rcpt_count(job) == 0) {
		cli_error("%s", intake_result(job)->text);
		ret = EXIT_USER_ERROR;
	}
	for (size_t i = 0; i < intake_rcpt_count(job); i++) {
		const struct intake_status *r = intake_rcpt_result(job, i);
		if (r->code != INTAKE_OK) {
			cli_error("%s: %d %s %s", argv[i], r->reply, r->enhanced, r->text);
			ret = EXIT_USER_ERROR;
		}
	}
out:
	intake_free(&job);
	buf_free(&sender);
	if (sv.queue != NULL)
		queue_close(&sv.queue);
	if (sv.store != NULL)
		store_free(&sv.store);
	auth_db_close(&sv.auth);
	config_free(&cfg);
	return ret;
}

/* The POP3 command table and the command line parser (RFC 1939 3:
 * a keyword, then arguments separated by spaces). */
#include "pop3/pop3-private.h"

#include <string.h>

static const struct pop3_command pop3_commands[] = {
	{ "CAPA", pop3_cmd_capa, CMD_AUTHORIZATION | CMD_TRANSACTION, 0, 0, { 0 } },
	{ "STLS", pop3_cmd_stls, CMD_AUTHORIZATION, 0, 0, { 0 } },
	{ "USER", pop3_cmd_user, CMD_AUTHORIZATION | CMD_REST, 1, 1, { POP3_ARG_WORD } },
	{ "PASS", pop3_cmd_pass, CMD_AUTHORIZATION | CMD_REST, 1, 1, { POP3_ARG_WORD } },
	{ "APOP", pop3_cmd_apop, CMD_AUTHORIZATION, 0, 2, { POP3_ARG_WORD, POP3_ARG_WORD } },
	{ "AUTH", pop3_cmd_auth, CMD_AUTHORIZATION, 0, 2, { POP3_ARG_WORD, POP3_ARG_WORD } },
	{ "QUIT", pop3_cmd_quit, CMD_AUTHORIZATION | CMD_TRANSACTION, 0, 0, { 0 } },
	{ "NOOP", pop3_cmd_noop, CMD_TRANSACTION, 0, 0, { 0 } },
	{ "STAT", pop3_cmd_stat, CMD_TRANSACTION, 0, 0, { 0 } },
	{ "LIST", pop3_cmd_list, CMD_TRANSACTION, 0, 1, { POP3_ARG_MSG } },
	{ "UIDL", pop3_cmd_uidl, CMD_TRANSACTION, 0, 1, { POP3_ARG_MSG } },
	{ "RETR", pop3_cmd_retr, CMD_TRANSACTION, 1, 1, { POP3_ARG_MSG } },
	{ "TOP", pop3_cmd_top, CMD_TRANSACTION, 2, 2, { POP3_ARG_MSG, POP3_ARG_COUNT } },
	{ "DELE", pop3_cmd_dele, CMD_TRANSACTION, 1, 1, { POP3_ARG_MSG } },
	{ "RSET", pop3_cmd_rset, CMD_TRANSACTION, 0, 0, { 0 } },
};

bool pop3_parse_number(const char *text, uint32_t *value_r)
{
	uint64_t value = 0;
	if (*text == '\0')
		return false;
	for (const char *p = text; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return false;
		if (value <= UINT32_MAX)
			value = value * 10 + (uint64_t)(*p - '0');
	}
	*value_r = value > UINT32_MAX ? UINT32_MAX : (uint32_t)value;
	return true;
}

static const struct pop3_command *pop3_command_find(const char *name)
{
	for (size_t i = 0; i < sizeof(pop3_commands) / sizeof(pop3_commands[0]); i++) {
		if (ascii_strcasecmp(name, pop3_commands[i].name) == 0)
			return &pop3_commands[i];
	}
	return NULL;
}

/* Splits the arguments at runs of spaces (trailing spaces are ignored:
 * some clients send them). */
static enum pop3_parse_result split_args(char *args, struct pop3_request *req)
{
	char *p = args;
	while (p != NULL && *p != '\0') {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		if (req->argc == POP3_MAX_ARGS || req->argc == req->cmd->max_args)
			return POP3_PARSE_ARGS;
		req->argv[req->argc++] = p;
		p = strchr(p, ' ');
		if (p != NULL)
			*p++ = '\0';
	}
	return POP3_PARSE_OK;
}

enum pop3_parse_result pop3_parse(char *line, size_t len, unsigned int lr_flags,
				  struct pop3_request *req_r)
{
	memset(req_r, 0, sizeof(*req_r));
	if (lr_flags & (LR_FLAG_NUL | LR_FLAG_BARE_CR))
		return POP3_PARSE_BAD_CHARS;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if (c < 0x20 || c == 0x7f)
			return POP3_PARSE_BAD_CHARS;
	}
	char *args = strchr(line, ' ');
	if (args != NULL)
		*args++ = '\0';
	req_r->cmd = pop3_command_find(line);
	if (req_r->cmd == NULL)
		return POP3_PARSE_UNKNOWN;

	const struct pop3_command *cmd = req_r->cmd;
	if (cmd->flags & CMD_REST) {
		/* USER and PASS: names and passwords may hold spaces */
		if (args != NULL && *args != '\0')
			req_r->argv[req_r->argc++] = args;
	} else {
		enum pop3_parse_result r = split_args(args, req_r);
		if (r != POP3_PARSE_OK)
			return r;
	}
	if (req_r->argc < cmd->min_args)
		return POP3_PARSE_ARGS;
	for (unsigned int i = 0; i < req_r->argc; i++) {
		if (cmd->args[i] == POP3_ARG_WORD)
			continue;
		if (!pop3_parse_number(req_r->argv[i], &req_r->num[i]))
			return POP3_PARSE_NUMBER;
	}
	return POP3_PARSE_OK;
}

const char *pop3_parse_error(enum pop3_parse_result result)
{
	switch (result) {
	case POP3_PARSE_OK:
		break;
	case POP3_PARSE_BAD_CHARS:
		return "-ERR Invalid characters in command";
	case POP3_PARSE_UNKNOWN:
		return "-ERR Unknown command";
	case POP3_PARSE_ARGS:
		return "-ERR Wrong number of arguments";
	case POP3_PARSE_NUMBER:
		return "-ERR Invalid number";
	}
	return "-ERR";
}

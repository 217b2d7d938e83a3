/* domain, user and alias subcommands: filled in by the accounts issue. */
#include "cli/cli.h"

int cmd_domain(int argc, char **argv)
{
	return cli_error("domain: not available yet");
}

int cmd_user(int argc, char **argv)
{
	return cli_error("user: not available yet");
}

int cmd_alias(int argc, char **argv)
{
	return cli_error("alias: not available yet");
}

/* queue subcommands: filled in by the relay issue. */
#include "cli/cli.h"

int cmd_queue(int argc, char **argv)
{
	return cli_error("queue: not available yet");
}

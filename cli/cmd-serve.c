#include "cli/cli.h"

int cmd_serve(int argc, char **argv)
{
	return cli_error("serve: not available yet");
}

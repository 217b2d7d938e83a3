#ifndef POSTERN_CLI_H
#define POSTERN_CLI_H

/* The `postern` command: one function per subcommand, each given the
 * arguments after its name. Exit codes (CONTRACT.md): 0 success, 1 user
 * error with a one-line message on stderr, 2 usage error. */

#include "core/core.h"

#include <stdio.h>

#define EXIT_USER_ERROR 1
#define EXIT_USAGE 2

/* Removes "-c FILE" / "--config FILE" / "--config=FILE" from argv
 * (anywhere) and returns the config path to use: that FILE, else
 * $POSTERN_CONFIG, else the default. Returns NULL after printing a usage
 * error. */
const char *cli_take_config_arg(int *argc, char **argv);
/* Removes a bare flag such as "--json" or "--force"; true if present. */
bool cli_take_flag(int *argc, char **argv, const char *flag);
/* Removes "--name VALUE" or "--name=VALUE"; *value_r stays NULL when
 * absent. Returns -1 (usage printed) when VALUE is missing. */
int cli_take_option(int *argc, char **argv, const char *name, const char **value_r);
/* Registers this process's intake filters (once; before the first
 * intake job): the DKIM signer. */
void cli_register_filters(void);
/* Loads and validates config (cfg is filled with defaults first).
 * Prints "postern: ..." and returns -1 on error. */
int cli_load_config(const char *path, struct config *cfg, bool validate);
/* One-line error on stderr, prefixed "postern: ". Returns EXIT_USER_ERROR. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int cli_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The TTL of the zone-file lines `postern dns` and `postern dkim` print. */
#define CLI_DNS_TTL 3600
/* Prints SELECTOR._domainkey.DOMAIN's TXT record as a zone-file line.
 * 0, or EXIT_USER_ERROR after a message. */
int cli_dkim_zone_line(const char *data_dir, const char *domain, const char *selector,
		       FILE *out);

int cmd_serve(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_domain(int argc, char **argv);
int cmd_user(int argc, char **argv);
int cmd_alias(int argc, char **argv);
int cmd_queue(int argc, char **argv);
int cmd_deliver(int argc, char **argv);
int cmd_dkim(int argc, char **argv);
int cmd_dns(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_backup(int argc, char **argv);
int cmd_restore(int argc, char **argv);

#endif

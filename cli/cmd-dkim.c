/* `postern dkim generate DOMAIN [--selector S] [--algorithm rsa|ed25519]
 *               | list [--json] | show DOMAIN | del DOMAIN SELECTOR`:
 * the DKIM signing keys (dkim/dkim.h). The files are written and removed
 * directly; the running server reads them for every message it signs. */
#include "cli/cli.h"
#include "auth/auth.h"
#include "dkim/dkim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DKIM_USAGE "dkim: generate DOMAIN [--selector S] [--algorithm rsa|ed25519] | list | " \
		   "show DOMAIN | del DOMAIN SELECTOR"

int cli_dkim_zone_line(const char *data_dir, const char *domain, const char *selector,
		       FILE *out)
{
	struct buf record = BUF_INIT, quoted = BUF_INIT;
	const char *error;
	if (dkim_key_record(data_dir, domain, selector, &record, &error) < 0) {
		buf_free(&record);
		return cli_error("%s", error);
	}
	dkim_txt_quote(buf_str(&record), &quoted);
	fprintf(out, "%s._domainkey.%s. %d IN TXT %s\n", selector, domain, CLI_DNS_TTL,
		buf_str(&quoted));
	buf_free(&record);
	buf_free(&quoted);
	return 0;
}

static int normalise(const char *text, char *domain)
{
	const char *error;
	if (auth_domain_normalise(text, domain, &error) < 0)
		return cli_error("%s: %s", text, error);
	return 0;
}

static int dkim_generate(const struct config *cfg, int argc, char **argv)
{
	const char *selector = NULL, *algorithm = "rsa";
	if (cli_take_option(&argc, argv, "--selector", &selector) < 0 ||
	    cli_take_option(&argc, argv, "--algorithm", &algorithm) < 0)
		return EXIT_USAGE;
	if (argc != 1 || argv[0][0] == '-')
		return cli_usage(DKIM_USAGE);
	enum dkim_algorithm alg;
	if (dkim_algorithm_parse(algorithm, &alg) < 0)
		return cli_usage("dkim generate: --algorithm is rsa or ed25519");
	char domain[AUTH_DOMAIN_MAX + 1];
	char chosen[DKIM_SELECTOR_MAX + 1];
	const char *error;
	if (normalise(argv[0], domain) != 0)
		return EXIT_USER_ERROR;
	if (selector == NULL) {
		if (dkim_default_selector(cfg->data_dir, domain, time(NULL), chosen, sizeof(chosen),
					  &error) < 0)
			return cli_error("%s", error);
		selector = chosen;
	}
	if (dkim_key_generate(cfg->data_dir, cfg->run_as, domain, selector, alg, &error) < 0)
		return cli_error("%s", error);
	fprintf(stderr, "postern: %s key %s for %s made; it signs from the next message on. "
		"Publish this record:\n", dkim_algorithm_name(alg), selector, domain);
	return cli_dkim_zone_line(cfg->data_dir, domain, selector, stdout);
}

static void print_date(FILE *out, time_t t)
{
	struct tm tm;
	char text[32];
	gmtime_r(&t, &tm);
	strftime(text, sizeof(text), "%Y-%m-%d", &tm);
	fputs(text, out);
}

static int dkim_list(const struct config *cfg, bool json)
{
	char **domains;
	size_t count;
	const char *error;
	if (dkim_domains_list(cfg->data_dir, &domains, &count, &error) < 0)
		return cli_error("%s", error);
	int ret = 0;
	bool first = true;
	if (json)
		fputc('[', stdout);
	for (size_t i = 0; i < count && ret == 0; i++) {
		struct dkim_key *keys;
		size_t n;
		if (dkim_keys_list(cfg->data_dir, domains[i], &keys, &n, &error) < 0) {
			ret = cli_error("%s", error);
			break;
		}
		for (size_t k = 0; k < n; k++) {
			if (json) {
				printf("%s{\"domain\":\"%s\",\"selector\":\"%s\",\"algorithm\":\"%s\","
				       "\"bits\":%d,\"created\":%lld}", first ? "" : ",", domains[i],
				       keys[k].selector, dkim_algorithm_name(keys[k].alg), keys[k].bits,
				       (long long)keys[k].created);
			} else {
				printf("%s\t%s\t%s\t%d\t", domains[i], keys[k].selector,
				       dkim_algorithm_name(keys[k].alg), keys[k].bits);
				print_date(stdout, keys[k].created);
				fputc('\n', stdout);
			}
			first = false;
		}
		free(keys);
	}
	if (json)
		fputs("]\n", stdout);
	dkim_domains_free(domains, count);
	return ret;
}

static int dkim_show(const struct config *cfg, const char *name)
{
	char domain[AUTH_DOMAIN_MAX + 1];
	struct dkim_key *keys;
	size_t n;
	const char *error;
	if (normalise(name, domain) != 0)
		return EXIT_USER_ERROR;
	if (dkim_keys_list(cfg->data_dir, domain, &keys, &n, &error) < 0)
		return cli_error("%s", error);
	if (n == 0) {
		free(keys);
		return cli_error("%s has no DKIM key (postern dkim generate %s)", domain, domain);
	}
	int ret = 0;
	for (size_t k = 0; k < n && ret == 0; k++)
		ret = cli_dkim_zone_line(cfg->data_dir, domain, keys[k].selector, stdout);
	free(keys);
	return ret;
}

static int dkim_del(const struct config *cfg, const char *name, const char *selector)
{
	char domain[AUTH_DOMAIN_MAX + 1];
	const char *error;
	if (normalise(name, domain) != 0)
		return EXIT_USER_ERROR;
	if (dkim_key_delete(cfg->data_dir, domain, selector, &error) < 0)
		return cli_error("%s", error);
	struct dkim_key *keys;
	size_t n;
	if (dkim_keys_list(cfg->data_dir, domain, &keys, &n, &error) == 0 && n == 0)
		fprintf(stderr, "postern: %s has no DKIM key left: its mail leaves unsigned\n",
			domain);
	free(keys);
	return 0;
}

int cmd_dkim(int argc, char **argv)
{
	const char *path = cli_take_config_arg(&argc, argv);
	if (path == NULL)
		return EXIT_USAGE;
	bool json = cli_take_flag(&argc, argv, "--json");
	if (argc == 0)
		return cli_usage(DKIM_USAGE);
	const char *sub = argv[0];
	bool known = strcmp(sub, "generate") == 0 || (strcmp(sub, "list") == 0 && argc == 1) ||
		     (strcmp(sub, "show") == 0 && argc == 2) || (strcmp(sub, "del") == 0 && argc == 3);
	if (!known)
		return cli_usage(DKIM_USAGE);
	struct config cfg;
	if (cli_load_config(path, &cfg, false) < 0)
		return EXIT_USER_ERROR;
	int ret;
	if (strcmp(sub, "generate") == 0)
		ret = dkim_generate(&cfg, argc - 1, argv + 1);
	else if (strcmp(sub, "list") == 0)
		ret = dkim_list(&cfg, json);
	else if (strcmp(sub, "show") == 0)
		ret = dkim_show(&cfg, argv[1]);
	else
		ret = dkim_del(&cfg, argv[1], argv[2]);
	config_free(&cfg);
	return ret;
}

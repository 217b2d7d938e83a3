/* `postern dns DOMAIN`: every DNS record a hosted domain should publish,
 * as zone-file lines (NAME TTL IN TYPE DATA, absolute names) an admin can
 * paste into the zone: MX, SPF, DKIM (one TXT per active key), DMARC,
 * MTA-STS (TXT, and the policy file as comments), TLS-RPT and the RFC 6186
 * SRV records. Comments (";") say what to check. docs/deliverability.md
 * explains each. */
#include "cli/cli.h"
#include "auth/auth.h"
#include "core/mtasts.h"
#include "dkim/dkim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* RFC 6186 services and the listener that offers each. */
static const struct {
	const char *service;
	enum listener_kind kind;
} srv_services[] = {
	{ "_submission._tcp", LISTEN_SUBMISSION },
	{ "_submissions._tcp", LISTEN_SUBMISSIONS },
	{ "_imap._tcp", LISTEN_IMAP },
	{ "_imaps._tcp", LISTEN_IMAPS },
	{ "_pop3s._tcp", LISTEN_POP3S },
};

static void print_srv(const struct config *cfg, const char *domain, const char *host)
{
	printf("; where mail clients find the server (RFC 6186); \"0 0 0 .\" = not offered\n");
	for (size_t i = 0; i < sizeof(srv_services) / sizeof(srv_services[0]); i++) {
		const char *listen = cfg->listen[srv_services[i].kind];
		char addr[256];
		int port;
		if (listen != NULL && config_split_hostport(listen, addr, sizeof(addr), &port) == 0)
			printf("%s.%s. %d IN SRV 0 1 %d %s.\n", srv_services[i].service, domain,
			       CLI_DNS_TTL, port, host);
		else
			printf("%s.%s. %d IN SRV 0 0 0 .\n", srv_services[i].service, domain,
			       CLI_DNS_TTL);
	}
}

static int print_dkim(const struct config *cfg, const char *domain)
{
	struct dkim_key *keys;
	size_t n;
	const char *error;
	if (dkim_keys_list(cfg->data_dir, domain, &keys, &n, &error) < 0)
		return cli_error("%s", error);
	int ret = 0;
	if (n == 0)
		printf("; DKIM: no key yet, so mail from %s leaves unsigned: "
		       "postern dkim generate %s\n", domain, domain);
	else
		printf("; DKIM: one record per active key (postern dkim list)\n");
	for (size_t k = 0; k < n && ret == 0; k++)
		ret = cli_dkim_zone_line(cfg->data_dir, domain, keys[k].selector, stdout);
	free(keys);
	return ret;
}

static void print_mta_sts(const struct config *cfg, const char *domain, const char *host)
{
	char id[32];
	struct buf policy = BUF_INIT;
	mtasts_policy_id(cfg, id, sizeof(id));
	mtasts_policy(cfg, &policy);
	printf("; MTA-STS (RFC 8461): mta-sts.%s must reach this server over HTTPS with a "
	       "certificate for that name\n", domain);
	printf("mta-sts.%s. %d IN CNAME %s.\n", domain, CLI_DNS_TTL, host);
	printf("_mta-sts.%s. %d IN TXT \"v=STSv1; id=%s\"\n", domain, CLI_DNS_TTL, id);
	printf("; the policy it serves at https://mta-sts.%s/.well-known/mta-sts.txt:\n", domain);
	const char *p = buf_str(&policy);
	while (*p != '\0') {
		size_t len = strcspn(p, "\r\n");
		printf(";   %.*s\n", (int)len, p);
		p += len;
		while (*p == '\r' || *p == '\n')
			p++;
	}
	buf_free(&policy);
}

int cmd_dns(int argc, char **argv)
{
	const char *path = cli_take_config_arg(&argc, argv);
	if (path == NULL)
		return EXIT_USAGE;
	if (argc != 1 || argv[0][0] == '-')
		return cli_usage("dns: DOMAIN");
	struct config cfg;
	if (cli_load_config(path, &cfg, false) < 0)
		return EXIT_USER_ERROR;
	char domain[AUTH_DOMAIN_MAX + 1], host[AUTH_DOMAIN_MAX + 1];
	const char *error;
	int ret = 0;
	if (auth_domain_normalise(argv[0], domain, &error) < 0) {
		ret = cli_error("%s: %s", argv[0], error);
		goto out;
	}
	if (auth_domain_normalise(cfg.hostname, host, &error) < 0) {
		ret = cli_error("hostname %s: %s", cfg.hostname, error);
		goto out;
	}
	struct auth_db *db;
	if (auth_db_open(cfg.data_dir, cfg.run_as, &db, &error) == 0) {
		if (!auth_domain_is_local(db, domain))
			fprintf(stderr, "postern: note: %s is not a hosted domain yet "
				"(postern domain add %s)\n", domain, domain);
		auth_db_close(&db);
	}
	printf("; DNS records for %s (postern dns %s). %s needs A/AAAA records for this "
	       "server, and its address a PTR record naming %s.\n", domain, domain, host, host);
	printf("%s. %d IN MX 10 %s.\n", domain, CLI_DNS_TTL, host);
	if (cfg.relay_mode == RELAY_SMARTHOST)
		printf("; mail leaves through the smarthost %s: add what its operator says to the "
		       "SPF record (an include:)\n", cfg.relay_smarthost);
	printf("%s. %d IN TXT \"v=spf1 mx ~all\"\n", domain, CLI_DNS_TTL);
	if ((ret = print_dkim(&cfg, domain)) != 0)
		goto out;
	printf("; DMARC: a starting point. p=quarantine puts mail that fails SPF and DKIM "
	       "in the spam folder; read the reports sent to postmaster, then move to p=reject\n");
	printf("_dmarc.%s. %d IN TXT \"v=DMARC1; p=quarantine; rua=mailto:postmaster@%s\"\n",
	       domain, CLI_DNS_TTL, domain);
	print_mta_sts(&cfg, domain, host);
	printf("; TLS reporting (RFC 8460): where others send reports on TLS to this server\n");
	printf("_smtp._tls.%s. %d IN TXT \"v=TLSRPTv1; rua=mailto:postmaster@%s\"\n", domain,
	       CLI_DNS_TTL, domain);
	print_srv(&cfg, domain, host);
out:
	config_free(&cfg);
	return ret;
}

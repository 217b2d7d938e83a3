/* The MTA-STS policy this server publishes (RFC 8461 3.2): the text the
 * HTTPS listener serves at /.well-known/mta-sts.txt and whose digest
 * `postern dns` puts in the _mta-sts TXT record, so the two never
 * disagree. */
#include "core/mtasts.h"
#include "core/config.h"
#include "core/log.h"

#include <openssl/evp.h>
#include <stdio.h>

void mtasts_policy(const struct config *cfg, struct buf *out)
{
	buf_printf(out, "version: STSv1\r\nmode: %s\r\nmx: %s\r\nmax_age: %d\r\n",
		   cfg->mta_sts_mode, cfg->hostname, cfg->mta_sts_max_age);
}

void mtasts_policy_id(const struct config *cfg, char *out, size_t size)
{
	struct buf policy = BUF_INIT;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	char hex[17];
	mtasts_policy(cfg, &policy);
	if (EVP_Digest(policy.data, policy.len, md, &md_len, EVP_sha256(), NULL) != 1)
		fatal("event=sha256-failed");
	buf_free(&policy);
	for (size_t i = 0; i < 8; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	if (size > 0)
		snprintf(out, size, "%s", hex);
}

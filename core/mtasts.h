#ifndef POSTERN_MTASTS_H
#define POSTERN_MTASTS_H

/* core/mtasts.h: the MTA-STS policy Postern publishes for its hosted
 * domains (RFC 8461 3.2). Every hosted domain has the same policy: its MX
 * is this server. */

#include <stddef.h>

#include "core/buf.h"

struct config;

/* "version: STSv1\r\nmode: MODE\r\nmx: HOSTNAME\r\nmax_age: SECONDS\r\n"
 * MODE from [mta_sts] mode (enforce | testing | none; default testing),
 * HOSTNAME the config's hostname, SECONDS from [mta_sts] max_age
 * (a duration, default 7d = 604800). */
void mtasts_policy(const struct config *cfg, struct buf *out);
/* The policy's id for the "_mta-sts.DOMAIN TXT v=STSv1; id=ID" record:
 * the first 16 hex digits of the SHA-256 of the policy text, so the id
 * changes exactly when the policy does. out: at least 17 bytes. */
void mtasts_policy_id(const struct config *cfg, char *out, size_t size);

#endif

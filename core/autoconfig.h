#ifndef POSTERN_AUTOCONFIG_H
#define POSTERN_AUTOCONFIG_H

/* What a mail client needs to set itself up from an address and a
 * password, as the HTTPS listener serves it: Thunderbird's autoconfig
 * (config-v1.1.xml), Microsoft's POX Autodiscover, and the parsers of the
 * untrusted bits of a request (Host header, e-mail address, Autodiscover
 * body). The servers, ports and TLS modes come from the configuration:
 * the hostname and the listeners that are on, implicit TLS first
 * (RFC 8314 3.3). No pure function here does I/O. */

#include <stddef.h>

#include "core/buf.h"
#include "core/config.h"

#define AUTOCONFIG_DOMAIN_MAX 253
#define AUTOCONFIG_EMAIL_MAX 254

/* The domain a Host header names: lowercased, port and trailing dot
 * dropped, then label + "." dropped from the front when present (label
 * "autoconfig", "autodiscover"; NULL for none). With required, a Host
 * without that label is refused (MTA-STS: only mta-sts.DOMAIN). 0, or -1
 * when it is not a domain name. out: AUTOCONFIG_DOMAIN_MAX + 1 bytes. */
int autoconfig_host_domain(const char *host, const char *label, int required, char *out,
			   size_t size);
/* A plain address (dot-atom local part, ASCII, domain name): lowercases
 * its domain into domain_out (AUTOCONFIG_DOMAIN_MAX + 1 bytes). 0 or -1. */
int autoconfig_email_domain(const char *email, char *domain_out, size_t size);
/* The address in an Autodiscover request body
 * (<Request><EMailAddress>...</EMailAddress>, any namespace prefix),
 * checked as autoconfig_email_domain() does, into out
 * (AUTOCONFIG_EMAIL_MAX + 1 bytes). 0, or -1 when there is none. */
int autoconfig_autodiscover_email(const char *body, size_t len, char *out, size_t size);

/* Thunderbird's clientConfig for domain (a name checked by the above). */
void autoconfig_thunderbird(const struct config *cfg, const char *domain, struct buf *out);
/* The POX Autodiscover response (Outlook's responseschema 2006a); email
 * (may be NULL) is the login name. */
void autoconfig_autodiscover(const struct config *cfg, const char *email, struct buf *out);

#endif

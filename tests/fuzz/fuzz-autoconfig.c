/* libFuzzer target for what the HTTPS listener parses from a request
 * (core/autoconfig.c): a Host header, an e-mail address, an Autodiscover
 * body. Arbitrary bytes are taken or refused without reading out of
 * bounds; what is taken is a lowercase domain name of letters, digits,
 * hyphens and dots, or an address of printable ASCII without the bytes
 * XML or a header would need escaped, found whole in the input, and
 * taken again the same way. The first byte picks the parser.
 * Register in tests/fuzz/meson.build as 'autoconfig': [core_dep]. */
#include "core/autoconfig.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_domain(const char *d)
{
	size_t len = strlen(d);
	if (len == 0 || len > AUTOCONFIG_DOMAIN_MAX || d[0] == '.' || d[len - 1] == '.')
		abort();
	for (size_t i = 0; i < len; i++) {
		char c = d[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
			abort();
	}
}

static void check_email(const char *e, const char *input, size_t size)
{
	size_t len = strlen(e);
	char domain[AUTOCONFIG_DOMAIN_MAX + 1];
	if (len == 0 || len > AUTOCONFIG_EMAIL_MAX || memmem(input, size, e, len) == NULL)
		abort();
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)e[i];
		if (c <= ' ' || c >= 0x7f || strchr("<>&\"'\\", c) != NULL)
			abort();
	}
	if (autoconfig_email_domain(e, domain, sizeof(domain)) < 0)
		abort();
	check_domain(domain);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	const char *input = (const char *)data + 1;
	size_t len = size - 1;
	char *text = malloc(len + 1);
	char domain[AUTOCONFIG_DOMAIN_MAX + 1], again[AUTOCONFIG_DOMAIN_MAX + 1];
	char email[AUTOCONFIG_EMAIL_MAX + 1];
	memcpy(text, input, len);
	text[len] = '\0';
	switch (data[0] % 3) {
	case 0:
		if (autoconfig_host_domain(text, data[0] & 4 ? "mta-sts" : NULL, data[0] & 8,
					   domain, sizeof(domain)) == 0) {
			check_domain(domain);
			if (autoconfig_host_domain(domain, NULL, 0, again, sizeof(again)) < 0 ||
			    strcmp(domain, again) != 0)
				abort();
		}
		break;
	case 1:
		if (autoconfig_email_domain(text, domain, sizeof(domain)) == 0) {
			check_domain(domain);
			check_email(text, input, len);
		}
		break;
	default:
		if (autoconfig_autodiscover_email(input, len, email, sizeof(email)) == 0)
			check_email(email, input, len);
		break;
	}
	free(text);
	return 0;
}

/* libFuzzer target for address parsing (auth/address.c): arbitrary bytes
 * must parse or be refused without reading out of bounds; an accepted
 * address stays within RFC 5321's limits, its key is its lowercased form,
 * and parsing the normal form again gives the same normal form.
 * Register in tests/fuzz/meson.build as 'address': [auth_dep]. */
#include "auth/auth.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_address(const char *text)
{
	struct auth_address a, again;
	const char *error;
	if (auth_address_parse(text, &a, &error) < 0) {
		if (error == NULL)
			abort();
		return;
	}
	size_t len = strlen(a.address);
	if (strlen(a.local) > AUTH_LOCAL_MAX || strlen(a.domain) > AUTH_DOMAIN_MAX ||
	    len > AUTH_ADDRESS_MAX || strlen(a.key) != len)
		abort();
	for (size_t i = 0; i < len; i++) {
		char c = a.address[i];
		char lower = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
		if (a.key[i] != lower)
			abort();
	}
	if (auth_address_parse(a.address, &again, &error) < 0 ||
	    strcmp(again.address, a.address) != 0 || strcmp(again.key, a.key) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	char domain[AUTH_DOMAIN_MAX + 1];
	const char *error;
	memcpy(text, data, size);
	text[size] = '\0';
	check_address(text);
	if (auth_domain_normalise(text, domain, &error) == 0 && strlen(domain) > AUTH_DOMAIN_MAX)
		abort();
	free(text);
	return 0;
}

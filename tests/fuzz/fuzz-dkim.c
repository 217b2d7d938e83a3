/* libFuzzer target for what the DKIM signer reads of a message: the
 * From: field's address (its domain picks the keys, so it must stay a
 * bounded, lowercase string) and earlier filters' Authentication-Results.
 * Neither may read out of bounds; the answers do not depend on where a
 * caller's buffer ends beyond len. */
#include "dkim/dkim-private.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size + 1);
	memcpy(copy, data, size);
	copy[size] = '\0';
	char domain[256];
	size_t cap = size > 0 ? (size_t)data[0] % sizeof(domain) + 1 : sizeof(domain);
	if (dkim_from_domain(copy, size, domain, cap) == 0) {
		size_t len = strlen(domain);
		if (len == 0 || len >= cap)
			abort();
		for (size_t i = 0; i < len; i++) {
			if (domain[i] >= 'A' && domain[i] <= 'Z')
				abort();
		}
	}
	/* exactly size bytes: a copy without the terminator */
	char *exact = malloc(size > 0 ? size : 1);
	memcpy(exact, data, size);
	bool a = dkim_results_prove(exact, size, "mail.example.org", "example.org");
	bool b = dkim_results_prove(copy, size, "mail.example.org", "example.org");
	if (a != b)
		abort();
	free(exact);
	free(copy);
	return 0;
}

/* libFuzzer target for what the DKIM signer reads of a message: the
 * From: field's address (its domain picks the keys, so it must stay a
 * bounded, lowercase string), earlier filters' Authentication-Results,
 * and the body canonicalisation, whose hash may not depend on where the
 * body is cut into pieces. Nothing may read out of bounds. */
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

	/* whole, and in two pieces cut where the first byte says */
	unsigned char a_md[32], b_md[32];
	struct dkim_body_canon c;
	size_t cut = size > 0 ? data[0] % (size + 1) : 0;
	if (dkim_body_canon_init(&c) < 0)
		abort();
	dkim_body_canon_update(&c, (const char *)data, size);
	int ra = dkim_body_canon_final(&c, a_md, sizeof(a_md));
	dkim_body_canon_free(&c);
	if (dkim_body_canon_init(&c) < 0)
		abort();
	dkim_body_canon_update(&c, (const char *)data, cut);
	dkim_body_canon_update(&c, (const char *)data + cut, size - cut);
	int rb = dkim_body_canon_final(&c, b_md, sizeof(b_md));
	dkim_body_canon_free(&c);
	if (ra != 0 || rb != 0 || memcmp(a_md, b_md, 32) != 0)
		abort();
	return 0;
}

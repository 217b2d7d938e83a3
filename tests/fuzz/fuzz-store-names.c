/* libFuzzer target for the store's name handling: modified UTF-7 decoding
 * and encoding (a decoded name re-encodes to something that decodes to the
 * same text; a valid UTF-8 name survives encode+decode), and the LIST
 * pattern matcher on arbitrary patterns and names (bounded time). */
#include "store/store.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_mutf7(const char *text)
{
	char *decoded = store_mutf7_decode(text);
	if (decoded != NULL) {
		char *again = store_mutf7_encode(decoded);
		if (again == NULL)
			abort();
		char *back = store_mutf7_decode(again);
		if (back == NULL || strcmp(back, decoded) != 0)
			abort();
		free(back);
		free(again);
		free(decoded);
	}
	char *encoded = store_mutf7_encode(text);
	if (encoded != NULL) {
		char *back = store_mutf7_decode(encoded);
		if (back == NULL || strcmp(back, text) != 0)
			abort();
		free(back);
		free(encoded);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 4096)
		return 0;
	char *text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	check_mutf7(text);
	/* "pattern\nname" */
	char *nl = strchr(text, '\n');
	if (nl != NULL) {
		*nl = '\0';
		(void)store_pattern_match(text, nl + 1);
	}
	free(text);
	return 0;
}

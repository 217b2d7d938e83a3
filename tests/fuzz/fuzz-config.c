/* libFuzzer target for the configuration loader: any bytes as an INI
 * file. A file that loads must print (`postern check`) as INI that loads
 * again to the same settings, so what check shows is what serve runs. */
#include "core/config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Loads text and returns what config_print makes of it, or NULL. */
static char *load_and_print(const char *text, size_t len)
{
	FILE *in = fmemopen((void *)text, len, "r");
	if (in == NULL)
		return NULL;
	struct config cfg;
	const char *error;
	config_init_defaults(&cfg);
	int ret = config_load_stream(&cfg, in, "fuzz.conf", &error);
	fclose(in);
	char *printed = NULL;
	size_t printed_len = 0;
	if (ret == 0) {
		FILE *out = open_memstream(&printed, &printed_len);
		if (out == NULL)
			abort();
		config_print(&cfg, out);
		fclose(out);
	} else if (error == NULL || error[0] == '\0') {
		abort();        /* every refusal says why */
	}
	config_free(&cfg);
	return printed;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0 || size > 16384)
		return 0;
	char *first = load_and_print((const char *)data, size);
	if (first == NULL)
		return 0;
	char *second = load_and_print(first, strlen(first));
	if (second == NULL || strcmp(first, second) != 0)
		abort();
	free(first);
	free(second);
	return 0;
}

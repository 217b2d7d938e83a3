/* libFuzzer target for the relay's parsers of peer and DNS data: SMTP
 * reply lines and MX rdata. Neither may read out of bounds; a parsed MX
 * name is printable, dot-separated and fits its buffer. */
#include "relay/relay-private.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size + 1);
	memcpy(copy, data, size);
	copy[size] = '\0';
	int code;
	bool more;
	const char *text;
	if (smtp_reply_parse_line(copy, size, &code, &more, &text) == 0) {
		if (code < 200 || code > 599 || text < copy || text > copy + size)
			abort();
	}
	free(copy);

	char name[256];
	int pref;
	size_t cap = size > 0 ? (size_t)data[0] % sizeof(name) + 1 : sizeof(name);
	if (relay_dns_parse_mx(data, size, &pref, name, cap) == 0) {
		size_t len = strlen(name);
		if (len >= cap || pref < 0 || pref > 65535 || name[0] == '.' ||
		    (len > 0 && name[len - 1] == '.'))
			abort();
		for (size_t i = 0; i < len; i++) {
			if ((unsigned char)name[i] <= ' ' || (unsigned char)name[i] >= 0x7f)
				abort();
		}
	}
	return 0;
}

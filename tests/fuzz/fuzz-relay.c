/* libFuzzer target for the relay's parsers of peer and DNS data: SMTP
 * reply lines, MX, TLSA and TXT rdata, MTA-STS policies (from any HTTPS
 * server a recipient domain names) and their TXT ids. None may read out
 * of bounds; a parsed MX name is printable, dot-separated and fits its
 * buffer; a parsed policy is complete. */
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

	struct relay_tlsa t;
	int tr = relay_dns_parse_tlsa(data, size, &t);
	if (tr == 1 && (t.len != 32 && t.len != 64))
		abort();
	struct buf b = BUF_INIT;
	if (relay_dns_txt_join(data, size, &b) == 0 && b.len > size)
		abort();
	char id[40];
	if (relay_mtasts_txt_id(buf_str(&b), id, sizeof(id)) == 0 &&
	    (strlen(id) == 0 || strlen(id) > 32))
		abort();
	buf_free(&b);

	/* exactly size bytes, no terminator after them */
	char *exact = malloc(size > 0 ? size : 1);
	memcpy(exact, data, size);
	struct relay_mtasts_policy p;
	const char *error;
	if (relay_mtasts_parse(exact, size, &p, &error) == 0) {
		if (p.mode != RELAY_MTASTS_MODE_NONE && p.mx_count == 0)
			abort();
		if (p.max_age < 0 || p.max_age > 31557600)
			abort();
		for (size_t i = 0; i < p.mx_count; i++) {
			if (p.mx[i][0] == '\0')
				abort();
			(void)relay_mtasts_match(&p, p.mx[i]);
		}
		(void)relay_mtasts_match(&p, "mx.example.com");
		relay_mtasts_clear(&p);
	}
	free(exact);
	return 0;
}

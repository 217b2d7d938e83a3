/* libFuzzer target for mail/: the tolerant address-list reader (every
 * addr-spec it hands out is rebuilt into something it reads back the
 * same), the SMTP DATA encoder fed whole and in input-chosen pieces (the
 * same output, and never a bare CR or LF or an early end of data), and
 * xtext (what it decodes, it encodes back). */
#include "mail/mail.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void addresses(const char *text)
{
	struct mail_addrs list;
	mail_address_parse(text, &list);
	for (size_t i = 0; i < list.count; i++) {
		const struct mail_addr *a = &list.items[i];
		if (a->kind != MAIL_ADDR_MAILBOX || !a->has_mailbox || !a->has_host ||
		    memchr(buf_str(&a->mailbox), '\0', a->mailbox.len) != NULL ||
		    memchr(buf_str(&a->host), '\0', a->host.len) != NULL ||
		    strpbrk(buf_str(&a->host), "()<>,;:\\\"[] \t\r\n@") != NULL)
			continue;
		struct buf spec = BUF_INIT;
		mail_addr_spec(a, &spec);
		struct mail_addrs again;
		mail_address_parse(buf_str(&spec), &again);
		if (again.count != 1 || again.items[0].mailbox.len != a->mailbox.len ||
		    memcmp(buf_str(&again.items[0].mailbox), buf_str(&a->mailbox),
			   a->mailbox.len) != 0)
			abort();
		mail_addrs_free(&again);
		buf_free(&spec);
	}
	mail_addrs_free(&list);
}

static void encode(const char *in, size_t len, size_t step, struct buf *out)
{
	struct mail_data_encoder e = MAIL_DATA_ENCODER_INIT;
	char *tmp = malloc(2 * (step + 1) + 8);
	for (size_t i = 0; i < len;) {
		size_t n = len - i < step ? len - i : step;
		buf_append(out, tmp, mail_data_encode(&e, in + i, n, tmp));
		i += n;
	}
	buf_append(out, tmp, mail_data_encode_end(&e, tmp));
	free(tmp);
}

static void data_encoder(const char *in, size_t len, size_t step)
{
	struct buf a = BUF_INIT, b = BUF_INIT;
	encode(in, len, len == 0 ? 1 : len, &a);
	encode(in, len, step, &b);
	if (a.len != b.len || memcmp(buf_str(&a), buf_str(&b), a.len) != 0)
		abort();
	for (size_t i = 0; i < a.len; i++) {
		if (a.data[i] == '\r' && (i + 1 >= a.len || a.data[i + 1] != '\n'))
			abort();
		if (a.data[i] == '\n' && (i == 0 || a.data[i - 1] != '\r'))
			abort();
	}
	/* the only end of data is the last five bytes (or the whole, when empty) */
	const char *end = a.len >= 5 ? a.data + a.len - 5 : NULL;
	for (const char *p = a.data; p != NULL && p + 5 <= a.data + a.len; p++) {
		p = memchr(p, '\r', (size_t)(a.data + a.len - p));
		if (p == NULL)
			break;
		if (p + 5 <= a.data + a.len && memcmp(p, "\r\n.\r\n", 5) == 0 && p != end)
			abort();
	}
	buf_free(&a);
	buf_free(&b);
}

static void xtext(const char *text)
{
	struct buf dec = BUF_INIT, enc = BUF_INIT, again = BUF_INIT;
	if (mail_xtext_decode(text, &dec) == 0 && strlen(buf_str(&dec)) == dec.len) {
		mail_xtext_encode(&enc, buf_str(&dec));
		if (mail_xtext_decode(buf_str(&enc), &again) != 0 || again.len != dec.len ||
		    memcmp(buf_str(&again), buf_str(&dec), dec.len) != 0)
			abort();
	}
	buf_free(&dec);
	buf_free(&enc);
	buf_free(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	const char *in = (const char *)data + 1;
	size_t len = size - 1;
	char *text = strndup(in, len);
	switch (mode % 3) {
	case 0:
		addresses(text);
		break;
	case 1:
		data_encoder(in, len, 1 + mode / 3 % 9);
		break;
	case 2:
		xtext(text);
		break;
	}
	free(text);
	return 0;
}

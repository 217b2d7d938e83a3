/* libFuzzer target for the SMTP parsers: MAIL and RCPT arguments with
 * their parameters, and the DATA decoder (fed whole and in input-chosen
 * pieces, which must agree). */
#include "core/core.h"
#include "submission/smtp-data.h"
#include "submission/smtp-parse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void collect(void *ctx, const char *d, size_t len)
{
	buf_append(ctx, d, len);
}

static void decode(const char *in, size_t len, size_t step, struct buf *out,
		   size_t *consumed)
{
	struct smtp_data_decoder d;
	bool done = false;
	smtp_data_init(&d, collect, out);
	*consumed = 0;
	while (*consumed < len && !done) {
		size_t n = len - *consumed < step ? len - *consumed : step;
		*consumed += smtp_data_feed(&d, in + *consumed, n, &done);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint8_t mode = data[0];
	data++;
	size--;
	if (mode < 100) {
		struct pool *pool = pool_new(1024);
		char *text = pool_strndup(pool, (const char *)data, size);
		struct smtp_path path;
		const char *reply = NULL;
		if (mode & 1) {
			struct smtp_mail_params mp;
			if (smtp_parse_mail(text, pool, &path, &mp, &reply) < 0 && reply == NULL)
				abort();
		} else {
			struct smtp_rcpt_params rp;
			if (smtp_parse_rcpt(text, pool, &path, &rp, &reply) < 0 && reply == NULL)
				abort();
		}
		pool_free(&pool);
		return 0;
	}
	struct buf a = BUF_INIT, b = BUF_INIT;
	size_t ca, cb;
	decode((const char *)data, size, size, &a, &ca);
	decode((const char *)data, size, 1 + mode % 7, &b, &cb);
	if (ca != cb || a.len != b.len || memcmp(buf_str(&a), buf_str(&b), a.len) != 0)
		abort();
	if (a.len > ca)
		abort();   /* unstuffing never adds bytes */
	buf_free(&a);
	buf_free(&b);
	return 0;
}

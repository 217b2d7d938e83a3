/* libFuzzer target for the MIME structure parser: any input must parse
 * into well-formed IMAP strings and a consistent part tree, and feeding
 * it byte by byte must give exactly the same result. */

#include "core/buf.h"
#include "store/mime.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_same(const char *a, const char *b, const char *what)
{
	if ((a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0)) {
		fprintf(stderr, "split feeding changed %s\n", what);
		abort();
	}
}

static void compare(const struct mime_message *a, const struct mime_message *b)
{
	check_same(a->envelope, b->envelope, "envelope");
	check_same(a->body, b->body, "body");
	check_same(a->bodystructure, b->bodystructure, "bodystructure");
	check_same(a->subject, b->subject, "subject");
	check_same(a->from, b->from, "from");
	check_same(a->references, b->references, "references");
	if (a->size != b->size || a->crlf_size != b->crlf_size ||
	    a->date != b->date || a->part_count != b->part_count ||
	    memcmp(a->parts, b->parts, a->part_count * sizeof(*a->parts)) != 0) {
		fprintf(stderr, "split feeding changed sizes or parts\n");
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mime_message whole, split;
	const char *error;

	mime_parse_buffer(data, size, &whole);
	if (mime_message_check(&whole, &error) < 0) {
		fprintf(stderr, "mime_message_check: %s\n", error);
		abort();
	}
	/* pieces of 1..7 bytes, the sizes taken from the input itself */
	struct mime_parser *parser = mime_parser_new();
	for (size_t off = 0; off < size;) {
		size_t piece = 1 + data[off] % 7;
		if (piece > size - off)
			piece = size - off;
		mime_parser_feed(parser, data + off, piece);
		off += piece;
	}
	mime_parser_finish(parser, &split);
	mime_parser_free(&parser);
	compare(&whole, &split);
	for (uint32_t i = 0; i < whole.part_count; i++) {
		char path[16];
		snprintf(path, sizeof(path), "%u", i + 1);
		int idx = mime_find_part(&whole, path);
		if (idx >= (int)whole.part_count)
			abort();
	}
	/* every part's body decoded, every part's header filtered */
	static const char *const names[] = { "Content-Type", "subject", "X-A" };
	struct buf filtered = BUF_INIT;
	for (uint32_t i = 0; i < whole.part_count; i++) {
		const struct mime_part *part = &whole.parts[i];
		const char *header = (const char *)data + part->header_offset;
		size_t header_len = part->body_offset - part->header_offset;
		size_t len;
		char *body = mime_decode_body(header, header_len,
					      data + part->body_offset,
					      part->body_end - part->body_offset,
					      i % 2 == 0, &len);
		free(body);
		buf_reset(&filtered);
		mime_header_filter(header, header_len, names, 3, i % 2 == 1, &filtered);
		if (filtered.len < 2 || filtered.len > 2 * header_len + 4)
			abort();
	}
	buf_free(&filtered);
	mime_message_free(&split);
	mime_message_free(&whole);

	char *decoded = mime_decode_header((const char *)data, size);
	free(decoded);
	return 0;
}

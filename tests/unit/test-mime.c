#include "test.h"
#include "core/core.h"
#include "store/mime.h"

#include <dirent.h>
#include <stdint.h>

#ifndef TEST_DATA_DIR
#error TEST_DATA_DIR must name tests/data
#endif
#define MIME_DIR TEST_DATA_DIR "/mime"

static char *read_file(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	struct buf b = BUF_INIT;
	char block[8192];
	size_t n;
	while ((n = fread(block, 1, sizeof(block), f)) > 0)
		buf_append(&b, block, n);
	fclose(f);
	buf_append(&b, "", 0);
	*len_r = b.len;
	return b.data;
}

/* An expected string: the file's content without its final newline. */
static char *read_expected(const char *eml, const char *ext)
{
	char path[1024];
	size_t len;
	snprintf(path, sizeof(path), "%s/%.*s.%s", MIME_DIR,
		 (int)(strlen(eml) - 4), eml, ext);
	char *s = read_file(path, &len);
	if (s != NULL && len > 0 && s[len - 1] == '\n')
		s[len - 1] = '\0';
	return s;
}

static int eml_compare(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The corpus: every .eml file in tests/data/mime, sorted. */
static char **corpus_list(size_t *count_r)
{
	DIR *dir = opendir(MIME_DIR);
	char **names = NULL;
	size_t count = 0;
	struct dirent *de;
	TEST_ASSERT(dir != NULL);
	while (dir != NULL && (de = readdir(dir)) != NULL) {
		size_t len = strlen(de->d_name);
		if (len < 5 || strcmp(de->d_name + len - 4, ".eml") != 0)
			continue;
		names = xrealloc(names, (count + 1) * sizeof(*names));
		names[count++] = xstrdup(de->d_name);
	}
	if (dir != NULL)
		closedir(dir);
	qsort(names, count, sizeof(*names), eml_compare);
	*count_r = count;
	return names;
}

static void corpus_free(char **names, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
}

static char *corpus_read(const char *name, size_t *len_r)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s", MIME_DIR, name);
	return read_file(path, len_r);
}

/* Reads a corpus message and parses it in one piece. */
static char *corpus_parse(const char *name, size_t *len_r, struct mime_message *msg)
{
	char *data = corpus_read(name, len_r);
	mime_parse_buffer(data, *len_r, msg);
	return data;
}

static void corpus_done(char *data, struct mime_message *msg)
{
	mime_message_free(msg);
	free(data);
}

static void parse_in_pieces(const char *data, size_t len, size_t piece,
			    struct mime_message *msg)
{
	struct mime_parser *parser = mime_parser_new();
	for (size_t off = 0; off < len; off += piece)
		mime_parser_feed(parser, data + off, len - off < piece ? len - off : piece);
	mime_parser_finish(parser, msg);
	mime_parser_free(&parser);
}

static bool str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* Whole results equal, part tree included. */
static bool messages_equal(const struct mime_message *a, const struct mime_message *b)
{
	if (!str_eq(a->envelope, b->envelope) || !str_eq(a->body, b->body) ||
	    !str_eq(a->bodystructure, b->bodystructure) || a->size != b->size ||
	    a->crlf_size != b->crlf_size || a->date != b->date ||
	    a->date_tz_minutes != b->date_tz_minutes ||
	    !str_eq(a->subject, b->subject) || !str_eq(a->from, b->from) ||
	    !str_eq(a->to, b->to) || !str_eq(a->cc, b->cc) || !str_eq(a->bcc, b->bcc) ||
	    !str_eq(a->message_id, b->message_id) ||
	    !str_eq(a->in_reply_to, b->in_reply_to) ||
	    !str_eq(a->references, b->references) || a->part_count != b->part_count)
		return false;
	for (uint32_t i = 0; i < a->part_count; i++) {
		const struct mime_part *p = &a->parts[i], *q = &b->parts[i];
		if (p->parent != q->parent || p->first_child != q->first_child ||
		    p->next_sibling != q->next_sibling ||
		    p->header_offset != q->header_offset ||
		    p->body_offset != q->body_offset || p->body_end != q->body_end ||
		    p->header_crlf_size != q->header_crlf_size ||
		    p->body_crlf_size != q->body_crlf_size ||
		    p->body_lines != q->body_lines ||
		    p->is_multipart != q->is_multipart || p->is_message != q->is_message)
			return false;
	}
	return true;
}

static void assert_sound(const struct mime_message *msg)
{
	const char *error = NULL;
	int ret = mime_message_check(msg, &error);
	TEST_ASSERT_INT(ret, 0);
	if (ret != 0)
		fprintf(stderr, "  check: %s\n", error);
}

/* Every corpus message against its .envelope, .body and .bodystructure. */
static void test_corpus_expected(void)
{
	size_t count;
	char **names = corpus_list(&count);
	TEST_ASSERT(count >= 17);
	for (size_t i = 0; i < count; i++) {
		size_t len;
		char *data = corpus_read(names[i], &len);
		struct mime_message msg;
		mime_parse_buffer(data, len, &msg);
		char *envelope = read_expected(names[i], "envelope");
		char *body = read_expected(names[i], "body");
		char *bodystructure = read_expected(names[i], "bodystructure");
		test_current = names[i];
		TEST_ASSERT_STR(msg.envelope, envelope == NULL ? "(missing file)" : envelope);
		TEST_ASSERT_STR(msg.body, body == NULL ? "(missing file)" : body);
		TEST_ASSERT_STR(msg.bodystructure,
				bodystructure == NULL ? "(missing file)" : bodystructure);
		TEST_ASSERT_INT(msg.size, len);
		assert_sound(&msg);
		free(envelope);
		free(body);
		free(bodystructure);
		mime_message_free(&msg);
		free(data);
	}
	test_current = "corpus_expected";
	corpus_free(names, count);
}

/* Feeding one byte at a time, or in odd pieces, gives the same result. */
static void test_corpus_splits(void)
{
	static const size_t pieces[] = { 1, 2, 3, 7, 64, 1000 };
	size_t count;
	char **names = corpus_list(&count);
	for (size_t i = 0; i < count; i++) {
		size_t len;
		char *data = corpus_read(names[i], &len);
		struct mime_message whole;
		mime_parse_buffer(data, len, &whole);
		for (size_t j = 0; j < sizeof(pieces) / sizeof(pieces[0]); j++) {
			struct mime_message split;
			parse_in_pieces(data, len, pieces[j], &split);
			TEST_ASSERT(messages_equal(&whole, &split));
			if (!messages_equal(&whole, &split))
				fprintf(stderr, "  %s differs fed in %zu-byte pieces\n",
					names[i], pieces[j]);
			mime_message_free(&split);
		}
		mime_message_free(&whole);
		free(data);
	}
	corpus_free(names, count);
}

/* Converting line ends (LF <-> CRLF) changes raw offsets but none of the
 * IMAP sizes: they count every line end as CRLF. */
static char *convert_line_ends(const char *data, size_t len, bool to_crlf,
			       size_t *len_r)
{
	struct buf out = BUF_INIT;
	for (size_t i = 0; i < len; i++) {
		if (data[i] == '\n') {
			if (to_crlf)
				buf_append(&out, "\r\n", 2);
			else
				buf_append_char(&out, '\n');
			continue;
		}
		if (data[i] == '\r' && i + 1 < len && data[i + 1] == '\n')
			continue;
		buf_append_char(&out, data[i]);
	}
	buf_append(&out, "", 0);
	*len_r = out.len;
	return out.data;
}

static void test_crlf_sizes(void)
{
	size_t count;
	char **names = corpus_list(&count);
	for (size_t i = 0; i < count; i++) {
		size_t len, crlf_len, lf_len;
		char *data = corpus_read(names[i], &len);
		char *crlf = convert_line_ends(data, len, true, &crlf_len);
		char *lf = convert_line_ends(data, len, false, &lf_len);
		struct mime_message m, mc, ml;
		mime_parse_buffer(data, len, &m);
		mime_parse_buffer(crlf, crlf_len, &mc);
		mime_parse_buffer(lf, lf_len, &ml);
		test_current = names[i];
		TEST_ASSERT_INT(m.crlf_size, crlf_len);
		TEST_ASSERT_INT(mc.crlf_size, crlf_len);
		TEST_ASSERT_INT(ml.crlf_size, crlf_len);
		TEST_ASSERT_INT(ml.size, lf_len);
		TEST_ASSERT_STR(ml.bodystructure, mc.bodystructure);
		TEST_ASSERT_STR(m.bodystructure, mc.bodystructure);
		TEST_ASSERT_STR(ml.envelope, mc.envelope);
		TEST_ASSERT_INT(ml.part_count, mc.part_count);
		for (uint32_t p = 0; p < ml.part_count && p < mc.part_count; p++) {
			TEST_ASSERT_INT(ml.parts[p].header_crlf_size, mc.parts[p].header_crlf_size);
			TEST_ASSERT_INT(ml.parts[p].body_crlf_size, mc.parts[p].body_crlf_size);
			TEST_ASSERT_INT(ml.parts[p].body_lines, mc.parts[p].body_lines);
		}
		mime_message_free(&m);
		mime_message_free(&mc);
		mime_message_free(&ml);
		free(data);
		free(crlf);
		free(lf);
	}
	test_current = "crlf_sizes";
	corpus_free(names, count);
}

/* The bytes of a part's body, by offsets. */
static char *part_body(const char *data, const struct mime_message *msg, int idx)
{
	if (idx < 0)
		return xstrdup("(no part)");
	const struct mime_part *part = &msg->parts[idx];
	return xstrndup(data + part->body_offset, part->body_end - part->body_offset);
}

static char *part_header(const char *data, const struct mime_message *msg, int idx)
{
	if (idx < 0)
		return xstrdup("(no part)");
	const struct mime_part *part = &msg->parts[idx];
	return xstrndup(data + part->header_offset, part->body_offset - part->header_offset);
}

static void expect_body(const char *data, const struct mime_message *msg,
			const char *section, const char *want)
{
	char *got = part_body(data, msg, mime_find_part(msg, section));
	TEST_ASSERT_STR(got, want);
	free(got);
}

static void test_offsets_nested(void)
{
	size_t len;
	struct mime_message msg;
	char *data = corpus_parse("nested-mixed.eml", &len, &msg);
	TEST_ASSERT_INT(msg.part_count, 7);
	expect_body(data, &msg, "1.1.1",
		    "Please find the report attached. The chart is below.\r\n");
	expect_body(data, &msg, "1.1.2",
		    "<p>Please find the report attached. The chart is below.</p>\r\n"
		    "<img src=\"cid:chart@example.org\">\r\n");
	int png = mime_find_part(&msg, "1.2");
	char *mime_header = part_header(data, &msg, png);
	TEST_ASSERT(strncmp(mime_header, "Content-Type: image/png;", 24) == 0);
	TEST_ASSERT(strstr(mime_header, "Content-Disposition: inline; filename=\"chart.png\"\r\n\r\n") != NULL);
	free(mime_header);
	int pdf = mime_find_part(&msg, "2");
	char *body = part_body(data, &msg, pdf);
	TEST_ASSERT(strncmp(body, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g", 44) == 0);
	TEST_ASSERT(body[strlen(body) - 1] == '\n');   /* the empty line before the boundary is body */
	TEST_ASSERT_INT(msg.parts[pdf].body_crlf_size, strlen(body));
	free(body);
	/* the root: the whole message; its body the text after the header */
	TEST_ASSERT_INT(msg.parts[0].header_offset, 0);
	TEST_ASSERT_INT(msg.parts[0].body_end, len);
	TEST_ASSERT(strncmp(data + msg.parts[0].body_offset, "This is a multi-part", 20) == 0);
	TEST_ASSERT(msg.parts[0].is_multipart);
	TEST_ASSERT_INT(mime_find_part(&msg, ""), 0);
	TEST_ASSERT_INT(mime_find_part(&msg, NULL), 0);
	TEST_ASSERT_INT(mime_find_part(&msg, "3"), -1);
	TEST_ASSERT_INT(mime_find_part(&msg, "0"), -1);
	TEST_ASSERT_INT(mime_find_part(&msg, "1.3"), -1);
	TEST_ASSERT_INT(mime_find_part(&msg, "2.1"), -1);
	TEST_ASSERT_INT(mime_find_part(&msg, "1..1"), -1);
	TEST_ASSERT_INT(mime_find_part(&msg, "1.1.1.1"), -1);
	TEST_ASSERT_INT(mime_find_part(&msg, "x"), -1);
	corpus_done(data, &msg);
}

static void test_offsets_rfc822(void)
{
	size_t len;
	struct mime_message msg;
	char *data = corpus_parse("rfc822-attachment.eml", &len, &msg);
	int att = mime_find_part(&msg, "2");
	TEST_ASSERT(att > 0 && msg.parts[att].is_message);
	/* the embedded message: header from "Date:" on, same end */
	uint32_t inner = msg.parts[att].first_child;
	TEST_ASSERT(inner != UINT32_MAX);
	if (inner != UINT32_MAX) {
		char *header = part_header(data, &msg, (int)inner);
		TEST_ASSERT(strncmp(header, "Date: Wed, 4 Mar 2026 17:45:00", 30) == 0);
		free(header);
		TEST_ASSERT_INT(msg.parts[inner].body_end, msg.parts[att].body_end);
		TEST_ASSERT_INT(msg.parts[inner].header_offset, msg.parts[att].body_offset);
	}
	expect_body(data, &msg, "2.1", "1. Budget approved\r\n2. Next meeting in April");
	expect_body(data, &msg, "2.2",
		    "<ol><li>Budget approved</li><li>Next meeting in April</li></ol>");
	expect_body(data, &msg, "1", "See the forwarded message below.\r\n");
	TEST_ASSERT_INT(mime_find_part(&msg, "2.3"), -1);
	TEST_ASSERT_INT(mime_find_part(&msg, "1.1"), -1);
	corpus_done(data, &msg);

	/* a non-multipart message: part 1 is its body */
	data = corpus_parse("simple-text.eml", &len, &msg);
	TEST_ASSERT_INT(mime_find_part(&msg, "1"), 0);
	TEST_ASSERT_INT(mime_find_part(&msg, "2"), -1);
	TEST_ASSERT_INT(mime_find_part(&msg, "1.1"), -1);
	expect_body(data, &msg, "1", "Hi Bob,\r\n\r\nare you free for lunch on Thursday? "
		    "The usual place at noon.\r\n\r\nAlice\r\n");
	corpus_done(data, &msg);
}

/* Sizes with bare LF: the CRLF size counts two octets per line end. */
static void test_lf_only_sizes(void)
{
	size_t len;
	struct mime_message msg;
	char *data = corpus_parse("lf-only.eml", &len, &msg);
	TEST_ASSERT(memchr(data, '\r', len) == NULL);
	size_t lines = 0;
	for (size_t i = 0; i < len; i++)
		lines += data[i] == '\n';
	TEST_ASSERT_INT(msg.size, len);
	TEST_ASSERT_INT(msg.crlf_size, len + lines);
	int first = mime_find_part(&msg, "1");
	TEST_ASSERT(first > 0);
	/* "line one\nline two\n\n" minus the LF that belongs to the boundary */
	TEST_ASSERT_INT(msg.parts[first].body_end - msg.parts[first].body_offset, 18);
	TEST_ASSERT_INT(msg.parts[first].body_crlf_size, 20);
	TEST_ASSERT_INT(msg.parts[first].body_lines, 2);
	TEST_ASSERT_INT(msg.parts[first].header_crlf_size, strlen("Content-Type: text/plain\r\n\r\n"));
	corpus_done(data, &msg);
}

static void test_decoded_fields(void)
{
	size_t len;
	struct mime_message msg;
	char *data = corpus_parse("encoded-words.eml", &len, &msg);
	TEST_ASSERT_STR(msg.subject, "\xc3\x9c" "berpr\xc3\xbc" "fung der Rechnung und K\xc3\xb6ln");
	TEST_ASSERT_STR(msg.from, "Andr\xc3\xa9 M\xc3\xbcller <andre@example.de>");
	TEST_ASSERT_STR(msg.to, "J\xc3\xb6rg <joerg@example.de>");
	TEST_ASSERT_STR(msg.message_id, "<ew-1@example.de>");
	TEST_ASSERT(msg.cc == NULL && msg.bcc == NULL && msg.in_reply_to == NULL);
	TEST_ASSERT_INT(msg.date, 1772784000);   /* 2026-03-06 08:00:00 UTC */
	TEST_ASSERT_INT(msg.date_tz_minutes, 60);
	corpus_done(data, &msg);

	data = corpus_parse("long-folded.eml", &len, &msg);
	TEST_ASSERT(msg.references != NULL && strncmp(msg.references,
		"<ref-0-abcdefghijklmnopqrstuvwxyz@lists.example.org> <ref-1-", 60) == 0);
	TEST_ASSERT(strstr(msg.to, "\"Recipient 40\" <user40@example.com>") != NULL);
	corpus_done(data, &msg);
}

static void expect_decode(const char *in, const char *want)
{
	char *got = mime_decode_header(in, strlen(in));
	TEST_ASSERT_STR(got, want);
	free(got);
}

static void test_decode_header(void)
{
	expect_decode("plain text", "plain text");
	expect_decode("=?UTF-8?B?SsO2cmc=?=", "J\xc3\xb6rg");
	expect_decode("=?iso-8859-1?q?caf=E9_au_lait?=", "caf\xc3\xa9 au lait");
	/* white space between adjacent encoded words disappears */
	expect_decode("=?utf-8?q?a?= =?utf-8?q?b?=", "ab");
	expect_decode("=?utf-8?q?a?=\r\n =?utf-8?q?b?=", "ab");
	/* but not between an encoded word and text */
	expect_decode("=?utf-8?q?a?= b =?utf-8?q?c?=", "a b c");
	/* a UTF-8 character split over two B words */
	expect_decode("=?UTF-8?B?w5w=?= =?UTF-8?B?w7w=?=", "\xc3\x9c\xc3\xbc");
	expect_decode("=?UTF-8?B?4oI=?= =?UTF-8?B?rA==?=", "\xe2\x82\xac");
	/* unknown charset: bytes kept */
	expect_decode("=?x-unknown?q?=41=42?=", "AB");
	/* RFC 2231 language suffix */
	expect_decode("=?US-ASCII*EN?Q?Keith_Moore?=", "Keith Moore");
	/* malformed words stay as they are */
	expect_decode("=?utf-8?x?abc?=", "=?utf-8?x?abc?=");
	expect_decode("=?utf-8?q?no end", "=?utf-8?q?no end");
	expect_decode("=??q?a?=", "=??q?a?=");
	expect_decode("", "");
	/* raw 8-bit text is kept */
	expect_decode("Gr\xc3\xbc\xc3\x9f" "e", "Gr\xc3\xbc\xc3\x9f" "e");
	/* an invalid byte in a known charset becomes U+FFFD */
	expect_decode("=?utf-8?q?a=FFb?=", "a\xef\xbf\xbd" "b");
	expect_decode("=?windows-1252?q?=80?=", "\xe2\x82\xac");
	/* charset names iconv knows under another name */
	expect_decode("=?ks_c_5601-1987?b?x9GxuQ==?=", "\xed\x95\x9c\xea\xb5\xad");
	expect_decode("=?gb2312?b?1tA=?=", "\xe4\xb8\xad");
}

static void expect_date(const char *in, long long want, int want_tz)
{
	time_t t = 0;
	int tz = 12345;
	const char *mime = "Date: ";
	struct buf b = BUF_INIT;
	buf_printf(&b, "%s%s\r\n\r\n", mime, in);
	struct mime_message msg;
	mime_parse_buffer(b.data, b.len, &msg);
	t = msg.date;
	tz = msg.date_tz_minutes;
	TEST_ASSERT_INT(t, want);
	TEST_ASSERT_INT(tz, want_tz);
	if (t != want)
		fprintf(stderr, "  date was: %s\n", in);
	mime_message_free(&msg);
	buf_free(&b);
}

static void test_dates(void)
{
	expect_date("Mon, 2 Mar 2026 09:14:05 +0100", 1772439245, 60);
	expect_date("2 Mar 2026 09:14:05 +0100", 1772439245, 60);
	expect_date("Mon, 02 Mar 2026 08:14:05 GMT", 1772439245, 0);
	expect_date("Mon, 2 Mar 2026 03:14:05 EST", 1772439245, -300);
	expect_date("Mon, 2 Mar 2026 00:14:05 PST", 1772439245, -480);
	expect_date("Mon, 2 Mar 2026 08:14 +0000", 1772439240, 0);
	expect_date("Mon (day), 2 (of) Mar 2026 08:14:05 +0000 (UTC)", 1772439245, 0);
	expect_date("Mon, 2 Mar 26 08:14:05 +0000", 1772439245, 0);
	expect_date("Mon, 2 Mar 126 08:14:05 +0000", 1772439245, 0);
	expect_date("Tue, 1 Jan 99 00:00:00 +0000", 915148800, 0);
	expect_date("2-Mar-2026 08:14:05 +0000", 1772439245, 0);
	expect_date("Mon, 2 Mar 2026 08:14:05", 1772439245, 0);
	expect_date("Mon, 2 Mar 2026 08:14:05 Z", 1772439245, 0);
	expect_date("Mon, 2 Mar 2026 08:14:05 XYZ", 1772439245, 0);
	expect_date("Mon, 2 Mar 2026 13:44:05 +0530", 1772439245, 330);
	expect_date("garbage", 0, 0);
	expect_date("Mon, 2 Foo 2026 08:14:05 +0000", 0, 0);
	expect_date("Mon, 32 Mar 2026 08:14:05 +0000", 0, 0);
	expect_date("Mon, 2 Mar 2026 25:14:05 +0000", 0, 0);
	expect_date("", 0, 0);
}

static void expect_structure(const char *message, const char *want)
{
	struct mime_message msg;
	mime_parse_buffer(message, strlen(message), &msg);
	TEST_ASSERT_STR(msg.bodystructure, want);
	assert_sound(&msg);
	struct mime_message split;
	parse_in_pieces(message, strlen(message), 1, &split);
	TEST_ASSERT(messages_equal(&msg, &split));
	mime_message_free(&split);
	mime_message_free(&msg);
}

static void test_edge_structures(void)
{
	/* empty input */
	expect_structure("", "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)");
	struct mime_message msg;
	mime_parse_buffer("", 0, &msg);
	TEST_ASSERT_STR(msg.envelope, "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
	TEST_ASSERT_INT(msg.part_count, 1);
	mime_message_free(&msg);
	/* multipart without a boundary, or whose boundary never comes: one empty part */
	expect_structure("Content-Type: multipart/mixed\r\n\r\nx\r\n",
		"((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL) \"mixed\" NIL NIL NIL NIL)");
	expect_structure("Content-Type: multipart/mixed; boundary=q\r\n\r\nnothing\r\n",
		"((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"q\") NIL NIL NIL)");
	/* invalid Content-Type: the RFC 2045 default */
	expect_structure("Content-Type: text\r\n\r\nx\r\n",
		"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1 NIL NIL NIL NIL)");
	/* type and subtype keep their case; charset added to any text type */
	expect_structure("Content-Type: TEXT/HTML\r\nContent-Transfer-Encoding: BASE64\r\n\r\nx",
		"(\"TEXT\" \"HTML\" (\"charset\" \"us-ascii\") NIL NIL \"BASE64\" 1 0 NIL NIL NIL NIL)");
	/* parts right after one another, an empty part, a header with no body */
	expect_structure("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n--b\r\n\r\n--b\r\nContent-Type: text/html\r\n--b--\r\n",
		"((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)"
		"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)"
		"(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"b\") NIL NIL NIL)");
	/* an outer boundary closes the inner multipart */
	expect_structure("Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n"
		"Content-Type: multipart/alternative; boundary=i\r\n\r\n--i\r\n\r\ninner\r\n"
		"--o\r\n\r\nsecond\r\n--o--\r\n",
		"(((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 0 NIL NIL NIL NIL) \"alternative\" (\"boundary\" \"i\") NIL NIL NIL)"
		"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 0 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"o\") NIL NIL NIL)");
	/* RFC 2046: whatever follows the boundary on its line, it delimits */
	expect_structure("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b trailing words\r\n\r\nx\r\n--bz\r\n\r\nyy\r\n--b--\r\n",
		"((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0 NIL NIL NIL NIL)"
		"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 2 0 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"b\") NIL NIL NIL)");
	/* an inner boundary that is a prefix of the outer one: the longer wins */
	expect_structure("Content-Type: multipart/mixed; boundary=bb\r\n\r\n--bb\r\n"
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\ninner\r\n--bb\r\n\r\nouter\r\n--bb--\r\n",
		"(((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 0 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"b\") NIL NIL NIL)"
		"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 0 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"bb\") NIL NIL NIL)");
	/* transport padding after the boundary */
	expect_structure("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b  \t\r\n\r\nx\r\n--b-- trailing words\r\n",
		"((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"b\") NIL NIL NIL)");
	/* message/rfc822 at the top, and one with no header */
	expect_structure("Content-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\nbody\r\n",
		"(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 21 (NIL \"in\" NIL NIL NIL NIL NIL NIL NIL NIL) "
		"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1 NIL NIL NIL NIL) 3 NIL NIL NIL NIL)");
	expect_structure("Content-Type: message/global\r\n\r\nSubject: \xc3\xa9\r\n\r\n",
		"(\"message\" \"global\" NIL NIL NIL \"7bit\" 15 (NIL {2}\r\n\xc3\xa9 NIL NIL NIL NIL NIL NIL NIL NIL) "
		"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL) 2 NIL NIL NIL NIL)");
	expect_structure("Content-Type: message/rfc822\r\n\r\n",
		"(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 0 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) "
		"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL) 0 NIL NIL NIL NIL)");
	/* disposition, language, location, MD5 and a quoted parameter with escapes */
	expect_structure("Content-Type: application/x-thing; a=\"q\\\"uote\\\\d\"\r\n"
		"Content-Disposition: INLINE\r\nContent-Language: en (English), de-CH\r\n"
		"Content-Location: http://example.com/x\r\nContent-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n\r\n",
		"(\"application\" \"x-thing\" (\"a\" \"q\\\"uote\\\\d\") NIL NIL \"7bit\" 0 \"Q2hlY2sgSW50ZWdyaXR5IQ==\" "
		"(\"INLINE\" NIL) (\"en\" \"de-CH\") \"http://example.com/x\")");
	/* 8-bit parameter values go out as literals */
	expect_structure("Content-Type: application/octet-stream; name=\"\xc3\xa9t\xc3\xa9.txt\"\r\n\r\n",
		"(\"application\" \"octet-stream\" (\"name\" {9}\r\n\xc3\xa9t\xc3\xa9.txt) NIL NIL \"7bit\" 0 NIL NIL NIL NIL)");
}

static void test_edge_parameters(void)
{
	/* an encoded continuation followed by a plain one: the plain piece is
	 * percent-encoded into the one RFC 2231 value */
	expect_structure("Content-Type: application/x; name*0*=utf-8''%C3%A9; name*1=\" x*\"\r\n\r\n",
		"(\"application\" \"x\" (\"name*\" \"utf-8''%C3%A9%20x%2A\") NIL NIL \"7bit\" 0 NIL NIL NIL NIL)");
	/* sections out of order are joined in order, after the plain
	 * parameters; a set that is not exactly 0..n (a repeat, a gap, no 0)
	 * stays as written (Dovecot's rules) */
	expect_structure("Content-Type: application/x; n*2=c; m=z; n*0=a; n*1=b\r\n\r\n",
		"(\"application\" \"x\" (\"m\" \"z\" \"n\" \"abc\") NIL NIL \"7bit\" 0 NIL NIL NIL NIL)");
	expect_structure("Content-Type: application/x; n*1=x; n*0=a; n*1=b\r\n\r\n",
		"(\"application\" \"x\" (\"n*1\" \"x\" \"n*0\" \"a\" \"n*1\" \"b\") NIL NIL \"7bit\" 0 NIL NIL NIL NIL)");
	expect_structure("Content-Type: application/x; n*0*=a; n*2=c\r\n\r\n",
		"(\"application\" \"x\" (\"n*0*\" \"a\" \"n*2\" \"c\") NIL NIL \"7bit\" 0 NIL NIL NIL NIL)");
	expect_structure("Content-Type: application/x; n*1=b\r\n\r\n",
		"(\"application\" \"x\" (\"n*1\" \"b\") NIL NIL \"7bit\" 0 NIL NIL NIL NIL)");
	/* the charset added to a text part goes last */
	expect_structure("Content-Type: text/plain; format=flowed; n*0=a; n*1=b\r\n\r\n",
		"(\"text\" \"plain\" (\"format\" \"flowed\" \"n\" \"ab\" \"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)");
	/* junk between parameters, missing names and values, comments */
	expect_structure("Content-Type: text/plain (a \\) b); charset=us-ascii junk; =x; lone; format=flowed (c)\r\n\r\n",
		"(\"text\" \"plain\" (\"charset\" \"us-ascii\" \"format\" \"flowed\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)");
	expect_structure("Content-Type: text/\r\n\r\n",
		"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)");
	/* a message/rfc822 part whose header is cut short by the boundary */
	expect_structure("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n--b--\r\n",
		"((\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 0 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) "
		"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL) 0 NIL NIL NIL NIL) "
		"\"mixed\" (\"boundary\" \"b\") NIL NIL NIL)");
	/* adjacent encoded words in different charsets */
	expect_decode("=?utf-8?q?a?= =?iso-8859-1?q?=E9?=", "a\xc3\xa9");
	expect_decode("=?utf-8?b?Kz8v?=", "+?/");
}

static void test_envelope_addresses(void)
{
	static const struct { const char *header; const char *want; } cases[] = {
		{ "From: <>\r\n", "((NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\"))" },
		{ "From: x@\r\n", "((NIL NIL \"x\" \"MISSING_DOMAIN\"))" },
		{ "From: @example.com\r\n", "((NIL NIL \"MISSING_MAILBOX\" \"example.com\"))" },
		{ "From: ,, a@b ,,\r\n", "((NIL NIL \"a\" \"b\"))" },
		{ "From: John Q. Public <jqp@example.com>\r\n", "((\"John Q. Public\" NIL \"jqp\" \"example.com\"))" },
		{ "From: \"\" <a@b>\r\n", "((NIL NIL \"a\" \"b\"))" },
		{ "From: a@b (Real Name)\r\n", "((\"Real Name\" NIL \"a\" \"b\"))" },
		{ "From: j (c1) @ (c2) example (c3) . com\r\n", "((\"c3\" NIL \"j\" \"example.com\"))" },
		{ "From: \"a\\\\b\\\"c\" <d@e>\r\n", "((\"a\\\\b\\\"c\" NIL \"d\" \"e\"))" },
		{ "From: a@[192.0.2.1]\r\n", "((NIL NIL \"a\" \"[192.0.2.1]\"))" },
		{ "From: G: ;\r\n", "((NIL NIL \"G\" NIL)(NIL NIL NIL NIL))" },
		{ "From: G: a@b\r\n", "((NIL NIL \"G\" NIL)(NIL NIL \"a\" \"b\")(NIL NIL NIL NIL))" },
		{ "From: =?utf-8?q?J=C3=B6rg?= <j@x>\r\n", "((\"=?utf-8?q?J=C3=B6rg?=\" NIL \"j\" \"x\"))" },
		{ "From: \xc3\x96 <o@x>\r\n", "(({2}\r\n\xc3\x96 NIL \"o\" \"x\"))" },
		/* an unquoted address as the display name; a name and no address */
		{ "From: a@b <c@d>\r\n", "((\"a@b\" NIL \"c\" \"d\"))" },
		{ "From: Mary Smith\r\n", "((\"Mary Smith\" NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\"))" },
		{ "From: MAILER-DAEMON\r\n", "((NIL NIL \"MAILER-DAEMON\" \"MISSING_DOMAIN\"))" },
		/* RFC 5322 appendix A.5 (the same as Dovecot gives) */
		{ "From: Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>\r\n",
		  "((\"Pete\" NIL \"pete\" \"silly.test\"))" },
		{ "From:A Group(Some people)\r\n     :Chris Jones <c@(Chris's host.)public.example>,\r\n"
		  "         joe@example.org,\r\n  John <jdoe@one.test> (my dear friend); (the end of the group)\r\n",
		  "((NIL NIL \"A Group\" NIL)(\"Chris Jones\" NIL \"c\" \"public.example\")"
		  "(NIL NIL \"joe\" \"example.org\")(\"John\" NIL \"jdoe\" \"one.test\")(NIL NIL NIL NIL))" },
		{ "From:(Empty list)(start)Hidden recipients  :(nobody(that I know))  ;\r\n",
		  "((NIL NIL \"Hidden recipients\" NIL)(NIL NIL NIL NIL))" },
		{ "From: John Doe <jdoe@machine(comment).  example>\r\n",
		  "((\"John Doe\" NIL \"jdoe\" \"machine.example\"))" },
		{ "From: \"Giant; \\\"Big\\\" Box\" <sysservices@example.net>\r\n",
		  "((\"Giant; \\\"Big\\\" Box\" NIL \"sysservices\" \"example.net\"))" },
		{ "From: <<<>>>, @@@, ;;;, :::\r\n", NULL },
		{ "From: \"unterminated <a@b>\r\n", NULL },
		{ "From: (unterminated comment <a@b>\r\n", NULL },
		{ "From: a@b (x \\) y)\r\n", "((\"x ) y\" NIL \"a\" \"b\"))" },
		{ "From: a@b \"junk\" (c) more, d@e\r\n", "((NIL NIL \"a\" \"b\")(NIL NIL \"d\" \"e\"))" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mime_message msg;
		struct buf b = BUF_INIT;
		buf_printf(&b, "%s\r\n", cases[i].header);
		mime_parse_buffer(b.data, b.len, &msg);
		assert_sound(&msg);
		if (cases[i].want != NULL) {
			/* the From list: after "(NIL NIL " */
			const char *from = msg.envelope + strlen("(NIL NIL ");
			size_t want_len = strlen(cases[i].want);
			TEST_ASSERT(strncmp(from, cases[i].want, want_len) == 0);
			if (strncmp(from, cases[i].want, want_len) != 0)
				fprintf(stderr, "  %s  got:  %s\n  want: %s\n", cases[i].header,
					msg.envelope, cases[i].want);
		}
		mime_message_free(&msg);
		buf_free(&b);
	}
}

/* Bounds: deep nesting, many parts, huge headers, endless lines. */
static void test_bounds(void)
{
	struct buf b = BUF_INIT;
	struct mime_message msg, split;

	for (int i = 0; i < 200; i++)
		buf_printf(&b, "Content-Type: multipart/mixed; boundary=\"b%03d\"\r\n\r\n--b%03d\r\n", i, i);
	buf_append_str(&b, "\r\ndeepest\r\n");
	mime_parse_buffer(b.data, b.len, &msg);
	assert_sound(&msg);
	TEST_ASSERT(msg.part_count <= MIME_MAX_DEPTH + 1);
	parse_in_pieces(b.data, b.len, 1, &split);
	TEST_ASSERT(messages_equal(&msg, &split));
	mime_message_free(&split);
	mime_message_free(&msg);

	buf_reset(&b);
	for (int i = 0; i < 200; i++)
		buf_append_str(&b, "Content-Type: message/rfc822\r\n\r\n");
	buf_append_str(&b, "Subject: deep\r\n\r\nbody\r\n");
	mime_parse_buffer(b.data, b.len, &msg);
	assert_sound(&msg);
	TEST_ASSERT(msg.part_count <= MIME_MAX_DEPTH + 1);
	mime_message_free(&msg);

	buf_reset(&b);
	buf_append_str(&b, "Content-Type: multipart/mixed; boundary=b\r\n\r\n");
	for (int i = 0; i < 3 * MIME_MAX_PARTS; i++)
		buf_append_str(&b, "--b\r\n\r\nx\r\n");
	buf_append_str(&b, "--b--\r\n");
	mime_parse_buffer(b.data, b.len, &msg);
	assert_sound(&msg);
	TEST_ASSERT_INT(msg.part_count, MIME_MAX_PARTS);
	TEST_ASSERT_INT(msg.parts[0].body_end, b.len);
	mime_message_free(&msg);

	/* a header bigger than the cap: the rest of it is dropped, the body
	 * still starts after the blank line */
	buf_reset(&b);
	buf_append_str(&b, "Subject: ");
	for (int i = 0; i < MIME_MAX_HEADER_SIZE / 10; i++)
		buf_append_str(&b, "xxxxxxxxxx");
	buf_append_str(&b, "\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n");
	mime_parse_buffer(b.data, b.len, &msg);
	assert_sound(&msg);
	TEST_ASSERT_INT(msg.part_count, 1);
	TEST_ASSERT_INT(msg.parts[0].body_offset, b.len - strlen("--b\r\n\r\nx\r\n"));
	TEST_ASSERT(strncmp(msg.bodystructure, "(\"text\" \"plain\"", 15) == 0);
	parse_in_pieces(b.data, b.len, 4093, &split);
	TEST_ASSERT(messages_equal(&msg, &split));
	mime_message_free(&split);
	mime_message_free(&msg);

	/* one endless body line, no line end at all */
	buf_reset(&b);
	buf_append_str(&b, "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n");
	for (int i = 0; i < 100000; i++)
		buf_append_str(&b, "--b--b--b--b");
	mime_parse_buffer(b.data, b.len, &msg);
	assert_sound(&msg);
	TEST_ASSERT_INT(msg.part_count, 2);
	TEST_ASSERT_INT(msg.parts[1].body_crlf_size, 1200000);
	mime_message_free(&msg);

	buf_free(&b);
}

static char *decode_part(const char *data, const struct mime_message *msg,
			 const char *section, bool to_utf8, size_t *len_r)
{
	int idx = mime_find_part(msg, section);
	TEST_ASSERT(idx >= 0);
	if (idx < 0)
		return xstrdup("");
	const struct mime_part *part = &msg->parts[idx];
	return mime_decode_body(data + part->header_offset,
				part->body_offset - part->header_offset,
				data + part->body_offset, part->body_end - part->body_offset,
				to_utf8, len_r);
}

static void test_decode_body(void)
{
	size_t len, dlen;
	struct mime_message msg;
	char *data = corpus_parse("encoded-words.eml", &len, &msg);
	char *text = decode_part(data, &msg, "1", true, &dlen);
	TEST_ASSERT_STR(text, "Gr\xc3\xbc\xc3\x9f" "e aus K\xc3\xb6ln\r\n");
	free(text);
	text = decode_part(data, &msg, "1", false, &dlen);
	TEST_ASSERT_STR(text, "Gr\xfc\xdf" "e aus K\xf6ln\r\n");
	free(text);
	corpus_done(data, &msg);

	data = corpus_parse("nested-mixed.eml", &len, &msg);
	char *pdf = decode_part(data, &msg, "2", true, &dlen);
	TEST_ASSERT_INT(dlen, 768);
	bool same = dlen == 768;
	for (size_t i = 0; same && i < dlen; i++)
		same = (unsigned char)pdf[i] == i % 256;
	TEST_ASSERT(same);
	free(pdf);
	corpus_done(data, &msg);

	/* quoted-printable: soft breaks, padding before them, stray '=' */
	static const char header[] = "Content-Type: text/plain; charset=utf-8\r\n"
		"Content-Transfer-Encoding: Quoted-Printable\r\n\r\n";
	static const char body[] = "caf=C3=A9 =\r\nau lait= \nx=3D1 =ZZ =";
	text = mime_decode_body(header, strlen(header), body, strlen(body), true, &dlen);
	TEST_ASSERT_STR(text, "caf\xc3\xa9 au laitx=1 =ZZ =");
	free(text);
	/* base64 in pieces with padding in the middle */
	static const char header64[] = "Content-Transfer-Encoding: base64\n\n";
	static const char body64[] = "SGk=\r\nIHRoZXJl\r\n";
	text = mime_decode_body(header64, strlen(header64), body64, strlen(body64), true, &dlen);
	TEST_ASSERT_STR(text, "Hi there");
	free(text);
}

static void test_header_filter(void)
{
	size_t len;
	struct mime_message msg;
	char *data = corpus_parse("simple-text.eml", &len, &msg);
	size_t hlen = msg.parts[0].body_offset;
	struct buf out = BUF_INIT;
	static const char *const names[] = { "subject", "FROM", "X-Missing" };
	mime_header_filter(data, hlen, names, 3, false, &out);
	TEST_ASSERT_STR(buf_str(&out), "From: Alice Example <alice@example.org>\r\n"
			"Subject: Lunch on Thursday?\r\n\r\n");
	buf_reset(&out);
	static const char *const drop[] = { "Received", "Return-Path", "Message-ID",
		"MIME-Version", "Content-Type", "Content-Transfer-Encoding", "Date" };
	mime_header_filter(data, hlen, drop, 7, true, &out);
	TEST_ASSERT_STR(buf_str(&out), "From: Alice Example <alice@example.org>\r\n"
			"To: Bob <bob@example.com>\r\nSubject: Lunch on Thursday?\r\n\r\n");
	buf_reset(&out);
	static const char *const received[] = { "received" };
	mime_header_filter(data, hlen, received, 1, false, &out);
	TEST_ASSERT_STR(buf_str(&out), "Received: from client.example.org (client.example.org [192.0.2.10])\r\n"
			"\tby mail.example.com with ESMTPSA id 4F2A1; Mon, 2 Mar 2026 09:14:07 +0100\r\n\r\n");
	corpus_done(data, &msg);

	/* LF-only input comes out with CRLF; a last line without a line end */
	buf_reset(&out);
	static const char lf[] = "Subject: a\n b\nTo: c\nSubject : d";
	static const char *const subject[] = { "Subject" };
	mime_header_filter(lf, strlen(lf), subject, 1, false, &out);
	TEST_ASSERT_STR(buf_str(&out), "Subject: a\r\n b\r\nSubject : d\r\n\r\n");
	buf_reset(&out);
	mime_header_filter("", 0, subject, 1, false, &out);
	TEST_ASSERT_STR(buf_str(&out), "\r\n");
	buf_free(&out);
}

/* Inputs built to make a careless parser slow or greedy. */
static void test_hostile_headers(void)
{
	struct buf b = BUF_INIT;
	struct mime_message msg;

	/* many duplicate address fields are joined in linear time */
	for (int i = 0; i < 20000; i++)
		buf_append_str(&b, "To: a@b\r\n");
	buf_append_str(&b, "\r\n");
	mime_parse_buffer(b.data, b.len, &msg);
	assert_sound(&msg);
	TEST_ASSERT(msg.to != NULL && strlen(msg.to) == 20000 * 3 + 19999 * 2);
	mime_message_free(&msg);

	/* many RFC 2231 sections, out of order and repeated */
	buf_reset(&b);
	buf_append_str(&b, "Content-Type: text/plain");
	for (int i = 0; i < 20000; i++)
		buf_printf(&b, "; n*%d=x", 9999 - i % 500);
	buf_append_str(&b, "\r\n\r\n");
	mime_parse_buffer(b.data, b.len, &msg);
	assert_sound(&msg);
	mime_message_free(&msg);

	/* encoded-word starts that never end */
	buf_reset(&b);
	buf_append_str(&b, "Subject: ");
	for (int i = 0; i < 30000; i++)
		buf_append_str(&b, "=?a?q?x");
	buf_append_str(&b, "\r\n\r\n");
	mime_parse_buffer(b.data, b.len, &msg);
	assert_sound(&msg);
	TEST_ASSERT(msg.subject != NULL && strlen(msg.subject) == 30000 * 7);
	mime_message_free(&msg);

	/* structure material past MIME_MAX_STRUCTURE_SIZE: later parts get
	 * the default type */
	buf_reset(&b);
	buf_append_str(&b, "Content-Type: multipart/mixed; boundary=b\r\n\r\n");
	for (int i = 0; i < MIME_MAX_PARTS; i++) {
		buf_append_str(&b, "--b\r\nContent-Type: application/x; p=\"");
		for (int j = 0; j < 800; j++)
			buf_append_str(&b, "\\\"\\\"\\\"\\\"\\\"");
		buf_append_str(&b, "\"\r\n\r\nx\r\n");
	}
	mime_parse_buffer(b.data, b.len, &msg);
	assert_sound(&msg);
	TEST_ASSERT_INT(msg.part_count, MIME_MAX_PARTS);
	TEST_ASSERT(strlen(msg.bodystructure) < MIME_MAX_STRUCTURE_SIZE + 200 * MIME_MAX_PARTS);
	TEST_ASSERT(strstr(msg.bodystructure, "(\"text\" \"plain\"") != NULL);
	mime_message_free(&msg);
	buf_free(&b);
}

static void test_nul_in_header(void)
{
	static const char m[] = "Subject: a\0b\r\nContent-Type: text/plain; charset=\"x\0y\"\r\n\r\n";
	struct mime_message msg;
	mime_parse_buffer(m, sizeof(m) - 1, &msg);
	TEST_ASSERT_STR(msg.envelope, "(NIL {5}\r\na\xef\xbf\xbd" "b NIL NIL NIL NIL NIL NIL NIL NIL)");
	TEST_ASSERT_STR(msg.subject, "a\xef\xbf\xbd" "b");
	TEST_ASSERT_STR(msg.bodystructure, "(\"text\" \"plain\" (\"charset\" {5}\r\nx\xef\xbf\xbd" "y) NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)");
	assert_sound(&msg);
	mime_message_free(&msg);
}

/* Repeated address headers: one list, but a group or an unterminated
 * quote ends with its own header. */
static void test_repeated_address_headers(void)
{
	static const char m[] = "To: G: a@b\r\nTo: c@d\r\nCc: \"open <x@y>\r\nCc: e@f\r\n\r\n";
	struct mime_message msg;
	mime_parse_buffer(m, sizeof(m) - 1, &msg);
	TEST_ASSERT_STR(msg.envelope, "(NIL NIL NIL NIL NIL ((NIL NIL \"G\" NIL)(NIL NIL \"a\" \"b\")"
			"(NIL NIL NIL NIL)(NIL NIL \"c\" \"d\")) ((\"open <x@y>\" NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\")"
			"(NIL NIL \"e\" \"f\")) NIL NIL NIL)");
	TEST_ASSERT_STR(msg.to, "G: a@b, c@d");
	TEST_ASSERT_STR(msg.cc, "\"open <x@y>, e@f");
	assert_sound(&msg);
	mime_message_free(&msg);
}

/* Content-* fields of a message that is not MIME mean nothing. */
static void test_non_mime_message(void)
{
	expect_structure("Content-Transfer-Encoding: quoted-printable\r\n"
		"Content-Disposition: attachment\r\n\r\nx\r\n",
		"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1 NIL NIL NIL NIL)");
	expect_structure("MIME-Version: 1.0\r\nContent-Transfer-Encoding: quoted-printable\r\n"
		"Content-Disposition: attachment\r\n\r\nx\r\n",
		"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"quoted-printable\" 3 1 NIL (\"attachment\" NIL) NIL NIL)");
	expect_structure("Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\nx\r\n",
		"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"base64\" 3 1 NIL NIL NIL NIL)");
	/* an embedded message follows the same rule; body parts are MIME */
	expect_structure("MIME-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\n"
		"Content-ID: <x>\r\n\r\n",
		"(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 19 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) "
		"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL) 2 NIL NIL NIL NIL)");
	expect_structure("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-ID: <x>\r\n\r\n--b--\r\n",
		"((\"text\" \"plain\" (\"charset\" \"us-ascii\") \"<x>\" NIL \"7bit\" 0 0 NIL NIL NIL NIL) "
		"\"mixed\" (\"boundary\" \"b\") NIL NIL NIL)");
}

static void test_parser_lifecycle(void)
{
	static const char m[] = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
		"Content-Type: message/rfc822\r\n\r\nSubject: x\r\n";
	/* freed before finishing (an aborted delivery), deep inside parts */
	struct mime_parser *parser = mime_parser_new();
	mime_parser_feed(parser, m, strlen(m));
	mime_parser_free(&parser);
	TEST_ASSERT(parser == NULL);
	mime_parser_free(&parser);

	/* finishing twice gives the same; feeding after finishing is ignored */
	struct mime_message a, b;
	parser = mime_parser_new();
	mime_parser_feed(parser, m, strlen(m));
	mime_parser_finish(parser, &a);
	mime_parser_feed(parser, "more\r\n", 6);
	mime_parser_finish(parser, &b);
	mime_parser_free(&parser);
	TEST_ASSERT(messages_equal(&a, &b));
	TEST_ASSERT_INT(a.part_count, 3);
	TEST_ASSERT_INT(a.size, strlen(m));
	mime_message_free(&a);
	mime_message_free(&b);
	TEST_ASSERT(a.parts == NULL && a.envelope == NULL);
}

/* Small inputs at the edges of the line and boundary handling. (The
 * fuzzer has found no crash so far; what it finds belongs here.) */
static void test_small_inputs(void)
{
	static const char *const cases[] = {
		"\n",
		"\r",
		"\r\n\r\n",
		"--\n",
		"Content-Type: multipart/x; boundary=\"\"\n\n--\n",
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mime_message msg, split;
		mime_parse_buffer(cases[i], strlen(cases[i]), &msg);
		assert_sound(&msg);
		parse_in_pieces(cases[i], strlen(cases[i]), 1, &split);
		TEST_ASSERT(messages_equal(&msg, &split));
		mime_message_free(&split);
		mime_message_free(&msg);
	}
}

static void test_parse_fd(void)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/nested-mixed.eml", MIME_DIR);
	FILE *f = fopen(path, "rb");
	TEST_ASSERT(f != NULL);
	if (f == NULL)
		return;
	struct mime_message a, b;
	TEST_ASSERT_INT(mime_parse_fd(fileno(f), &a), 0);
	fclose(f);
	size_t len;
	char *data = corpus_read("nested-mixed.eml", &len);
	mime_parse_buffer(data, len, &b);
	TEST_ASSERT(messages_equal(&a, &b));
	mime_message_free(&a);
	mime_message_free(&b);
	free(data);
	TEST_ASSERT_INT(mime_parse_fd(-1, &a), -1);
}

int main(void)
{
	test_run("corpus_expected", test_corpus_expected);
	test_run("corpus_splits", test_corpus_splits);
	test_run("crlf_sizes", test_crlf_sizes);
	test_run("offsets_nested", test_offsets_nested);
	test_run("offsets_rfc822", test_offsets_rfc822);
	test_run("lf_only_sizes", test_lf_only_sizes);
	test_run("decoded_fields", test_decoded_fields);
	test_run("decode_header", test_decode_header);
	test_run("dates", test_dates);
	test_run("edge_structures", test_edge_structures);
	test_run("edge_parameters", test_edge_parameters);
	test_run("envelope_addresses", test_envelope_addresses);
	test_run("bounds", test_bounds);
	test_run("decode_body", test_decode_body);
	test_run("header_filter", test_header_filter);
	test_run("hostile_headers", test_hostile_headers);
	test_run("nul_in_header", test_nul_in_header);
	test_run("repeated_address_headers", test_repeated_address_headers);
	test_run("non_mime_message", test_non_mime_message);
	test_run("parser_lifecycle", test_parser_lifecycle);
	test_run("small_inputs", test_small_inputs);
	test_run("parse_fd", test_parse_fd);
	return test_end();
}

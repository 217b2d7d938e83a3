/* FETCH and UID FETCH (RFC 3501 6.4.5 / RFC 9051 6.4.5). ENVELOPE, BODY,
 * BODYSTRUCTURE and the part offsets come from the store's cache; body
 * sections are streamed from the message file with LF turned into CRLF
 * (the cached CRLF sizes make the literal sizes exact), a chunk at a time
 * as the output drains, never a whole message in memory. */
#include "imap/imap-private.h"
#include "store/store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FETCH_HIGH_WATER (256 * 1024)   /* stop producing above this */
#define FETCH_LOW_WATER (64 * 1024)     /* and go on below this */
#define FETCH_CHUNK 32768
#define FETCH_MAX_HEADER (1024 * 1024)  /* HEADER.FIELDS reads the header whole */

enum fetch_kind {
	FETCH_FLAGS, FETCH_UID, FETCH_INTERNALDATE, FETCH_SIZE, FETCH_ENVELOPE,
	FETCH_BODY, FETCH_BODYSTRUCTURE, FETCH_SECTION, FETCH_MODSEQ,
	FETCH_SAVEDATE,                      /* RFC 8514 */
	FETCH_EMAILID, FETCH_THREADID,       /* RFC 8474 */
};

enum section_kind {
	SEC_FULL, SEC_HEADER, SEC_FIELDS, SEC_FIELDS_NOT, SEC_TEXT, SEC_MIME,
	SEC_BINARY, SEC_BINARY_SIZE,   /* RFC 3516: a part with its CTE undone */
};

struct fetch_item {
	enum fetch_kind kind;
	enum section_kind sec;
	const char *part;            /* "" or "1.2" */
	const char **names;          /* HEADER.FIELDS(.NOT) */
	size_t name_count;
	bool peek, partial;
	uint64_t origin, count;
	const char *label;           /* the response's name: "BODY[HEADER]<0>", "RFC822" */
};

enum seg_kind {
	SEG_TEXT, SEG_FILE, SEG_FIELDS,
	SEG_BINARY,   /* laid out; becomes SEG_DECODE (or text) once the file is open */
	SEG_DECODE,   /* text [from, to), then the part decoded as it streams */
};

struct fetch_seg {
	enum seg_kind kind;
	size_t from, to;             /* SEG_TEXT: bytes of ctx->text */
	uint64_t start, end;         /* SEG_FILE / SEG_FIELDS / SEG_BINARY: file range */
	uint64_t body;               /* SEG_BINARY: where the part's body starts */
	uint64_t skip, left;         /* converted bytes to skip, then to send */
	enum imap_cte cte;           /* SEG_DECODE */
	bool started, label_sent;
	const struct fetch_item *item;
};

struct fetch_ctx {
	char *tag;
	const char *done_text;
	struct fetch_item *items;
	size_t item_count;
	bool need_cache, need_file, add_flags, uid, condstore;
	uint64_t changedsince;      /* CHANGEDSINCE: only MODSEQ above this */
	uint32_t *uids;
	size_t uid_count, pos;
	/* the message being sent */
	struct buf text;
	struct fetch_seg *segs;
	size_t seg_count, seg_cap, seg_pos;
	int fd;
	uint64_t fpos;
	bool prev_cr;
	/* BINARY: the decoder and its buffers (allocated on first use) */
	struct fetch_decode {
		struct imap_decoder dec;
		char in[IMAP_DECODER_CHUNK];
		char out[IMAP_DECODER_OUT_MAX];
	} *decode;
	bool msg_unknown_cte;       /* this message has a part we cannot decode */
	bool unknown_cte;           /* some message had: NO [UNKNOWN-CTE] */
};

/* ---- parsing the items -------------------------------------------------- */

static int parse_header_names(struct pool *pool, const char *p, struct fetch_item *it)
{
	if (*p++ != ' ' || *p++ != '(')
		return -1;
	size_t cap = 8;
	it->names = pool_alloc(pool, cap * sizeof(*it->names));
	while (*p != ')') {
		if (it->name_count > 0 && *p++ != ' ')
			return -1;
		const char *start = p;
		char *name;
		if (*p == '"') {
			start = ++p;
			while (*p != '\0' && *p != '"')
				p++;
			if (*p != '"')
				return -1;
			name = pool_strndup(pool, start, (size_t)(p - start));
			p++;
		} else {
			while (*p > ' ' && *p < 0x7f && *p != ')' && *p != '(' && *p != '"')
				p++;
			if (p == start)
				return -1;
			name = pool_strndup(pool, start, (size_t)(p - start));
		}
		if (it->name_count == cap) {
			const char **bigger = pool_alloc(pool, cap * 2 * sizeof(*bigger));
			memcpy(bigger, it->names, cap * sizeof(*bigger));
			it->names = bigger;
			cap *= 2;
		}
		it->names[it->name_count++] = name;
	}
	return it->name_count > 0 && p[1] == '\0' ? 0 : -1;
}

/* section text between the brackets */
static int parse_section(struct pool *pool, const char *sec, struct fetch_item *it)
{
	const char *p = sec;
	while (*p >= '1' && *p <= '9') {
		while (*p >= '0' && *p <= '9')
			p++;
		if (*p != '.')
			break;
		p++;
	}
	size_t part_len = (size_t)(p - sec);
	if (part_len > 0 && sec[part_len - 1] == '.')
		part_len--;
	else if (part_len > 0 && *p != '\0')
		return -1;
	it->part = pool_strndup(pool, sec, part_len);
	if (*p == '\0')
		it->sec = SEC_FULL;
	else if (strcmp(p, "HEADER") == 0)
		it->sec = SEC_HEADER;
	else if (strcmp(p, "TEXT") == 0)
		it->sec = SEC_TEXT;
	else if (strcmp(p, "MIME") == 0 && part_len > 0)
		it->sec = SEC_MIME;
	else if (strncmp(p, "HEADER.FIELDS.NOT", 17) == 0) {
		it->sec = SEC_FIELDS_NOT;
		return parse_header_names(pool, p + 17, it);
	} else if (strncmp(p, "HEADER.FIELDS", 13) == 0) {
		it->sec = SEC_FIELDS;
		return parse_header_names(pool, p + 13, it);
	} else
		return -1;
	return 0;
}

static int parse_partial(const char *p, struct fetch_item *it)
{
	if (*p == '\0')
		return 0;
	char *end;
	if (*p != '<' || p[1] < '0' || p[1] > '9')
		return -1;
	errno = 0;
	it->origin = strtoull(p + 1, &end, 10);
	if (*end != '.' || end[1] < '1' || end[1] > '9' || errno != 0)
		return -1;
	it->count = strtoull(end + 1, &end, 10);
	if (strcmp(end, ">") != 0 || errno != 0 || it->count == 0)
		return -1;
	it->partial = true;
	return 0;
}

static int parse_body_section(struct pool *pool, const char *atom, struct fetch_item *it)
{
	const char *open = strchr(atom, '[');
	const char *close = open != NULL ? strrchr(open, ']') : NULL;
	if (close == NULL)
		return -1;
	size_t plen = (size_t)(open - atom);
	char *prefix = pool_strndup(pool, atom, plen);
	for (char *q = prefix; *q != '\0'; q++)
		if (*q >= 'a' && *q <= 'z')
			*q = (char)(*q - 'a' + 'A');
	bool binary = strncmp(prefix, "BINARY", 6) == 0;
	if (strcmp(prefix, "BODY.PEEK") == 0 || strcmp(prefix, "BINARY.PEEK") == 0)
		it->peek = true;
	else if (strcmp(prefix, "BINARY.SIZE") == 0)
		it->peek = true;
	else if (strcmp(prefix, "BODY") != 0 && strcmp(prefix, "BINARY") != 0)
		return -1;
	char *sec = pool_strndup(pool, open + 1, (size_t)(close - open - 1));
	if (binary) {
		/* section-binary = "[" [section-part] "]" */
		if (parse_section(pool, sec, it) < 0 || it->sec != SEC_FULL)
			return -1;
		bool size = strcmp(prefix, "BINARY.SIZE") == 0;
		if (size && close[1] != '\0')
			return -1;
		if (!size && parse_partial(close + 1, it) < 0)
			return -1;
		it->kind = FETCH_SECTION;
		it->sec = it->part[0] == '\0' && !size ? SEC_FULL : size ? SEC_BINARY_SIZE : SEC_BINARY;
		const char *name = size ? "BINARY.SIZE" : "BINARY";
		it->label = it->partial ? pool_printf(pool, "%s[%s]<%llu>", name, sec,
						      (unsigned long long)it->origin)
					: pool_printf(pool, "%s[%s]", name, sec);
		return 0;
	}
	/* section keywords are case-insensitive; header names keep their case */
	for (char *q = sec; *q != '\0' && *q != ' '; q++)
		if (*q >= 'a' && *q <= 'z')
			*q = (char)(*q - 'a' + 'A');
	if (parse_section(pool, sec, it) < 0 || parse_partial(close + 1, it) < 0)
		return -1;
	it->kind = FETCH_SECTION;
	it->label = it->partial ? pool_printf(pool, "BODY[%s]<%llu>", sec,
					      (unsigned long long)it->origin)
				: pool_printf(pool, "BODY[%s]", sec);
	return 0;
}

static int parse_item(struct pool *pool, const char *atom, struct fetch_item *it)
{
	static const struct { const char *name; enum fetch_kind kind; } simple[] = {
		{ "FLAGS", FETCH_FLAGS }, { "UID", FETCH_UID },
		{ "INTERNALDATE", FETCH_INTERNALDATE }, { "RFC822.SIZE", FETCH_SIZE },
		{ "ENVELOPE", FETCH_ENVELOPE }, { "BODY", FETCH_BODY },
		{ "BODYSTRUCTURE", FETCH_BODYSTRUCTURE }, { "MODSEQ", FETCH_MODSEQ },
		{ "SAVEDATE", FETCH_SAVEDATE }, { "EMAILID", FETCH_EMAILID },
		{ "THREADID", FETCH_THREADID },
	};
	memset(it, 0, sizeof(*it));
	for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++) {
		if (ascii_strcasecmp(atom, simple[i].name) == 0) {
			it->kind = simple[i].kind;
			it->label = simple[i].name;
			return 0;
		}
	}
	it->part = "";
	it->kind = FETCH_SECTION;
	if (ascii_strcasecmp(atom, "RFC822") == 0) {
		it->sec = SEC_FULL;
		it->label = "RFC822";
		return 0;
	}
	if (ascii_strcasecmp(atom, "RFC822.HEADER") == 0) {
		it->sec = SEC_HEADER;
		it->peek = true;
		it->label = "RFC822.HEADER";
		return 0;
	}
	if (ascii_strcasecmp(atom, "RFC822.TEXT") == 0) {
		it->sec = SEC_TEXT;
		it->label = "RFC822.TEXT";
		return 0;
	}
	return parse_body_section(pool, atom, it);
}

static int parse_items(struct imap_cmd *cmd, const struct imap_arg *arg, struct fetch_ctx *ctx)
{
	static const char *const macros[][5] = {
		{ "ALL", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE" },
		{ "FAST", "FLAGS", "INTERNALDATE", "RFC822.SIZE", NULL },
		{ "FULL", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE" },
	};
	const char *atom;
	if (imap_arg_atom(arg, &atom)) {
		for (size_t m = 0; m < 3; m++) {
			if (ascii_strcasecmp(atom, macros[m][0]) != 0)
				continue;
			ctx->items = pool_alloc(cmd->pool, 5 * sizeof(*ctx->items));
			for (size_t i = 1; i < 5 && macros[m][i] != NULL; i++)
				parse_item(cmd->pool, macros[m][i], &ctx->items[ctx->item_count++]);
			if (m == 2)
				parse_item(cmd->pool, "BODY", &ctx->items[ctx->item_count++]);
			return 0;
		}
		ctx->items = pool_alloc(cmd->pool, sizeof(*ctx->items));
		ctx->item_count = 1;
		return parse_item(cmd->pool, atom, &ctx->items[0]);
	}
	if (arg->type != IMAP_ARG_LIST || arg->count == 0)
		return -1;
	ctx->items = pool_alloc(cmd->pool, arg->count * sizeof(*ctx->items));
	for (size_t i = 0; i < arg->count; i++) {
		if (!imap_arg_atom(&arg->items[i], &atom) ||
		    parse_item(cmd->pool, atom, &ctx->items[ctx->item_count++]) < 0)
			return -1;
	}
	return 0;
}

/* ---- building one message's response ------------------------------------ */

static struct fetch_seg *seg_add(struct fetch_ctx *ctx, enum seg_kind kind)
{
	if (ctx->seg_count == ctx->seg_cap) {
		ctx->seg_cap = ctx->seg_cap ? ctx->seg_cap * 2 : 8;
		ctx->segs = xrealloc(ctx->segs, ctx->seg_cap * sizeof(*ctx->segs));
	}
	struct fetch_seg *seg = &ctx->segs[ctx->seg_count++];
	memset(seg, 0, sizeof(*seg));
	seg->kind = kind;
	return seg;
}

/* Ends the open text segment at the current end of ctx->text. */
static void text_flush(struct fetch_ctx *ctx, size_t *from)
{
	if (ctx->text.len > *from) {
		struct fetch_seg *seg = seg_add(ctx, SEG_TEXT);
		seg->from = *from;
		seg->to = ctx->text.len;
	}
	*from = ctx->text.len;
}

static void append_date(struct buf *b, const char *label, time_t t)
{
	static const char months[][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;
	gmtime_r(&t, &tm);
	buf_printf(b, "%s \"%02d-%s-%04d %02d:%02d:%02d +0000\"", label, tm.tm_mday,
		   months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* The file range and CRLF size of a section, from the cache. -1 when the
 * part does not exist (the section is then empty). */
static int section_range(const struct store_cache *cache, const struct store_msg *msg,
			 const struct fetch_item *it, uint64_t *start_r, uint64_t *end_r,
			 uint64_t *size_r)
{
	if (it->sec == SEC_FULL && it->part[0] == '\0') {
		*start_r = 0;
		*end_r = msg->size;
		*size_r = msg->crlf_size;
		return 0;
	}
	int idx = store_cache_find_part(cache, it->part);
	if (idx < 0 || (size_t)idx >= cache->part_count)
		return -1;
	const struct store_part *p = &cache->parts[idx];
	if (it->sec == SEC_BINARY || it->sec == SEC_BINARY_SIZE) {
		*start_r = p->header_offset;
		*end_r = p->body_end;
		*size_r = p->body_offset;   /* the caller's "body" for SEG_BINARY */
		return 0;
	}
	if (it->part[0] != '\0' && it->sec != SEC_FULL && it->sec != SEC_MIME) {
		/* N.HEADER, N.TEXT, N.HEADER.FIELDS: the embedded message's */
		if (!p->is_message || p->first_child == UINT32_MAX ||
		    p->first_child >= cache->part_count)
			return -1;
		p = &cache->parts[p->first_child];
	}
	if (it->sec == SEC_FULL || it->sec == SEC_TEXT) {
		*start_r = p->body_offset;
		*end_r = p->body_end;
		*size_r = p->body_crlf_size;
	} else {
		*start_r = p->header_offset;
		*end_r = p->body_offset;
		*size_r = p->header_crlf_size;
	}
	return 0;
}

static void partial_window(const struct fetch_item *it, uint64_t total, uint64_t *skip_r,
			   uint64_t *left_r)
{
	*skip_r = 0;
	*left_r = total;
	if (!it->partial)
		return;
	*skip_r = it->origin < total ? it->origin : total;
	*left_r = total - *skip_r < it->count ? total - *skip_r : it->count;
}

static void item_section(struct fetch_ctx *ctx, const struct store_cache *cache,
			 const struct store_msg *msg, const struct fetch_item *it, size_t *from)
{
	uint64_t start = 0, end = 0, total = 0;
	if (section_range(cache, msg, it, &start, &end, &total) < 0) {
		start = end = total = 0;
	}
	if (it->sec == SEC_FIELDS || it->sec == SEC_FIELDS_NOT || it->sec == SEC_BINARY ||
	    it->sec == SEC_BINARY_SIZE) {
		/* filtered or decoded in the second pass, once the file is open */
		text_flush(ctx, from);
		bool binary = it->sec == SEC_BINARY || it->sec == SEC_BINARY_SIZE;
		struct fetch_seg *seg = seg_add(ctx, binary ? SEG_BINARY : SEG_FIELDS);
		seg->start = start;
		seg->end = end;
		seg->body = binary ? total : 0;
		seg->item = it;
		ctx->need_file = true;
		return;
	}
	uint64_t skip, left;
	partial_window(it, total, &skip, &left);
	buf_printf(&ctx->text, "%s {%llu}\r\n", it->label, (unsigned long long)left);
	if (left == 0)
		return;
	text_flush(ctx, from);
	struct fetch_seg *seg = seg_add(ctx, SEG_FILE);
	seg->start = start;
	seg->end = end;
	seg->skip = skip;
	seg->left = left;
	ctx->need_file = true;
}

static void item_simple(struct imap_session *s, struct fetch_ctx *ctx,
			const struct store_cache *cache, const struct store_msg *msg,
			const struct fetch_item *it)
{
	struct buf *b = &ctx->text;
	switch (it->kind) {
	case FETCH_FLAGS:
		if (ctx->add_flags)   /* \Seen set by this FETCH: told here */
			imap_own_flags_remember(s, msg);
		buf_append_str(b, "FLAGS ");
		imap_append_flags(b, s->mbox, msg->flags, msg->keywords,
				  imap_is_recent(s, msg->uid));
		break;
	case FETCH_UID:
		buf_printf(b, "UID %u", msg->uid);
		break;
	case FETCH_INTERNALDATE:
		append_date(b, "INTERNALDATE", msg->internaldate);
		break;
	case FETCH_SAVEDATE:
		/* a record from before the save date was kept: its arrival */
		append_date(b, "SAVEDATE", msg->savedate != 0 ? msg->savedate : msg->internaldate);
		break;
	case FETCH_EMAILID:
		buf_append_str(b, "EMAILID (");
		imap_append_emailid(b, store_msg_emailid(s->mbox, msg));
		buf_append_char(b, ')');
		break;
	case FETCH_THREADID:
		buf_append_str(b, "THREADID (");
		imap_append_threadid(b, imap_threadid(cache, store_msg_emailid(s->mbox, msg)));
		buf_append_char(b, ')');
		break;
	case FETCH_SIZE:
		buf_printf(b, "RFC822.SIZE %llu", (unsigned long long)msg->crlf_size);
		break;
	case FETCH_ENVELOPE:
		buf_printf(b, "ENVELOPE %s", cache->envelope);
		break;
	case FETCH_BODY:
		buf_printf(b, "BODY %s", cache->body);
		break;
	case FETCH_BODYSTRUCTURE:
		buf_printf(b, "BODYSTRUCTURE %s", cache->bodystructure);
		break;
	case FETCH_MODSEQ:
		buf_printf(b, "MODSEQ (%llu)", (unsigned long long)msg->modseq);
		break;
	case FETCH_SECTION:
		break;
	}
}

static bool items_have(const struct fetch_ctx *ctx, enum fetch_kind kind)
{
	for (size_t i = 0; i < ctx->item_count; i++)
		if (ctx->items[i].kind == kind)
			return true;
	return false;
}

/* A header [start, end) of the open file into out (at most
 * FETCH_MAX_HEADER bytes of it). */
static void header_read(struct fetch_ctx *ctx, uint64_t start, uint64_t end, struct buf *out)
{
	uint64_t len = end - start;
	if (len > FETCH_MAX_HEADER)
		len = FETCH_MAX_HEADER;
	if (ctx->fd >= 0 && len > 0) {
		buf_reserve(out, (size_t)len);
		ssize_t n = pread(ctx->fd, out->data, (size_t)len, (off_t)start);
		out->len = n > 0 ? (size_t)n : 0;
	}
}

/* Second pass: HEADER.FIELDS sections read from the open file. */
static void fields_render(struct fetch_ctx *ctx, struct fetch_seg *seg)
{
	const struct fetch_item *it = seg->item;
	struct buf header = BUF_INIT, filtered = BUF_INIT;
	header_read(ctx, seg->start, seg->end, &header);
	store_header_filter(header.data != NULL ? header.data : "", header.len, it->names,
			    it->name_count, it->sec == SEC_FIELDS_NOT, &filtered);
	uint64_t skip, left;
	partial_window(it, filtered.len, &skip, &left);
	seg->kind = SEG_TEXT;
	seg->from = ctx->text.len;
	buf_printf(&ctx->text, "%s {%llu}\r\n", it->label, (unsigned long long)left);
	buf_append(&ctx->text, filtered.data + skip, (size_t)left);
	seg->to = ctx->text.len;
	buf_free(&header);
	buf_free(&filtered);
}

/* Decodes file bytes [pos, end) of a part a chunk at a time into the
 * decoder's out buffer; returns the bytes produced, 0 at the end. */
static size_t decode_next(struct fetch_ctx *ctx, uint64_t *pos, uint64_t end)
{
	struct fetch_decode *fd = ctx->decode;
	while (*pos < end) {
		size_t want = end - *pos < IMAP_DECODER_CHUNK ? (size_t)(end - *pos)
							      : IMAP_DECODER_CHUNK;
		ssize_t n = ctx->fd >= 0 ? pread(ctx->fd, fd->in, want, (off_t)*pos) : 0;
		if (n <= 0) {
			*pos = end;   /* shorter than the index said */
			return 0;
		}
		*pos += (uint64_t)n;
		size_t o = imap_decoder_run(&fd->dec, fd->in, (size_t)n, *pos == end, fd->out);
		if (o > 0)
			return o;
	}
	return 0;
}

/* First pass over a part: its decoded size, and whether the octets
 * [lo, hi) of it hold a NUL (then a literal8 is needed). */
static uint64_t decode_measure(struct fetch_ctx *ctx, const struct fetch_seg *seg,
			       uint64_t lo, uint64_t hi, bool *nul_r)
{
	uint64_t pos = seg->start, total = 0;
	size_t o;
	*nul_r = false;
	imap_decoder_init(&ctx->decode->dec, seg->cte);
	while ((o = decode_next(ctx, &pos, seg->end)) > 0) {
		uint64_t from = lo > total ? lo - total : 0;
		uint64_t to = hi - total < o ? hi - total : o;
		if (hi > total && from < to &&
		    memchr(ctx->decode->out + from, '\0', (size_t)(to - from)) != NULL)
			*nul_r = true;
		total += o;
	}
	return total;
}

/* Second pass: BINARY[part] and BINARY.SIZE[part], once the file is open.
 * The part's header says how to decode it; the body is decoded once to
 * measure it, and again as it streams (SEG_DECODE): never whole in memory. */
static void binary_render(struct fetch_ctx *ctx, struct fetch_seg *seg)
{
	const struct fetch_item *it = seg->item;
	struct buf header = BUF_INIT;
	header_read(ctx, seg->start, seg->body, &header);
	seg->cte = imap_binary_cte(header.data != NULL ? header.data : "", header.len);
	buf_free(&header);
	seg->kind = SEG_TEXT;
	seg->from = seg->to = ctx->text.len;
	if (seg->cte == IMAP_CTE_UNKNOWN) {
		/* RFC 3516 4.2: the command fails with NO [UNKNOWN-CTE] */
		ctx->msg_unknown_cte = true;
		return;
	}
	if (ctx->decode == NULL)
		ctx->decode = xmalloc(sizeof(*ctx->decode));
	seg->start = seg->body;
	bool nul;
	uint64_t lo = it->partial ? it->origin : 0;
	uint64_t hi = !it->partial ? UINT64_MAX
		    : it->count > UINT64_MAX - it->origin ? UINT64_MAX : it->origin + it->count;
	uint64_t total = decode_measure(ctx, seg, lo, hi, &nul);
	if (it->sec == SEC_BINARY_SIZE) {
		buf_printf(&ctx->text, "%s %llu", it->label, (unsigned long long)total);
		seg->to = ctx->text.len;
		return;
	}
	partial_window(it, total, &seg->skip, &seg->left);
	buf_printf(&ctx->text, "%s %s{%llu}\r\n", it->label, nul ? "~" : "",
		   (unsigned long long)seg->left);
	seg->to = ctx->text.len;
	seg->kind = SEG_DECODE;
	seg->started = seg->label_sent = false;
}

/* Lays out the response for one message as segments; false to skip it. */
static bool fetch_build(struct imap_session *s, struct fetch_ctx *ctx, uint32_t uid)
{
	struct store_msg msg;
	struct store_cache cache;
	const char *error;
	memset(&cache, 0, sizeof(cache));
	if (store_msg_get(s->mbox, uid, &msg, &error) < 0)
		return false;   /* expunged meanwhile */
	if (ctx->changedsince > 0 && msg.modseq <= ctx->changedsince)
		return false;
	if (ctx->need_cache && store_msg_cache(s->mbox, uid, &cache, &error) < 0) {
		log_error("event=fetch-cache-failed uid=%u error=\"%s\"", uid, error);
		return false;
	}
	buf_reset(&ctx->text);
	ctx->seg_count = ctx->seg_pos = 0;
	ctx->need_file = false;
	size_t from = 0;
	buf_printf(&ctx->text, "* %u FETCH (", store_mailbox_uid_to_seq(s->mbox, uid));
	bool first = true;
	if (ctx->uid && !items_have(ctx, FETCH_UID)) {
		buf_printf(&ctx->text, "UID %u", uid);
		first = false;
	}
	if (ctx->add_flags && !items_have(ctx, FETCH_FLAGS)) {
		struct fetch_item flags_item = { .kind = FETCH_FLAGS };
		if (!first)
			buf_append_char(&ctx->text, ' ');
		item_simple(s, ctx, &cache, &msg, &flags_item);
		first = false;
	}
	for (size_t i = 0; i < ctx->item_count; i++) {
		const struct fetch_item *it = &ctx->items[i];
		if (!first)
			buf_append_char(&ctx->text, ' ');
		first = false;
		if (it->kind == FETCH_SECTION)
			item_section(ctx, &cache, &msg, it, &from);
		else
			item_simple(s, ctx, &cache, &msg, it);
	}
	/* RFC 7162 3.1.4.1: with CONDSTORE on, FLAGS come with MODSEQ */
	if (ctx->condstore && !items_have(ctx, FETCH_MODSEQ) &&
	    (ctx->changedsince > 0 || ctx->add_flags || items_have(ctx, FETCH_FLAGS))) {
		struct fetch_item modseq_item = { .kind = FETCH_MODSEQ };
		buf_append_char(&ctx->text, ' ');
		item_simple(s, ctx, &cache, &msg, &modseq_item);
	}
	buf_append_str(&ctx->text, ")\r\n");
	text_flush(ctx, &from);
	/* the cache is not used past this point: the file may be opened */
	ctx->fd = -1;
	if (ctx->need_file && store_msg_open_fd(s->mbox, uid, &ctx->fd, &error) < 0) {
		log_error("event=fetch-open-failed uid=%u error=\"%s\"", uid, error);
		ctx->fd = -1;
	}
	for (size_t i = 0; i < ctx->seg_count; i++) {
		if (ctx->segs[i].kind == SEG_FIELDS)
			fields_render(ctx, &ctx->segs[i]);
		else if (ctx->segs[i].kind == SEG_BINARY)
			binary_render(ctx, &ctx->segs[i]);
	}
	if (ctx->msg_unknown_cte) {
		/* what can be sent is, for the other messages (one FETCH
		 * response cannot leave out an item) */
		ctx->msg_unknown_cte = false;
		ctx->unknown_cte = true;
		ctx->seg_count = ctx->seg_pos = 0;
	}
	return true;
}

/* ---- streaming ---------------------------------------------------------- */

/* Sends the next piece of a file segment: LF becomes CRLF, the first
 * seg->skip converted bytes are dropped, then seg->left are sent. */
static void stream_chunk(struct imap_session *s, struct fetch_ctx *ctx, struct fetch_seg *seg)
{
	char in[FETCH_CHUNK], out[2 * FETCH_CHUNK];
	size_t want = FETCH_CHUNK;
	if (!seg->started) {
		seg->started = true;
		ctx->fpos = seg->start;
		ctx->prev_cr = false;
	}
	if (seg->end - ctx->fpos < want)
		want = (size_t)(seg->end - ctx->fpos);
	ssize_t n = want > 0 && ctx->fd >= 0 ? pread(ctx->fd, in, want, (off_t)ctx->fpos) : 0;
	if (n <= 0) {
		/* the file is shorter than the index said: keep the protocol in
		 * step with the announced literal size */
		log_error("event=fetch-short-file left=%llu", (unsigned long long)seg->left);
		size_t pad = seg->left < sizeof(out) ? (size_t)seg->left : sizeof(out);
		memset(out, ' ', pad);
		conn_write(s->conn, out, pad);
		seg->left -= pad;
		return;
	}
	size_t o = 0;
	for (ssize_t i = 0; i < n; i++) {
		if (in[i] == '\n' && !ctx->prev_cr)
			out[o++] = '\r';
		out[o++] = in[i];
		ctx->prev_cr = in[i] == '\r';
	}
	ctx->fpos += (uint64_t)n;
	size_t skip = seg->skip < o ? (size_t)seg->skip : o;
	seg->skip -= skip;
	size_t send = o - skip < seg->left ? o - skip : (size_t)seg->left;
	conn_write(s->conn, out + skip, send);
	seg->left -= send;
}

/* Sends the next piece of a decoded part (SEG_DECODE). */
static void decode_chunk(struct imap_session *s, struct fetch_ctx *ctx, struct fetch_seg *seg)
{
	if (!seg->started) {
		seg->started = true;
		ctx->fpos = seg->start;
		imap_decoder_init(&ctx->decode->dec, seg->cte);
	}
	size_t o = decode_next(ctx, &ctx->fpos, seg->end);
	if (o == 0) {
		/* the part changed under us: keep the literal's promise */
		log_error("event=fetch-short-decode left=%llu", (unsigned long long)seg->left);
		o = seg->left < IMAP_DECODER_CHUNK ? (size_t)seg->left : IMAP_DECODER_CHUNK;
		memset(ctx->decode->out, ' ', o);
	}
	size_t skip = seg->skip < o ? (size_t)seg->skip : o;
	seg->skip -= skip;
	size_t send = o - skip < seg->left ? o - skip : (size_t)seg->left;
	conn_write(s->conn, ctx->decode->out + skip, send);
	seg->left -= send;
}

/* Emits segments until done (true) or the output is full (false). */
static bool fetch_emit(struct imap_session *s, struct fetch_ctx *ctx)
{
	while (ctx->seg_pos < ctx->seg_count) {
		if (conn_output_pending(s->conn) > FETCH_HIGH_WATER)
			return false;
		struct fetch_seg *seg = &ctx->segs[ctx->seg_pos];
		if (seg->kind == SEG_TEXT) {
			conn_write(s->conn, ctx->text.data + seg->from, seg->to - seg->from);
			ctx->seg_pos++;
			continue;
		}
		if (seg->kind == SEG_DECODE && !seg->label_sent) {
			conn_write(s->conn, ctx->text.data + seg->from, seg->to - seg->from);
			seg->label_sent = true;
		}
		if (seg->left == 0) {
			ctx->seg_pos++;
			continue;
		}
		if (seg->kind == SEG_DECODE)
			decode_chunk(s, ctx, seg);
		else
			stream_chunk(s, ctx, seg);
	}
	return true;
}

static void fetch_close_file(struct fetch_ctx *ctx)
{
	if (ctx->fd >= 0)
		close(ctx->fd);
	ctx->fd = -1;
}

static void fetch_ctx_free(struct fetch_ctx *ctx)
{
	fetch_close_file(ctx);
	buf_free(&ctx->text);
	free(ctx->decode);
	free(ctx->segs);
	free(ctx->uids);
	free(ctx->tag);
	free(ctx);
}

void imap_fetch_abort(struct imap_session *s)
{
	if (s->cmd_ctx != NULL)
		fetch_ctx_free(s->cmd_ctx);
	s->cmd_ctx = NULL;
}

static void fetch_drained(void *session);

static void fetch_run(struct imap_session *s)
{
	struct fetch_ctx *ctx = s->cmd_ctx;
	/* one read snapshot for the messages of this turn of the loop */
	store_mailbox_batch_begin(s->mbox);
	for (;;) {
		if (conn_is_closing(s->conn)) {
			store_mailbox_batch_end(s->mbox);
			return;
		}
		if (!fetch_emit(s, ctx)) {
			store_mailbox_batch_end(s->mbox);
			if (!s->cmd_async) {
				s->cmd_async = true;
				imap_set_mode(s, IMAP_INPUT_WAIT);
				conn_pause_input(s->conn);
			}
			conn_on_output_drained(s->conn, FETCH_LOW_WATER, fetch_drained);
			return;
		}
		fetch_close_file(ctx);
		if (ctx->pos == ctx->uid_count)
			break;
		uint32_t uid = ctx->uids[ctx->pos++];
		if (!fetch_build(s, ctx, uid))
			ctx->seg_count = ctx->seg_pos = 0;
	}
	store_mailbox_batch_end(s->mbox);
	if (ctx->unknown_cte)
		imap_no(s, ctx->tag, "[UNKNOWN-CTE] Cannot decode a part's Content-Transfer-Encoding");
	else
		imap_ok(s, ctx->tag, "%s", ctx->done_text);
	bool async = s->cmd_async;
	fetch_ctx_free(ctx);
	s->cmd_ctx = NULL;
	if (async)
		imap_command_done(s);
}

static void fetch_drained(void *session)
{
	struct imap_session *s = session;
	if (s->cmd_ctx != NULL)
		fetch_run(s);
}

static bool fetch_needs_cache(const struct fetch_ctx *ctx)
{
	for (size_t i = 0; i < ctx->item_count; i++) {
		const struct fetch_item *it = &ctx->items[i];
		if (it->kind == FETCH_ENVELOPE || it->kind == FETCH_BODY ||
		    it->kind == FETCH_BODYSTRUCTURE || it->kind == FETCH_THREADID ||
		    (it->kind == FETCH_SECTION && (it->sec != SEC_FULL || it->part[0] != '\0')))
			return true;
	}
	return false;
}

static bool fetch_sets_seen(const struct fetch_ctx *ctx)
{
	for (size_t i = 0; i < ctx->item_count; i++)
		if (ctx->items[i].kind == FETCH_SECTION && !ctx->items[i].peek)
			return true;
	return false;
}

/* RFC 7162: (CHANGEDSINCE modseq [VANISHED]) */
static int parse_modifiers(struct imap_session *s, struct imap_cmd *cmd, struct fetch_ctx *ctx,
			   bool *vanished_r)
{
	*vanished_r = false;
	if (cmd->count == 2)
		return 0;
	const struct imap_arg *m = &cmd->args[2];
	if (cmd->count != 3 || m->type != IMAP_ARG_LIST)
		return -1;
	for (size_t i = 0; i < m->count; i++) {
		if (imap_arg_is_atom(&m->items[i], "CHANGEDSINCE") && i + 1 < m->count &&
		    imap_arg_number(&m->items[i + 1], &ctx->changedsince) && ctx->changedsince > 0) {
			i++;
			s->enabled |= IMAP_ENABLED_CONDSTORE;
		} else if (imap_arg_is_atom(&m->items[i], "VANISHED") && cmd->uid &&
			   (s->enabled & IMAP_ENABLED_QRESYNC)) {
			*vanished_r = true;
		} else {
			return -1;
		}
	}
	/* VANISHED needs CHANGEDSINCE */
	return *vanished_r && ctx->changedsince == 0 ? -1 : 0;
}

/* UID FETCH ... (CHANGEDSINCE m VANISHED): expunged UIDs of the set. */
static void fetch_vanished(struct imap_session *s, struct imap_cmd *cmd, struct fetch_ctx *ctx)
{
	struct imap_seqset set;
	struct store_uids vanished = STORE_UIDS_INIT, shown = STORE_UIDS_INIT;
	const char *text, *error;
	if (!imap_arg_atom(&cmd->args[0], &text) ||
	    imap_seqset_parse(cmd->pool, text, false, &set) < 0 ||
	    store_changes_since(s->mbox, ctx->changedsince, NULL, &vanished, &error) < 0)
		return;
	for (size_t i = 0; i < vanished.count; i++) {
		for (size_t j = 0; j < set.count; j++) {
			if (vanished.uids[i] >= set.ranges[j].lo && vanished.uids[i] <= set.ranges[j].hi) {
				store_uids_push(&shown, vanished.uids[i]);
				break;
			}
		}
	}
	if (shown.count > 0) {
		struct buf b = BUF_INIT;
		buf_append_str(&b, "* VANISHED (EARLIER) ");
		imap_append_uid_list(&b, shown.uids, shown.count);
		buf_append_str(&b, "\r\n");
		imap_write_buf(s, &b);
		buf_free(&b);
	}
	store_uids_clear(&vanished);
	store_uids_clear(&shown);
}

void imap_cmd_fetch(struct imap_session *s, struct imap_cmd *cmd)
{
	struct fetch_ctx *ctx = xcalloc(1, sizeof(*ctx));
	struct store_uidset set = STORE_UIDSET_INIT;
	bool vanished;
	ctx->fd = -1;
	ctx->uid = cmd->uid;
	if (cmd->count < 2 || parse_items(cmd, &cmd->args[1], ctx) < 0 ||
	    parse_modifiers(s, cmd, ctx, &vanished) < 0) {
		imap_bad(s, cmd->tag, "Invalid FETCH arguments");
		fetch_ctx_free(ctx);
		return;
	}
	if (imap_seqset_to_uids(s, cmd, &cmd->args[0], cmd->uid, &set) < 0) {
		fetch_ctx_free(ctx);
		return;
	}
	if (items_have(ctx, FETCH_MODSEQ))
		s->enabled |= IMAP_ENABLED_CONDSTORE;
	ctx->condstore = (s->enabled & IMAP_ENABLED_CONDSTORE) != 0;
	if (vanished)
		fetch_vanished(s, cmd, ctx);
	size_t count;
	const uint32_t *uids = store_mailbox_uids(s->mbox, &count);
	ctx->uids = xmalloc((count ? count : 1) * sizeof(*ctx->uids));
	for (size_t i = 0; i < count; i++)
		if (store_uidset_contains(&set, uids[i]))
			ctx->uids[ctx->uid_count++] = uids[i];
	ctx->need_cache = fetch_needs_cache(ctx);
	if (fetch_sets_seen(ctx) && !s->read_only && ctx->uid_count > 0) {
		const char *error;
		if (store_msg_set_flags(s->mbox, &set, STORE_FLAGS_ADD, STORE_FLAG_SEEN, NULL, 0, 0,
					NULL, &error) < 0)
			log_error("event=fetch-seen-failed error=\"%s\"", error);
		else
			ctx->add_flags = true;
	}
	store_uidset_clear(&set);
	ctx->tag = xstrdup(cmd->tag);
	ctx->done_text = cmd->uid ? "UID FETCH completed" : "FETCH completed";
	s->cmd_ctx = ctx;
	fetch_run(s);
}

/* ---- NOTIFY's MessageNew fetch attributes -------------------------------- */

bool imap_fetch_att_simple(struct pool *pool, const char *name)
{
	struct fetch_item it;
	return parse_item(pool, name, &it) == 0 && it.kind != FETCH_SECTION;
}

void imap_fetch_simple(struct imap_session *s, struct pool *pool, const char *const *names,
		       size_t count, uint32_t uid, struct buf *out)
{
	struct fetch_ctx ctx;
	struct store_msg msg;
	struct store_cache cache;
	const char *error;
	memset(&ctx, 0, sizeof(ctx));
	memset(&cache, 0, sizeof(cache));
	ctx.items = pool_alloc(pool, (count + 1) * sizeof(*ctx.items));
	for (size_t i = 0; i < count; i++)
		if (parse_item(pool, names[i], &ctx.items[ctx.item_count]) == 0 &&
		    ctx.items[ctx.item_count].kind != FETCH_SECTION)
			ctx.item_count++;
	uint32_t seq = store_mailbox_uid_to_seq(s->mbox, uid);
	if (seq == 0 || store_msg_get(s->mbox, uid, &msg, &error) < 0 ||
	    (fetch_needs_cache(&ctx) && store_msg_cache(s->mbox, uid, &cache, &error) < 0))
		return;
	buf_printf(&ctx.text, "* %u FETCH (", seq);
	for (size_t i = 0; i < ctx.item_count; i++) {
		if (i > 0)
			buf_append_char(&ctx.text, ' ');
		item_simple(s, &ctx, &cache, &msg, &ctx.items[i]);
	}
	buf_append_str(&ctx.text, ")\r\n");
	buf_append(out, ctx.text.data, ctx.text.len);
	buf_free(&ctx.text);
}

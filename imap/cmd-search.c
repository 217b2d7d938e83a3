/* SEARCH and UID SEARCH (RFC 3501 6.4.4 / RFC 9051 6.4.4) with ESEARCH
 * result options (RFC 4731) and SEARCHRES (RFC 5182). Keys are parsed
 * into a tree and evaluated per message, cheapest data first: the index
 * record (flags, sizes, dates), then the cache (envelope fields, Date:,
 * HEADER on a cached field), then the file (other HEADER fields, BODY,
 * TEXT).
 *
 * Two passes. The first walks the whole mailbox with one store iterator
 * (one read snapshot), looks at each cache record in place only for the
 * messages that get that far, allocates nothing per message, and makes
 * no other store call: a transaction begun meanwhile may remap the index
 * (a map grown by another process) under the snapshot. It settles every
 * message it can; those whose answer needs the file are left "unknown"
 * and the second pass, with the iterator gone, reads them one by one. */
#include "imap/imap-private.h"
#include "store/store.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum key_kind {
	KEY_ALL, KEY_SET, KEY_FLAGS_SET, KEY_FLAGS_UNSET, KEY_KEYWORD, KEY_UNKEYWORD,
	KEY_RECENT, KEY_OLD, KEY_NEW, KEY_LARGER, KEY_SMALLER,
	KEY_BEFORE, KEY_ON, KEY_SINCE, KEY_SENTBEFORE, KEY_SENTON, KEY_SENTSINCE,
	KEY_FIELD, KEY_HEADER, KEY_BODY, KEY_TEXT, KEY_NOT, KEY_OR, KEY_AND, KEY_MODSEQ,
	KEY_SAVEDBEFORE, KEY_SAVEDON, KEY_SAVEDSINCE, KEY_SAVEDATESUPPORTED,   /* RFC 8514 */
	KEY_EMAILID, KEY_THREADID,                                            /* RFC 8474 */
};

struct search_key {
	enum key_kind kind;
	uint32_t flags;
	uint64_t number;
	time_t date;
	enum store_search_field field;
	const char *name, *value;
	struct store_uidset set;      /* KEY_SET: UIDs */
	struct search_key *a, *b;     /* NOT, OR */
	struct search_key **list;     /* AND */
	size_t count;
};

struct search_parser {
	struct imap_session *s;
	struct imap_cmd *cmd;
	const struct imap_arg *args;
	size_t count, pos;
	int depth;
	const char *error;
	bool badcharset;
	bool modseq;            /* a MODSEQ key: the result carries the highest */
};

/* date = "1-Feb-1994" (RFC 3501 date-text, optionally quoted) */
static int parse_date(const char *text, time_t *t_r)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	char mon[4];
	int day, year, used = 0;
	if (sscanf(text, "%2d-%3s-%4d%n", &day, mon, &year, &used) != 3 || text[used] != '\0')
		return -1;
	const char *m = strstr(months, mon);
	if (m == NULL || (m - months) % 3 != 0 || strlen(mon) != 3 || day < 1 || day > 31 ||
	    year < 1900)
		return -1;
	struct tm tm = { .tm_mday = day, .tm_mon = (int)((m - months) / 3), .tm_year = year - 1900 };
	*t_r = timegm(&tm);
	return 0;
}

static struct search_key *key_new(struct search_parser *p, enum key_kind kind)
{
	struct search_key *k = pool_alloc(p->cmd->pool, sizeof(*k));
	k->kind = kind;
	return k;
}

static const struct imap_arg *next_arg(struct search_parser *p)
{
	return p->pos < p->count ? &p->args[p->pos++] : NULL;
}

static const char *next_string(struct search_parser *p)
{
	const char *s;
	if (!imap_arg_astring(next_arg(p), &s)) {
		p->error = "Missing or invalid search string";
		return NULL;
	}
	return s;
}

static struct search_key *parse_key(struct search_parser *p);

static struct search_key *parse_list(struct search_parser *p, const struct imap_arg *args,
				     size_t count)
{
	struct search_parser sub = *p;
	sub.modseq = false;
	sub.args = args;
	sub.count = count;
	sub.pos = 0;
	struct search_key *k = key_new(p, KEY_AND);
	k->list = pool_alloc(p->cmd->pool, (count ? count : 1) * sizeof(*k->list));
	while (sub.pos < sub.count) {
		struct search_key *child = parse_key(&sub);
		p->modseq |= sub.modseq;
		if (child == NULL) {
			p->error = sub.error;
			p->badcharset = sub.badcharset;
			return NULL;
		}
		k->list[k->count++] = child;
	}
	if (k->count == 0) {
		p->error = "Empty search key list";
		return NULL;
	}
	return k;
}

static const struct { const char *name; enum key_kind kind; uint32_t flag; } flag_keys[] = {
	{ "ANSWERED", KEY_FLAGS_SET, STORE_FLAG_ANSWERED },
	{ "DELETED", KEY_FLAGS_SET, STORE_FLAG_DELETED },
	{ "DRAFT", KEY_FLAGS_SET, STORE_FLAG_DRAFT },
	{ "FLAGGED", KEY_FLAGS_SET, STORE_FLAG_FLAGGED },
	{ "SEEN", KEY_FLAGS_SET, STORE_FLAG_SEEN },
	{ "UNANSWERED", KEY_FLAGS_UNSET, STORE_FLAG_ANSWERED },
	{ "UNDELETED", KEY_FLAGS_UNSET, STORE_FLAG_DELETED },
	{ "UNDRAFT", KEY_FLAGS_UNSET, STORE_FLAG_DRAFT },
	{ "UNFLAGGED", KEY_FLAGS_UNSET, STORE_FLAG_FLAGGED },
	{ "UNSEEN", KEY_FLAGS_UNSET, STORE_FLAG_SEEN },
	{ "ALL", KEY_ALL, 0 }, { "RECENT", KEY_RECENT, 0 }, { "OLD", KEY_OLD, 0 },
	{ "NEW", KEY_NEW, 0 },
	{ "SAVEDATESUPPORTED", KEY_SAVEDATESUPPORTED, 0 },
};

static const struct { const char *name; enum key_kind kind; } date_keys[] = {
	{ "BEFORE", KEY_BEFORE }, { "ON", KEY_ON }, { "SINCE", KEY_SINCE },
	{ "SENTBEFORE", KEY_SENTBEFORE }, { "SENTON", KEY_SENTON }, { "SENTSINCE", KEY_SENTSINCE },
	{ "SAVEDBEFORE", KEY_SAVEDBEFORE }, { "SAVEDON", KEY_SAVEDON },
	{ "SAVEDSINCE", KEY_SAVEDSINCE },
};

static const struct { const char *name; enum store_search_field field; } field_keys[] = {
	{ "FROM", STORE_SEARCH_FROM }, { "TO", STORE_SEARCH_TO }, { "CC", STORE_SEARCH_CC },
	{ "BCC", STORE_SEARCH_BCC }, { "SUBJECT", STORE_SEARCH_SUBJECT },
};

static struct search_key *parse_set_key(struct search_parser *p, const struct imap_arg *arg,
					bool uid)
{
	struct search_key *k = key_new(p, KEY_SET);
	if (imap_seqset_to_uids(p->s, p->cmd, arg, uid, &k->set) < 0) {
		p->error = NULL;   /* already answered */
		return NULL;
	}
	return k;
}

static struct search_key *parse_key(struct search_parser *p)
{
	const struct imap_arg *arg = next_arg(p);
	const char *word, *s;
	if (arg == NULL) {
		p->error = "Missing search key";
		return NULL;
	}
	if (arg->type == IMAP_ARG_LIST) {
		if (++p->depth > IMAP_MAX_LIST_DEPTH) {
			p->error = "Search keys nested too deep";
			return NULL;
		}
		struct search_key *k = parse_list(p, arg->items, arg->count);
		p->depth--;
		return k;
	}
	if (!imap_arg_atom(arg, &word)) {
		p->error = "Invalid search key";
		return NULL;
	}
	if ((word[0] >= '0' && word[0] <= '9') || word[0] == '*' || word[0] == '$')
		return parse_set_key(p, arg, false);
	for (size_t i = 0; i < sizeof(flag_keys) / sizeof(flag_keys[0]); i++) {
		if (ascii_strcasecmp(word, flag_keys[i].name) == 0) {
			struct search_key *k = key_new(p, flag_keys[i].kind);
			k->flags = flag_keys[i].flag;
			return k;
		}
	}
	for (size_t i = 0; i < sizeof(date_keys) / sizeof(date_keys[0]); i++) {
		if (ascii_strcasecmp(word, date_keys[i].name) == 0) {
			struct search_key *k = key_new(p, date_keys[i].kind);
			if ((s = next_string(p)) == NULL || parse_date(s, &k->date) < 0) {
				p->error = "Invalid search date";
				return NULL;
			}
			return k;
		}
	}
	for (size_t i = 0; i < sizeof(field_keys) / sizeof(field_keys[0]); i++) {
		if (ascii_strcasecmp(word, field_keys[i].name) == 0) {
			struct search_key *k = key_new(p, KEY_FIELD);
			k->field = field_keys[i].field;
			if ((k->value = next_string(p)) == NULL)
				return NULL;
			return k;
		}
	}
	struct search_key *k;
	if (ascii_strcasecmp(word, "UID") == 0) {
		const struct imap_arg *set = next_arg(p);
		if (set == NULL) {
			p->error = "Missing UID set";
			return NULL;
		}
		return parse_set_key(p, set, true);
	}
	if (ascii_strcasecmp(word, "KEYWORD") == 0 || ascii_strcasecmp(word, "UNKEYWORD") == 0) {
		k = key_new(p, word[0] == 'K' || word[0] == 'k' ? KEY_KEYWORD : KEY_UNKEYWORD);
		if (!imap_arg_atom(next_arg(p), &k->name)) {
			p->error = "Invalid keyword";
			return NULL;
		}
		return k;
	}
	if (ascii_strcasecmp(word, "LARGER") == 0 || ascii_strcasecmp(word, "SMALLER") == 0) {
		k = key_new(p, word[0] == 'L' || word[0] == 'l' ? KEY_LARGER : KEY_SMALLER);
		if (!imap_arg_number(next_arg(p), &k->number)) {
			p->error = "Invalid size";
			return NULL;
		}
		return k;
	}
	if (ascii_strcasecmp(word, "HEADER") == 0) {
		k = key_new(p, KEY_HEADER);
		if ((k->name = next_string(p)) == NULL || (k->value = next_string(p)) == NULL)
			return NULL;
		return k;
	}
	if (ascii_strcasecmp(word, "BODY") == 0 || ascii_strcasecmp(word, "TEXT") == 0) {
		k = key_new(p, word[0] == 'B' || word[0] == 'b' ? KEY_BODY : KEY_TEXT);
		if ((k->value = next_string(p)) == NULL)
			return NULL;
		return k;
	}
	if (ascii_strcasecmp(word, "MODSEQ") == 0) {
		/* MODSEQ [entry-name entry-type-req] mod-sequence-valzer (RFC 7162) */
		k = key_new(p, KEY_MODSEQ);
		if (p->pos < p->count && p->args[p->pos].type == IMAP_ARG_QUOTED)
			p->pos += 2;
		if (!imap_arg_number(next_arg(p), &k->number)) {
			p->error = "Invalid MODSEQ";
			return NULL;
		}
		p->modseq = true;
		p->s->enabled |= IMAP_ENABLED_CONDSTORE;
		return k;
	}
	if (ascii_strcasecmp(word, "EMAILID") == 0 || ascii_strcasecmp(word, "THREADID") == 0) {
		/* RFC 8474 6: an objectid; one that is not ours matches nothing */
		bool email = word[0] == 'E' || word[0] == 'e';
		k = key_new(p, email ? KEY_EMAILID : KEY_THREADID);
		if ((s = next_string(p)) == NULL || !imap_objectid_valid(s)) {
			p->error = "Invalid object id";
			return NULL;
		}
		k->flags = imap_objectid_parse(s, email ? 'M' : 'T', &k->number);
		return k;
	}
	if (ascii_strcasecmp(word, "NOT") == 0) {
		k = key_new(p, KEY_NOT);
		return (k->a = parse_key(p)) != NULL ? k : NULL;
	}
	if (ascii_strcasecmp(word, "OR") == 0) {
		k = key_new(p, KEY_OR);
		if ((k->a = parse_key(p)) == NULL || (k->b = parse_key(p)) == NULL)
			return NULL;
		return k;
	}
	p->error = "Unknown search key";
	return NULL;
}

/* ---- evaluation --------------------------------------------------------- */

/* A key's answer; UNKNOWN only in the first pass (the file is needed). */
enum match { MATCH_NO, MATCH_YES, MATCH_UNKNOWN };

struct search_msg {
	struct store_mailbox *mbox;
	struct store_iter *iter;   /* first pass: positioned on msg; else NULL */
	struct store_msg msg;
	bool have_cache;
	struct store_cache cache;  /* into the iterator's snapshot, or the view's
				      buffer (valid until the next store call) */
	bool failed;
};

static const struct store_cache *msg_cache(struct search_msg *m)
{
	const char *error;
	if (!m->have_cache) {
		if ((m->iter != NULL ? store_iter_cache(m->iter, &m->cache, &error)
		     : store_msg_cache(m->mbox, m->msg.uid, &m->cache, &error)) < 0) {
			m->failed = true;
			return NULL;
		}
		m->have_cache = true;
	}
	return &m->cache;
}

static time_t day_of(time_t t)
{
	return t - (t % 86400 + 86400) % 86400;
}

/* HEADER name value from the cache's decoded fields: 1 or 0, or -1 when
 * the cache cannot tell and the file must be read. The cache holds the
 * unfolded, RFC 2047-decoded value with leading white space trimmed: the
 * last Subject:/Message-ID:/In-Reply-To:/References: (as ENVELOPE and
 * SUBJECT see a repeated one) and every From:/To:/Cc:/Bcc: joined by
 * ", ", and "" for a field that is absent. */
static int header_from_cache(const struct store_cache *c, const char *name,
			     const char *value)
{
	static const struct { const char *name; size_t offset; bool list; } fields[] = {
		{ "Subject", offsetof(struct store_cache, subject), false },
		{ "From", offsetof(struct store_cache, from), true },
		{ "To", offsetof(struct store_cache, to), true },
		{ "Cc", offsetof(struct store_cache, cc), true },
		{ "Bcc", offsetof(struct store_cache, bcc), true },
		{ "Message-ID", offsetof(struct store_cache, message_id), false },
		{ "In-Reply-To", offsetof(struct store_cache, in_reply_to), false },
		{ "References", offsetof(struct store_cache, references), false },
	};
	size_t i = 0;
	while (i < sizeof(fields) / sizeof(fields[0]) && ascii_strcasecmp(name, fields[i].name) != 0)
		i++;
	if (i == sizeof(fields) / sizeof(fields[0]))
		return -1;
	const char *cached = *(const char *const *)((const char *)c + fields[i].offset);
	if (cached == NULL)
		return -1;
	/* "" is also what an absent field gives: only a value says present */
	if (value[0] == '\0')
		return cached[0] != '\0' ? 1 : -1;
	/* the trimmed leading white space, or a match across two joined
	 * fields, is for the file to decide */
	if (value[0] == ' ' || value[0] == '\t')
		return -1;
	if (!store_contains_ci(cached, strlen(cached), value))
		return 0;
	return fields[i].list && strchr(value, ',') != NULL ? -1 : 1;
}

/* HEADER from the file: each field of that name, its value decoded. */
static bool header_from_file(struct search_msg *m, const char *name, const char *value)
{
	const struct store_cache *c = msg_cache(m);
	if (c == NULL || c->part_count == 0)
		return false;
	uint64_t len = c->parts[0].body_offset - c->parts[0].header_offset;
	if (len > 1024 * 1024)
		len = 1024 * 1024;
	int fd;
	const char *error;
	m->have_cache = false;   /* opening the file is a store call */
	if (store_msg_open_fd(m->mbox, m->msg.uid, &fd, &error) < 0)
		return false;
	char *header = xmalloc((size_t)len + 1);
	ssize_t n = pread(fd, header, (size_t)len, 0);
	close(fd);
	struct buf out = BUF_INIT;
	const char *names[1] = { name };
	store_header_filter(header, n > 0 ? (size_t)n : 0, names, 1, false, &out);
	free(header);
	bool found = false;
	/* each matching field: "Name: value" lines; the value decoded */
	const char *p = buf_str(&out), *end = p + out.len;
	while (p < end && !found) {
		const char *colon = memchr(p, ':', (size_t)(end - p));
		if (colon == NULL)
			break;
		const char *next = colon;
		while (next < end && !(next[0] == '\n' && (next + 1 >= end ||
							   (next[1] != ' ' && next[1] != '\t'))))
			next++;
		char *decoded = store_decode_header(colon + 1, (size_t)(next - colon - 1));
		found = decoded != NULL && store_contains_ci(decoded, strlen(decoded), value);
		free(decoded);
		p = next + 1;
	}
	buf_free(&out);
	return found;
}

static enum match header_matches(struct search_msg *m, const char *name, const char *value)
{
	const struct store_cache *c = msg_cache(m);
	if (c == NULL || c->part_count == 0)
		return MATCH_NO;
	int cached = header_from_cache(c, name, value);
	if (cached >= 0)
		return cached == 1 ? MATCH_YES : MATCH_NO;
	if (m->iter != NULL)
		return MATCH_UNKNOWN;
	return header_from_file(m, name, value) ? MATCH_YES : MATCH_NO;
}

static bool text_matches(struct imap_session *s, struct search_key *k, struct search_msg *m)
{
	bool found = false;
	const char *error;
	m->have_cache = false;   /* the store reuses the view's cache buffer */
	if (store_msg_text_contains(s->mbox, m->msg.uid, k->value, k->kind == KEY_BODY, &found,
				    &error) < 0)
		return false;
	return found;
}

static enum match match_of(bool b)
{
	return b ? MATCH_YES : MATCH_NO;
}

/* Three-valued: NOT, OR and AND settle what they can without the
 * unknown parts (NO and anything is NO, YES or anything is YES). */
static enum match key_match(struct imap_session *s, struct search_key *k, struct search_msg *m)
{
	const struct store_cache *c;
	enum match r, r2;
	int idx;
	bool found;
	switch (k->kind) {
	case KEY_ALL:
		return MATCH_YES;
	case KEY_SET:
		return match_of(store_uidset_contains(&k->set, m->msg.uid));
	case KEY_FLAGS_SET:
		return match_of((m->msg.flags & k->flags) == k->flags);
	case KEY_FLAGS_UNSET:
		return match_of((m->msg.flags & k->flags) == 0);
	case KEY_KEYWORD:
	case KEY_UNKEYWORD:
		idx = store_mailbox_keyword_index(s->mbox, k->name);
		found = idx >= 0 && (m->msg.keywords & (UINT64_C(1) << idx));
		return match_of(k->kind == KEY_KEYWORD ? found : !found);
	case KEY_RECENT:
		return match_of(store_mailbox_is_recent(s->mbox, m->msg.uid));
	case KEY_OLD:
		return match_of(!store_mailbox_is_recent(s->mbox, m->msg.uid));
	case KEY_NEW:
		return match_of(store_mailbox_is_recent(s->mbox, m->msg.uid) &&
				!(m->msg.flags & STORE_FLAG_SEEN));
	case KEY_LARGER:
		return match_of(m->msg.crlf_size > k->number);
	case KEY_SMALLER:
		return match_of(m->msg.crlf_size < k->number);
	case KEY_BEFORE:
		return match_of(day_of(m->msg.internaldate) < k->date);
	case KEY_ON:
		return match_of(day_of(m->msg.internaldate) == k->date);
	case KEY_SINCE:
		return match_of(day_of(m->msg.internaldate) >= k->date);
	case KEY_SENTBEFORE:
	case KEY_SENTON:
	case KEY_SENTSINCE:
		if ((c = msg_cache(m)) == NULL || c->date == 0)
			return MATCH_NO;
		if (k->kind == KEY_SENTBEFORE)
			return match_of(day_of(c->date) < k->date);
		return match_of(k->kind == KEY_SENTON ? day_of(c->date) == k->date
						      : day_of(c->date) >= k->date);
	case KEY_FIELD:
		return match_of((c = msg_cache(m)) != NULL &&
				store_cache_field_contains(c, k->field, k->value));
	case KEY_HEADER:
		return header_matches(m, k->name, k->value);
	case KEY_BODY:
	case KEY_TEXT:
		return m->iter != NULL ? MATCH_UNKNOWN : match_of(text_matches(s, k, m));
	case KEY_MODSEQ:
		return match_of(m->msg.modseq >= k->number);
	case KEY_SAVEDATESUPPORTED:
		return MATCH_YES;
	case KEY_SAVEDBEFORE:
	case KEY_SAVEDON:
	case KEY_SAVEDSINCE: {
		/* a record from before the save date was kept: its arrival */
		time_t saved = day_of(m->msg.savedate != 0 ? m->msg.savedate : m->msg.internaldate);
		return match_of(k->kind == KEY_SAVEDBEFORE ? saved < k->date
				: k->kind == KEY_SAVEDON ? saved == k->date : saved >= k->date);
	}
	case KEY_EMAILID:
	case KEY_THREADID: {
		/* the identity is a store call: not inside the first pass */
		if (k->flags == 0)
			return MATCH_NO;
		if (m->iter != NULL)
			return MATCH_UNKNOWN;
		uint64_t emailid = store_msg_emailid(s->mbox, &m->msg);
		if (k->kind == KEY_EMAILID)
			return match_of(emailid == k->number);
		return match_of((c = msg_cache(m)) != NULL && imap_threadid(c, emailid) == k->number);
	}
	case KEY_NOT:
		r = key_match(s, k->a, m);
		return r == MATCH_UNKNOWN ? r : match_of(r == MATCH_NO);
	case KEY_OR:
		if ((r = key_match(s, k->a, m)) == MATCH_YES)
			return r;
		r2 = key_match(s, k->b, m);
		return r2 == MATCH_YES || r2 == r ? r2 : MATCH_UNKNOWN;
	case KEY_AND:
		r = MATCH_YES;
		for (size_t i = 0; i < k->count; i++) {
			if ((r2 = key_match(s, k->list[i], m)) == MATCH_NO)
				return r2;
			if (r2 == MATCH_UNKNOWN)
				r = r2;
		}
		return r;
	}
	return MATCH_NO;
}

/* Orders every AND list cheapest first (stable) and returns what the key
 * needs: 0 the index record, 1 the cache, 2 the file. A message that
 * fails a flag or size test never gets its cache or file looked at. */
static int key_order(struct imap_cmd *cmd, struct search_key *k)
{
	int cost = 0, c;
	switch (k->kind) {
	case KEY_SENTBEFORE:
	case KEY_SENTON:
	case KEY_SENTSINCE:
	case KEY_FIELD:
		return 1;
	case KEY_HEADER:
	case KEY_BODY:
	case KEY_TEXT:
	case KEY_EMAILID:
	case KEY_THREADID:
		return 2;
	case KEY_NOT:
		return key_order(cmd, k->a);
	case KEY_OR:
		cost = key_order(cmd, k->a);
		c = key_order(cmd, k->b);
		return c > cost ? c : cost;
	case KEY_AND:
		break;
	default:
		return 0;
	}
	/* a counting sort on three costs: linear however long the list */
	unsigned char *costs = pool_alloc(cmd->pool, k->count ? k->count : 1);
	struct search_key **sorted = pool_alloc(cmd->pool, (k->count ? k->count : 1) *
						sizeof(*sorted));
	for (size_t i = 0; i < k->count; i++) {
		costs[i] = (unsigned char)key_order(cmd, k->list[i]);
		if (costs[i] > cost)
			cost = costs[i];
	}
	size_t n = 0;
	for (unsigned char want = 0; want <= 2; want++)
		for (size_t i = 0; i < k->count; i++)
			if (costs[i] == want)
				sorted[n++] = k->list[i];
	memcpy(k->list, sorted, k->count * sizeof(*sorted));
	return cost;
}

static void key_free(struct search_key *k)
{
	if (k == NULL)
		return;
	store_uidset_clear(&k->set);
	key_free(k->a);
	key_free(k->b);
	for (size_t i = 0; i < k->count; i++)
		key_free(k->list[i]);
}

/* ---- results ------------------------------------------------------------ */

enum {
	RET_MIN = 1 << 0, RET_MAX = 1 << 1, RET_ALL = 1 << 2, RET_COUNT = 1 << 3, RET_SAVE = 1 << 4,
};

static int parse_return(const struct imap_arg *list, unsigned int *ret_r)
{
	static const struct { const char *name; unsigned int bit; } opts[] = {
		{ "MIN", RET_MIN }, { "MAX", RET_MAX }, { "ALL", RET_ALL }, { "COUNT", RET_COUNT },
		{ "SAVE", RET_SAVE },
	};
	*ret_r = 0;
	for (size_t i = 0; i < list->count; i++) {
		size_t j = 0;
		while (j < sizeof(opts) / sizeof(opts[0]) && !imap_arg_is_atom(&list->items[i], opts[j].name))
			j++;
		if (j == sizeof(opts) / sizeof(opts[0]))
			return -1;
		*ret_r |= opts[j].bit;
	}
	/* RFC 4731: RETURN () means ALL */
	if (*ret_r == 0)
		*ret_r = RET_ALL;
	return 0;
}

static void search_save(struct imap_session *s, const struct store_uids *uids)
{
	store_uidset_clear(&s->saved);
	for (size_t i = 0; i < uids->count; i++)
		store_uidset_add(&s->saved, uids->uids[i], uids->uids[i]);
	s->saved_valid = true;
}

static void write_esearch(struct imap_session *s, struct imap_cmd *cmd, unsigned int ret,
			  const struct store_uids *uids, const struct store_uids *numbers,
			  uint64_t modseq)
{
	struct buf b = BUF_INIT;
	buf_printf(&b, "* ESEARCH (TAG \"%s\")%s", cmd->tag, cmd->uid ? " UID" : "");
	if (numbers->count > 0) {
		if (ret & RET_MIN)
			buf_printf(&b, " MIN %u", numbers->uids[0]);
		if (ret & RET_MAX)
			buf_printf(&b, " MAX %u", numbers->uids[numbers->count - 1]);
		if (ret & RET_ALL) {
			buf_append_str(&b, " ALL ");
			imap_append_uid_list(&b, numbers->uids, numbers->count);
		}
	}
	if (ret & RET_COUNT)
		buf_printf(&b, " COUNT %zu", numbers->count);
	if (modseq > 0)
		buf_printf(&b, " MODSEQ %llu", (unsigned long long)modseq);
	buf_append_str(&b, "\r\n");
	(void)uids;
	imap_write_buf(s, &b);
	buf_free(&b);
}

void imap_cmd_search(struct imap_session *s, struct imap_cmd *cmd)
{
	size_t pos = 0;
	unsigned int ret = 0;
	bool esearch = false;
	if (pos + 1 < cmd->count && imap_arg_is_atom(&cmd->args[pos], "RETURN") &&
	    cmd->args[pos + 1].type == IMAP_ARG_LIST) {
		if (parse_return(&cmd->args[pos + 1], &ret) < 0) {
			imap_bad(s, cmd->tag, "Invalid RETURN options");
			return;
		}
		esearch = true;
		pos += 2;
	}
	if (pos + 1 < cmd->count && imap_arg_is_atom(&cmd->args[pos], "CHARSET")) {
		const char *charset;
		if (!imap_arg_astring(&cmd->args[pos + 1], &charset)) {
			imap_bad(s, cmd->tag, "Invalid charset");
			return;
		}
		if (ascii_strcasecmp(charset, "UTF-8") != 0 && ascii_strcasecmp(charset, "US-ASCII") != 0) {
			imap_no(s, cmd->tag, "[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset");
			return;
		}
		pos += 2;
	}
	/* RFC 9051 6.4.4: IMAP4rev2 answers with ESEARCH */
	if (!esearch && (s->enabled & IMAP_ENABLED_IMAP4REV2)) {
		esearch = true;
		ret = RET_ALL;
	}
	struct search_parser p = { s, cmd, cmd->args + pos, cmd->count - pos, 0, 0, NULL, false, false };
	struct search_key *root = parse_list(&p, p.args, p.count);
	if (root == NULL) {
		if (p.error != NULL)
			imap_bad(s, cmd->tag, p.error);
		return;
	}
	struct store_uids uids = STORE_UIDS_INIT, numbers = STORE_UIDS_INIT;
	uint64_t highest = 0;
	size_t count;
	const uint32_t *view = store_mailbox_uids(s->mbox, &count);
	/* the snapshot stays put while searching: copy it first, since store
	 * calls below may refresh view memory */
	uint32_t *list = xmalloc((count ? count : 1) * sizeof(*list));
	if (count > 0)   /* an empty view may have no array at all */
		memcpy(list, view, count * sizeof(*list));
	key_order(cmd, root);
	/* first pass: the index walks in UID order like the view, merge the
	 * two; a UID of the view that the index no longer has was expunged
	 * meanwhile (no match) */
	unsigned char *verdicts = xcalloc(count ? count : 1, 1);
	size_t unknown = 0;
	struct search_msg m = { .mbox = s->mbox };
	m.iter = store_iter_new(s->mbox, NULL);
	bool more = count > 0 && store_iter_next(m.iter, &m.msg);
	for (size_t i = 0; i < count && more; i++) {
		while (more && m.msg.uid < list[i])
			more = store_iter_next(m.iter, &m.msg);
		if (!more || m.msg.uid != list[i])
			continue;
		m.have_cache = false;
		verdicts[i] = (unsigned char)key_match(s, root, &m);
		if (verdicts[i] == MATCH_YES && p.modseq && m.msg.modseq > highest)
			highest = m.msg.modseq;
		unknown += verdicts[i] == MATCH_UNKNOWN;
	}
	store_iter_free(&m.iter);
	/* second pass: what needs the files, one message at a time */
	for (size_t i = 0; i < count && unknown > 0; i++) {
		const char *error;
		if (verdicts[i] != MATCH_UNKNOWN)
			continue;
		unknown--;
		m.have_cache = false;
		verdicts[i] = MATCH_NO;
		if (store_msg_get(s->mbox, list[i], &m.msg, &error) < 0)
			continue;
		verdicts[i] = (unsigned char)key_match(s, root, &m);
		if (verdicts[i] == MATCH_YES && p.modseq && m.msg.modseq > highest)
			highest = m.msg.modseq;
	}
	for (size_t i = 0; i < count; i++) {
		if (verdicts[i] == MATCH_YES) {
			store_uids_push(&uids, list[i]);
			store_uids_push(&numbers, cmd->uid ? list[i] : (uint32_t)(i + 1));
		}
	}
	free(verdicts);
	free(list);
	key_free(root);
	if (ret & RET_SAVE)
		search_save(s, &uids);
	if (!esearch) {
		struct buf b = BUF_INIT;
		buf_append_str(&b, "* SEARCH");
		for (size_t i = 0; i < numbers.count; i++)
			buf_printf(&b, " %u", numbers.uids[i]);
		if (highest > 0)
			buf_printf(&b, " (MODSEQ %llu)", (unsigned long long)highest);
		buf_append_str(&b, "\r\n");
		imap_write_buf(s, &b);
		buf_free(&b);
	} else if (ret & ~RET_SAVE) {
		write_esearch(s, cmd, ret, &uids, &numbers, highest);
	}
	store_uids_clear(&uids);
	store_uids_clear(&numbers);
	imap_ok(s, cmd->tag, "%s completed", cmd->name);
}

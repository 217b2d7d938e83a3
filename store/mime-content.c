/* The Content-* header fields of one part (RFC 2045, 2183, 2231, 3282,
 * 2557), rendered as the pieces of a BODYSTRUCTURE entry. */

#include "store/mime-private.h"

#include <string.h>

/* Parameters kept per header field; more are dropped (a bound on work
 * and memory for hostile input, far above real use). */
#define MAX_PARAMS 256

struct mime_param {
	char *raw_name;  /* as written */
	char *name;      /* without the RFC 2231 "*N*" suffix */
	char *value;
	int section;     /* RFC 2231 continuation number, -1 when none */
	bool extended;   /* charset'language'%XX encoded */
};

struct mime_param_list {
	struct mime_param *items;
	size_t count;
};

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_tspecial(char c)
{
	return strchr("()<>@,;:\\\"/[]?=", c) != NULL;
}

static bool is_token_char(char c)
{
	return (unsigned char)c > 0x20 && c != 0x7f && !is_tspecial(c);
}

/* Skips white space and (nested) comments. */
static const char *skip_cfws(const char *p)
{
	for (;;) {
		while (is_wsp(*p))
			p++;
		if (*p != '(')
			return p;
		int depth = 0;
		while (*p != '\0') {
			if (*p == '\\' && p[1] != '\0') {
				p += 2;
				continue;
			}
			if (*p == '(')
				depth++;
			else if (*p == ')' && --depth == 0) {
				p++;
				break;
			}
			p++;
		}
	}
}

static char *parse_token(const char **pp)
{
	const char *p = *pp, *start = p;
	while (is_token_char(*p))
		p++;
	*pp = p;
	return p == start ? NULL : xstrndup(start, (size_t)(p - start));
}

static char *parse_quoted(const char **pp)
{
	const char *p = *pp + 1;
	struct buf out = BUF_INIT;
	buf_append(&out, "", 0);
	while (*p != '\0' && *p != '"') {
		if (*p == '\\' && p[1] != '\0')
			p++;
		buf_append_char(&out, *p++);
	}
	if (*p == '"')
		p++;
	*pp = p;
	return out.data;
}

/* A parameter value: quoted string, or (leniently) any run of bytes up
 * to white space or ';'. */
static char *parse_value(const char **pp)
{
	if (**pp == '"')
		return parse_quoted(pp);
	const char *p = *pp, *start = p;
	while (*p != '\0' && *p != ';' && !is_wsp(*p) && *p != '"')
		p++;
	*pp = p;
	return xstrndup(start, (size_t)(p - start));
}

static void param_add(struct mime_param_list *list, char *name, char *value)
{
	struct mime_param param = { NULL, name, value, -1, false };
	if (list->count >= MAX_PARAMS) {
		free(name);
		free(value);
		return;
	}
	param.raw_name = xstrdup(name);
	size_t len = strlen(name);
	if (len > 1 && name[len - 1] == '*') {
		param.extended = true;
		name[--len] = '\0';
	}
	char *star = strrchr(name, '*');
	if (star != NULL && star[1] >= '0' && star[1] <= '9' &&
	    strspn(star + 1, "0123456789") == strlen(star + 1) &&
	    strlen(star + 1) <= 4) {
		param.section = atoi(star + 1);
		*star = '\0';
	}
	list->items = xrealloc(list->items, (list->count + 1) * sizeof(*list->items));
	list->items[list->count++] = param;
}

static void params_parse(const char *p, struct mime_param_list *list)
{
	for (;;) {
		p = skip_cfws(p);
		if (*p == '\0')
			return;
		if (*p != ';') {
			/* junk: resynchronise at the next ';' */
			const char *semi = strchr(p, ';');
			if (semi == NULL)
				return;
			p = semi;
		}
		p = skip_cfws(p + 1);
		char *name = parse_token(&p);
		if (name == NULL)
			continue;
		p = skip_cfws(p);
		if (*p != '=') {
			free(name);
			continue;
		}
		p = skip_cfws(p + 1);
		char *value = parse_value(&p);
		param_add(list, name, value);
	}
}

static void params_free(struct mime_param_list *list)
{
	for (size_t i = 0; i < list->count; i++) {
		free(list->items[i].raw_name);
		free(list->items[i].name);
		free(list->items[i].value);
	}
	free(list->items);
	list->items = NULL;
	list->count = 0;
}

static const char *param_get(const struct mime_param_list *list, const char *name)
{
	for (size_t i = 0; i < list->count; i++) {
		const struct mime_param *param = &list->items[i];
		if (param->section < 0 && !param->extended &&
		    ascii_strcasecmp(param->name, name) == 0)
			return param->value;
	}
	return NULL;
}

/* RFC 2231 attribute-char: what may stay unencoded in an extended value */
static bool is_attribute_char(char c)
{
	return is_token_char(c) && c != '*' && c != '\'' && c != '%';
}

static void append_percent_encoded(struct buf *out, const char *s)
{
	for (; *s != '\0'; s++) {
		if (is_attribute_char(*s))
			buf_append_char(out, *s);
		else
			buf_printf(out, "%%%02X", (unsigned char)*s);
	}
}

static int section_compare(const void *a, const void *b)
{
	const struct mime_param *x = *(const struct mime_param *const *)a;
	const struct mime_param *y = *(const struct mime_param *const *)b;
	return x->section < y->section ? -1 : x->section > y->section;
}

/* The continuations of params[first]'s name (RFC 2231 section 3) in
 * section order; false unless they are exactly sections 0..n. */
static bool param_pieces(const struct mime_param_list *list, size_t first,
			 const struct mime_param **pieces, size_t *count_r)
{
	const char *base = list->items[first].name;
	size_t count = 0;
	for (size_t i = first; i < list->count; i++) {
		const struct mime_param *param = &list->items[i];
		if (param->section >= 0 && ascii_strcasecmp(param->name, base) == 0)
			pieces[count++] = param;
	}
	qsort(pieces, count, sizeof(*pieces), section_compare);
	*count_r = count;
	for (size_t i = 0; i < count; i++) {
		if (pieces[i]->section != (int)i)
			return false;
	}
	return true;
}

/* One parameter joined from its pieces; unencoded pieces of an encoded
 * value are percent-encoded so that the whole stays one RFC 2231 value. */
static void param_join(const struct mime_param **pieces, size_t count,
		       struct buf *name, struct buf *value)
{
	bool extended = false;
	for (size_t i = 0; i < count; i++)
		extended |= pieces[i]->extended;
	for (size_t i = 0; i < count; i++) {
		if (extended && !pieces[i]->extended)
			append_percent_encoded(value, pieces[i]->value);
		else
			buf_append_str(value, pieces[i]->value);
	}
	buf_append_str(name, pieces[0]->name);
	if (extended)
		buf_append_char(name, '*');
}

static void param_append(struct buf *out, const char *name, size_t name_len,
			 const char *value, size_t value_len)
{
	if (out->data[out->len - 1] != '(')
		buf_append_char(out, ' ');
	mail_imap_string(out, name, name_len);
	buf_append_char(out, ' ');
	mail_imap_string(out, value, value_len);
}

/* Dovecot's order: parameters as written (continuation sets that are not
 * exactly 0..n among them, unjoined), then each joined continuation set,
 * then the charset added to a text part that has none. */
static void params_render(const struct mime_param_list *list, bool add_charset,
			  struct buf *out)
{
	if (list->count == 0 && !add_charset) {
		buf_append_str(out, "NIL");
		return;
	}
	/* 0: as written, 1: to be joined, 2: joined, 3: a broken set, as written */
	char *state = xcalloc(list->count + 1, 1);
	const struct mime_param **pieces = xmalloc((list->count + 1) * sizeof(*pieces));
	size_t count;
	for (size_t i = 0; i < list->count; i++) {
		if (list->items[i].section < 0 || state[i] != 0)
			continue;
		char mark = param_pieces(list, i, pieces, &count) ? 1 : 3;
		for (size_t j = 0; j < count; j++)
			state[pieces[j] - list->items] = mark;
	}
	buf_append_char(out, '(');
	for (size_t i = 0; i < list->count; i++) {
		const struct mime_param *param = &list->items[i];
		if (state[i] == 0 || state[i] == 3)
			param_append(out, param->raw_name, strlen(param->raw_name),
				     param->value, strlen(param->value));
	}
	for (size_t i = 0; i < list->count; i++) {
		if (state[i] != 1)
			continue;
		struct buf name = BUF_INIT, value = BUF_INIT;
		param_pieces(list, i, pieces, &count);
		param_join(pieces, count, &name, &value);
		for (size_t j = 0; j < count; j++)
			state[pieces[j] - list->items] = 2;
		param_append(out, buf_str(&name), name.len, buf_str(&value), value.len);
		buf_free(&name);
		buf_free(&value);
	}
	if (add_charset)
		param_append(out, "charset", 7, "us-ascii", 8);
	buf_append_char(out, ')');
	free(pieces);
	free(state);
}

/* "type/subtype; params": 0 on success. */
static int content_type_parse(const char *value, char **type_r, char **subtype_r,
			      struct mime_param_list *params)
{
	const char *p = skip_cfws(value);
	char *type = parse_token(&p);
	p = skip_cfws(p);
	if (type == NULL || *p != '/') {
		free(type);
		return -1;
	}
	p = skip_cfws(p + 1);
	char *subtype = parse_token(&p);
	if (subtype == NULL) {
		free(type);
		return -1;
	}
	params_parse(p, params);
	*type_r = type;
	*subtype_r = subtype;
	return 0;
}

static void disposition_render(const char *value, struct buf *out)
{
	const char *p = value == NULL ? "" : skip_cfws(value);
	char *type = parse_token(&p);
	if (type == NULL) {
		buf_append_str(out, "NIL");
		return;
	}
	struct mime_param_list params = { NULL, 0 };
	params_parse(p, &params);
	buf_append_char(out, '(');
	mail_imap_string(out, type, strlen(type));
	buf_append_char(out, ' ');
	params_render(&params, false, out);
	buf_append_char(out, ')');
	params_free(&params);
	free(type);
}

/* Content-Language: a comma separated list of tags (RFC 3282). */
static void language_render(const char *value, struct buf *out)
{
	const char *p = value == NULL ? "" : value;
	size_t count = 0;
	struct buf list = BUF_INIT;
	for (;;) {
		p = skip_cfws(p);
		while (*p == ',')
			p = skip_cfws(p + 1);
		char *tag = parse_token(&p);
		if (tag == NULL)
			break;
		if (count++ > 0)
			buf_append_char(&list, ' ');
		mail_imap_string(&list, tag, strlen(tag));
		free(tag);
	}
	if (count == 0)
		buf_append_str(out, "NIL");
	else
		buf_printf(out, "(%s)", buf_str(&list));
	buf_free(&list);
}

static void nstring_append(struct buf *out, const char *value)
{
	buf_append_char(out, ' ');
	mail_imap_nstring(out, value);
}

static void extension_render(const struct mime_headers *h, struct buf *out)
{
	disposition_render(h->value[MIME_F_CONTENT_DISPOSITION], out);
	buf_append_char(out, ' ');
	language_render(h->value[MIME_F_CONTENT_LANGUAGE], out);
	nstring_append(out, h->value[MIME_F_CONTENT_LOCATION]);
}

void mime_part_info_fill(struct mime_part_info *info, const struct mime_headers *h,
			 bool digest_default)
{
	char *type = NULL, *subtype = NULL;
	struct mime_param_list params = { NULL, 0 };
	const char *ct = h->value[MIME_F_CONTENT_TYPE];

	/* RFC 2045 5.2: a missing or invalid Content-Type means the default */
	if (ct == NULL || content_type_parse(ct, &type, &subtype, &params) < 0) {
		params_free(&params);
		type = xstrdup(digest_default ? "message" : "text");
		subtype = xstrdup(digest_default ? "rfc822" : "plain");
		if (!digest_default)
			param_add(&params, xstrdup("charset"), xstrdup("us-ascii"));
	}
	info->is_text = ascii_strcasecmp(type, "text") == 0;
	info->is_multipart = ascii_strcasecmp(type, "multipart") == 0;
	/* RFC 9051's body-type-msg covers message/global (RFC 6532) too */
	info->is_message = ascii_strcasecmp(type, "message") == 0 &&
		(ascii_strcasecmp(subtype, "rfc822") == 0 ||
		 ascii_strcasecmp(subtype, "global") == 0);

	struct buf basic = BUF_INIT, ext = BUF_INIT;
	if (info->is_multipart) {
		const char *boundary = param_get(&params, "boundary");
		if (boundary != NULL && *boundary != '\0')
			info->boundary = xstrdup(boundary);
		mail_imap_string(&basic, subtype, strlen(subtype));
		params_render(&params, false, &ext);
		buf_append_char(&ext, ' ');
		extension_render(h, &ext);
	} else {
		bool add_charset = info->is_text && param_get(&params, "charset") == NULL;
		mail_imap_string(&basic, type, strlen(type));
		buf_append_char(&basic, ' ');
		mail_imap_string(&basic, subtype, strlen(subtype));
		buf_append_char(&basic, ' ');
		params_render(&params, add_charset, &basic);
		nstring_append(&basic, h->value[MIME_F_CONTENT_ID]);
		nstring_append(&basic, h->value[MIME_F_CONTENT_DESCRIPTION]);
		const char *cte = h->value[MIME_F_CONTENT_TRANSFER_ENCODING];
		const char *p = cte == NULL ? "" : skip_cfws(cte);
		char *enc = parse_token(&p);
		nstring_append(&basic, enc == NULL ? "7bit" : enc);
		free(enc);
		mail_imap_nstring(&ext, h->value[MIME_F_CONTENT_MD5]);
		buf_append_char(&ext, ' ');
		extension_render(h, &ext);
	}
	info->basic = xstrdup(buf_str(&basic));
	info->ext = xstrdup(buf_str(&ext));
	buf_free(&basic);
	buf_free(&ext);
	params_free(&params);
	free(type);
	free(subtype);
}

void mime_content_type_get(const char *value, char **type_r, char **charset_r)
{
	char *type = NULL, *subtype = NULL;
	struct mime_param_list params = { NULL, 0 };
	*charset_r = NULL;
	if (value != NULL && content_type_parse(value, &type, &subtype, &params) == 0) {
		const char *charset = param_get(&params, "charset");
		if (charset != NULL)
			*charset_r = xstrdup(charset);
		*type_r = type;
		free(subtype);
	} else {
		*type_r = xstrdup("text");
	}
	if (*charset_r == NULL)
		*charset_r = xstrdup("us-ascii");
	params_free(&params);
}

void mime_part_info_free(struct mime_part_info *info)
{
	free(info->basic);
	free(info->ext);
	free(info->envelope);
	free(info->boundary);
	memset(info, 0, sizeof(*info));
}

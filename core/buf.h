#ifndef POSTERN_BUF_H
#define POSTERN_BUF_H

/* A growable, length-carrying byte buffer, always NUL-terminated after
 * its length (so data can be used as a C string when it holds no NUL).
 * Allocation failure is fatal. No strcat/sprintf elsewhere: use these. */

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

struct buf {
	char *data;
	size_t len;
	size_t cap;
};

#define BUF_INIT { NULL, 0, 0 }

void buf_init(struct buf *b);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);
void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *data, size_t len);
void buf_append_str(struct buf *b, const char *s);
void buf_append_char(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Appends src with CR, LF, NUL and other control bytes replaced by '?'. */
void buf_append_sanitized(struct buf *b, const void *src, size_t len);
/* Returns the C string (never NULL, "" for an empty buffer). */
const char *buf_str(const struct buf *b);

/* Checked allocation: failure is fatal (STYLE.md). */
void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Case-insensitive ASCII comparisons (locale independent). */
int ascii_strcasecmp(const char *a, const char *b);
/* Well-formed UTF-8 (RFC 3629: shortest form, no surrogates, <= U+10FFFF). */
bool utf8_is_valid(const void *s, size_t len);
int ascii_strncasecmp(const char *a, const char *b, size_t n);
bool ascii_has_prefix_ci(const char *s, const char *prefix);

#endif

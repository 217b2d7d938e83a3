#ifndef POSTERN_LOG_H
#define POSTERN_LOG_H

/* One line per event on stderr: "LEVEL key=value key=value ...".
 * The current context (connection id, peer address, user) is prepended
 * automatically; set it with log_set_context() while serving a connection.
 * Never pass a password or a message body. Client text must go through
 * log_sanitize() (or the %s of a str_sanitize()d buffer) first. */

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

void log_init(const char *progname, enum log_level level);
void log_set_level(enum log_level level);
int log_parse_level(const char *name, enum log_level *level_r);
const char *log_level_name(enum log_level level);
/* The context string is not copied: it must live until cleared (NULL). */
void log_set_context(const char *context);
const char *log_get_context(void);

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void log_vmsg(enum log_level level, const char *fmt, va_list ap)
  __attribute__((format(printf, 2, 0)));

/* Copies at most dst_size-1 bytes of src (src_len bytes, may hold NUL),
 * replacing control bytes, DEL, '"', '\\' and bytes >= 0x80 by '?',
 * always NUL-terminating. Returns dst. For echoing client text safely. */
char *log_sanitize(char *dst, size_t dst_size, const char *src, size_t src_len);

#endif

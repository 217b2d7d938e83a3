#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *log_progname = "postern";
static enum log_level log_min_level = LOG_LEVEL_INFO;
static const char *log_context;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void log_init(const char *progname, enum log_level level)
{
	log_progname = progname;
	log_min_level = level;
}

void log_set_level(enum log_level level)
{
	log_min_level = level;
}

int log_parse_level(const char *name, enum log_level *level_r)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*level_r = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

const char *log_level_name(enum log_level level)
{
	return level_names[level];
}

void log_set_context(const char *context)
{
	log_context = context;
}

const char *log_get_context(void)
{
	return log_context;
}

void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	if (level < log_min_level)
		return;
	char line[2048];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, sizeof(line),
			 "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%ld] %s ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
			 tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, log_progname,
			 (long)getpid(), level_names[level]);
	if (n < 0)
		return;
	size_t len = (size_t)n;
	if (log_context != NULL && len < sizeof(line)) {
		n = snprintf(line + len, sizeof(line) - len, "%s ", log_context);
		if (n > 0)
			len += (size_t)n;
	}
	if (len < sizeof(line)) {
		n = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
		if (n > 0)
			len += (size_t)n;
	}
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	/* one event, one line: never let a stray newline split it */
	for (size_t i = 0; i < len; i++) {
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	}
	line[len++] = '\n';
	/* a single write keeps lines from different processes whole */
	ssize_t ret = write(STDERR_FILENO, line, len);
	(void)ret;
}

#define LOG_FN(name, level)                        \
	void name(const char *fmt, ...)            \
	{                                          \
		va_list ap;                        \
		va_start(ap, fmt);                 \
		log_vmsg(level, fmt, ap);          \
		va_end(ap);                        \
	}
LOG_FN(log_debug, LOG_LEVEL_DEBUG)
LOG_FN(log_info, LOG_LEVEL_INFO)
LOG_FN(log_warn, LOG_LEVEL_WARN)
LOG_FN(log_error, LOG_LEVEL_ERROR)

void fatal(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(LOG_LEVEL_ERROR, fmt, ap);
	va_end(ap);
	exit(1);
}

char *log_sanitize(char *dst, size_t dst_size, const char *src, size_t src_len)
{
	size_t i;
	if (dst_size == 0)
		return dst;
	for (i = 0; i < src_len && i + 1 < dst_size; i++) {
		unsigned char c = (unsigned char)src[i];
		dst[i] = (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') ? '?' : (char)c;
	}
	dst[i] = '\0';
	return dst;
}

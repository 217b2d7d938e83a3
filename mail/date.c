/* RFC 5322 date-time: the writer (UTC, English names whatever the
 * locale) and the reader, with the obsolete forms of section 4.3 (two and
 * three digit years, named zones, comments, missing seconds). */

#include "mail/mail.h"

#include <stdio.h>
#include <string.h>

static const char *const month_names[] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
};

void mail_date_format(time_t t, char *out, size_t size)
{
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	struct tm tm;
	gmtime_r(&t, &tm);
	snprintf(out, size, "%s, %d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday],
		 tm.tm_mday, month_names[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
		 tm.tm_sec);
}

static const char *skip_cfws(const char *p)
{
	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
			p++;
		if (*p != '(')
			return p;
		int depth = 0;
		for (; *p != '\0'; p++) {
			if (*p == '\\' && p[1] != '\0')
				p++;
			else if (*p == '(')
				depth++;
			else if (*p == ')' && --depth == 0) {
				p++;
				break;
			}
		}
	}
}

static int read_number(const char **pp, int max_digits, int *value_r)
{
	const char *p = *pp;
	int value = 0, digits = 0;
	while (*p >= '0' && *p <= '9' && digits < max_digits) {
		value = value * 10 + (*p - '0');
		p++;
		digits++;
	}
	if (digits == 0)
		return -1;
	*pp = p;
	*value_r = value;
	return digits;
}

static size_t read_word(const char **pp, char *word, size_t size)
{
	const char *p = *pp;
	size_t n = 0;
	while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')) {
		if (n + 1 < size)
			word[n++] = *p;
		p++;
	}
	word[n] = '\0';
	*pp = p;
	return n;
}

static int month_number(const char *name)
{
	for (int i = 0; i < 12; i++) {
		if (ascii_strncasecmp(name, month_names[i], 3) == 0)
			return i;
	}
	return -1;
}

/* Named zones of RFC 5322 4.3; military letters count as -0000. */
static int zone_minutes(const char *name, int *minutes_r)
{
	static const struct { const char *name; int hours; } zones[] = {
		{ "UT", 0 }, { "UTC", 0 }, { "GMT", 0 }, { "Z", 0 },
		{ "EST", -5 }, { "EDT", -4 }, { "CST", -6 }, { "CDT", -5 },
		{ "MST", -7 }, { "MDT", -6 }, { "PST", -8 }, { "PDT", -7 },
	};
	for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++) {
		if (ascii_strcasecmp(name, zones[i].name) == 0) {
			*minutes_r = zones[i].hours * 60;
			return 0;
		}
	}
	if (strlen(name) == 1) {
		*minutes_r = 0;
		return 0;
	}
	return -1;
}

static int parse_zone(const char *p, int *minutes_r)
{
	p = skip_cfws(p);
	*minutes_r = 0;
	if (*p == '+' || *p == '-') {
		int sign = *p == '-' ? -1 : 1, hhmm;
		p++;
		if (read_number(&p, 4, &hhmm) != 4)
			return -1;
		if (hhmm / 100 > 23 || hhmm % 100 > 59)
			return -1;
		*minutes_r = sign * ((hhmm / 100) * 60 + hhmm % 100);
		return 0;
	}
	char word[8];
	if (read_word(&p, word, sizeof(word)) == 0)
		return 0;   /* no zone: treat as UTC */
	if (zone_minutes(word, minutes_r) < 0)
		*minutes_r = 0;   /* unknown zones mean -0000 (RFC 5322 4.3) */
	return 0;
}

int mail_date_parse(const char *value, time_t *time_r, int *tz_minutes_r)
{
	const char *p = skip_cfws(value);
	char word[16];
	struct tm tm;
	int day, year, hour, min, sec = 0, tz = 0, digits;

	memset(&tm, 0, sizeof(tm));
	/* optional day of week */
	const char *save = p;
	if (read_word(&p, word, sizeof(word)) > 0) {
		p = skip_cfws(p);
		if (*p == ',')
			p = skip_cfws(p + 1);
	} else {
		p = save;
	}
	if (read_number(&p, 2, &day) < 0)
		return -1;
	p = skip_cfws(p);
	if (*p == '-')   /* obsolete "7-Feb-1994" */
		p++;
	if (read_word(&p, word, sizeof(word)) < 3 || (tm.tm_mon = month_number(word)) < 0)
		return -1;
	p = skip_cfws(p);
	if (*p == '-')
		p++;
	if ((digits = read_number(&p, 4, &year)) < 0)
		return -1;
	if (digits == 2)
		year += year < 50 ? 2000 : 1900;
	else if (digits == 3)
		year += 1900;
	p = skip_cfws(p);
	if (read_number(&p, 2, &hour) < 0)
		return -1;
	p = skip_cfws(p);
	if (*p != ':')
		return -1;
	p = skip_cfws(p + 1);
	if (read_number(&p, 2, &min) < 0)
		return -1;
	p = skip_cfws(p);
	if (*p == ':') {
		p = skip_cfws(p + 1);
		if (read_number(&p, 2, &sec) < 0)
			return -1;
	}
	if (day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60 || year < 1900)
		return -1;
	if (parse_zone(p, &tz) < 0)
		return -1;
	tm.tm_mday = day;
	tm.tm_year = year - 1900;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	time_t t = timegm(&tm);
	*time_r = t - (time_t)tz * 60;
	*tz_minutes_r = tz;
	return 0;
}

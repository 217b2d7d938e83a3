#include "core/config.h"
#include "core/buf.h"

#include <ini.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CONFIG_MAX_VALUE 160

enum config_type {
	CT_STRING,      /* char *, NULL allowed when the default is NULL */
	CT_INT,
	CT_BOOL,
	CT_DURATION,
	CT_SIZE,
	CT_LISTEN,      /* char *, validated host:port, empty = disabled */
	CT_LISTEN_LOCAL, /* the same; a bare PORT means 127.0.0.1:PORT */
	CT_PLAINTEXT,
	CT_RELAY_MODE,
	CT_LOG_LEVEL,
	CT_SCHEDULE,
};

struct config_key {
	const char *section;    /* "" for the top */
	const char *name;
	enum config_type type;
	size_t offset;
	const char *def;        /* default, parsed like file text; NULL = unset */
	int min, max;           /* for CT_INT */
};

#define OFF(field) offsetof(struct config, field)

static const struct config_key config_keys[] = {
	{ "", "hostname", CT_STRING, OFF(hostname), NULL, 0, 0 },
	{ "", "data_dir", CT_STRING, OFF(data_dir), "/var/lib/postern", 0, 0 },
	{ "", "run_as", CT_STRING, OFF(run_as), "postern", 0, 0 },
	{ "", "workers", CT_INT, OFF(workers), "0", 0, 256 },
	{ "", "log_level", CT_LOG_LEVEL, OFF(log_level), "info", 0, 0 },

	{ "tls", "cert", CT_STRING, OFF(tls_cert), "/etc/postern/cert.pem", 0, 0 },
	{ "tls", "key", CT_STRING, OFF(tls_key), "/etc/postern/key.pem", 0, 0 },

	{ "listen", "submission", CT_LISTEN, OFF(listen[LISTEN_SUBMISSION]), NULL, 0, 0 },
	{ "listen", "submissions", CT_LISTEN, OFF(listen[LISTEN_SUBMISSIONS]), NULL, 0, 0 },
	{ "listen", "smtp", CT_LISTEN, OFF(listen[LISTEN_SMTP]), NULL, 0, 0 },
	{ "listen", "pop3", CT_LISTEN, OFF(listen[LISTEN_POP3]), NULL, 0, 0 },
	{ "listen", "pop3s", CT_LISTEN, OFF(listen[LISTEN_POP3S]), NULL, 0, 0 },
	{ "listen", "imap", CT_LISTEN, OFF(listen[LISTEN_IMAP]), NULL, 0, 0 },
	{ "listen", "imaps", CT_LISTEN, OFF(listen[LISTEN_IMAPS]), NULL, 0, 0 },
	{ "listen", "metrics", CT_LISTEN_LOCAL, OFF(listen_metrics), NULL, 0, 0 },
	{ "listen", "https", CT_LISTEN, OFF(listen_https), NULL, 0, 0 },

	{ "auth", "plaintext", CT_PLAINTEXT, OFF(auth_plaintext), "loopback", 0, 0 },
	{ "auth", "delay_after", CT_INT, OFF(auth_delay_after), "3", 1, 1000 },
	{ "auth", "block_after", CT_INT, OFF(auth_block_after), "10", 1, 100000 },
	{ "auth", "block_time", CT_DURATION, OFF(auth_block_time), "15m", 0, 0 },

	{ "limits", "max_connections", CT_INT, OFF(max_connections), "10000", 1, 1000000 },
	{ "limits", "max_connections_per_ip", CT_INT, OFF(max_connections_per_ip), "100", 1, 1000000 },
	{ "limits", "timeout_preauth", CT_DURATION, OFF(timeout_preauth), "60s", 0, 0 },
	{ "limits", "timeout_smtp", CT_DURATION, OFF(timeout_smtp), "5m", 0, 0 },
	{ "limits", "timeout_pop3", CT_DURATION, OFF(timeout_pop3), "10m", 0, 0 },
	{ "limits", "timeout_imap", CT_DURATION, OFF(timeout_imap), "30m", 0, 0 },
	{ "limits", "shutdown_timeout", CT_DURATION, OFF(shutdown_timeout), "10s", 0, 0 },
	{ "limits", "min_rate", CT_INT, OFF(min_rate), "256", 0, 100000000 },
	{ "limits", "min_rate_grace", CT_DURATION, OFF(min_rate_grace), "10s", 0, 0 },

	{ "smtp", "max_message_size", CT_SIZE, OFF(smtp_max_message_size), "50M", 0, 0 },
	{ "smtp", "max_recipients", CT_INT, OFF(smtp_max_recipients), "100", 1, 100000 },
	{ "smtp", "max_received", CT_INT, OFF(smtp_max_received), "50", 1, 1000 },
	{ "smtp", "rate_limit", CT_INT, OFF(smtp_rate_limit), "0", 0, 10000000 },
	{ "smtp", "normalize_bare_lf", CT_BOOL, OFF(smtp_normalize_bare_lf), "no", 0, 0 },
	{ "smtp", "quota_full_tempfail", CT_BOOL, OFF(smtp_quota_full_tempfail), "no", 0, 0 },

	{ "relay", "mode", CT_RELAY_MODE, OFF(relay_mode), "mx", 0, 0 },
	{ "relay", "smarthost", CT_STRING, OFF(relay_smarthost), NULL, 0, 0 },
	{ "relay", "dns", CT_STRING, OFF(relay_dns), NULL, 0, 0 },
	{ "relay", "retry_schedule", CT_SCHEDULE, OFF(relay_retry_schedule_text),
	  "5m 10m 20m 40m 1h 2h 4h", 0, 0 },
	{ "relay", "max_lifetime", CT_DURATION, OFF(relay_max_lifetime), "5d", 0, 0 },
	{ "relay", "delay_warning", CT_DURATION, OFF(relay_delay_warning), "4h", 0, 0 },
	{ "relay", "mx_port", CT_INT, OFF(relay_mx_port), "25", 1, 65535 },
	{ "relay", "require_tls", CT_BOOL, OFF(relay_require_tls), "no", 0, 0 },
	{ "relay", "smarthost_tls", CT_STRING, OFF(relay_smarthost_tls), "starttls", 0, 0 },
	{ "relay", "smarthost_auth_file", CT_STRING, OFF(relay_smarthost_auth_file), NULL, 0, 0 },
	{ "relay", "smarthost_tls_verify", CT_BOOL, OFF(relay_smarthost_tls_verify), "yes", 0, 0 },
	{ "relay", "smarthost_ca_file", CT_STRING, OFF(relay_smarthost_ca_file), NULL, 0, 0 },
	{ "relay", "max_connections", CT_INT, OFF(relay_max_connections), "20", 1, 10000 },
	{ "relay", "max_per_destination", CT_INT, OFF(relay_max_per_destination), "4", 1, 10000 },
	{ "relay", "host_down_time", CT_DURATION, OFF(relay_host_down_time), "10m", 0, 0 },
	{ "relay", "mta_sts", CT_BOOL, OFF(relay_mta_sts), "yes", 0, 0 },
	{ "relay", "mta_sts_ca_file", CT_STRING, OFF(relay_mta_sts_ca_file), NULL, 0, 0 },
	{ "relay", "mta_sts_port", CT_INT, OFF(relay_mta_sts_port), "443", 1, 65535 },
	{ "relay", "dane", CT_BOOL, OFF(relay_dane), "yes", 0, 0 },
	{ "relay", "dane_trust_anchor", CT_STRING, OFF(relay_dane_trust_anchor),
	  "/usr/share/dns/root.key", 0, 0 },

	{ "mta_sts", "mode", CT_STRING, OFF(mta_sts_mode), "testing", 0, 0 },
	{ "mta_sts", "max_age", CT_DURATION, OFF(mta_sts_max_age), "7d", 0, 0 },
};

#define CONFIG_KEY_COUNT (sizeof(config_keys) / sizeof(config_keys[0]))
_Static_assert(CONFIG_KEY_COUNT <= CONFIG_KEYS_MAX, "raise CONFIG_KEYS_MAX in config.h");

static const char *const plaintext_names[] = { "never", "loopback", "always" };
static const char *const relay_mode_names[] = { "mx", "smarthost", "none" };
static const char *const listener_names[LISTEN_COUNT] = {
	"submission", "submissions", "smtp", "pop3", "pop3s", "imap", "imaps",
};

const char *listener_kind_name(enum listener_kind kind)
{
	return listener_names[kind];
}

static char config_error[512];

int config_parse_duration(const char *text, int *seconds_r)
{
	char *end;
	errno = 0;
	long v = strtol(text, &end, 10);
	if (end == text || errno != 0 || v < 0)
		return -1;
	long mult = 1;
	if (*end != '\0') {
		switch (*end) {
		case 's': mult = 1; break;
		case 'm': mult = 60; break;
		case 'h': mult = 3600; break;
		case 'd': mult = 86400; break;
		default: return -1;
		}
		if (end[1] != '\0')
			return -1;
	}
	if (v > INT_MAX / mult)
		return -1;
	*seconds_r = (int)(v * mult);
	return 0;
}

int config_parse_size(const char *text, size_t *bytes_r)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(text, &end, 10);
	if (end == text || errno != 0 || text[0] == '-')
		return -1;
	unsigned long long mult = 1;
	if (*end != '\0') {
		switch (*end) {
		case 'k': case 'K': mult = 1024ULL; break;
		case 'm': case 'M': mult = 1024ULL * 1024; break;
		case 'g': case 'G': mult = 1024ULL * 1024 * 1024; break;
		default: return -1;
		}
		if (end[1] != '\0')
			return -1;
	}
	if (v > SIZE_MAX / mult)
		return -1;
	*bytes_r = (size_t)(v * mult);
	return 0;
}

int config_split_hostport(const char *text, char *host, size_t host_size,
			  int *port_r)
{
	const char *colon;
	size_t hlen;
	const char *hstart = text;
	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (close == NULL || close[1] != ':')
			return -1;
		hstart = text + 1;
		hlen = (size_t)(close - hstart);
		colon = close + 1;
	} else {
		colon = strrchr(text, ':');
		if (colon == NULL)
			return -1;
		hlen = (size_t)(colon - text);
		if (memchr(text, ':', hlen) != NULL)
			return -1;   /* bare IPv6 needs brackets */
	}
	if (hlen == 0 || hlen >= host_size)
		return -1;
	for (size_t i = 0; i < hlen; i++) {
		char ch = hstart[i];
		if (!isalnum((unsigned char)ch) && strchr(".-_:%*", ch) == NULL)
			return -1;
	}
	if (!isdigit((unsigned char)colon[1]))
		return -1;
	char *end;
	errno = 0;
	long port = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || errno != 0 || port < 1 || port > 65535)
		return -1;
	memcpy(host, hstart, hlen);
	host[hlen] = '\0';
	if (strcmp(host, "*") == 0)
		host[0] = '\0';
	*port_r = (int)port;
	return 0;
}

static int parse_enum(const char *value, const char *const *names, size_t n, int *out)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(value, names[i]) == 0) {
			*out = (int)i;
			return 0;
		}
	}
	return -1;
}

static int parse_schedule(struct config *cfg, const char *value)
{
	char tmp[512];
	if (strlen(value) >= sizeof(tmp))
		return -1;
	strcpy(tmp, value);
	int count = 0;
	char *save = NULL;
	for (char *tok = strtok_r(tmp, " \t,", &save); tok != NULL;
	     tok = strtok_r(NULL, " \t,", &save)) {
		int secs;
		if (count == CONFIG_MAX_RETRIES || config_parse_duration(tok, &secs) < 0 ||
		    secs == 0)
			return -1;
		cfg->relay_retry_schedule[count++] = secs;
	}
	if (count == 0)
		return -1;
	cfg->relay_retry_count = count;
	return 0;
}

static void set_string(char **field, const char *value)
{
	free(*field);
	*field = value == NULL ? NULL : xstrdup(value);
}

/* Stores value into the field; returns a reason on failure. */
static const char *config_set(struct config *cfg, const struct config_key *key,
			      const char *value)
{
	void *field = (char *)cfg + key->offset;
	int iv;
	size_t sv;
	char host[256];

	/* what `postern check` prints must read back the same */
	for (const char *p = value; p != NULL && *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return "control character in value";
	}
	if (value != NULL && value[0] == ';')
		return "a value cannot start with ';' (a comment)";
	/* "key = value" must fit a line (CONFIG_MAX_VALUE + the longest key) */
	if (value != NULL && strlen(value) > CONFIG_MAX_VALUE)
		return "value too long (at most 160 bytes)";

	switch (key->type) {
	case CT_STRING:
		set_string(field, value);
		return NULL;
	case CT_INT: {
		char *end;
		errno = 0;
		long v = strtol(value, &end, 10);
		if (value[0] == '\0' || *end != '\0' || errno != 0 || v < key->min ||
		    v > key->max)
			return "must be a whole number in range";
		*(int *)field = (int)v;
		return NULL;
	}
	case CT_BOOL:
		if (strcmp(value, "yes") == 0 || strcmp(value, "true") == 0 ||
		    strcmp(value, "on") == 0 || strcmp(value, "1") == 0)
			*(bool *)field = true;
		else if (strcmp(value, "no") == 0 || strcmp(value, "false") == 0 ||
			 strcmp(value, "off") == 0 || strcmp(value, "0") == 0)
			*(bool *)field = false;
		else
			return "must be yes or no";
		return NULL;
	case CT_DURATION:
		if (config_parse_duration(value, &iv) < 0)
			return "must be a duration like 30s, 5m, 2h or 1d";
		*(int *)field = iv;
		return NULL;
	case CT_SIZE:
		if (config_parse_size(value, &sv) < 0)
			return "must be a size like 1024, 512k, 50M or 1G";
		*(size_t *)field = sv;
		return NULL;
	case CT_LISTEN:
	case CT_LISTEN_LOCAL: {
		if (value == NULL || value[0] == '\0') {
			set_string(field, NULL);
			return NULL;
		}
		char local[32];
		if (key->type == CT_LISTEN_LOCAL && strspn(value, "0123456789") == strlen(value) &&
		    strlen(value) < 6) {
			snprintf(local, sizeof(local), "127.0.0.1:%s", value);
			value = local;
		}
		if (config_split_hostport(value, host, sizeof(host), &iv) < 0)
			return key->type == CT_LISTEN_LOCAL ?
				"must be PORT (on 127.0.0.1) or ADDRESS:PORT" :
				"must be ADDRESS:PORT (use [::1]:PORT for IPv6, *:PORT for any)";
		set_string(field, value);
		return NULL;
	}
	case CT_PLAINTEXT:
		if (parse_enum(value, plaintext_names, 3, &iv) < 0)
			return "must be never, loopback or always";
		*(enum plaintext_policy *)field = (enum plaintext_policy)iv;
		return NULL;
	case CT_RELAY_MODE:
		if (parse_enum(value, relay_mode_names, 3, &iv) < 0)
			return "must be mx, smarthost or none";
		*(enum relay_mode *)field = (enum relay_mode)iv;
		return NULL;
	case CT_LOG_LEVEL: {
		enum log_level lvl;
		if (log_parse_level(value, &lvl) < 0)
			return "must be debug, info, warn or error";
		*(enum log_level *)field = lvl;
		return NULL;
	}
	case CT_SCHEDULE:
		if (parse_schedule(cfg, value) < 0)
			return "must be a list of durations, like 5m 10m 1h";
		set_string(field, value);
		return NULL;
	}
	return "unknown type";
}

static const struct config_key *config_find(const char *section, const char *name)
{
	for (size_t i = 0; i < sizeof(config_keys) / sizeof(config_keys[0]); i++) {
		if (strcmp(config_keys[i].section, section) == 0 &&
		    strcmp(config_keys[i].name, name) == 0)
			return &config_keys[i];
	}
	return NULL;
}

static bool section_known(const char *section)
{
	for (size_t i = 0; i < sizeof(config_keys) / sizeof(config_keys[0]); i++) {
		if (strcmp(config_keys[i].section, section) == 0)
			return true;
	}
	return false;
}

void config_init_defaults(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < sizeof(config_keys) / sizeof(config_keys[0]); i++) {
		const struct config_key *key = &config_keys[i];
		if (key->def == NULL)
			continue;
		const char *why = config_set(cfg, key, key->def);
		if (why != NULL)
			fatal("event=bad-default key=%s", key->name);
	}
	char host[256];
	if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
		strcpy(host, "localhost");
	host[sizeof(host) - 1] = '\0';
	cfg->hostname = xstrdup(host);
	cfg->path = xstrdup("(defaults)");
}

struct config_reader;

struct load_ctx {
	struct config *cfg;
	const struct config_reader *reader;
	bool failed;
};

/* inih's line source. It would split a line longer than its buffer into
 * two lines and join an indented line to the value before it; here a long
 * line or a NUL byte is an error (reported by config_load_stream), and
 * leading blanks are dropped, so indenting a key only indents it. */
struct config_reader {
	FILE *f;
	int lineno;
	const char *error;      /* why reading stopped early, or NULL */
};

static char *config_read_line(char *str, int num, void *stream)
{
	struct config_reader *r = stream;
	int c = getc(r->f);
	if (c == EOF)
		return NULL;
	r->lineno++;
	while (c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r')
		c = getc(r->f);
	if (c == '#' || c == ';') {
		/* a comment line may be of any length */
		while (c != EOF && c != '\n')
			c = getc(r->f);
		str[0] = '\n';
		str[1] = '\0';
		return str;
	}
	int len = 0;
	for (; c != EOF && c != '\n'; c = getc(r->f)) {
		if (c == '\0') {
			r->error = "NUL byte in line";
			return NULL;
		}
		if (len + 2 >= num) {
			r->error = "line too long";
			return NULL;
		}
		str[len++] = (char)c;
	}
	str[len++] = '\n';
	str[len] = '\0';
	return str;
}

static int config_ini_handler(void *user, const char *section, const char *name,
			      const char *value)
{
	struct load_ctx *ctx = user;
	if (ctx->failed)
		return 0;
	/* inih keeps "value   # comment" whole; CONTRACT.md allows inline
	 * comments after whitespace, so cut them here. */
	char clean[1024];
	if (strlen(value) >= sizeof(clean)) {
		snprintf(config_error, sizeof(config_error), "%s: value too long", name);
		ctx->failed = true;
		return 0;
	}
	strcpy(clean, value);
	for (char *p = clean; *p != '\0'; p++) {
		if (*p == '#' && (p == clean || p[-1] == ' ' || p[-1] == '\t')) {
			*p = '\0';
			break;
		}
	}
	size_t len = strlen(clean);
	while (len > 0 && isspace((unsigned char)clean[len - 1]))   /* as inih does */
		clean[--len] = '\0';
	value = clean;
	const struct config_key *key = config_find(section, name);
	if (key == NULL) {
		if (!section_known(section))
			snprintf(config_error, sizeof(config_error),
				 "unknown section [%s]", section);
		else
			snprintf(config_error, sizeof(config_error),
				 "unknown key '%s' in %s%s%s", name,
				 section[0] ? "[" : "the top section", section,
				 section[0] ? "]" : "");
		ctx->failed = true;
		return 0;
	}
	/* a key given twice: the second would silently win */
	size_t row = (size_t)(key - config_keys);
	if (ctx->cfg->key_lines[row] != 0) {
		snprintf(config_error, sizeof(config_error),
			 "duplicate key '%s'%s%s%s (first on line %u)", name,
			 section[0] ? " in [" : "", section, section[0] ? "]" : "",
			 ctx->cfg->key_lines[row]);
		ctx->failed = true;
		return 0;
	}
	ctx->cfg->key_lines[row] = (unsigned short)(ctx->reader->lineno > USHRT_MAX ?
						    USHRT_MAX : ctx->reader->lineno);
	const char *why = config_set(ctx->cfg, key, value);
	if (why != NULL) {
		snprintf(config_error, sizeof(config_error), "%s: %s", name, why);
		ctx->failed = true;
		return 0;
	}
	return 1;
}

int config_load(struct config *cfg, const char *path, const char **error_r)
{
	static char msg[700];
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		snprintf(msg, sizeof(msg), "%s: %s", path, strerror(errno));
		*error_r = msg;
		return -1;
	}
	int ret = config_load_stream(cfg, f, path, error_r);
	fclose(f);
	return ret;
}

int config_load_stream(struct config *cfg, FILE *f, const char *path,
		       const char **error_r)
{
	static char msg[700];
	struct config_reader reader = { f, 0, NULL };
	struct load_ctx ctx = { cfg, &reader, false };
	config_error[0] = '\0';
	memset(cfg->key_lines, 0, sizeof(cfg->key_lines));
	int line = ini_parse_stream(config_read_line, &reader, config_ini_handler, &ctx);
	if (line == 0 && reader.error != NULL) {
		line = reader.lineno;
		snprintf(config_error, sizeof(config_error), "%s", reader.error);
	}
	if (line != 0) {
		if (config_error[0] == '\0')
			snprintf(config_error, sizeof(config_error), "syntax error");
		snprintf(msg, sizeof(msg), "%s:%d: %s", path, line < 0 ? 0 : line,
			 config_error);
		*error_r = msg;
		return -1;
	}
	set_string(&cfg->path, path);
	return 0;
}

/* A domain name of LDH labels (letters, digits, hyphens inside), at most
 * 63 bytes each and 253 in all, whose last label is not all digits (that
 * would be an IPv4 address). IDNs are written in their xn-- form. */
static bool hostname_valid(const char *name)
{
	size_t len = strlen(name), label = 0;
	bool numeric = true;
	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i <= len; i++) {
		char c = name[i];
		if (c == '.' || c == '\0') {
			if (label == 0 || name[i - 1] == '-')
				return false;
			if (c == '\0')
				break;
			label = 0;
			numeric = true;
			continue;
		}
		if (!isalnum((unsigned char)c) && !(c == '-' && label > 0))
			return false;
		if ((unsigned char)c >= 0x80 || ++label > 63)
			return false;
		numeric = numeric && isdigit((unsigned char)c);
	}
	return !numeric;
}

/* "FILE:LINE: " for a key set in the file, "FILE: " for a default. */
static const char *key_place(const struct config *cfg, const char *section, const char *name)
{
	static char place[600];
	const struct config_key *key = config_find(section, name);
	unsigned line = key != NULL ? cfg->key_lines[key - config_keys] : 0;
	if (line > 0)
		snprintf(place, sizeof(place), "%s:%u: ", cfg->path, line);
	else
		snprintf(place, sizeof(place), "%s: ", cfg->path);
	return place;
}

static int validate_run_as(const struct config *cfg, char *msg, size_t msg_size)
{
	struct passwd pw, *found = NULL;
	char buf[4096];
	const char *place = key_place(cfg, "", "run_as");
	const char *dflt = cfg->key_lines[config_find("", "run_as") - config_keys] == 0 ?
		" (the default: create the user, or set run_as)" : "";
	if (getpwnam_r(cfg->run_as, &pw, buf, sizeof(buf), &found) != 0 || found == NULL) {
		snprintf(msg, msg_size, "%srun_as: no such system user '%s'%s", place, cfg->run_as,
			 dflt);
		return -1;
	}
	if (pw.pw_uid == 0) {
		snprintf(msg, msg_size, "%srun_as: must not be root (the workers drop to it)",
			 place);
		return -1;
	}
	return 0;
}

int config_validate(const struct config *cfg, const char **error_r)
{
	static char msg[900];
	bool any_listener = false;
	for (int i = 0; i < LISTEN_COUNT; i++) {
		if (cfg->listen[i] != NULL)
			any_listener = true;   /* and every listener offers TLS */
	}
	if (cfg->listen_https != NULL)
		any_listener = true;
	*error_r = msg;
	if (cfg->hostname == NULL || cfg->hostname[0] == '\0') {
		snprintf(msg, sizeof(msg), "%shostname: must not be empty",
			 key_place(cfg, "", "hostname"));
		return -1;
	}
	if (!hostname_valid(cfg->hostname)) {
		bool dflt = cfg->key_lines[config_find("", "hostname") - config_keys] == 0;
		snprintf(msg, sizeof(msg), "%shostname: '%s' is not a valid domain name%s",
			 key_place(cfg, "", "hostname"), cfg->hostname,
			 dflt ? " (it is this machine's name: set hostname)" : "");
		return -1;
	}
	if (validate_run_as(cfg, msg, sizeof(msg)) < 0)
		return -1;
	if (cfg->data_dir == NULL || cfg->data_dir[0] != '/') {
		snprintf(msg, sizeof(msg), "%sdata_dir: must be an absolute path",
			 key_place(cfg, "", "data_dir"));
		return -1;
	}
	if (any_listener) {
		const char *files[2] = { cfg->tls_cert, cfg->tls_key };
		const char *names[2] = { "cert", "key" };
		for (int i = 0; i < 2; i++) {
			if (files[i] == NULL || access(files[i], R_OK) != 0) {
				int err = errno;
				snprintf(msg, sizeof(msg), "%s[tls] %s: cannot read %s: %s",
					 key_place(cfg, "tls", names[i]), names[i],
					 files[i] ? files[i] : "(unset)", strerror(err));
				return -1;
			}
		}
	}
	if (cfg->relay_mode == RELAY_SMARTHOST &&
	    (cfg->relay_smarthost == NULL || cfg->relay_smarthost[0] == '\0')) {
		snprintf(msg, sizeof(msg), "%s[relay] smarthost: required when mode = smarthost",
			 key_place(cfg, "relay", "mode"));
		return -1;
	}
	if (strcmp(cfg->relay_smarthost_tls, "starttls") != 0 &&
	    strcmp(cfg->relay_smarthost_tls, "implicit") != 0) {
		snprintf(msg, sizeof(msg), "%s[relay] smarthost_tls: must be starttls or implicit",
			 key_place(cfg, "relay", "smarthost_tls"));
		return -1;
	}
	if (strcmp(cfg->mta_sts_mode, "enforce") != 0 && strcmp(cfg->mta_sts_mode, "testing") != 0 &&
	    strcmp(cfg->mta_sts_mode, "none") != 0) {
		snprintf(msg, sizeof(msg), "%s[mta_sts] mode: must be enforce, testing or none",
			 key_place(cfg, "mta_sts", "mode"));
		return -1;
	}
	/* RFC 8461 3.2: at most 31557600 (a year) */
	if (cfg->mta_sts_max_age <= 0 || cfg->mta_sts_max_age > 31557600) {
		snprintf(msg, sizeof(msg), "%s[mta_sts] max_age: must be between 1s and 365d",
			 key_place(cfg, "mta_sts", "max_age"));
		return -1;
	}
	const char *files[2] = { cfg->relay_mta_sts_ca_file, NULL };
	const char *names[2] = { "mta_sts_ca_file", NULL };
	if (cfg->relay_dane && cfg->relay_mode == RELAY_MX) {
		files[1] = cfg->relay_dane_trust_anchor;
		names[1] = "dane_trust_anchor";
	}
	for (int i = 0; i < 2; i++) {
		if (files[i] != NULL && files[i][0] != '\0' && access(files[i], R_OK) != 0) {
			snprintf(msg, sizeof(msg), "%s[relay] %s: cannot read %s: %s",
				 key_place(cfg, "relay", names[i]), names[i], files[i],
				 strerror(errno));
			return -1;
		}
	}
	return 0;
}

static void config_print_value(const struct config *cfg, const struct config_key *key,
			       FILE *out)
{
	const void *field = (const char *)cfg + key->offset;
	switch (key->type) {
	case CT_STRING:
	case CT_LISTEN:
	case CT_LISTEN_LOCAL:
	case CT_SCHEDULE: {
		const char *s = *(char *const *)field;
		fputs(s == NULL ? "" : s, out);
		break;
	}
	case CT_INT:
	case CT_DURATION: {
		int v = *(const int *)field;
		if (key->type == CT_DURATION)
			fprintf(out, "%ds", v);
		else
			fprintf(out, "%d", v);
		break;
	}
	case CT_BOOL:
		fputs(*(const bool *)field ? "yes" : "no", out);
		break;
	case CT_SIZE:
		fprintf(out, "%zu", *(const size_t *)field);
		break;
	case CT_PLAINTEXT:
		fputs(plaintext_names[*(const enum plaintext_policy *)field], out);
		break;
	case CT_RELAY_MODE:
		fputs(relay_mode_names[*(const enum relay_mode *)field], out);
		break;
	case CT_LOG_LEVEL:
		fputs(log_level_name(*(const enum log_level *)field), out);
		break;
	}
}

void config_print(const struct config *cfg, FILE *out)
{
	const char *section = "";
	fprintf(out, "# effective settings from %s\n", cfg->path);
	for (size_t i = 0; i < sizeof(config_keys) / sizeof(config_keys[0]); i++) {
		const struct config_key *key = &config_keys[i];
		if (strcmp(key->section, section) != 0) {
			section = key->section;
			fprintf(out, "\n[%s]\n", section);
		}
		fprintf(out, "%s = ", key->name);
		config_print_value(cfg, key, out);
		if (key->type == CT_INT && strcmp(key->name, "workers") == 0 &&
		    cfg->workers == 0)
			fputs("    # one per CPU", out);
		fputc('\n', out);
	}
}

void config_free(struct config *cfg)
{
	for (size_t i = 0; i < sizeof(config_keys) / sizeof(config_keys[0]); i++) {
		const struct config_key *key = &config_keys[i];
		if (key->type == CT_STRING || key->type == CT_LISTEN ||
		    key->type == CT_LISTEN_LOCAL || key->type == CT_SCHEDULE) {
			char **field = (char **)((char *)cfg + key->offset);
			free(*field);
			*field = NULL;
		}
	}
	free(cfg->path);
	cfg->path = NULL;
}

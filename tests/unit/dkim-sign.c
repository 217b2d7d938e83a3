/* A test tool (not a test): runs a message through the DKIM signer the
 * way intake does (each header field, the header's end, the body in
 * pieces, the end with a verdict) and writes the signatures followed by
 * the message, as the relay would send it. The integration tests verify
 * its output with dkimpy and OpenDKIM without needing a whole server.
 *
 *   dkim-sign DATA_DIR HOSTNAME submission|inbound|report [PIECE] < msg
 *
 * The message must have CRLF line ends. PIECE (default 65536) is the size
 * of the body pieces. An inbound message gets the Authentication-Results
 * of $DKIM_SIGN_RESULTS (if set) as an earlier filter's verdict. */
#include "dkim/dkim-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: dkim-sign DATA_DIR HOSTNAME ORIGIN [PIECE] < msg\n");
		return 2;
	}
	log_init("dkim-sign", LOG_LEVEL_INFO);
	struct config cfg;
	config_init_defaults(&cfg);
	free(cfg.data_dir);
	cfg.data_dir = xstrdup(argv[1]);
	free(cfg.hostname);
	cfg.hostname = xstrdup(argv[2]);
	size_t piece = argc > 4 ? (size_t)atol(argv[4]) : 65536;
	if (piece == 0)
		piece = 1;
	struct intake_envelope env = { .origin = INTAKE_SUBMISSION, .sender = "" };
	if (strcmp(argv[3], "inbound") == 0)
		env.origin = INTAKE_INBOUND;
	else if (strcmp(argv[3], "report") == 0)
		env.origin = INTAKE_REPORT;

	struct buf msg = BUF_INIT;
	char chunk[65536];
	ssize_t n;
	while ((n = read(STDIN_FILENO, chunk, sizeof(chunk))) > 0)
		buf_append(&msg, chunk, (size_t)n);

	struct intake_info info = { .env = &env, .cfg = &cfg, .has_remote = true };
	const struct intake_filter *f = &dkim_sign_filter;
	void *state = f->begin(&info);
	/* the header: fields are a line and its continuation lines */
	size_t pos = 0, start = 0;
	char from_domain[256] = "";
	int from_count = 0;
	while (pos < msg.len) {
		const char *lf = memchr(msg.data + pos, '\n', msg.len - pos);
		size_t next = lf != NULL ? (size_t)(lf - msg.data) + 1 : msg.len;
		if (pos == start && (msg.data[pos] == '\r' || msg.data[pos] == '\n')) {
			pos = next;   /* the blank line */
			break;
		}
		if (next < msg.len && (msg.data[next] == ' ' || msg.data[next] == '\t')) {
			pos = next;
			continue;
		}
		const char *field = msg.data + start;
		if (strncasecmp(field, "From:", 5) == 0) {
			from_count++;
			if (dkim_from_domain(field + 5, next - start - 5, from_domain,
					     sizeof(from_domain)) < 0)
				from_domain[0] = '\0';
		}
		if (state != NULL)
			f->header(state, field, next - start);
		start = pos = next;
	}
	size_t body = pos;
	if (state != NULL) {
		f->header_end(state);
		for (size_t i = body; i < msg.len; i += piece)
			f->body(state, msg.data + i, msg.len - i < piece ? msg.len - i : piece);
	}
	info.from_domain = from_count == 1 && from_domain[0] != '\0' ? from_domain : NULL;
	struct intake_verdict v;
	memset(&v, 0, sizeof(v));
	const char *results = getenv("DKIM_SIGN_RESULTS");
	if (results != NULL)
		buf_append_str(&v.prepend, results);
	if (state != NULL) {
		f->end(state, &info, &v);
		f->free(state);
	}
	fwrite(v.prepend_remote.data != NULL ? v.prepend_remote.data : "", 1, v.prepend_remote.len,
	       stdout);
	fwrite(msg.data != NULL ? msg.data : "", 1, msg.len, stdout);
	buf_free(&v.prepend);
	buf_free(&v.prepend_remote);
	buf_free(&msg);
	config_free(&cfg);
	return 0;
}

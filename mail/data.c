/* The body of SMTP DATA as it goes out (RFC 5321 4.5.2, 2.3.8): CRLF line
 * ends only and a dot doubled at the start of every line, whatever the
 * bytes were. A bare CR or bare LF leaves as CRLF, so that no peer can
 * read a line end (or an end of data) that the sender did not mean: the
 * second wall against SMTP smuggling, after intake's line rule. */

#include "mail/mail.h"

size_t mail_data_encode(struct mail_data_encoder *e, const char *in, size_t n, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char ch = in[i];
		if (e->pending_cr) {
			e->pending_cr = false;
			out[o++] = '\r';
			out[o++] = '\n';
			e->at_bol = true;
			if (ch == '\n')
				continue;
		}
		if (ch == '\r') {
			e->pending_cr = true;
			continue;
		}
		if (ch == '\n') {
			out[o++] = '\r';
			out[o++] = '\n';
			e->at_bol = true;
			continue;
		}
		if (e->at_bol && ch == '.')
			out[o++] = '.';
		out[o++] = ch;
		e->at_bol = false;
	}
	return o;
}

size_t mail_data_encode_end(struct mail_data_encoder *e, char *out)
{
	size_t o = 0;
	if (e->pending_cr || !e->at_bol) {
		out[o++] = '\r';
		out[o++] = '\n';
	}
	e->pending_cr = false;
	e->at_bol = true;
	out[o++] = '.';
	out[o++] = '\r';
	out[o++] = '\n';
	return o;
}

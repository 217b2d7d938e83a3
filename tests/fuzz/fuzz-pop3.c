/* libFuzzer target for the POP3 command parser: input lines (through the
 * bounded line reader, as the server reads them) parsed against the real
 * command table, and the RETR/TOP converter, fed whole and in
 * input-chosen pieces, which must agree. */
#include "pop3/pop3-private.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_request(const struct pop3_request *req)
{
	const struct pop3_command *cmd = req->cmd;
	if (cmd == NULL || req->argc < cmd->min_args || req->argc > cmd->max_args)
		abort();
	for (unsigned int i = 0; i < req->argc; i++) {
		const char *arg = req->argv[i];
		if (arg == NULL || arg[0] == '\0')
			abort();
		if (!(cmd->flags & CMD_REST) && strchr(arg, ' ') != NULL)
			abort();
		if (cmd->args[i] != POP3_ARG_WORD && strspn(arg, "0123456789") != strlen(arg))
			abort();
	}
}

static void parse_lines(const char *in, size_t len)
{
	struct linereader lr;
	linereader_init(&lr, POP3_MAX_COMMAND_LINE);
	for (;;) {
		enum lr_status st = linereader_next_bytes(&lr, &in, &len);
		if (st == LR_NEED_MORE)
			break;
		if (st == LR_TOO_LONG)
			continue;
		struct pop3_request req;
		if (pop3_parse(lr.line, lr.line_len, lr.flags, &req) == POP3_PARSE_OK)
			check_request(&req);
	}
	linereader_free(&lr);
}

static uint64_t convert(const char *in, size_t len, size_t step, bool top, uint32_t lines,
			struct buf *out)
{
	struct pop3_convert cv;
	pop3_convert_init(&cv, top, lines);
	for (size_t off = 0; off < len; off += step)
		pop3_convert(&cv, in + off, len - off < step ? len - off : step, out);
	pop3_convert_finish(&cv, out);
	return cv.octets;
}

static void check_converted(const struct buf *out, uint64_t octets)
{
	/* CRLF everywhere, ends with CRLF.CRLF or is just ".\r\n", and the
	 * octet count is the output minus the terminator and the stuffing */
	uint64_t stuffing = 0;
	bool line_start = true;
	for (size_t i = 0; i < out->len; i++) {
		if (out->data[i] == '\n' && (i == 0 || out->data[i - 1] != '\r'))
			abort();
		if (line_start && out->data[i] == '.' && i + 3 != out->len) {
			if (out->data[i + 1] != '.')
				abort();
			stuffing++;
			i++;
		}
		line_start = out->data[i] == '\n';
	}
	if (out->len < 3 || memcmp(out->data + out->len - 3, ".\r\n", 3) != 0)
		abort();
	if (out->len > 3 && out->data[out->len - 4] != '\n')
		abort();
	if (octets + stuffing + 3 != out->len && octets + stuffing + 5 != out->len)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 3)
		return 0;
	uint8_t mode = data[0], step = (uint8_t)(data[1] | 1);
	const char *in = (const char *)data + 2;
	size -= 2;
	if (mode < 128) {
		parse_lines(in, size);
		return 0;
	}
	bool top = mode & 1;
	uint32_t lines = (mode >> 1) & 7;
	struct buf a = BUF_INIT, b = BUF_INIT;
	uint64_t oa = convert(in, size, size, top, lines, &a);
	uint64_t ob = convert(in, size, step, top, lines, &b);
	if (oa != ob || a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
		abort();
	check_converted(&a, oa);
	buf_free(&a);
	buf_free(&b);
	return 0;
}

/* COMPRESS=DEFLATE (RFC 4978): the tagged OK goes out as it is, every
 * byte after it both ways is DEFLATE (core/compress.c under core/conn.c). */
#include "imap/imap-private.h"

#include <stdio.h>

void imap_cmd_compress(struct imap_session *s, struct imap_cmd *cmd)
{
	const char *mech;
	if (cmd->count != 1 || !imap_arg_atom(&cmd->args[0], &mech)) {
		imap_bad(s, cmd->tag, "Invalid arguments");
		return;
	}
	if (ascii_strcasecmp(mech, "DEFLATE") != 0) {
		imap_bad(s, cmd->tag, "Unknown compression mechanism");
		return;
	}
	if (conn_is_compressed(s->conn)) {
		imap_no(s, cmd->tag, "[COMPRESSIONACTIVE] DEFLATE is active already");
		return;
	}
	/* the updates owed go out before the switch, in clear */
	imap_command_updates(s);
	char reply[IMAP_MAX_TAG + 64];
	snprintf(reply, sizeof(reply), "%s OK DEFLATE active\r\n", cmd->tag);
	if (conn_compress_start(s->conn, reply) < 0)
		imap_no(s, cmd->tag, "[SERVERBUG] Cannot compress now");
	else
		log_info("event=imap-compress mechanism=DEFLATE");
}

#ifndef POSTERN_IMAP_PRIVATE_H
#define POSTERN_IMAP_PRIVATE_H

/* Private to imap/: the session, the command context and the helpers the
 * command files share. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "core/conn.h"
#include "imap/imap-parser.h"
#include "store/store.h"

struct auth_session;
struct store_account;
struct store_mailbox;
struct store_uidset;
struct store_status;
struct store_delivery;
struct store_cache;
struct event;

/* Limits (STYLE.md: smaller before login). */
#define IMAP_PREAUTH_TEXT_MAX    8192          /* whole command before login */
#define IMAP_PREAUTH_LITERAL_MAX 8192
#define IMAP_TEXT_MAX            (64 * 1024)   /* non-literal text after login */
#define IMAP_LITERAL_MAX         (1024 * 1024) /* literals held in memory */
#define IMAP_MAX_ERRORS_PREAUTH  10            /* bad commands, then BYE */
#define IMAP_MAX_ERRORS          50

/* RFC 3501 3: the protocol states. */
enum imap_state {
	IMAP_STATE_NOT_AUTHENTICATED,
	IMAP_STATE_AUTHENTICATED,
	IMAP_STATE_SELECTED,
	IMAP_STATE_LOGOUT,
};

/* What the next input is: a command, or part of a multi-step exchange. */
enum imap_input_mode {
	IMAP_INPUT_COMMAND,
	IMAP_INPUT_SASL,      /* AUTHENTICATE: base64 responses or "*" */
	IMAP_INPUT_IDLE,      /* waiting for DONE */
	IMAP_INPUT_WAIT,      /* a reply is delayed or streaming: read nothing */
};

/* ENABLE'd extensions (RFC 5161). */
#define IMAP_ENABLED_CONDSTORE  0x01u
#define IMAP_ENABLED_QRESYNC    0x02u
#define IMAP_ENABLED_IMAP4REV2  0x04u   /* RFC 9051 behaviour */
#define IMAP_ENABLED_UTF8       0x08u   /* UTF8=ACCEPT (RFC 6855) */

struct imap_session {
	struct conn *conn;
	struct services *services;
	struct imap_reader reader;
	struct pool *cmd_pool;          /* cleared when a command ends */
	enum imap_state state;
	enum imap_input_mode mode;
	int errors;
	bool tls;                       /* TLS now or negotiated by STARTTLS */
	unsigned int enabled;           /* IMAP_ENABLED_* */

	/* authentication */
	struct auth_session *auth;
	char *sasl_tag;                 /* AUTHENTICATE in progress */
	const char *log_ctx;            /* the connection's, for IDLE's callbacks */

	/* authenticated */
	char *user;
	struct store_account *account;
	struct store_mailbox *mbox;     /* SELECTED */
	bool read_only;
	uint32_t exists;                /* EXISTS the client was told */
	/* flags this session set and reported itself since the last sync: the
	 * sync does not report them again */
	struct imap_own_flags { uint32_t uid, flags; uint64_t keywords; } *own;
	size_t own_count, own_cap;

	/* APPEND: deliveries the message literals stream into */
	struct store_delivery **appends;
	size_t append_count, append_cap;
	bool append_failed;

	/* SEARCHRES (RFC 5182): the saved result, as UIDs */
	struct store_uidset saved;
	bool saved_valid;

	/* IDLE */
	char *idle_tag;
	struct event *idle_ev;

	/* untagged updates owed before the running command's tagged reply
	 * (RFC 3501 7.4.1); expunges only when the command allows them */
	bool updates_pending;
	bool updates_expunge;

	/* NOTIFY (RFC 5465): what the client asked to hear of */
	struct imap_notify *notify;

	/* a command that finishes later (streaming FETCH) */
	bool cmd_async;
	void *cmd_ctx;
};

/* One parsed command as a handler sees it. */
struct imap_cmd {
	const char *tag;
	const char *name;              /* upper case, "UID FETCH" for UID forms */
	const struct imap_arg *args;
	size_t count;
	bool uid;
	struct pool *pool;
};

typedef void imap_cmd_fn(struct imap_session *s, struct imap_cmd *cmd);

/* imap-server.c */
void imap_set_state(struct imap_session *s, enum imap_state state);
void imap_set_mode(struct imap_session *s, enum imap_input_mode mode);
void imap_capabilities(struct imap_session *s, struct buf *b);
void imap_ok(struct imap_session *s, const char *tag, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void imap_no(struct imap_session *s, const char *tag, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* BAD counts against the session's error budget. */
void imap_bad(struct imap_session *s, const char *tag, const char *text);
/* Sends the untagged updates the running command owes (once), before its
 * tagged reply: imap_ok/imap_no do it; handlers that format the tagged
 * line themselves call it first. */
void imap_command_updates(struct imap_session *s);
/* An asynchronous command is over: clears its pool and reads on. */
void imap_command_done(struct imap_session *s);

/* imap-util.c: writing and names */
/* astring/string/nstring out: quoted when it can be, else a literal. */
void imap_append_string(struct buf *b, const char *s, size_t len);
void imap_append_nstring(struct buf *b, const char *s);
/* The same, quoted also when it holds UTF-8 (valid): UTF8=ACCEPT. */
void imap_append_utf8_string(struct buf *b, const char *s, size_t len);
/* A mailbox name from the client (modified UTF-7, "INBOX" any case) as the
 * store's UTF-8; NULL when invalid. Pool-allocated. */
const char *imap_mailbox_from_client(const struct imap_session *s, struct pool *pool,
				     const char *name);
/* A store name as the client sees it (modified UTF-7; UTF-8 under
 * IMAP4rev2), quoted. */
void imap_append_mailbox(const struct imap_session *s, struct buf *b, const char *utf8);
/* \Recent of a message as this session reports it (never under IMAP4rev2). */
bool imap_is_recent(const struct imap_session *s, uint32_t uid);
/* NO with the response code of a store error. */
void imap_store_error(struct imap_session *s, const char *tag, int err, const char *msg);
/* A flag list "(\Seen kw ...)". */
void imap_append_flags(struct buf *b, struct store_mailbox *mbox, uint32_t flags,
		       uint64_t keywords, bool recent);
/* Sequence set (by sequence number, or by UID when uid) to UIDs of the
 * selected view. Returns -1 (BAD sent) on a syntax error or an invalid
 * sequence number. */
int imap_seqset_to_uids(struct imap_session *s, struct imap_cmd *cmd, const struct imap_arg *arg,
			bool uid, struct store_uidset *set_r);
void imap_write_buf(struct imap_session *s, struct buf *b);
/* First index in the ascending uids[0..count) whose UID is >= uid. */
size_t imap_uid_lower_bound(const uint32_t *uids, size_t count, uint32_t uid);

/* cmd-auth.c */
imap_cmd_fn imap_cmd_login, imap_cmd_authenticate;
void imap_sasl_input(struct imap_session *s, const char *line, size_t len);

/* cmd-mailbox.c */
imap_cmd_fn imap_cmd_select, imap_cmd_create, imap_cmd_delete, imap_cmd_rename, imap_cmd_subscribe,
	imap_cmd_unsubscribe, imap_cmd_status, imap_cmd_close, imap_cmd_unselect, imap_cmd_check, imap_cmd_namespace;
/* Untagged updates from the store (NOOP, CHECK, IDLE, after commands). */
void imap_sync(struct imap_session *s, bool allow_expunge);
void imap_mailbox_close(struct imap_session *s);
/* "* n FETCH ([UID u ]FLAGS (...))" for one message of the view (b may be
 * NULL: only remembered as this session's own change). */
void imap_append_fetch_flags(struct imap_session *s, struct buf *b, uint32_t uid, bool with_uid);

/* Flags this session tells the client itself (the next sync does not
 * repeat them). */
void imap_own_flags_remember(struct imap_session *s, const struct store_msg *msg);
int imap_status_items(struct imap_session *s, const char *name, const struct imap_arg *items,
		      const struct store_status *st, struct buf *b);

/* cmd-list.c */
imap_cmd_fn imap_cmd_list, imap_cmd_lsub;

/* cmd-fetch.c */
imap_cmd_fn imap_cmd_fetch;
/* Frees a FETCH in progress (the connection went away). */
void imap_fetch_abort(struct imap_session *s);
/* NOTIFY's MessageNew (fetch-att ...): whether an attribute needs no body
 * section, and "* n FETCH (...)" of such attributes for uid into out. */
bool imap_fetch_att_simple(struct pool *pool, const char *name);
void imap_fetch_simple(struct imap_session *s, struct pool *pool, const char *const *names,
		       size_t count, uint32_t uid, struct buf *out);

/* cmd-search.c */
imap_cmd_fn imap_cmd_search;

/* cmd-store.c */
imap_cmd_fn imap_cmd_store, imap_cmd_expunge, imap_cmd_copy, imap_cmd_move;
int imap_flag_list_parse(struct imap_cmd *cmd, const struct imap_arg *list, uint32_t *flags_r,
			 const char ***keywords_r, size_t *kw_count_r);
void imap_append_uid_list(struct buf *b, const uint32_t *uids, size_t count);

/* cmd-append.c */
imap_cmd_fn imap_cmd_append;
uint64_t imap_append_limit(const struct imap_session *s);
enum imap_literal_action imap_append_literal(void *ctx, const char *cmd, size_t len,
					     uint64_t size);
void imap_append_stream(void *ctx, const void *data, size_t len);
void imap_append_reset(struct imap_session *s);

/* imap-binary.c: BINARY's decoding, a chunk at a time */
enum imap_cte {
	IMAP_CTE_IDENTITY,   /* none, 7bit, 8bit: text, line ends made CRLF */
	IMAP_CTE_BINARY,     /* as is */
	IMAP_CTE_BASE64,
	IMAP_CTE_QP,
	IMAP_CTE_UNKNOWN,    /* NO [UNKNOWN-CTE] */
};
#define IMAP_DECODER_CHUNK 32768   /* at most this much input per call */
#define IMAP_DECODER_CARRY 128
/* Output of one call: at most this many bytes. */
#define IMAP_DECODER_OUT_MAX (2 * (IMAP_DECODER_CHUNK + IMAP_DECODER_CARRY))
struct imap_decoder {
	enum imap_cte cte;
	unsigned int acc;
	int bits;
	bool prev_cr;
	char carry[IMAP_DECODER_CARRY];
	size_t carry_len;
};
/* The Content-Transfer-Encoding of a part from its header. */
enum imap_cte imap_binary_cte(const char *header, size_t len);
void imap_decoder_init(struct imap_decoder *d, enum imap_cte cte);
/* Decodes in[0..len) (len <= IMAP_DECODER_CHUNK) into out, keeping what
 * depends on input not seen yet unless last; returns the bytes written. */
size_t imap_decoder_run(struct imap_decoder *d, const char *in, size_t len, bool last,
			char *out);

/* imap-url.c: CATENATE's URL parts (RFC 4469, RFC 5092) */
struct imap_url {
	const char *mailbox;     /* NULL: the selected mailbox */
	uint64_t uidvalidity;    /* 0: not given */
	uint64_t uid;
	const char *section;     /* "" = the whole message, upper case */
	bool partial;
	uint64_t origin, length; /* length 0: to the end */
};
/* A URL of this server (hostname) and user, or relative to the selected
 * mailbox (have_selected); strings in pool. -1 when it is not. */
int imap_url_parse(struct pool *pool, const char *text, const char *hostname, const char *user,
		   bool have_selected, struct imap_url *u);
/* Writes the message or section the URL names (in this account) into d;
 * -1 when the URL is not one of ours or names nothing. */
int imap_url_append(struct imap_session *s, struct pool *pool, const char *text,
		    struct store_delivery *d, uint64_t *written_r);

/* cmd-quota.c */
imap_cmd_fn imap_cmd_getquotaroot, imap_cmd_getquota, imap_cmd_setquota;

/* cmd-metadata.c */
imap_cmd_fn imap_cmd_getmetadata, imap_cmd_setmetadata;
/* An entry name (RFC 5464 3.2): under /private or /shared; set: not a
 * top-level name alone. */
bool imap_metadata_entry_valid(const char *entry, bool set);

/* cmd-notify.c: NOTIFY (RFC 5465) */
imap_cmd_fn imap_cmd_notify;
/* Tells what changed since the last look (a wake-up, or one kept while a
 * command ran); imap_notify_after_command() when a command ended. */
void imap_notify_run(struct imap_session *s);
void imap_notify_after_command(struct imap_session *s);
void imap_notify_free(struct imap_session *s);

/* cmd-compress.c */
imap_cmd_fn imap_cmd_compress;

/* imap-objectid.c: OBJECTID (RFC 8474) */
void imap_append_mailboxid(struct buf *b, uint32_t uidvalidity);
void imap_append_emailid(struct buf *b, uint64_t emailid);
void imap_append_threadid(struct buf *b, uint64_t threadid);
uint64_t imap_threadid(const struct store_cache *cache, uint64_t emailid);
/* One of our ids ("M..." with prefix 'M') back to its number. */
bool imap_objectid_parse(const char *text, char prefix, uint64_t *value_r);
bool imap_objectid_valid(const char *text);

/* cmd-idle.c */
imap_cmd_fn imap_cmd_idle;
void imap_idle_input(struct imap_session *s, const char *line, size_t len);
void imap_idle_stop(struct imap_session *s);

#endif

#ifndef POSTERN_STORE_H
#define POSTERN_STORE_H

/* The mail store: one Maildir++ tree per account, indexed by one LMDB
 * environment per account (docs/store.md describes the layout, the index
 * schema, the durability order and the self-healing rules).
 *
 * Conventions
 * - Results are int: 0 on success, a negative enum store_error on
 *   failure (so "< 0" is always the failure test). *error_r then points
 *   to a message owned by the handle, valid until its next call.
 * - Outputs come last; foo_free(&foo) frees and sets the pointer to NULL.
 * - Mailbox names in this API are UTF-8 with '/' as the hierarchy
 *   separator ("Archive/2024"). "INBOX" is case-insensitive. A name
 *   component may not be empty, "." or "..", nor contain '.', '*', '%',
 *   control bytes or NUL (on disk '.' is the Maildir++ separator).
 *   IMAP converts from/to modified UTF-7 with store_mutf7_*().
 * - Processes: open the store after fork(); one process opens each
 *   account's environment once (store_account_open() counts references
 *   and shares it between the sessions of the process). Not thread-safe.
 * - A struct store_mailbox is a session's view: its UID list only changes
 *   when the session calls store_mailbox_sync(), so sequence numbers stay
 *   stable between syncs (RFC 3501 7.4.1; POP3 never syncs after login).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

enum store_error {
	STORE_OK = 0,
	STORE_ERR_INTERNAL = -1,    /* I/O, index: IMAP NO [SERVERBUG]/[UNAVAILABLE] */
	STORE_ERR_NOTFOUND = -2,    /* no such mailbox/account: [NONEXISTENT] */
	STORE_ERR_EXISTS = -3,      /* [ALREADYEXISTS] */
	STORE_ERR_OVERQUOTA = -4,   /* SMTP 452/552, IMAP [OVERQUOTA] */
	STORE_ERR_INVALID = -5,     /* bad mailbox name or argument: [CANNOT] */
	STORE_ERR_NOTPOSSIBLE = -6, /* e.g. delete INBOX: [CANNOT] */
	STORE_ERR_READONLY = -7,    /* write on a read-only view */
	STORE_ERR_LIMIT = -8,       /* too many keywords, index full: [LIMIT] */
	STORE_ERR_INUSE = -9,       /* lock held elsewhere: POP3 [IN-USE] */
	STORE_ERR_NOSPACE = -10,    /* the disk is full: SMTP 452 4.3.1, IMAP [OVERQUOTA]/[SERVERBUG] */
};

/* System flags (bitmask). Kept in the index and in the Maildir file name
 * (":2," + D F R S T). */
#define STORE_FLAG_SEEN      0x01u
#define STORE_FLAG_ANSWERED  0x02u
#define STORE_FLAG_FLAGGED   0x04u
#define STORE_FLAG_DELETED   0x08u
#define STORE_FLAG_DRAFT     0x10u
#define STORE_FLAG_ALL       0x1fu

/* Special-use attributes (RFC 6154). */
#define STORE_SPECIAL_SENT     0x01u
#define STORE_SPECIAL_DRAFTS   0x02u
#define STORE_SPECIAL_TRASH    0x04u
#define STORE_SPECIAL_JUNK     0x08u
#define STORE_SPECIAL_ARCHIVE  0x10u
#define STORE_SPECIAL_ALL      0x20u
#define STORE_SPECIAL_FLAGGED  0x40u

/* Keywords: at most this many distinct keywords per mailbox; a keyword is
 * an IMAP atom of at most 128 bytes (else STORE_ERR_LIMIT). */
#define STORE_MAX_KEYWORDS 64

struct store;
struct store_account;
struct store_mailbox;
struct store_delivery;

/* ---- UID sets and lists ------------------------------------------------ */

/* Sorted, merged ranges of UIDs; IMAP builds them from sequence sets. */
struct store_uid_range { uint32_t lo, hi; };
struct store_uidset {
	struct store_uid_range *ranges;
	size_t count, cap;
};
#define STORE_UIDSET_INIT { NULL, 0, 0 }
void store_uidset_add(struct store_uidset *set, uint32_t lo, uint32_t hi);
bool store_uidset_contains(const struct store_uidset *set, uint32_t uid);
void store_uidset_clear(struct store_uidset *set);

/* A growable list of UIDs (results). */
struct store_uids {
	uint32_t *uids;
	size_t count, cap;
};
#define STORE_UIDS_INIT { NULL, 0, 0 }
void store_uids_push(struct store_uids *list, uint32_t uid);
void store_uids_clear(struct store_uids *list);

/* ---- store and accounts ------------------------------------------------ */

/* Opens the store under data_dir (mail lives in data_dir/mail/). When
 * running as root, what the store creates is given to run_as (may be
 * NULL). Removes stale delivery temp files (older than 36 hours). */
int store_open(const char *data_dir, const char *run_as, struct store **store_r,
	       const char **error_r);
/* The LMDB map size of account indexes opened from now on (default
 * 8 GiB, address space only). A delivery or APPEND that finds the map
 * full doubles it and tries again; tests start small to see that. */
void store_set_index_mapsize(struct store *store, size_t bytes);
/* Closes the accounts kept open while idle; every account handle must
 * have been closed before (a warning is logged for each that was not). */
void store_free(struct store **store);

/* Opens (creating on first use) the account "local@domain": its Maildir++
 * root data_dir/mail/DOMAIN/LOCAL/, its index postern-index.lmdb there,
 * and, on creation, INBOX plus Sent, Drafts, Trash, Junk and Archive with
 * their special-use attributes, all subscribed. A second open of the same
 * account in the process returns the same handle (reference counted).
 * A missing or damaged index is rebuilt from the Maildir. */
int store_account_open(struct store *store, const char *address,
		       struct store_account **acct_r, const char **error_r);
/* Whether the store can hold an account of this address (its parts become
 * directory names): the one place for these rules, which `postern user
 * add` applies before an account exists. 0, or STORE_ERR_INVALID with a
 * reason (static text). */
int store_account_address_check(const char *address, const char **error_r);
/* Removes the account's mail (`postern user del`): its Maildir++ tree is
 * renamed to data_dir/mail/.deleted/DOMAIN/LOCAL.TIME (atomically, so a
 * straggling writer cannot mix old and new) and then removed, or kept
 * there with keep (its path in *kept_r, malloc'ed). The account's highest
 * UIDVALIDITY is remembered so that an account made later for the same
 * address (or any other) starts above it. Call after the account was
 * marked ended (core/account-end.h) so no process opens it again. No
 * Maildir is not an error (*kept_r NULL). */
int store_account_remove(struct store *store, const char *address, bool keep,
			 char **kept_r, const char **error_r);
/* `postern backup` of the account whose Maildir++ root is root, into the
 * new directory dest, while other processes use it: the index is copied
 * from one read snapshot (compacted), then the message files that
 * snapshot names, each under the name (flags) the snapshot gives it, so
 * every message the index held is in the copy with its UID, flags and
 * mailbox, under the same UIDVALIDITY. Files the snapshot does not know
 * are copied as they are (the restored store indexes them); a root with
 * no index (a Maildir copied in) is copied as it is. A lock file the
 * index needs is given to run_as. */
struct store_backup_count {
	uint64_t mailboxes;
	uint64_t messages;       /* of the snapshot, copied */
	uint64_t missing;        /* of the snapshot, expunged before their copy */
	uint64_t extra;          /* files the snapshot did not know */
	uint64_t renamed;        /* of the snapshot, found under another name (flags changed) */
	uint64_t bytes;
};
int store_backup_account(const char *root, const char *dest, const char *run_as,
			 struct store_backup_count *count, const char **error_r);
/* Before an address gets a new account (`postern user add`): a tree left
 * at its path by an earlier account (one with a Postern index: deleted by
 * an older version, or brought back by a restore) is moved aside as
 * store_account_remove(keep) does, so the new account never inherits it.
 * A Maildir without an index (copied in from Dovecot for the new user)
 * stays. Opens (and creates) nothing when there is nothing to move.
 * *kept_r: where it went, NULL when nothing was there. */
int store_set_aside_leftover(const char *data_dir, const char *run_as, const char *address,
			     char **kept_r, const char **error_r);
/* Drops a reference. The environment stays open while idle (up to 8 idle
 * accounts per process, least recently used closed first), so that a
 * delivering process does not reopen it for every message. */
void store_account_close(struct store_account **acct);
/* Clears the LMDB reader slots of dead processes in every account this
 * process has open (they pin pages and grow the file); call it from a
 * timer now and then (each open does it too). Returns the slots freed. */
int store_reader_check(struct store *store);

/* Quota in bytes (0 = unlimited); the usage is kept by the index. */
int store_account_set_quota(struct store_account *acct, uint64_t limit,
			    const char **error_r);
int store_account_get_quota(struct store_account *acct, uint64_t *used_r,
			    uint64_t *limit_r, const char **error_r);
/* The limit on the number of messages in the account (0 = unlimited):
 * delivery, APPEND and COPY beyond it fail with STORE_ERR_OVERQUOTA. */
int store_account_set_message_quota(struct store_account *acct, uint64_t limit,
				    const char **error_r);
/* What the quotas count: file bytes and messages of the whole account. */
int store_account_get_usage(struct store_account *acct, uint64_t *bytes_r,
			    uint64_t *messages_r, const char **error_r);

/* Change notification: one fd per process (one inotify instance however
 * many accounts are watched; the per-user instance limit is small).
 * store_account_watch() starts watching an account (until it is closed
 * for good); the fd becomes readable (add it to the event loop with
 * EV_READ|EV_PERSIST) within moments of any committed change to a watched
 * account by any process: delivery, append, flags, expunge, mailbox
 * create/delete/rename, and files dropped into INBOX from outside. Then
 * call store_watch_consume(), and for each session whose account's change
 * counter moved, store_mailbox_sync(). */
int store_watch_fd(struct store *store);   /* -1 when inotify is unavailable */
int store_account_watch(struct store_account *acct, const char **error_r);
/* Drains the fd and bumps the change counter of each account concerned. */
void store_watch_consume(struct store *store);
/* Counts the changes seen for the account (sessions keep the last value). */
uint64_t store_account_changes(struct store_account *acct);
/* Conveniences for one session: watches the account and returns the
 * process's fd (several sessions may add events on it; libevent wakes them
 * all); consume drains it and says whether this account changed since the
 * previous consume for it. */
int store_account_watch_fd(struct store_account *acct);
bool store_account_watch_consume(struct store_account *acct);

/* An advisory lock named name (e.g. "pop3": one POP3 session per
 * maildrop) across all processes and sessions, never blocking:
 * STORE_ERR_INUSE when held. Release with store_lock_release(). */
int store_account_lock(struct store_account *acct, const char *name, int *lock_r,
		       const char **error_r);
void store_lock_release(int *lock);

/* ---- delivery and append ----------------------------------------------- */

/* Streams one message to a temp file under data_dir/tmp/ (never whole in
 * memory); it is parsed for the cache as it is written. */
int store_delivery_begin(struct store *store, struct store_delivery **d_r,
			 const char **error_r);
int store_delivery_write(struct store_delivery *d, const void *data, size_t len,
			 const char **error_r);

struct store_recipient {
	const char *address;   /* "local@domain" */
	const char *mailbox;   /* NULL = INBOX; missing mailbox falls back to INBOX */
	/* results */
	int result;            /* 0 or enum store_error (OVERQUOTA, NOTFOUND...) */
	const char *error;     /* message when result < 0 (valid until _free) */
	uint32_t uidvalidity;
	uint32_t uid;
};
/* Delivers to every recipient: hard link of the one temp file into each
 * account's new/, fsync of the directory, index commit; a recipient's
 * result is 0 only when all of that is done (acknowledge only those).
 * Returns 0 when at least one recipient succeeded, else the first error.
 * The delivery can no longer be written afterwards; free it. */
int store_delivery_commit(struct store_delivery *d, struct store_recipient *rcpts,
			  size_t count);
/* The temp file holding what was written (complete after commit, until
 * the delivery is freed): the queue hard-links it instead of copying. */
const char *store_delivery_file(const struct store_delivery *d);
/* Abandons and frees (removes the temp file); safe after commit too. */
void store_delivery_free(struct store_delivery **d);

/* APPEND: writes with store_delivery_write(), then commits into one
 * mailbox with flags, keywords and INTERNALDATE (0 = now). Returns the
 * UIDVALIDITY and UID (UIDPLUS APPENDUID). Quota applies. */
int store_delivery_append(struct store_delivery *d, struct store_account *acct,
			  const char *mailbox, uint32_t flags,
			  const char *const *keywords, size_t keyword_count,
			  time_t internaldate, uint32_t *uidvalidity_r, uint32_t *uid_r,
			  const char **error_r);

/* MULTIAPPEND (RFC 3502): several messages into one mailbox in one index
 * transaction, all or none; each item's uid is set on success. */
struct store_append_item {
	struct store_delivery *d;
	uint32_t flags;
	const char *const *keywords;
	size_t keyword_count;
	time_t internaldate;    /* 0 = now */
	uint32_t uid;           /* result */
};
int store_delivery_append_many(struct store_append_item *items, size_t n,
			       struct store_account *acct, const char *mailbox,
			       uint32_t *uidvalidity_r, const char **error_r);

/* ---- mailboxes ---------------------------------------------------------- */

int store_mailbox_create(struct store_account *acct, const char *name,
			 uint32_t special_use, const char **error_r);
/* Deletes the mailbox and its messages; its children stay (they list as
 * children of a \NonExistent parent). INBOX cannot be deleted. */
int store_mailbox_delete(struct store_account *acct, const char *name,
			 const char **error_r);
/* Renames the mailbox and all its children; their subscriptions (also
 * those of names under it that do not exist) move to the new names, as in
 * Dovecot. Renaming INBOX creates the new mailbox and moves every INBOX
 * message into it; INBOX stays, empty, and stays subscribed (RFC 3501
 * 6.3.5). */
int store_mailbox_rename(struct store_account *acct, const char *old_name,
			 const char *new_name, const char **error_r);
int store_mailbox_subscribe(struct store_account *acct, const char *name,
			    bool subscribe, const char **error_r);

#define STORE_LIST_NOSELECT     0x01u  /* a parent that does not exist itself */
#define STORE_LIST_HASCHILDREN  0x02u
#define STORE_LIST_SUBSCRIBED   0x04u
struct store_list_entry {
	char *name;
	uint32_t attrs;         /* STORE_LIST_* */
	uint32_t special_use;   /* STORE_SPECIAL_* */
};
struct store_list {
	struct store_list_entry *entries;
	size_t count;
};
/* Lists mailboxes (and, with subscribed_only, subscriptions) matching an
 * IMAP pattern with '*' (anything) and '%' (anything but '/'); the
 * reference is the caller's business (IMAP prepends it). INBOX comes
 * first; others in name order. Parents of matches that do not exist are
 * listed with STORE_LIST_NOSELECT. */
int store_mailbox_list(struct store_account *acct, const char *pattern,
		       bool subscribed_only, struct store_list *list_r,
		       const char **error_r);
void store_list_free(struct store_list *list);
/* The IMAP pattern matcher used by store_mailbox_list(). */
bool store_pattern_match(const char *pattern, const char *name);

struct store_status {
	uint32_t messages;
	uint32_t recent;
	uint32_t uidnext;
	uint32_t uidvalidity;
	uint32_t unseen;
	uint32_t deleted;
	uint64_t size;           /* sum of RFC822.SIZE (STATUS=SIZE) */
	uint64_t highestmodseq;
	uint32_t special_use;
};
/* The file bytes of the mailbox's \\Deleted messages (what an EXPUNGE
 * gives back: STATUS DELETED-STORAGE). */
int store_mailbox_deleted_size(struct store_account *acct, const char *name,
			       uint64_t *bytes_r, const char **error_r);
/* Heals the mailbox from disk first when its directories changed. */
int store_mailbox_status(struct store_account *acct, const char *name,
			 struct store_status *status_r, const char **error_r);

/* ---- METADATA (RFC 5464) ------------------------------------------------ */

/* Entries of a mailbox, or of the server (mailbox NULL: the account's own
 * server entries). Entry names are stored in lower case. */
struct store_metadata_entry {
	char *name;          /* "/private/comment" */
	char *value;         /* NULL (set only): delete the entry */
	size_t len;
};
struct store_metadata {
	struct store_metadata_entry *entries;
	size_t count, cap;
};
/* entry itself (when it exists), then with depth 1 its children, with
 * depth -1 all its descendants; appended to md (init with zeroes).
 * STORE_ERR_NOTFOUND when the mailbox does not exist. */
int store_metadata_get(struct store_account *acct, const char *mailbox, const char *entry,
		       int depth, struct store_metadata *md, const char **error_r);
/* Sets (value) or deletes (value NULL) every entry in one transaction; when
 * the owner would hold more than max_entries (0 = no limit), nothing is
 * changed and the result is STORE_ERR_LIMIT. */
int store_metadata_set(struct store_account *acct, const char *mailbox,
		       const struct store_metadata_entry *entries, size_t count,
		       size_t max_entries, const char **error_r);
void store_metadata_free(struct store_metadata *md);

/* ---- mailbox views ------------------------------------------------------ */

/* Opens a view (SELECT/EXAMINE/POP3 login): heals from disk, snapshots
 * the UID list. A read-write view takes the \Recent messages (those no
 * read-write view has taken yet), at the open and at every sync; a
 * read-only one does not, nor one opened with STORE_OPEN_NO_RECENT (an
 * IMAP4rev2 session, which never shows \Recent and must not take it
 * from a rev1 session: RFC 9051 removed the flag). */
enum store_open_flags {
	STORE_OPEN_READ_ONLY = 1u << 0,
	STORE_OPEN_NO_RECENT = 1u << 1,
};
int store_mailbox_open(struct store_account *acct, const char *name, unsigned int flags,
		       struct store_mailbox **mbox_r, const char **error_r);
void store_mailbox_close(struct store_mailbox **mbox);
/* The status as of the last open/sync. */
void store_mailbox_get_status(struct store_mailbox *mbox, struct store_status *status_r);
const char *store_mailbox_name(struct store_mailbox *mbox);

/* The snapshot: UIDs in ascending order; sequence number n is uids[n-1].
 * Valid until the next store_mailbox_sync(). */
const uint32_t *store_mailbox_uids(struct store_mailbox *mbox, size_t *count_r);
/* 1-based sequence number of uid in the snapshot, 0 when absent. */
uint32_t store_mailbox_uid_to_seq(struct store_mailbox *mbox, uint32_t uid);
/* Lookups of single messages (store_msg_get, store_msg_cache,
 * store_msg_open_fd) between these two share one read snapshot instead of
 * a transaction each: for a FETCH of many messages. Never across an event
 * loop turn (a held snapshot keeps old pages alive and misses changes). */
void store_mailbox_batch_begin(struct store_mailbox *mbox);
void store_mailbox_batch_end(struct store_mailbox *mbox);
/* True when uid was \Recent for this view. */
bool store_mailbox_is_recent(struct store_mailbox *mbox, uint32_t uid);

struct store_sync {
	struct store_uids expunged;   /* UIDs gone since the last sync, ascending */
	struct store_uids added;      /* new UIDs, ascending (EXISTS) */
	struct store_uids changed;    /* flags/keywords changed (FETCH FLAGS) */
	bool uidvalidity_changed;     /* the mailbox was recreated: reselect */
};
/* Heals from disk when directory mtimes say so, then updates the
 * snapshot and reports what changed since the previous sync/open,
 * including changes made by this process. Use it at NOOP, IDLE wake-ups,
 * CHECK, and after the view's own EXPUNGE. */
int store_mailbox_sync(struct store_mailbox *mbox, struct store_sync *sync_r,
		       const char **error_r);
/* The same, except that messages expunged meanwhile stay in the snapshot
 * (sequence numbers unchanged; looking them up finds nothing) until a
 * later store_mailbox_sync() reports them: for IMAP commands during which
 * EXPUNGE must not be sent (RFC 3501 7.4.1). */
int store_mailbox_sync_keep_expunged(struct store_mailbox *mbox, struct store_sync *sync_r,
				     const char **error_r);
void store_sync_free(struct store_sync *sync);

/* One message as the index knows it. Strings point into the view and stay
 * valid until the next store call on it. */
struct store_msg {
	uint32_t uid;
	uint32_t flags;            /* STORE_FLAG_* */
	uint64_t keywords;         /* bit i = store_mailbox_keyword(mbox, i) */
	uint64_t modseq;
	uint64_t size;             /* bytes of the file */
	uint64_t crlf_size;        /* RFC822.SIZE (every line end counted as CRLF) */
	time_t internaldate;
	time_t savedate;           /* saved into this mailbox (RFC 8514); 0 = unknown */
	const char *path;          /* the file's path now (may move on flag change) */
};
/* Looks up one message; STORE_ERR_NOTFOUND when it is not in the index
 * (expunged meanwhile). */
int store_msg_get(struct store_mailbox *mbox, uint32_t uid, struct store_msg *msg_r,
		  const char **error_r);
/* The message's EMAILID (RFC 8474) as a number: stable for the life of
 * the message, kept by COPY and MOVE, the same after an index rebuild
 * for every message that was not copied. msg from store_msg_get() or
 * store_iter_next() (not usable inside an iteration: a store call). */
uint64_t store_msg_emailid(struct store_mailbox *mbox, const struct store_msg *msg);
/* Name of keyword index i in this mailbox, NULL when unused. */
const char *store_mailbox_keyword(struct store_mailbox *mbox, unsigned int i);

/* Iterates over the index's messages with a UID in set (NULL = all), in UID
 * order, from one consistent read snapshot. */
struct store_iter;
/* The iterator holds an LMDB read snapshot: free it before going back to
 * the event loop (long snapshots pin pages and grow the file). */
struct store_iter *store_iter_new(struct store_mailbox *mbox, const struct store_uidset *set);
bool store_iter_next(struct store_iter *iter, struct store_msg *msg_r);
/* The parse cache of the message store_iter_next() just returned, from the
 * same snapshot (FETCH ENVELOPE/BODYSTRUCTURE, SEARCH over many messages
 * without a transaction each); valid until the next call on iter.
 * store_cache is declared below. */
struct store_cache;
int store_iter_cache(struct store_iter *iter, struct store_cache *cache_r,
		     const char **error_r);
void store_iter_free(struct store_iter **iter);

/* The parse cache, filled at delivery/append/indexing time. */
/* The part tree of mime.h, flattened: parts[0] is the message; parent,
 * first_child and next_sibling are indexes (UINT32_MAX = none). A
 * message/rfc822 part's only child is the embedded message. IMAP walks
 * it to resolve BODY[1.2.HEADER] etc. to byte offsets in the file. */
struct store_part {
	uint32_t parent, first_child, next_sibling;
	uint64_t header_offset, body_offset, body_end;
	uint64_t header_crlf_size, body_crlf_size, body_lines;
	bool is_multipart, is_message;
};
struct store_cache {
	const char *envelope;       /* "(...)" ready for FETCH ENVELOPE */
	const char *body;           /* FETCH BODY */
	const char *bodystructure;  /* FETCH BODYSTRUCTURE */
	/* decoded UTF-8 header values for SEARCH/SORT, "" when absent */
	const char *subject, *from, *to, *cc, *bcc, *message_id, *in_reply_to,
		*references;
	time_t date;                /* Date: header (SENTBEFORE etc.), 0 when none */
	const struct store_part *parts;   /* parts[0] = the whole message */
	size_t part_count;
};
/* Valid until the next store call on mbox. */
int store_msg_cache(struct store_mailbox *mbox, uint32_t uid, struct store_cache *cache_r,
		    const char **error_r);
/* The part for an IMAP section path ("" or NULL = the message, "1.2"),
 * -1 when there is none. For a message/rfc822 part, N.HEADER / N.TEXT /
 * N.MIME callers look at its first_child (the embedded message). */
int store_cache_find_part(const struct store_cache *cache, const char *path);

/* The values of the digits of the transfer encodings: 0-15 for a hex
 * digit (quoted-printable), 0-63 for a base64 character, -1 for any other
 * byte. The store's decoders and IMAP BINARY's streaming one use them. */
int store_hex_value(char c);
int store_base64_value(char c);

/* Helpers over the MIME parser for FETCH and SEARCH (all results
 * malloc'ed or appended):
 * - BODY[HEADER.FIELDS (names)] / .NOT (exclude): the matching fields of
 *   header, folding kept, CRLF line ends, then the blank line;
 * - a part body with its transfer encoding undone (BINARY; to_utf8 also
 *   converts text parts to UTF-8 for SEARCH); header is the part's header
 *   (header_offset..body_offset), body its body (body_offset..body_end);
 * - RFC 2047 decoding of one header value to UTF-8 (SEARCH HEADER). */
struct buf;
void store_header_filter(const void *header, size_t len, const char *const *names,
			 size_t name_count, bool exclude, struct buf *out);
char *store_decode_body(const void *header, size_t header_len, const void *body,
			size_t body_len, bool to_utf8, size_t *len_r);
char *store_decode_header(const char *value, size_t len);

/* Opens the message file read-only for streaming (caller closes). */
int store_msg_open_fd(struct store_mailbox *mbox, uint32_t uid, int *fd_r,
		      const char **error_r);

/* ---- changes ----------------------------------------------------------- */

enum store_flag_op { STORE_FLAGS_ADD, STORE_FLAGS_REMOVE, STORE_FLAGS_REPLACE };
/* STORE / UID STORE: applies flags and keywords to the messages of set.
 * Each changed message gets a new MODSEQ (mailbox HIGHESTMODSEQ + 1...).
 * unchangedsince != 0 (CONDSTORE): messages whose MODSEQ is greater are
 * left alone and listed in failed_r (may be NULL). Silently skips UIDs
 * not in the index. */
int store_msg_set_flags(struct store_mailbox *mbox, const struct store_uidset *set,
			enum store_flag_op op, uint32_t flags,
			const char *const *keywords, size_t keyword_count,
			uint64_t unchangedsince, struct store_uids *failed_r,
			const char **error_r);
/* COPY/MOVE to another mailbox of the same account (hard links). src_r and
 * dst_r (may be NULL) get matching UID lists for COPYUID; *uidvalidity_r
 * the destination's. Quota applies to copies (not to moves). */
int store_msg_copy(struct store_mailbox *mbox, const struct store_uidset *set,
		   const char *dest, bool move, uint32_t *uidvalidity_r,
		   struct store_uids *src_r, struct store_uids *dst_r,
		   const char **error_r);
/* Expunges the UIDs of set (IMAP UID EXPUNGE, POP3 DELE at QUIT). With
 * only_deleted, only those carrying \Deleted (IMAP EXPUNGE). The snapshot
 * changes at the next sync. expunged_r may be NULL. */
int store_msg_expunge(struct store_mailbox *mbox, const struct store_uidset *set,
		      bool only_deleted, struct store_uids *expunged_r,
		      const char **error_r);

/* CONDSTORE/QRESYNC: messages whose MODSEQ > modseq (changed_r) and UIDs
 * expunged with a MODSEQ > modseq (vanished_r), both ascending. The
 * expunge log is bounded; for a modseq older than what it still covers,
 * vanished_r is every UID below UIDNEXT that no longer exists (a superset
 * that RFC 7162 allows for VANISHED (EARLIER)), so callers need not know. */
int store_changes_since(struct store_mailbox *mbox, uint64_t modseq,
			struct store_uids *changed_r, struct store_uids *vanished_r,
			const char **error_r);

/* ---- search primitives -------------------------------------------------- */

enum store_search_field {
	STORE_SEARCH_SUBJECT, STORE_SEARCH_FROM, STORE_SEARCH_TO, STORE_SEARCH_CC,
	STORE_SEARCH_BCC, STORE_SEARCH_MESSAGE_ID,
};
/* The substring test of every text search key: needle in hay[0..len),
 * ASCII letters folded, other bytes (UTF-8) compared as they are. */
bool store_contains_ci(const char *hay, size_t len, const char *needle);
/* Case-insensitive (ASCII and UTF-8 text compared bytewise after ASCII
 * folding) substring test on a cached, decoded header value. */
bool store_cache_field_contains(const struct store_cache *cache,
				enum store_search_field field, const char *needle);
/* SEARCH BODY (body_only) / TEXT: needle (UTF-8) in the message's text.
 * Each leaf part is decoded (base64, quoted-printable, charset -> UTF-8)
 * and searched; TEXT also searches the raw and decoded header. Parts over
 * 16 MiB are streamed raw instead. Case-insensitive for ASCII. */
int store_msg_text_contains(struct store_mailbox *mbox, uint32_t uid, const char *needle,
			    bool body_only, bool *found_r, const char **error_r);

/* Criteria answered from the index alone (one pass, no file opened). */
struct store_search {
	uint32_t flags_set;       /* all of these flags */
	uint32_t flags_unset;     /* none of these */
	uint64_t keywords_set;    /* bit masks, see store_mailbox_keyword_index */
	uint64_t keywords_unset;
	uint64_t larger, smaller; /* crlf_size > larger, < smaller (0 = none) */
	time_t since, before;     /* internaldate >= since, < before (0 = none) */
	uint64_t modseq;          /* MODSEQ >= modseq (0 = none) */
	const struct store_uidset *uids;   /* NULL = all */
};
int store_search_index(struct store_mailbox *mbox, const struct store_search *criteria,
		       struct store_uids *result_r, const char **error_r);
/* Bit index of a keyword in this mailbox, -1 when it was never used (then
 * no message has it). */
int store_mailbox_keyword_index(struct store_mailbox *mbox, const char *keyword);

/* ---- names -------------------------------------------------------------- */

/* Modified UTF-7 (RFC 3501 5.1.3) <-> UTF-8. decode returns NULL on
 * invalid input. Results are malloc'ed. */
char *store_mutf7_encode(const char *utf8);
char *store_mutf7_decode(const char *mutf7);

#endif

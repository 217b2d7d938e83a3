#ifndef POSTERN_STORE_PRIVATE_H
#define POSTERN_STORE_PRIVATE_H

/* Shared between the store's files; not for other modules. */

#include "store/store.h"
#include "core/core.h"

#include <lmdb.h>
#include <time.h>

#define STORE_INDEX_NAME "postern-index.lmdb"
#define STORE_NOTIFY_NAME "postern-notify"
#define STORE_MAPSIZE ((size_t)8 << 30)     /* the first map of an index */
#define STORE_MAPSIZE_MAX ((size_t)1 << 40)  /* growth stops there */
#define STORE_MAXREADERS 1024
#define STORE_IDLE_ACCOUNTS 8    /* closed accounts kept open per process */
/* Expunge log per mailbox (QRESYNC VANISHED): at STORE_EXPUNGE_LOG_MAX
 * records the oldest are dropped down to STORE_EXPUNGE_LOG_KEEP. A count,
 * not an age: it bounds the space (about 40 bytes a record, so < 500 KB a
 * mailbox) whatever the expunge rate, and the window only decides how
 * exact an answer is, never whether it is right: a client behind the
 * window is told every UID of its range that no longer exists. The slack
 * makes the pruning scan cost ~6 record reads per expunge. */
#define STORE_EXPUNGE_LOG_KEEP 10000
#define STORE_EXPUNGE_LOG_MAX 12000

struct store {
	char *data_dir;
	char *mail_dir;
	char *tmp_dir;
	char *run_as;
	char *hostname;
	unsigned int counter;
	uint64_t idle_clock;
	size_t mapsize;           /* of indexes opened from now on */
	int watch_fd;             /* one inotify instance for the process */
	struct store_account *accounts;   /* open ones, linked */
	char error[512];
};

struct store_account {
	struct store *store;
	struct store_account *next;
	int refcount;
	bool detached;          /* its tree was removed: freed at the last close */
	char *address;
	char *root;             /* Maildir++ root */
	char *notify_path;
	MDB_env *env;
	MDB_dbi db_mbox;        /* name -> struct mbox_rec */
	MDB_dbi db_msg;         /* u64 (id<<32|uid) -> struct msg_rec + base name */
	MDB_dbi db_cache;       /* u64 -> cache blob */
	MDB_dbi db_expunged;    /* u64 (id<<32|uid) -> u64 modseq */
	MDB_dbi db_kw;          /* u64 (id<<32|index) -> keyword name */
	MDB_dbi db_meta;        /* string -> u64 */
	MDB_dbi db_subs;        /* name -> "" */
	MDB_dbi db_emailid;     /* u64 (id<<32|uid) -> u64 EMAILID of a copy */
	MDB_dbi db_metadata;    /* be32 mailbox id (0 = server) + entry -> value */
	bool map_full;            /* a write since the last reset hit MDB_MAP_FULL */
	int watch_wd[3];          /* inotify watches: notify file, new/, cur/ */
	uint64_t changes;
	uint64_t changes_consumed;  /* for store_account_watch_consume() */
	int notify_fd;
	int intent_fd;            /* postern-intent, see heal_own_begin() */
	uint64_t write_serial;    /* counts write transactions */
	uint64_t intent_serial;   /* the one that wrote the intent */
	uint32_t intent_id;
	uint64_t intent_seq;
	uint64_t idle_since;
	struct timespec root_mtime;   /* of the last folder discovery */
	bool root_mtime_valid;
	/* the UID list of the last view opened or fully synced, by mailbox
	 * id, UIDVALIDITY and HIGHESTMODSEQ (see view_snapshot_get()) */
	struct {
		uint32_t id, uidvalidity;
		uint64_t modseq;
		struct store_uids uids;
		bool valid;
	} snapshot;
	char error[512];
};

/* One mailbox in the index. Counters are kept exact by msgrec_account(). */
struct mbox_rec {
	uint32_t id;
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint32_t first_recent_uid;
	uint64_t highestmodseq;
	uint64_t size;           /* sum of crlf_size */
	uint32_t messages;
	uint32_t unseen;
	uint32_t deleted;
	uint32_t special_use;
	/* directory mtimes as the index knows them: set by a full scan, and
	 * moved along by the store's own changes (heal_own_*) */
	int64_t new_mtime_ns;
	int64_t cur_mtime_ns;
	int64_t scan_time_ns;    /* when the last full scan ran */
	uint32_t keyword_count;
	uint32_t uidlist_adopted;
	uint32_t dirs_trusted;   /* the recorded mtimes cannot hide a change:
				    old enough at the scan, or moved along by
				    the store's own change */
	uint32_t needs_rescan;   /* a change may have been lost (a crash, a
				    reboot): only a full scan clears it */
	/* the expunge log (db_expunged) is bounded: it holds every expunge
	 * with a MODSEQ > expunge_floor (0: every one since creation) */
	uint64_t expunge_floor;
	uint32_t expunge_log;    /* records in it (approximate for records
				    written before it was counted) */
	uint32_t pad;
};

/* The store's own change to a mailbox's directories, made under the writer
 * lock: when the index was in step with the directories before it, it is
 * after it too, so the change does not force a rescan. */
struct own_change {
	char *dir;
	int64_t new_before, cur_before;
};
#define STORE_INTENT_NAME "postern-intent"

#define MSG_IN_NEW 0x100u   /* the file is in new/ (no ":2," suffix) */

struct msg_rec {
	uint32_t flags;          /* STORE_FLAG_* | MSG_IN_NEW */
	uint32_t savedate;       /* when saved into this mailbox (SAVEDATE,
				    RFC 8514), seconds; 0 = unknown (records
				    older than the field) */
	uint64_t keywords;
	uint64_t modseq;
	uint64_t size;
	uint64_t crlf_size;
	int64_t internaldate;
	/* followed by the base file name (no ":2,..."), NUL-terminated */
};

struct store_mailbox {
	struct store_account *acct;
	char *name;
	bool read_only;
	bool no_recent;               /* never takes \Recent (IMAP4rev2) */
	char *dir;                     /* the mailbox's directory, once built */
	MDB_txn *batch_txn;            /* see store_mailbox_batch_begin() */
	uint32_t id;
	struct mbox_rec rec;
	struct store_uids view;        /* snapshot */
	uint64_t view_modseq;          /* HIGHESTMODSEQ at snapshot time */
	struct store_uidset recent;    /* \Recent in this view (RFC 3501 2.3.2) */
	bool kept_expunged;            /* the snapshot holds expunged UIDs */
	char *keywords[STORE_MAX_KEYWORDS];
	struct buf scratch;            /* for returned strings */
	struct buf cache_buf;
	struct store_part *parts;
	size_t parts_cap;
	char error[512];
};

static inline uint64_t msg_key(uint32_t id, uint32_t uid)
{
	return ((uint64_t)id << 32) | uid;
}

/* errors: format into a handle's buffer */
int store_fail(char *buf, size_t size, const char **error_r, int code,
	       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
#define acct_fail(acct, error_r, code, ...) \
	store_fail((acct)->error, sizeof((acct)->error), error_r, code, __VA_ARGS__)

/* Hands a created file to run_as (when root and run_as is set). */
void store_give(struct store *store, const char *path);

/* "local@domain" -> the directory names of the account (domain
 * lowercased), malloc'ed; -1 when store_account_address_check() refuses. */
int store_address_split(const char *address, char **local_r, char **domain_r);

/* remove.c: the highest UIDVALIDITY of removed accounts (0 when none);
 * a new account starts above it. */
uint64_t store_uidvalidity_floor(struct store *store);

/* index.c: transactions and records */
int index_txn_begin(struct store_account *acct, bool write, MDB_txn **txn_r,
		    const char **error_r);
int index_txn_commit(struct store_account *acct, MDB_txn *txn, const char **error_r);
/* Notes an LMDB result: MDB_MAP_FULL sets acct->map_full. Returns rc. */
int index_note(struct store_account *acct, int rc);
/* After a transaction died of MDB_MAP_FULL (and was aborted): doubles the
 * map, up to STORE_MAPSIZE_MAX. Only with no transaction of this process
 * open on the account (the map moves). 0, or -1 when it cannot grow. */
int index_grow(struct store_account *acct);
int index_mbox_get(struct store_account *acct, MDB_txn *txn, const char *name,
		   struct mbox_rec *rec_r);
int index_mbox_put(struct store_account *acct, MDB_txn *txn, const char *name,
		   const struct mbox_rec *rec);
uint64_t index_meta_get(struct store_account *acct, MDB_txn *txn, const char *key);
int index_meta_put(struct store_account *acct, MDB_txn *txn, const char *key, uint64_t value);
/* Adds (sign 1) or removes (sign -1) a message's share of the counters. */
void msgrec_account(struct mbox_rec *mrec, const struct msg_rec *msg, int sign);
int index_msg_put(struct store_account *acct, MDB_txn *txn, uint32_t id, uint32_t uid,
		  const struct msg_rec *rec, const char *base);
/* Removes the message: index, counters, expunge log (pruned to its bound,
 * moving mrec->expunge_floor), quota, the file. */
int index_msg_expunge(struct store_account *acct, MDB_txn *txn, const char *name,
		      struct mbox_rec *mrec, uint32_t uid, const struct msg_rec *rec,
		      const char *base);
/* Walks the records of mailbox id (u64-keyed databases) from sub-key
 * from: start with *started = false; each call gives the next sub-key
 * (uid, keyword index) and value; false at the end of the mailbox. */
bool index_id_next(MDB_cursor *cur, uint32_t id, uint32_t from, bool *started,
		   uint32_t *sub_r, MDB_val *val_r);
uint32_t index_new_uidvalidity(struct store_account *acct, MDB_txn *txn);
int index_quota_add(struct store_account *acct, MDB_txn *txn, int64_t delta);
/* Messages in the account (every mailbox). */
uint64_t index_message_count(struct store_account *acct, MDB_txn *txn);
/* Whether bytes and messages more stay within the account's limits. */
bool index_quota_allows(struct store_account *acct, MDB_txn *txn, uint64_t bytes,
			uint64_t messages);
void index_notify(struct store_account *acct);
/* Keyword name -> index in the mailbox, allocating (create) if needed;
 * -1 when absent (or full). */
int index_keyword_lookup(struct store_account *acct, MDB_txn *txn, const char *name,
			 struct mbox_rec *mrec, const char *keyword, bool create);

/* maildir.c: names and files */
/* Directory of a mailbox ("" parts for INBOX). Returned malloc'ed. */
char *maildir_path(struct store_account *acct, const char *name);
/* The same under another account root (a backup's). */
char *maildir_path_in(const char *root, const char *name);
int maildir_validate_name(const char *name);
/* Canonical API name (INBOX uppercased); malloc'ed, NULL if invalid. */
char *maildir_canonical_name(const char *name);
int maildir_create_dirs(struct store_account *acct, const char *dir, const char **error_r);
/* ":2,<letters>" suffix letters for flags and keywords into out (>= 40). */
void maildir_flag_letters(uint32_t flags, uint64_t keywords, char *out);
void maildir_parse_letters(const char *letters, uint32_t *flags_r, uint64_t *keywords_r);
/* Full path of a message file. */
void maildir_msg_path(struct buf *out, const char *dir, const struct msg_rec *rec,
		      const char *base);
/* Unique base name "<sec>.M<usec>P<pid>Q<n>.<host>,S=<size>,W=<crlf>". */
char *maildir_new_base(struct store *store, uint64_t size, uint64_t crlf_size);
int fsync_dir(const char *dir);
/* Moves the file to match rec's flags (rename), returns 0/-1 errno set. */
int maildir_rename_flags(const char *dir, const struct msg_rec *old_rec,
			 const struct msg_rec *new_rec, const char *base);
/* Appends "<uid> :<base>" to dir's dovecot-uidlist (created with a
 * version 3 header when missing). Best effort: a recovery aid. */
void maildir_uidlist_append(struct store *store, const char *dir, uint32_t uidvalidity,
			    uint32_t uid, const char *base);
/* Rewrites dir's dovecot-uidlist from the index (inside txn, so it sees
 * the transaction's own changes): drops expunged UIDs, updates N. */
void maildir_uidlist_rewrite(struct store_account *acct, MDB_txn *txn,
			     const struct mbox_rec *rec, const char *dir);
void maildir_keywords_write(struct store_account *acct, MDB_txn *txn, uint32_t id,
			    const char *dir);

/* heal.c: reconcile a mailbox with its directories. force: scan even if
 * mtimes say clean. */
int heal_mailbox(struct store_account *acct, const char *name, bool force,
		 const char **error_r);
/* Inside a write transaction, before changing the directories of the
 * mailbox rec: records the intent (so that a crash before the commit makes
 * the next writer distrust the recorded mtimes) and the mtimes before. */
void heal_own_begin(struct own_change *oc, struct store_account *acct, MDB_txn *txn,
		    const char *dir, uint32_t mailbox_id);
/* At the start of every write transaction: an intent whose transaction
 * never committed (crash, failure) marks its mailbox for a rescan. */
void heal_intent_resolve(struct store_account *acct, MDB_txn *txn);
/* Whether an uncommitted intent is pending (fast path check). */
bool heal_intent_pending(struct store_account *acct, MDB_txn *txn);
/* After a reboot nothing recorded is trusted (an intent may be lost). */
void heal_distrust_after_boot(struct store_account *acct, MDB_txn *txn);
void heal_own_end(struct own_change *oc, struct mbox_rec *rec);
/* Finds .Folder directories not in the index and indexes them. */
int heal_discover_mailboxes(struct store_account *acct, const char **error_r);

/* cache.c: serialize a parse result */
struct mime_message;
void cache_serialize(struct buf *out, const struct mime_message *msg);
int cache_deserialize(const void *data, size_t len, struct store_cache *cache,
		      struct store_part **parts, size_t *parts_cap);
/* Parses a file and stores its cache record. */
int cache_index_file(struct store_account *acct, MDB_txn *txn, uint32_t id, uint32_t uid,
		     const char *path, uint64_t *size_r, uint64_t *crlf_size_r,
		     time_t *date_r);
int cache_put(struct store_account *acct, MDB_txn *txn, uint32_t id, uint32_t uid,
	      const struct buf *blob);

/* The EMAILID (RFC 8474) a message has by itself: a hash of its base
 * file name, which never changes and survives an index rebuild. A COPY or
 * MOVE gets a new file name, so the copy's record in db_emailid keeps the
 * original's. */
uint64_t index_emailid_of_base(const char *base);
uint64_t index_emailid(struct store_account *acct, MDB_txn *txn, uint32_t id, uint32_t uid,
		       const char *base);

/* metadata.c: drops every METADATA entry of a mailbox (its DELETE). */
void metadata_delete_owner(struct store_account *acct, MDB_txn *txn, uint32_t id);

/* mailbox.c */
void mailbox_fill_status(struct store_account *acct, MDB_txn *txn,
			 const struct mbox_rec *rec, struct store_status *st);
int mailbox_create_in_txn(struct store_account *acct, MDB_txn *txn, const char *name,
			  uint32_t special_use, struct mbox_rec *rec_r, const char **error_r);

#endif

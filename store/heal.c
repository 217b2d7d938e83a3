/* Self-healing: reconcile a mailbox's index with its Maildir directories
 * (files added, vanished or renamed from outside; a lost index), adopting
 * a dovecot-uidlist's UIDVALIDITY and UIDs while no UID was handed out. */
#include "store/store-private.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A directory mtime younger than this at scan time could hide a change made
 * in the same timestamp tick: Linux file systems stamp with a coarse clock
 * (a few ms); one whose stamps have no sub-second part gets 2 s. */
#define HEAL_TRUST_NS 100000000LL
#define HEAL_TRUST_COARSE_NS 2000000000LL
/* Even a trusted mailbox is rescanned when its last full scan is this old
 * (bounds the residual same-tick race with outside writers). */
#define HEAL_MAX_AGE_NS (24LL * 3600 * 1000000000LL)

static bool mtime_settled(int64_t mtime, int64_t scan_time)
{
	int64_t window = mtime % 1000000000LL == 0 ? HEAL_TRUST_COARSE_NS : HEAL_TRUST_NS;
	return mtime + window <= scan_time;
}

struct known_msg {
	uint32_t uid;
	struct msg_rec rec;
	char *base;
	bool seen;
};

struct found_file {
	char *name;        /* file name in its directory */
	char *base;
	bool in_new;
	uint32_t uid;      /* from the uidlist, 0 = none */
};

struct uidlist {
	uint32_t uidvalidity, nextuid;
	struct found_file *entries;   /* base + uid */
	size_t count;
};

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t mtime_ns(const char *dir, const char *sub)
{
	char *path = xasprintf("%s/%s", dir, sub);
	struct stat st;
	int ret = stat(path, &st);
	free(path);
	if (ret < 0)
		return -1;
	return (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
}

static int known_cmp(const void *a, const void *b)
{
	return strcmp(((const struct known_msg *)a)->base, ((const struct known_msg *)b)->base);
}

static int found_cmp(const void *a, const void *b)
{
	return strcmp(((const struct found_file *)a)->base, ((const struct found_file *)b)->base);
}

/* by base, then the newest (highest) UID first */
static int uidlist_entry_cmp(const void *a, const void *b)
{
	const struct found_file *x = a, *y = b;
	int ret = strcmp(x->base, y->base);
	return ret != 0 ? ret : x->uid > y->uid ? -1 : x->uid < y->uid;
}

static void load_known(struct store_account *acct, MDB_txn *txn, uint32_t id,
		       struct known_msg **known_r, size_t *count_r)
{
	struct known_msg *known = NULL;
	size_t count = 0, cap = 0;
	MDB_cursor *cur;
	mdb_cursor_open(txn, acct->db_msg, &cur);
	MDB_val v;
	uint32_t uid;
	bool started = false;
	while (index_id_next(cur, id, 0, &started, &uid, &v)) {
		if (count == cap) {
			cap = cap == 0 ? 256 : cap * 2;
			known = xrealloc(known, cap * sizeof(*known));
		}
		struct known_msg *m = &known[count++];
		m->uid = uid;
		memcpy(&m->rec, v.mv_data, sizeof(m->rec));
		m->base = xstrdup((const char *)v.mv_data + sizeof(m->rec));
		m->seen = false;
	}
	mdb_cursor_close(cur);
	if (count > 0)
		qsort(known, count, sizeof(*known), known_cmp);
	*known_r = known;
	*count_r = count;
}

static void scan_dir(const char *dir, const char *sub, struct found_file **files,
		     size_t *count, size_t *cap)
{
	char *path = xasprintf("%s/%s", dir, sub);
	DIR *d = opendir(path);
	free(path);
	if (d == NULL)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (*count == *cap) {
			*cap = *cap == 0 ? 256 : *cap * 2;
			*files = xrealloc(*files, *cap * sizeof(**files));
		}
		struct found_file *f = &(*files)[(*count)++];
		f->name = xstrdup(de->d_name);
		const char *colon = strchr(de->d_name, ':');
		f->base = colon != NULL ? xstrndup(de->d_name, (size_t)(colon - de->d_name))
					: xstrdup(de->d_name);
		f->in_new = strcmp(sub, "new") == 0;
		f->uid = 0;
	}
	closedir(d);
}

static void file_flags(const struct found_file *f, uint32_t *flags_r, uint64_t *kw_r)
{
	const char *info = strstr(f->name, ":2,");
	*flags_r = 0;
	*kw_r = 0;
	if (info != NULL)
		maildir_parse_letters(info + 3, flags_r, kw_r);
	if (f->in_new)
		*flags_r |= MSG_IN_NEW;
}

/* Reads dovecot-uidlist (versions 1 and 3). */
static int uidlist_read(const char *dir, struct uidlist *ul)
{
	memset(ul, 0, sizeof(*ul));
	char *path = xasprintf("%s/dovecot-uidlist", dir);
	FILE *f = fopen(path, "r");
	free(path);
	if (f == NULL)
		return -1;
	char *line = NULL;
	size_t cap = 0, alloc = 0;
	bool header = true;
	while (getline(&line, &cap, f) > 0) {
		line[strcspn(line, "\r\n")] = '\0';
		if (header) {
			header = false;
			unsigned int version, v1, n1;
			if (sscanf(line, "1 %u %u", &v1, &n1) == 2) {
				ul->uidvalidity = v1;
				ul->nextuid = n1;
				continue;
			}
			if (sscanf(line, "%u", &version) != 1 || version != 3)
				break;
			for (char *tok = strtok(line + 1, " "); tok != NULL; tok = strtok(NULL, " ")) {
				if (tok[0] == 'V')
					ul->uidvalidity = (uint32_t)strtoul(tok + 1, NULL, 10);
				else if (tok[0] == 'N')
					ul->nextuid = (uint32_t)strtoul(tok + 1, NULL, 10);
			}
			continue;
		}
		char *end;
		unsigned long uid = strtoul(line, &end, 10);
		if (uid == 0 || uid > UINT32_MAX || end == line)
			continue;
		/* v3: "<uid> [extensions] :<name>"; v1: "<uid> <name>" */
		char *name = strstr(end, " :");
		name = name != NULL ? name + 2 : end + strspn(end, " ");
		if (*name == '\0')
			continue;
		if (ul->count == alloc) {
			alloc = alloc == 0 ? 256 : alloc * 2;
			ul->entries = xrealloc(ul->entries, alloc * sizeof(*ul->entries));
		}
		struct found_file *e = &ul->entries[ul->count++];
		memset(e, 0, sizeof(*e));
		size_t blen = strcspn(name, ":");
		e->base = xstrndup(name, blen);
		e->uid = (uint32_t)uid;
		if (uid >= ul->nextuid)
			ul->nextuid = (uint32_t)uid + 1;
	}
	free(line);
	fclose(f);
	if (ul->count > 0) {
		/* a name listed twice (lines appended by a transaction that did
		 * not commit): the last UID it got wins */
		qsort(ul->entries, ul->count, sizeof(*ul->entries), uidlist_entry_cmp);
		size_t out = 0;
		for (size_t i = 0; i < ul->count; i++) {
			if (out > 0 && strcmp(ul->entries[out - 1].base, ul->entries[i].base) == 0) {
				free(ul->entries[i].base);
				continue;
			}
			ul->entries[out++] = ul->entries[i];
		}
		ul->count = out;
	}
	return ul->uidvalidity != 0 ? 0 : -1;
}

static void uidlist_free(struct uidlist *ul)
{
	for (size_t i = 0; i < ul->count; i++)
		free(ul->entries[i].base);
	free(ul->entries);
}

static void keywords_import(struct store_account *acct, MDB_txn *txn, const char *dir,
			    struct mbox_rec *rec)
{
	char *path = xasprintf("%s/dovecot-keywords", dir);
	FILE *f = fopen(path, "r");
	free(path);
	if (f == NULL)
		return;
	char *line = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, f) > 0) {
		line[strcspn(line, "\r\n")] = '\0';
		char *end;
		unsigned long idx = strtoul(line, &end, 10);
		if (end == line || *end != ' ' || idx >= 26 || end[1] == '\0')
			continue;
		uint64_t key = msg_key(rec->id, (uint32_t)idx);
		MDB_val k = { sizeof(key), &key }, v = { strlen(end + 1), end + 1 };
		if (mdb_put(txn, acct->db_kw, &k, &v, 0) == 0 && idx + 1 > rec->keyword_count)
			rec->keyword_count = (uint32_t)idx + 1;
	}
	free(line);
	fclose(f);
}

static int found_by_name(const void *a, const void *b)
{
	return strcmp(((const struct found_file *)a)->name, ((const struct found_file *)b)->name);
}

/* Indexes the files no record knows, with uidlist UIDs where they apply. */
static int heal_add_files(struct store_account *acct, MDB_txn *txn, const char *dir,
			  struct mbox_rec *rec, struct found_file *files, size_t count)
{
	struct uidlist ul;
	bool adopt = rec->uidnext == 1 && !rec->uidlist_adopted &&
		     uidlist_read(dir, &ul) == 0;
	if (adopt) {
		rec->uidlist_adopted = 1;
		rec->uidvalidity = ul.uidvalidity;
		if (ul.nextuid > rec->uidnext)
			rec->uidnext = ul.nextuid;
		keywords_import(acct, txn, dir, rec);
		for (size_t i = 0; i < count; i++) {
			struct found_file key = { .base = files[i].base };
			struct found_file *e = bsearch(&key, ul.entries, ul.count,
						       sizeof(*ul.entries), found_cmp);
			if (e != NULL)
				files[i].uid = e->uid;
		}
		log_info("event=store_uidlist_adopted dir=%s uidvalidity=%u uidnext=%u",
			 dir, rec->uidvalidity, rec->uidnext);
	}
	/* unlisted files get new UIDs in name order (roughly arrival order) */
	qsort(files, count, sizeof(*files), found_by_name);
	struct buf path = BUF_INIT;
	int ret = 0;
	for (size_t i = 0; i < count && ret == 0; i++) {
		struct found_file *f = &files[i];
		buf_reset(&path);
		buf_printf(&path, "%s/%s/%s", dir, f->in_new ? "new" : "cur", f->name);
		struct stat st;
		if (stat(path.data, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		struct msg_rec mr;
		memset(&mr, 0, sizeof(mr));
		file_flags(f, &mr.flags, &mr.keywords);
		mr.internaldate = st.st_mtime;
		/* a file found on disk: saved when it was last linked or renamed */
		mr.savedate = (uint32_t)st.st_ctime;
		if (f->uid != 0) {
			/* a UID the uidlist gave two names: only the first keeps it */
			uint64_t key = msg_key(rec->id, f->uid);
			MDB_val k = { sizeof(key), &key }, v;
			if (mdb_get(txn, acct->db_msg, &k, &v) == 0)
				f->uid = 0;
		}
		uint32_t uid = f->uid != 0 ? f->uid : rec->uidnext;
		time_t date;
		if (cache_index_file(acct, txn, rec->id, uid, path.data, &mr.size,
				     &mr.crlf_size, &date) < 0)
			continue;
		if (f->uid == 0) {
			rec->uidnext++;
			maildir_uidlist_append(acct->store, dir, rec->uidvalidity, uid, f->base);
		} else if (uid >= rec->uidnext) {
			rec->uidnext = uid + 1;
		}
		mr.modseq = ++rec->highestmodseq;
		msgrec_account(rec, &mr, 1);
		index_quota_add(acct, txn, (int64_t)mr.size);
		ret = index_msg_put(acct, txn, rec->id, uid, &mr, f->base);
	}
	buf_free(&path);
	if (adopt)
		uidlist_free(&ul);
	return ret;
}

int heal_mailbox(struct store_account *acct, const char *name, bool force,
		 const char **error_r)
{
	char *dir = maildir_path(acct, name);
	struct mbox_rec rec;
	MDB_txn *txn;
	int ret;
	int64_t scan_time = now_ns();
	int64_t new_mtime = mtime_ns(dir, "new"), cur_mtime = mtime_ns(dir, "cur");
	if (new_mtime < 0 || cur_mtime < 0) {
		maildir_create_dirs(acct, dir, error_r);
		new_mtime = mtime_ns(dir, "new");
		cur_mtime = mtime_ns(dir, "cur");
	}
	if ((ret = index_txn_begin(acct, false, &txn, error_r)) < 0)
		goto out_free;
	ret = index_mbox_get(acct, txn, name, &rec);
	bool pending = heal_intent_pending(acct, txn);
	mdb_txn_abort(txn);
	if (ret < 0) {
		ret = acct_fail(acct, error_r, STORE_ERR_NOTFOUND, "no such mailbox");
		goto out_free;
	}
	if (!force && new_mtime == rec.new_mtime_ns && cur_mtime == rec.cur_mtime_ns &&
	    rec.dirs_trusted && !rec.needs_rescan && !pending &&
	    scan_time - rec.scan_time_ns < HEAL_MAX_AGE_NS)
		goto out_free;

	if ((ret = index_txn_begin(acct, true, &txn, error_r)) < 0)
		goto out_free;
	if (index_mbox_get(acct, txn, name, &rec) < 0) {
		mdb_txn_abort(txn);
		goto out_free;
	}
	if (!force && new_mtime == rec.new_mtime_ns && cur_mtime == rec.cur_mtime_ns &&
	    rec.dirs_trusted && !rec.needs_rescan &&
	    scan_time - rec.scan_time_ns < HEAL_MAX_AGE_NS) {
		/* the pending intent was another mailbox's, or it committed */
		ret = mdb_txn_commit(txn) == 0 ? 0 :
			acct_fail(acct, error_r, STORE_ERR_INTERNAL, "index: commit failed");
		goto out_free;
	}
	struct known_msg *known;
	size_t known_count;
	load_known(acct, txn, rec.id, &known, &known_count);
	struct found_file *files = NULL;
	size_t file_count = 0, file_cap = 0;
	scan_dir(dir, "new", &files, &file_count, &file_cap);
	scan_dir(dir, "cur", &files, &file_count, &file_cap);

	bool changed = false;
	size_t unknown = 0;
	for (size_t i = 0; i < file_count; i++) {
		struct known_msg key = { .base = files[i].base };
		struct known_msg *m = known_count == 0 ? NULL :
			bsearch(&key, known, known_count, sizeof(*known), known_cmp);
		if (m == NULL) {
			files[unknown++] = files[i];
			continue;
		}
		if (m->seen) {
			/* the same message twice (new/ and cur/ after a crash
			 * mid-rename): keep the indexed one */
			free(files[i].name);
			free(files[i].base);
			continue;
		}
		m->seen = true;
		uint32_t flags;
		uint64_t kw;
		file_flags(&files[i], &flags, &kw);
		/* keywords beyond the 26 letters live only in the index */
		kw |= m->rec.keywords & ~(uint64_t)0x3ffffff;
		if (flags != m->rec.flags || kw != m->rec.keywords) {
			msgrec_account(&rec, &m->rec, -1);
			m->rec.flags = flags;
			m->rec.keywords = kw;
			m->rec.modseq = ++rec.highestmodseq;
			msgrec_account(&rec, &m->rec, 1);
			index_msg_put(acct, txn, rec.id, m->uid, &m->rec, m->base);
			changed = true;
		}
		free(files[i].name);
		free(files[i].base);
	}
	for (size_t i = 0; i < known_count; i++) {
		if (!known[i].seen) {
			index_msg_expunge(acct, txn, name, &rec, known[i].uid, &known[i].rec, NULL);
			changed = true;
		}
		free(known[i].base);
	}
	free(known);
	if (unknown > 0) {
		ret = heal_add_files(acct, txn, dir, &rec, files, unknown);
		changed = true;
		log_info("event=store_heal_indexed mailbox=%s files=%zu", name, unknown);
	}
	for (size_t i = 0; i < unknown; i++) {
		free(files[i].name);
		free(files[i].base);
	}
	free(files);
	rec.new_mtime_ns = new_mtime;
	rec.cur_mtime_ns = cur_mtime;
	rec.scan_time_ns = scan_time;
	rec.dirs_trusted = mtime_settled(new_mtime, scan_time) &&
			   mtime_settled(cur_mtime, scan_time);
	rec.needs_rescan = 0;
	if (ret == 0)
		ret = index_mbox_put(acct, txn, name, &rec);
	/* a full scan costs O(n) anyway: compact the append-only uidlist */
	if (ret == 0)
		maildir_uidlist_rewrite(acct, txn, &rec, dir);
	if (ret < 0) {
		mdb_txn_abort(txn);
		ret = acct_fail(acct, error_r, ret, "index: heal failed: %s", acct->error);
	} else if (changed) {
		ret = index_txn_commit(acct, txn, error_r);
	} else {
		/* only the scan bookkeeping: do not wake every watcher */
		ret = mdb_txn_commit(txn) == 0 ? 0 :
			acct_fail(acct, error_r, STORE_ERR_INTERNAL, "index: commit failed");
	}
out_free:
	free(dir);
	return ret;
}

struct intent_rec {
	uint32_t id;       /* mailbox id, UINT32_MAX = every mailbox */
	uint32_t pad;
	uint64_t seq;      /* committed when meta "intent_done" equals it */
};

static void intent_read(struct store_account *acct, struct intent_rec *in)
{
	memset(in, 0, sizeof(*in));
	if (acct->intent_fd < 0 || pread(acct->intent_fd, in, sizeof(*in), 0) != sizeof(*in))
		memset(in, 0, sizeof(*in));
}

static void distrust(struct store_account *acct, MDB_txn *txn, uint32_t id)
{
	MDB_cursor *cur;
	MDB_val k, v;
	if (mdb_cursor_open(txn, acct->db_mbox, &cur) != 0)
		return;
	for (int r = mdb_cursor_get(cur, &k, &v, MDB_FIRST); r == 0;
	     r = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct mbox_rec rec;
		memset(&rec, 0, sizeof(rec));
		memcpy(&rec, v.mv_data, v.mv_size < sizeof(rec) ? v.mv_size : sizeof(rec));
		if (id != UINT32_MAX && rec.id != id)
			continue;
		rec.dirs_trusted = 0;
		rec.needs_rescan = 1;
		MDB_val nv = { sizeof(rec), &rec };
		mdb_cursor_put(cur, &k, &nv, MDB_CURRENT);
	}
	mdb_cursor_close(cur);
}

bool heal_intent_pending(struct store_account *acct, MDB_txn *txn)
{
	struct intent_rec in;
	intent_read(acct, &in);
	return in.seq != 0 && in.seq != index_meta_get(acct, txn, "intent_done");
}

void heal_intent_resolve(struct store_account *acct, MDB_txn *txn)
{
	struct intent_rec in;
	intent_read(acct, &in);
	if (in.seq == 0 || in.seq == index_meta_get(acct, txn, "intent_done"))
		return;
	distrust(acct, txn, in.id);
	index_meta_put(acct, txn, "intent_done", in.seq);
}

void heal_distrust_after_boot(struct store_account *acct, MDB_txn *txn)
{
	char id[64] = "";
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
	if (f != NULL) {
		if (fgets(id, sizeof(id), f) == NULL)
			id[0] = '\0';
		fclose(f);
	}
	uint64_t hash = 1469598103934665603ull;   /* FNV-1a */
	for (const char *p = id; *p != '\0'; p++)
		hash = (hash ^ (unsigned char)*p) * 1099511628211ull;
	if (index_meta_get(acct, txn, "boot") == hash)
		return;
	distrust(acct, txn, UINT32_MAX);
	index_meta_put(acct, txn, "boot", hash);
}

void heal_own_begin(struct own_change *oc, struct store_account *acct, MDB_txn *txn,
		    const char *dir, uint32_t mailbox_id)
{
	/* the intent is written under the writer lock and committed (as
	 * intent_done) with the change itself: a crash in between leaves an
	 * intent the next writer finds uncommitted */
	struct intent_rec in = { mailbox_id, 0, 0 };
	if (acct->intent_serial == acct->write_serial) {
		if (acct->intent_id != mailbox_id)
			in.id = UINT32_MAX;   /* two mailboxes in one transaction */
		in.seq = acct->intent_seq;
	} else {
		in.seq = index_meta_get(acct, txn, "intent_done") + 1;
		acct->intent_serial = acct->write_serial;
		acct->intent_seq = in.seq;
	}
	acct->intent_id = in.id;
	if (acct->intent_fd >= 0 &&
	    pwrite(acct->intent_fd, &in, sizeof(in), 0) != sizeof(in))
		log_warn("event=store_intent_write_failed error=\"%s\"", strerror(errno));
	index_meta_put(acct, txn, "intent_done", in.seq);
	oc->dir = xstrdup(dir);
	oc->new_before = mtime_ns(dir, "new");
	oc->cur_before = mtime_ns(dir, "cur");
}

void heal_own_end(struct own_change *oc, struct mbox_rec *rec)
{
	/* only when nothing else changed the directories since the index
	 * last matched them; otherwise the next heal rescans. The index is
	 * then in step, so the mtimes are trusted even when the last scan saw
	 * them fresh. (An outside change in the same timestamp tick as this
	 * change or as that scan would be missed until the next full scan:
	 * a few milliseconds, outside writers only, at most a day.) */
	if (!rec->needs_rescan && oc->new_before == rec->new_mtime_ns &&
	    oc->cur_before == rec->cur_mtime_ns) {
		rec->new_mtime_ns = mtime_ns(oc->dir, "new");
		rec->cur_mtime_ns = mtime_ns(oc->dir, "cur");
		rec->dirs_trusted = 1;
	}
	free(oc->dir);
	oc->dir = NULL;
}

/* ".Parent.Child" -> "Parent/Child", NULL when not a mailbox name. */
static char *dir_to_name(const char *entry)
{
	struct buf out = BUF_INIT;
	char *copy = xstrdup(entry + 1);
	char *save = NULL;
	bool ok = true;
	for (char *comp = strtok_r(copy, ".", &save); comp != NULL && ok;
	     comp = strtok_r(NULL, ".", &save)) {
		char *dec = store_mutf7_decode(comp);
		if (dec == NULL) {
			ok = false;
			break;
		}
		if (out.len > 0)
			buf_append_char(&out, '/');
		buf_append_str(&out, dec);
		free(dec);
	}
	free(copy);
	char *name = ok && out.len > 0 ? maildir_canonical_name(out.data) : NULL;
	buf_free(&out);
	return name;
}

static uint32_t special_use_by_name(const char *name)
{
	static const struct { const char *name; uint32_t bit; } known[] = {
		{ "Sent", STORE_SPECIAL_SENT }, { "Drafts", STORE_SPECIAL_DRAFTS },
		{ "Trash", STORE_SPECIAL_TRASH }, { "Junk", STORE_SPECIAL_JUNK },
		{ "Archive", STORE_SPECIAL_ARCHIVE },
	};
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(name, known[i].name) == 0)
			return known[i].bit;
	return 0;
}

int heal_discover_mailboxes(struct store_account *acct, const char **error_r)
{
	/* folders appear in the root directory: when its mtime is what it was
	 * at the last scan, there is nothing new (an mtime from the last
	 * second is not trusted: a change in the same tick would hide) */
	struct stat root_st;
	if (stat(acct->root, &root_st) == 0) {
		if (acct->root_mtime_valid &&
		    root_st.st_mtim.tv_sec == acct->root_mtime.tv_sec &&
		    root_st.st_mtim.tv_nsec == acct->root_mtime.tv_nsec)
			return 0;
		acct->root_mtime = root_st.st_mtim;
		acct->root_mtime_valid = root_st.st_mtim.tv_sec < time(NULL) - 1;
	}
	DIR *d = opendir(acct->root);
	if (d == NULL)
		return acct_fail(acct, error_r, STORE_ERR_INTERNAL, "opendir %s: %s", acct->root,
				 strerror(errno));
	char **names = NULL;
	size_t count = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] != '.' || de->d_name[1] == '\0' || de->d_name[1] == '.' ||
		    de->d_name[1] == '#')
			continue;
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, 0) < 0 || !S_ISDIR(st.st_mode))
			continue;
		char *name = dir_to_name(de->d_name);
		if (name == NULL)
			continue;
		names = xrealloc(names, (count + 1) * sizeof(*names));
		names[count++] = name;
	}
	closedir(d);
	int ret = 0;
	MDB_txn *txn = NULL;
	bool created = false;
	if (count > 0 && (ret = index_txn_begin(acct, true, &txn, error_r)) == 0) {
		for (size_t i = 0; i < count && ret == 0; i++) {
			struct mbox_rec rec;
			if (index_mbox_get(acct, txn, names[i], &rec) == 0)
				continue;
			ret = mailbox_create_in_txn(acct, txn, names[i],
						    special_use_by_name(names[i]), &rec, error_r);
			if (ret == 0) {
				MDB_val k = { strlen(names[i]), names[i] }, v = { 0, (void *)"" };
				mdb_put(txn, acct->db_subs, &k, &v, 0);
				created = true;
			}
		}
		if (ret == 0 && created)
			ret = index_txn_commit(acct, txn, error_r);
		else
			mdb_txn_abort(txn);
	}
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
	return ret;
}

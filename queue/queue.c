#include "queue/queue.h"
#include "core/core.h"
#include "core/lmdb-env.h"
#include "mail/mail.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define QUEUE_MAPSIZE ((size_t)4 << 30)
#define QUEUE_NOTIFY_NAME ".notify"

struct queue {
	char *dir;          /* DATA/queue */
	char *tmpdir;       /* DATA/queue/tmp */
	char *run_as;
	MDB_env *env;
	MDB_dbi dbi;
	int inotify_fd;
	char error[512];
};

struct queue_writer {
	struct queue *q;
	char id[QUEUE_ID_LEN + 1];
	char *tmp_path;
	int fd;
	uint64_t size;
};

static const char *queue_fail(struct queue *q, const char *what, const char *path, int err)
{
	snprintf(q->error, sizeof(q->error), "%s %s: %s", what, path != NULL ? path : "",
		 err > 0 ? strerror(err) : mdb_strerror(err));
	return q->error;
}

int queue_open(const char *data_dir, const char *run_as, struct queue **q_r,
	       const char **error_r)
{
	struct queue *q = xcalloc(1, sizeof(*q));
	q->dir = xasprintf("%s/queue", data_dir);
	q->tmpdir = xasprintf("%s/queue/tmp", data_dir);
	q->run_as = run_as != NULL ? xstrdup(run_as) : NULL;
	q->inotify_fd = -1;
	char *db_path = xasprintf("%s/queue.lmdb", data_dir);
	MDB_txn *txn = NULL;
	int rc;
	if (privs_mkdir_p(q->tmpdir, 0700, run_as, error_r) < 0 ||
	    lmdb_env_open(db_path, 0, QUEUE_MAPSIZE, 0, run_as, &q->env, error_r) < 0)
		goto fail;
	if ((rc = lmdb_env_txn_begin(q->env, 0, &txn)) != 0 ||
	    (rc = mdb_dbi_open(txn, NULL, 0, &q->dbi)) != 0 || (rc = mdb_txn_commit(txn)) != 0) {
		if (txn != NULL)
			mdb_txn_abort(txn);
		*error_r = queue_fail(q, "opening", db_path, rc);
		goto fail;
	}
	free(db_path);
	*q_r = q;
	return 0;
fail:
	free(db_path);
	queue_close(&q);
	return -1;
}

void queue_close(struct queue **qp)
{
	struct queue *q = *qp;
	if (q == NULL)
		return;
	if (q->env != NULL)
		mdb_env_close(q->env);
	if (q->inotify_fd >= 0)
		close(q->inotify_fd);
	free(q->dir);
	free(q->tmpdir);
	free(q->run_as);
	free(q);
	*qp = NULL;
}

off_t queue_spool_body_start(int fd)
{
	static const char name[] = "Return-Path:";
	char head[1024];
	ssize_t n = pread(fd, head, sizeof(head), 0);
	if (n < (ssize_t)sizeof(name) || ascii_strncasecmp(head, name, sizeof(name) - 1) != 0)
		return 0;
	const char *lf = memchr(head, '\n', (size_t)n);
	/* ours is one line; a folded or over-long one is left as it is */
	if (lf == NULL || lf + 1 == head + n || lf[1] == ' ' || lf[1] == '\t')
		return 0;
	return (off_t)(lf + 1 - head);
}

char *queue_spool_path(struct queue *q, const char *id)
{
	return xasprintf("%s/%s", q->dir, id);
}

static void queue_new_id(char id[QUEUE_ID_LEN + 1])
{
	unsigned char rnd[4];
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		fatal("event=rand-failed");
	/* time first: ids sort by arrival */
	snprintf(id, QUEUE_ID_LEN + 1, "%08llX%02X%02X%02X%02X",
		 (unsigned long long)time(NULL) & 0xffffffffULL, rnd[0], rnd[1], rnd[2], rnd[3]);
}

/* ---- writing ---- */

int queue_writer_begin(struct queue *q, struct queue_writer **w_r, const char **error_r)
{
	struct queue_writer *w = xcalloc(1, sizeof(*w));
	w->q = q;
	for (int tries = 0; tries < 5; tries++) {
		queue_new_id(w->id);
		free(w->tmp_path);
		w->tmp_path = xasprintf("%s/%s", q->tmpdir, w->id);
		w->fd = open(w->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (w->fd >= 0 || errno != EEXIST)
			break;
	}
	if (w->fd < 0) {
		*error_r = queue_fail(q, "creating", w->tmp_path, errno);
		free(w->tmp_path);
		free(w);
		return -1;
	}
	*w_r = w;
	return 0;
}

int queue_writer_begin_link(struct queue *q, const char *path, struct queue_writer **w_r,
			    const char **error_r)
{
	struct queue_writer *w = xcalloc(1, sizeof(*w));
	struct stat st;
	w->q = q;
	w->fd = -1;
	for (int tries = 0; tries < 5; tries++) {
		queue_new_id(w->id);
		free(w->tmp_path);
		w->tmp_path = xasprintf("%s/%s", q->tmpdir, w->id);
		if (link(path, w->tmp_path) == 0 || errno != EEXIST)
			break;
	}
	if (access(w->tmp_path, F_OK) != 0 || stat(w->tmp_path, &st) < 0 ||
	    (w->fd = open(w->tmp_path, O_RDONLY | O_CLOEXEC)) < 0) {
		*error_r = queue_fail(q, "linking", path, errno);
		free(w->tmp_path);
		free(w);
		return -1;
	}
	w->size = (uint64_t)st.st_size;
	*w_r = w;
	return 0;
}

const char *queue_writer_path(const struct queue_writer *w)
{
	return w->tmp_path;
}

int queue_writer_write(struct queue_writer *w, const void *data, size_t len,
		       const char **error_r)
{
	const char *p = data;
	while (len > 0) {
		ssize_t n = write(w->fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			*error_r = queue_fail(w->q, "writing", w->tmp_path, errno);
			return -1;
		}
		p += n;
		len -= (size_t)n;
		w->size += (uint64_t)n;
	}
	return 0;
}

static int fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int ret = fsync(fd);
	close(fd);
	return ret;
}

static int queue_put(struct queue *q, const struct queue_entry *entry, const char **error_r)
{
	size_t len;
	char *data = queue_entry_serialize(entry, &len);
	MDB_txn *txn;
	int rc = lmdb_env_txn_begin(q->env, 0, &txn);
	if (rc == 0) {
		MDB_val key = { QUEUE_ID_LEN, (void *)entry->id };
		MDB_val val = { len, data };
		rc = mdb_put(txn, q->dbi, &key, &val, 0);
		if (rc == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
	}
	if (rc == MDB_MAP_FULL) {
		/* grow and retry once */
		MDB_envinfo info;
		mdb_env_info(q->env, &info);
		mdb_env_set_mapsize(q->env, info.me_mapsize * 2);
		free(data);
		return queue_put(q, entry, error_r);
	}
	free(data);
	if (rc != 0) {
		*error_r = queue_fail(q, "recording", entry->id, rc);
		return -1;
	}
	return 0;
}

int queue_writer_commit(struct queue_writer *w, struct queue_entry *entry,
			const char **error_r)
{
	struct queue *q = w->q;
	char *final = queue_spool_path(q, w->id);
	int ret = -1;
	if (fsync(w->fd) < 0 || close(w->fd) < 0) {
		*error_r = queue_fail(q, "syncing", w->tmp_path, errno);
		w->fd = -1;
		goto out;
	}
	w->fd = -1;
	/* the admin CLI (root) enqueues too: the relay must read the file */
	if (privs_give(w->tmp_path, q->run_as, error_r) < 0)
		goto out;
	if (rename(w->tmp_path, final) < 0) {
		*error_r = queue_fail(q, "renaming", final, errno);
		goto out;
	}
	if (fsync_dir(q->dir) < 0) {
		*error_r = queue_fail(q, "syncing", q->dir, errno);
		unlink(final);
		goto out;
	}
	memcpy(entry->id, w->id, sizeof(entry->id));
	entry->arrival = time(NULL);
	entry->next_attempt = entry->arrival;
	entry->size = w->size;
	if (queue_put(q, entry, error_r) < 0) {
		unlink(final);
		goto out;
	}
	free(w->tmp_path);
	w->tmp_path = NULL;   /* committed: nothing to remove */
	queue_kick(q);
	ret = 0;
out:
	free(final);
	return ret;
}

void queue_writer_free(struct queue_writer **wp)
{
	struct queue_writer *w = *wp;
	if (w == NULL)
		return;
	if (w->fd >= 0)
		close(w->fd);
	if (w->tmp_path != NULL) {
		unlink(w->tmp_path);
		free(w->tmp_path);
	}
	free(w);
	*wp = NULL;
}

/* ---- records ---- */

static void put_escaped(struct buf *b, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p <= ' ' || *p == '%' || *p == 0x7f)
			buf_printf(b, "%%%02X", *p);
		else
			buf_append_char(b, (char)*p);
	}
}

/* "-" for NULL, "=value" otherwise */
static void put_opt(struct buf *b, const char *s)
{
	buf_append_char(b, ' ');
	if (s == NULL) {
		buf_append_char(b, '-');
		return;
	}
	buf_append_char(b, '=');
	put_escaped(b, s);
}

char *queue_entry_serialize(const struct queue_entry *e, size_t *len_r)
{
	struct buf b = BUF_INIT;
	buf_printf(&b, "v 1\nid %s\nsender", e->id);
	put_opt(&b, e->sender);
	buf_append_str(&b, "\nenvid");
	put_opt(&b, e->envid);
	buf_append_str(&b, "\nuser");
	put_opt(&b, e->user);
	if (e->prepend != NULL) {
		buf_append_str(&b, "\nprepend");
		put_opt(&b, e->prepend);
	}
	if (e->prepend_remote != NULL) {
		buf_append_str(&b, "\nprepend_remote");
		put_opt(&b, e->prepend_remote);
	}
	buf_printf(&b, "\nret %d\nbody %d\nsmtputf8 %d\narrival %lld\nnext %lld\nlast %lld\n"
		       "attempts %d\nwarned %d\nsize %llu\n",
		   (int)e->ret, (int)e->body, e->smtputf8 ? 1 : 0, (long long)e->arrival,
		   (long long)e->next_attempt, (long long)e->last_attempt, e->attempts,
		   e->delay_warned ? 1 : 0, (unsigned long long)e->size);
	for (size_t i = 0; i < e->rcpt_count; i++) {
		const struct queue_rcpt *r = &e->rcpts[i];
		buf_printf(&b, "rcpt %d %d %u %d", (int)r->state, r->attempts, r->notify,
			   r->local ? 1 : 0);
		put_opt(&b, r->address);
		put_opt(&b, r->orcpt);
		put_opt(&b, r->last_error);
		put_opt(&b, r->last_host);
		buf_append_char(&b, '\n');
		/* a line of its own: older readers skip keys they do not know */
		if (r->last_tls != NULL) {
			buf_append_str(&b, "rtls");
			put_opt(&b, r->last_tls);
			buf_append_char(&b, '\n');
		}
	}
	buf_append_str(&b, "end .\n");   /* a cut record never parses */
	*len_r = b.len;
	return b.data;
}


/* Parses one "-" or "=escaped" token at *p (space separated). */
static int take_opt(const char **p, const char *end, char **out)
{
	const char *s = *p;
	while (s < end && *s == ' ')
		s++;
	if (s >= end)
		return -1;
	if (*s == '-') {
		*out = NULL;
		*p = s + 1;
		return 0;
	}
	if (*s != '=')
		return -1;
	s++;
	struct buf b = BUF_INIT;
	buf_append(&b, "", 0);
	while (s < end && *s != ' ') {
		if (*s == '%') {
			if (end - s < 3 || mail_hex_value(s[1]) < 0 || mail_hex_value(s[2]) < 0) {
				buf_free(&b);
				return -1;
			}
			buf_append_char(&b, (char)(mail_hex_value(s[1]) * 16 + mail_hex_value(s[2])));
			s += 3;
		} else {
			buf_append_char(&b, *s++);
		}
	}
	*out = b.data;
	*p = s;
	return 0;
}

int queue_entry_parse(const char *data, size_t len, struct queue_entry *e)
{
	memset(e, 0, sizeof(*e));
	const char *p = data, *end = data + len;
	size_t cap = 0;
	bool complete = false;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl != NULL ? nl : end;
		const char *sp = memchr(p, ' ', (size_t)(eol - p));
		if (sp == NULL)
			goto fail;
		size_t klen = (size_t)(sp - p);
		char *val = xstrndup(sp + 1, (size_t)(eol - sp - 1));
		const char *v = sp;
		bool ok = true;
#define KEY(k) (klen == strlen(k) && memcmp(p, k, klen) == 0)
		if (complete) {
			ok = false;   /* nothing may follow the end line */
		} else if (KEY("end")) {
			complete = true;
		} else if (KEY("v")) {
			ok = strcmp(val, "1") == 0;
		} else if (KEY("id")) {
			ok = strlen(val) == QUEUE_ID_LEN;
			if (ok)
				memcpy(e->id, val, QUEUE_ID_LEN + 1);
		} else if (KEY("sender")) {
			ok = take_opt(&v, eol, &e->sender) == 0;
		} else if (KEY("envid")) {
			ok = take_opt(&v, eol, &e->envid) == 0;
		} else if (KEY("user")) {
			ok = take_opt(&v, eol, &e->user) == 0;
		} else if (KEY("prepend")) {
			ok = take_opt(&v, eol, &e->prepend) == 0;
		} else if (KEY("prepend_remote")) {
			ok = take_opt(&v, eol, &e->prepend_remote) == 0;
		} else if (KEY("ret")) {
			e->ret = (enum queue_ret)atoi(val);
		} else if (KEY("body")) {
			e->body = (enum queue_body)atoi(val);
		} else if (KEY("smtputf8")) {
			e->smtputf8 = atoi(val) != 0;
		} else if (KEY("arrival")) {
			e->arrival = (time_t)atoll(val);
		} else if (KEY("next")) {
			e->next_attempt = (time_t)atoll(val);
		} else if (KEY("last")) {
			e->last_attempt = (time_t)atoll(val);
		} else if (KEY("attempts")) {
			e->attempts = atoi(val);
		} else if (KEY("warned")) {
			e->delay_warned = atoi(val) != 0;
		} else if (KEY("size")) {
			e->size = strtoull(val, NULL, 10);
		} else if (KEY("rcpt")) {
			if (e->rcpt_count == cap) {
				cap = cap == 0 ? 4 : cap * 2;
				e->rcpts = xrealloc(e->rcpts, cap * sizeof(*e->rcpts));
			}
			struct queue_rcpt *r = &e->rcpts[e->rcpt_count];
			memset(r, 0, sizeof(*r));
			int state, local, consumed = 0;
			if (sscanf(val, "%d %d %u %d%n", &state, &r->attempts, &r->notify, &local,
				   &consumed) != 4) {
				ok = false;
			} else {
				e->rcpt_count++;
				r->state = (enum queue_rcpt_state)state;
				r->local = local != 0;
				v = sp + 1 + consumed;
				ok = take_opt(&v, eol, &r->address) == 0 && r->address != NULL &&
				     take_opt(&v, eol, &r->orcpt) == 0 &&
				     take_opt(&v, eol, &r->last_error) == 0 &&
				     take_opt(&v, eol, &r->last_host) == 0;
			}
		} else if (KEY("rtls")) {
			/* the TLS facts of the recipient just before */
			struct queue_rcpt *r = e->rcpt_count > 0 ? &e->rcpts[e->rcpt_count - 1] : NULL;
			ok = r != NULL && r->last_tls == NULL && take_opt(&v, eol, &r->last_tls) == 0;
		}
#undef KEY
		free(val);
		if (!ok)
			goto fail;
		p = eol + 1;
	}
	if (!complete || e->id[0] == '\0' || e->sender == NULL)
		goto fail;
	return 0;
fail:
	queue_entry_free(e);
	return -1;
}

void queue_entry_free(struct queue_entry *e)
{
	free(e->sender);
	free(e->envid);
	free(e->user);
	free(e->prepend);
	free(e->prepend_remote);
	for (size_t i = 0; i < e->rcpt_count; i++) {
		free(e->rcpts[i].address);
		free(e->rcpts[i].orcpt);
		free(e->rcpts[i].last_error);
		free(e->rcpts[i].last_host);
		free(e->rcpts[i].last_tls);
	}
	free(e->rcpts);
	memset(e, 0, sizeof(*e));
}

int queue_entry_get(struct queue *q, const char *id, struct queue_entry *e,
		    const char **error_r)
{
	MDB_txn *txn;
	if (strlen(id) != QUEUE_ID_LEN)
		return 0;
	int rc = lmdb_env_txn_begin(q->env, MDB_RDONLY, &txn);
	if (rc != 0) {
		*error_r = queue_fail(q, "reading", id, rc);
		return -1;
	}
	MDB_val key = { QUEUE_ID_LEN, (void *)id }, val;
	rc = mdb_get(txn, q->dbi, &key, &val);
	int ret;
	if (rc == MDB_NOTFOUND) {
		ret = 0;
	} else if (rc != 0) {
		*error_r = queue_fail(q, "reading", id, rc);
		ret = -1;
	} else if (queue_entry_parse(val.mv_data, val.mv_size, e) < 0) {
		snprintf(q->error, sizeof(q->error), "queue record %s is damaged", id);
		*error_r = q->error;
		ret = -1;
	} else {
		ret = 1;
	}
	mdb_txn_abort(txn);
	return ret;
}

int queue_entry_update(struct queue *q, const struct queue_entry *e, const char **error_r)
{
	return queue_put(q, e, error_r);
}

int queue_entry_replace(struct queue *q, const struct queue_entry *e, const char **error_r)
{
	size_t len;
	char *data = queue_entry_serialize(e, &len);
	MDB_txn *txn;
	MDB_val key = { QUEUE_ID_LEN, (void *)e->id }, val;
	int ret = 1;
	int rc = lmdb_env_txn_begin(q->env, 0, &txn);
	if (rc == 0) {
		rc = mdb_get(txn, q->dbi, &key, &val);
		if (rc == MDB_NOTFOUND) {
			ret = 0;
			rc = 0;
			mdb_txn_abort(txn);
		} else if (rc == 0) {
			val.mv_size = len;
			val.mv_data = data;
			rc = mdb_put(txn, q->dbi, &key, &val, 0);
			if (rc == 0)
				rc = mdb_txn_commit(txn);
			else
				mdb_txn_abort(txn);
		} else {
			mdb_txn_abort(txn);
		}
	}
	free(data);
	if (rc == MDB_MAP_FULL) {
		/* the record exists and only grows a little: queue_put grows the map */
		return queue_put(q, e, error_r) < 0 ? -1 : 1;
	}
	if (rc != 0) {
		*error_r = queue_fail(q, "recording", e->id, rc);
		return -1;
	}
	return ret;
}

int queue_entries_remove(struct queue *q, const char *const *ids, size_t n,
			 const char **error_r)
{
	MDB_txn *txn = NULL;
	int rc = lmdb_env_txn_begin(q->env, 0, &txn);
	bool begun = rc == 0;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		MDB_val key = { strlen(ids[i]), (void *)ids[i] };
		rc = mdb_del(txn, q->dbi, &key, NULL);
		if (rc == MDB_NOTFOUND)
			rc = 0;
	}
	if (rc == 0)
		rc = mdb_txn_commit(txn);
	else if (begun)
		mdb_txn_abort(txn);
	if (rc != 0) {
		*error_r = queue_fail(q, "removing", n > 0 ? ids[0] : "", rc);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		char *path = queue_spool_path(q, ids[i]);
		if (unlink(path) < 0 && errno != ENOENT)
			log_warn("event=queue-unlink-failed id=%s error=\"%s\"", ids[i],
				 strerror(errno));
		free(path);
	}
	return 0;
}

int queue_entry_remove(struct queue *q, const char *id, const char **error_r)
{
	MDB_txn *txn;
	int rc = lmdb_env_txn_begin(q->env, 0, &txn);
	if (rc == 0) {
		MDB_val key = { strlen(id), (void *)id };
		rc = mdb_del(txn, q->dbi, &key, NULL);
		if (rc == 0 || rc == MDB_NOTFOUND)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
	}
	if (rc != 0) {
		*error_r = queue_fail(q, "removing", id, rc);
		return -1;
	}
	char *path = queue_spool_path(q, id);
	if (unlink(path) < 0 && errno != ENOENT)
		log_warn("event=queue-unlink-failed id=%s error=\"%s\"", id, strerror(errno));
	free(path);
	return 0;
}

int queue_list(struct queue *q, int (*fn)(const struct queue_entry *entry, void *ctx),
	       void *ctx, const char **error_r)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	int rc = lmdb_env_txn_begin(q->env, MDB_RDONLY, &txn);
	if (rc != 0 || (rc = mdb_cursor_open(txn, q->dbi, &cur)) != 0) {
		if (rc != 0 && txn != NULL)
			mdb_txn_abort(txn);
		*error_r = queue_fail(q, "listing", q->dir, rc);
		return -1;
	}
	MDB_val key, val;
	int ret = 0;
	/* copy entries out first: fn may update the queue */
	struct queue_entry *all = NULL;
	size_t n = 0, cap = 0;
	for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		if (n == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			all = xrealloc(all, cap * sizeof(*all));
		}
		if (queue_entry_parse(val.mv_data, val.mv_size, &all[n]) == 0)
			n++;
		else
			log_warn("event=queue-record-damaged key=%.*s", (int)key.mv_size,
				 (const char *)key.mv_data);
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	for (size_t i = 0; i < n; i++) {
		if (ret == 0 && fn(&all[i], ctx) != 0)
			ret = 1;
		queue_entry_free(&all[i]);
	}
	free(all);
	return ret < 0 ? -1 : 0;
}

int queue_stats(struct queue *q, uint64_t *messages_r, time_t *oldest_r, const char **error_r)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_stat st;
	MDB_val key, val;
	int rc = lmdb_env_txn_begin(q->env, MDB_RDONLY, &txn);
	if (rc != 0 || (rc = mdb_stat(txn, q->dbi, &st)) != 0 ||
	    (rc = mdb_cursor_open(txn, q->dbi, &cur)) != 0) {
		if (rc != 0 && txn != NULL)
			mdb_txn_abort(txn);
		*error_r = queue_fail(q, "reading", q->dir, rc);
		return -1;
	}
	*messages_r = st.ms_entries;
	*oldest_r = 0;
	/* IDs start with the arrival time: the first record is the oldest */
	struct queue_entry e;
	if (mdb_cursor_get(cur, &key, &val, MDB_FIRST) == 0 &&
	    queue_entry_parse(val.mv_data, val.mv_size, &e) == 0) {
		*oldest_r = e.arrival;
		queue_entry_free(&e);
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return 0;
}

static int has_record(struct queue *q, const char *id)
{
	struct queue_entry e;
	const char *error;
	int r = queue_entry_get(q, id, &e, &error);
	if (r == 1)
		queue_entry_free(&e);
	return r;
}

int queue_recover(struct queue *q, const char **error_r)
{
	DIR *dir = opendir(q->tmpdir);
	struct dirent *de;
	if (dir != NULL) {
		while ((de = readdir(dir)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			char *path = xasprintf("%s/%s", q->tmpdir, de->d_name);
			unlink(path);   /* never acknowledged */
			free(path);
		}
		closedir(dir);
	}
	dir = opendir(q->dir);
	if (dir == NULL) {
		*error_r = queue_fail(q, "opening", q->dir, errno);
		return -1;
	}
	while ((de = readdir(dir)) != NULL) {
		if (strlen(de->d_name) != QUEUE_ID_LEN)
			continue;
		if (has_record(q, de->d_name) == 0) {
			char *path = queue_spool_path(q, de->d_name);
			log_info("event=queue-orphan-removed id=%s", de->d_name);
			unlink(path);
			free(path);
		}
	}
	closedir(dir);
	return 0;
}

void queue_relay_sync_mode(struct queue *q)
{
	int rc = mdb_env_set_flags(q->env, MDB_NOMETASYNC, 1);
	if (rc != 0)
		log_warn("event=queue-sync-mode-failed error=\"%s\"", mdb_strerror(rc));
}

void queue_kick(struct queue *q)
{
	char *path = xasprintf("%s/%s", q->dir, QUEUE_NOTIFY_NAME);
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0) {
		const char *error;
		if (privs_give(path, q->run_as, &error) < 0)
			log_warn("event=queue-notify-chown-failed error=\"%s\"", error);
		ssize_t r = write(fd, "", 0);
		(void)r;
		close(fd);   /* IN_CLOSE_WRITE wakes the watchers */
	}
	free(path);
}

int queue_notify_fd(struct queue *q)
{
	if (q->inotify_fd >= 0)
		return q->inotify_fd;
	q->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (q->inotify_fd < 0)
		return -1;
	if (inotify_add_watch(q->inotify_fd, q->dir, IN_CLOSE_WRITE | IN_MOVED_TO) < 0) {
		close(q->inotify_fd);
		q->inotify_fd = -1;
	}
	return q->inotify_fd;
}

void queue_notify_consume(struct queue *q)
{
	char buf[4096];
	while (q->inotify_fd >= 0 && read(q->inotify_fd, buf, sizeof(buf)) > 0)
		;
}

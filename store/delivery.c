/* Delivery and APPEND: stream to a temp file, then link durably into each
 * mailbox and index it (tmp, fsync file, link/rename, fsync dir, commit). */
#include "store/store-private.h"
#include "core/metrics.h"
#include "store/mime.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct store_delivery {
	struct store *store;
	char *tmp_path;
	int fd;
	struct mime_parser *parser;
	bool finished;
	struct mime_message msg;
	struct buf cache_blob;
	char **errors;          /* per-recipient messages, freed with d */
	size_t error_count;
	char error[512];
};

#define delivery_fail(d, error_r, code, ...) \
	store_fail((d)->error, sizeof((d)->error), error_r, code, __VA_ARGS__)

int store_delivery_begin(struct store *store, struct store_delivery **d_r,
			 const char **error_r)
{
	struct store_delivery *d = xcalloc(1, sizeof(*d));
	d->store = store;
	char *base = maildir_new_base(store, 0, 0);
	d->tmp_path = xasprintf("%s/%s", store->tmp_dir, base);
	free(base);
	d->fd = open(d->tmp_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (d->fd < 0) {
		int ret = store_fail(store->error, sizeof(store->error), error_r,
				     STORE_ERR_INTERNAL, "create %s: %s", d->tmp_path,
				     strerror(errno));
		free(d->tmp_path);
		free(d);
		return ret;
	}
	/* links share the inode: its owner is every copy's owner */
	store_give(store, d->tmp_path);
	d->parser = mime_parser_new();
	*d_r = d;
	return 0;
}

int store_delivery_write(struct store_delivery *d, const void *data, size_t len,
			 const char **error_r)
{
	if (d->finished)
		return delivery_fail(d, error_r, STORE_ERR_INVALID, "delivery already committed");
	const char *p = data;
	size_t left = len;
	while (left > 0) {
		ssize_t n = write(d->fd, p, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return delivery_fail(d, error_r,
					     errno == ENOSPC || errno == EDQUOT ?
					     STORE_ERR_NOSPACE : STORE_ERR_INTERNAL,
					     "write %s: %s", d->tmp_path, strerror(errno));
		p += n;
		left -= (size_t)n;
	}
	mime_parser_feed(d->parser, data, len);
	return 0;
}

static int delivery_finish(struct store_delivery *d, const char **error_r)
{
	if (d->finished)
		return d->fd >= 0 ? 0 : STORE_ERR_INTERNAL;
	d->finished = true;
	mime_parser_finish(d->parser, &d->msg);
	mime_parser_free(&d->parser);
	cache_serialize(&d->cache_blob, &d->msg);
	if (fsync(d->fd) < 0) {
		int ret = delivery_fail(d, error_r, errno == ENOSPC || errno == EDQUOT ?
					STORE_ERR_NOSPACE : STORE_ERR_INTERNAL, "fsync %s: %s",
					d->tmp_path, strerror(errno));
		close(d->fd);
		d->fd = -1;
		return ret;
	}
	return 0;
}

/* Places the temp file at dest: a hard link, or a copy when linking is
 * impossible (another file system). */
static int place_file(struct store_delivery *d, const char *dest)
{
	if (link(d->tmp_path, dest) == 0)
		return 0;
	if (errno != EXDEV && errno != EPERM && errno != EMLINK)
		return -1;
	int out = open(dest, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0)
		return -1;
	char buf[65536];
	off_t off = 0;
	ssize_t n;
	while ((n = pread(d->fd, buf, sizeof(buf), off)) > 0) {
		if (write(out, buf, (size_t)n) != n) {
			n = -1;
			break;
		}
		off += n;
	}
	if (n < 0 || fsync(out) < 0) {
		close(out);
		unlink(dest);
		return -1;
	}
	return close(out);
}

/* Adds finished messages to one mailbox in one index transaction: all of
 * them or none (RFC 3502 MULTIAPPEND). Files are placed, their
 * directories fsynced, then the records committed; on any failure the
 * placed files are removed again. */
static int deliver_many(struct store_account *acct, const char *name,
			struct store_append_item *items, size_t n, uint32_t *uidvalidity_r,
			const char **error_r)
{
	MDB_txn *txn;
	struct mbox_rec mrec;
	int ret;
	if ((ret = index_txn_begin(acct, true, &txn, error_r)) < 0)
		return ret;
	if (index_mbox_get(acct, txn, name, &mrec) < 0) {
		mdb_txn_abort(txn);
		return acct_fail(acct, error_r, STORE_ERR_NOTFOUND, "no such mailbox");
	}
	uint64_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += items[i].d->msg.size;
	if (!index_quota_allows(acct, txn, total, n)) {
		mdb_txn_abort(txn);
		return acct_fail(acct, error_r, STORE_ERR_OVERQUOTA, "mailbox is full");
	}
	struct msg_rec *recs = xcalloc(n + 1, sizeof(*recs));
	char **bases = xcalloc(n + 1, sizeof(*bases));
	struct buf *paths = xcalloc(n + 1, sizeof(*paths));
	size_t placed = 0;
	bool in_new = false, in_cur = false;
	char *dir = maildir_path(acct, name);
	struct own_change oc;
	heal_own_begin(&oc, acct, txn, dir, mrec.id);
	ret = 0;
	for (size_t i = 0; i < n && ret == 0; i++) {
		struct store_append_item *it = &items[i];
		struct msg_rec *rec = &recs[i];
		rec->flags = it->flags & STORE_FLAG_ALL;
		for (size_t k = 0; k < it->keyword_count; k++) {
			int kw = index_keyword_lookup(acct, txn, name, &mrec, it->keywords[k], true);
			if (kw < 0) {
				ret = acct_fail(acct, error_r, STORE_ERR_LIMIT,
						"too many keywords, or not a keyword");
				break;
			}
			rec->keywords |= (uint64_t)1 << kw;
		}
		if (ret < 0)
			break;
		if (rec->flags == 0 && rec->keywords == 0)
			rec->flags |= MSG_IN_NEW;
		rec->size = it->d->msg.size;
		rec->crlf_size = it->d->msg.crlf_size;
		rec->internaldate = it->internaldate != 0 ? it->internaldate : time(NULL);
		rec->savedate = (uint32_t)time(NULL);
		bases[i] = maildir_new_base(acct->store, rec->size, rec->crlf_size);
		buf_init(&paths[i]);
		maildir_msg_path(&paths[i], dir, rec, bases[i]);
		if (place_file(it->d, paths[i].data) < 0) {
			ret = acct_fail(acct, error_r, STORE_ERR_INTERNAL, "link %s: %s",
					paths[i].data, strerror(errno));
			break;
		}
		placed++;
		if (it->internaldate != 0) {
			/* Maildir keeps INTERNALDATE as the file's mtime */
			struct timespec ts[2] = { { it->internaldate, 0 }, { it->internaldate, 0 } };
			utimensat(AT_FDCWD, paths[i].data, ts, 0);
		}
		if (rec->flags & MSG_IN_NEW)
			in_new = true;
		else
			in_cur = true;
	}
	for (int k = 0; k < 2 && ret == 0; k++) {
		if (!(k == 0 ? in_new : in_cur))
			continue;
		struct buf sub = BUF_INIT;
		buf_printf(&sub, "%s/%s", dir, k == 0 ? "new" : "cur");
		if (fsync_dir(sub.data) < 0)
			ret = acct_fail(acct, error_r, STORE_ERR_INTERNAL, "fsync %s: %s", sub.data,
					strerror(errno));
		buf_free(&sub);
	}
	for (size_t i = 0; i < n && ret == 0; i++) {
		struct msg_rec *rec = &recs[i];
		items[i].uid = mrec.uidnext++;
		rec->modseq = ++mrec.highestmodseq;
		msgrec_account(&mrec, rec, 1);
		if ((ret = index_msg_put(acct, txn, mrec.id, items[i].uid, rec, bases[i])) < 0 ||
		    (ret = cache_put(acct, txn, mrec.id, items[i].uid,
				     &items[i].d->cache_blob)) < 0 ||
		    (ret = index_quota_add(acct, txn, (int64_t)rec->size)) < 0)
			*error_r = acct->error;
	}
	if (ret == 0) {
		heal_own_end(&oc, &mrec);
		if ((ret = index_mbox_put(acct, txn, name, &mrec)) < 0)
			*error_r = acct->error;
	}
	if (ret == 0) {
		/* before the commit: the uidlist always covers every UID handed out */
		for (size_t i = 0; i < n; i++)
			maildir_uidlist_append(acct->store, dir, mrec.uidvalidity, items[i].uid,
					       bases[i]);
		ret = index_txn_commit(acct, txn, error_r);
		txn = NULL;
	}
	if (ret < 0) {
		for (size_t i = 0; i < placed; i++)
			unlink(paths[i].data);
	} else {
		*uidvalidity_r = mrec.uidvalidity;
	}
	if (txn != NULL)
		mdb_txn_abort(txn);
	for (size_t i = 0; i < n; i++) {
		buf_free(&paths[i]);
		free(bases[i]);
	}
	free(paths);
	free(bases);
	free(recs);
	free(oc.dir);
	free(dir);
	return ret;
}

/* deliver_many(), again with a grown map when the index's map was full:
 * the failed try left nothing (its transaction aborted, its files
 * unlinked), so the retry is a delivery like any other. Other writes
 * still answer STORE_ERR_LIMIT on a full map: a delivery is what must
 * not be refused for it (mail would bounce). */
static int deliver_many_growing(struct store_account *acct, const char *name,
				struct store_append_item *items, size_t n,
				uint32_t *uidvalidity_r, const char **error_r)
{
	for (int attempt = 0;; attempt++) {
		acct->map_full = false;
		int ret = deliver_many(acct, name, items, n, uidvalidity_r, error_r);
		if (ret == 0 || !acct->map_full)
			return ret;
		if (attempt == 8 || index_grow(acct) < 0)
			return acct_fail(acct, error_r, STORE_ERR_LIMIT, "index: map full");
	}
}

static int deliver_into_growing(struct store_delivery *d, struct store_account *acct,
				const char *name, uint32_t flags,
				const char *const *keywords, size_t keyword_count,
				time_t internaldate, uint32_t *uidvalidity_r,
				uint32_t *uid_r, const char **error_r)
{
	struct store_append_item item = { d, flags, keywords, keyword_count, internaldate, 0 };
	int ret = deliver_many_growing(acct, name, &item, 1, uidvalidity_r, error_r);
	if (ret == 0)
		*uid_r = item.uid;
	return ret;
}

int store_delivery_commit(struct store_delivery *d, struct store_recipient *rcpts,
			  size_t count)
{
	const char *error;
	int first_error = 0, successes = 0;
	if (delivery_finish(d, &error) < 0) {
		for (size_t i = 0; i < count; i++) {
			rcpts[i].result = STORE_ERR_INTERNAL;
			rcpts[i].error = d->error;
		}
		return STORE_ERR_INTERNAL;
	}
	d->errors = xrealloc(d->errors, (d->error_count + count) * sizeof(char *));
	for (size_t i = 0; i < count; i++) {
		struct store_recipient *r = &rcpts[i];
		struct store_account *acct;
		r->uid = r->uidvalidity = 0;
		r->error = NULL;
		r->result = store_account_open(d->store, r->address, &acct, &error);
		if (r->result == 0) {
			char *name = r->mailbox != NULL ? maildir_canonical_name(r->mailbox)
							: xstrdup("INBOX");
			r->result = name == NULL ? STORE_ERR_NOTFOUND :
				deliver_into_growing(d, acct, name, 0, NULL, 0, 0,
						     &r->uidvalidity, &r->uid, &error);
			if (r->result == STORE_ERR_NOTFOUND && strcmp(name != NULL ? name : "",
								      "INBOX") != 0)
				r->result = deliver_into_growing(d, acct, "INBOX", 0, NULL, 0,
								 0, &r->uidvalidity, &r->uid,
								 &error);
			free(name);
			store_account_close(&acct);
		}
		if (r->result < 0) {
			d->errors[d->error_count] = xstrdup(error);
			r->error = d->errors[d->error_count++];
			log_warn("event=store_delivery_failed account=%s error=\"%s\"",
				 r->address, r->error);
			if (first_error == 0)
				first_error = r->result;
		} else {
			successes++;
			log_info("event=store_delivered account=%s uid=%u size=%llu", r->address,
				 r->uid, (unsigned long long)d->msg.size);
			metrics_count(METRIC_DELIVERED_LOCAL);
		}
	}
	return successes > 0 ? 0 : first_error;
}

int store_delivery_append(struct store_delivery *d, struct store_account *acct,
			  const char *mailbox, uint32_t flags,
			  const char *const *keywords, size_t keyword_count,
			  time_t internaldate, uint32_t *uidvalidity_r, uint32_t *uid_r,
			  const char **error_r)
{
	int ret = delivery_finish(d, error_r);
	if (ret < 0)
		return ret;
	char *name = maildir_canonical_name(mailbox);
	if (name == NULL)
		return acct_fail(acct, error_r, STORE_ERR_NOTFOUND, "no such mailbox");
	ret = deliver_into_growing(d, acct, name, flags, keywords, keyword_count,
				   internaldate, uidvalidity_r, uid_r, error_r);
	free(name);
	return ret;
}

int store_delivery_append_many(struct store_append_item *items, size_t n,
			       struct store_account *acct, const char *mailbox,
			       uint32_t *uidvalidity_r, const char **error_r)
{
	for (size_t i = 0; i < n; i++) {
		int ret = delivery_finish(items[i].d, error_r);
		if (ret < 0)
			return ret;
	}
	char *name = maildir_canonical_name(mailbox);
	if (name == NULL)
		return acct_fail(acct, error_r, STORE_ERR_NOTFOUND, "no such mailbox");
	int ret = deliver_many_growing(acct, name, items, n, uidvalidity_r, error_r);
	free(name);
	return ret;
}

const char *store_delivery_file(const struct store_delivery *d)
{
	return d->tmp_path;
}

void store_delivery_free(struct store_delivery **dp)
{
	struct store_delivery *d = *dp;
	if (d == NULL)
		return;
	*dp = NULL;
	if (d->fd >= 0)
		close(d->fd);
	unlink(d->tmp_path);
	free(d->tmp_path);
	if (d->parser != NULL)
		mime_parser_free(&d->parser);
	if (d->finished)
		mime_message_free(&d->msg);
	buf_free(&d->cache_blob);
	for (size_t i = 0; i < d->error_count; i++)
		free(d->errors[i]);
	free(d->errors);
	free(d);
}

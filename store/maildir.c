/* Maildir++ on disk: mailbox directories, modified UTF-7 names, file names
 * with sizes and flag letters, dovecot-uidlist and dovecot-keywords. */
#include "store/store-private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

/* ---- modified UTF-7 ---- */

static const char b64chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int utf8_next(const unsigned char **p, uint32_t *cp_r)
{
	const unsigned char *s = *p;
	uint32_t cp;
	int n;
	if (s[0] < 0x80) {
		cp = s[0];
		n = 0;
	} else if ((s[0] & 0xe0) == 0xc0) {
		cp = s[0] & 0x1f;
		n = 1;
	} else if ((s[0] & 0xf0) == 0xe0) {
		cp = s[0] & 0x0f;
		n = 2;
	} else if ((s[0] & 0xf8) == 0xf0) {
		cp = s[0] & 0x07;
		n = 3;
	} else {
		return -1;
	}
	for (int i = 1; i <= n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return -1;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	*p = s + n + 1;
	*cp_r = cp;
	return 0;
}

static void utf8_put(struct buf *out, uint32_t cp)
{
	if (cp < 0x80) {
		buf_append_char(out, (char)cp);
	} else if (cp < 0x800) {
		buf_append_char(out, (char)(0xc0 | (cp >> 6)));
		buf_append_char(out, (char)(0x80 | (cp & 0x3f)));
	} else if (cp < 0x10000) {
		buf_append_char(out, (char)(0xe0 | (cp >> 12)));
		buf_append_char(out, (char)(0x80 | ((cp >> 6) & 0x3f)));
		buf_append_char(out, (char)(0x80 | (cp & 0x3f)));
	} else {
		buf_append_char(out, (char)(0xf0 | (cp >> 18)));
		buf_append_char(out, (char)(0x80 | ((cp >> 12) & 0x3f)));
		buf_append_char(out, (char)(0x80 | ((cp >> 6) & 0x3f)));
		buf_append_char(out, (char)(0x80 | (cp & 0x3f)));
	}
}

static void b64_flush_units(struct buf *out, const uint16_t *units, size_t n)
{
	uint32_t bits = 0;
	int nbits = 0;
	buf_append_char(out, '&');
	for (size_t i = 0; i < n; i++) {
		bits = (bits << 16) | units[i];
		nbits += 16;
		while (nbits >= 6) {
			nbits -= 6;
			buf_append_char(out, b64chars[(bits >> nbits) & 0x3f]);
		}
	}
	if (nbits > 0)
		buf_append_char(out, b64chars[(bits << (6 - nbits)) & 0x3f]);
	buf_append_char(out, '-');
}

char *store_mutf7_encode(const char *utf8)
{
	struct buf out = BUF_INIT;
	const unsigned char *p = (const unsigned char *)utf8;
	uint16_t units[256];
	size_t n = 0;
	buf_append(&out, "", 0);
	while (*p != '\0') {
		uint32_t cp;
		if (utf8_next(&p, &cp) < 0) {
			buf_free(&out);
			return NULL;
		}
		if (cp >= 0x20 && cp <= 0x7e) {
			if (n > 0) {
				b64_flush_units(&out, units, n);
				n = 0;
			}
			if (cp == '&')
				buf_append_str(&out, "&-");
			else
				buf_append_char(&out, (char)cp);
			continue;
		}
		if (n + 2 > sizeof(units) / sizeof(units[0])) {
			b64_flush_units(&out, units, n);
			n = 0;
		}
		if (cp >= 0x10000) {
			cp -= 0x10000;
			units[n++] = (uint16_t)(0xd800 | (cp >> 10));
			units[n++] = (uint16_t)(0xdc00 | (cp & 0x3ff));
		} else {
			units[n++] = (uint16_t)cp;
		}
	}
	if (n > 0)
		b64_flush_units(&out, units, n);
	return out.data;
}

char *store_mutf7_decode(const char *s)
{
	struct buf out = BUF_INIT;
	buf_append(&out, "", 0);
	while (*s != '\0') {
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			goto bad;
		if (*s != '&') {
			buf_append_char(&out, *s++);
			continue;
		}
		s++;
		if (*s == '-') {
			buf_append_char(&out, '&');
			s++;
			continue;
		}
		uint32_t bits = 0, high = 0;
		int nbits = 0, units = 0;
		while (*s != '-') {
			const char *c = *s != '\0' ? strchr(b64chars, *s) : NULL;
			if (c == NULL)
				goto bad;
			bits = (bits << 6) | (uint32_t)(c - b64chars);
			nbits += 6;
			s++;
			if (nbits < 16)
				continue;
			nbits -= 16;
			uint32_t u = (bits >> nbits) & 0xffff;
			units++;
			if (high != 0) {
				if (u < 0xdc00 || u > 0xdfff)
					goto bad;
				utf8_put(&out, 0x10000 + ((high - 0xd800) << 10) + (u - 0xdc00));
				high = 0;
			} else if (u >= 0xd800 && u <= 0xdbff) {
				high = u;
			} else if (u >= 0xdc00 && u <= 0xdfff) {
				goto bad;
			} else if (u >= 0x20 && u <= 0x7e) {
				goto bad;   /* printable ASCII must be itself */
			} else {
				utf8_put(&out, u);
			}
		}
		s++;
		if (units == 0 || high != 0 || nbits >= 6 ||
		    (bits & ((1u << nbits) - 1)) != 0)
			goto bad;
	}
	return out.data;
bad:
	buf_free(&out);
	return NULL;
}

/* ---- mailbox names and directories ---- */

int maildir_validate_name(const char *name)
{
	if (name[0] == '\0' || strlen(name) > 512)
		return -1;
	const char *comp = name;
	for (const char *p = name;; p++) {
		if (*p == '/' || *p == '\0') {
			size_t len = (size_t)(p - comp);
			if (len == 0 || (len == 2 && comp[0] == '.' && comp[1] == '.') ||
			    (len == 1 && comp[0] == '.'))
				return -1;
			if (*p == '\0')
				break;
			comp = p + 1;
			continue;
		}
		unsigned char c = (unsigned char)*p;
		if (c < 0x20 || c == 0x7f || c == '.' || c == '*' || c == '%' || c == '\\')
			return -1;
	}
	const unsigned char *u = (const unsigned char *)name;
	while (*u != '\0') {
		uint32_t cp;
		if (utf8_next(&u, &cp) < 0)
			return -1;
	}
	return 0;
}

char *maildir_canonical_name(const char *name)
{
	if (maildir_validate_name(name) < 0)
		return NULL;
	if (ascii_strncasecmp(name, "INBOX", 5) == 0 && (name[5] == '\0' || name[5] == '/'))
		return xasprintf("INBOX%s", name + 5);
	return xstrdup(name);
}

char *maildir_path(struct store_account *acct, const char *name)
{
	return maildir_path_in(acct->root, name);
}

char *maildir_path_in(const char *root, const char *name)
{
	if (strcmp(name, "INBOX") == 0)
		return xstrdup(root);
	struct buf out = BUF_INIT;
	buf_printf(&out, "%s/", root);
	char *copy = xstrdup(name);
	char *save = NULL;
	for (char *comp = strtok_r(copy, "/", &save); comp != NULL;
	     comp = strtok_r(NULL, "/", &save)) {
		char *enc = store_mutf7_encode(comp);
		buf_printf(&out, ".%s", enc != NULL ? enc : comp);
		free(enc);
	}
	free(copy);
	return out.data;
}

int maildir_create_dirs(struct store_account *acct, const char *dir, const char **error_r)
{
	static const char *const subs[] = { "", "/cur", "/new", "/tmp" };
	for (size_t i = 0; i < 4; i++) {
		char *path = xasprintf("%s%s", dir, subs[i]);
		int ret = mkdir(path, 0700);
		if (ret == 0)
			store_give(acct->store, path);
		if (ret < 0 && errno != EEXIST) {
			ret = acct_fail(acct, error_r, STORE_ERR_INTERNAL, "mkdir %s: %s", path,
					strerror(errno));
			free(path);
			return ret;
		}
		free(path);
	}
	if (strcmp(dir, acct->root) != 0) {
		/* Maildir++: a folder carries a maildirfolder marker */
		char *path = xasprintf("%s/maildirfolder", dir);
		int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (fd >= 0)
			close(fd);
		free(path);
	}
	return 0;
}

/* ---- file names ---- */

void maildir_flag_letters(uint32_t flags, uint64_t keywords, char *out)
{
	char *p = out;
	if (flags & STORE_FLAG_DRAFT)
		*p++ = 'D';
	if (flags & STORE_FLAG_FLAGGED)
		*p++ = 'F';
	if (flags & STORE_FLAG_ANSWERED)
		*p++ = 'R';
	if (flags & STORE_FLAG_SEEN)
		*p++ = 'S';
	if (flags & STORE_FLAG_DELETED)
		*p++ = 'T';
	/* Dovecot's keyword letters: a = keyword 0 ... z = keyword 25 */
	for (unsigned int i = 0; i < 26; i++)
		if (keywords & ((uint64_t)1 << i))
			*p++ = (char)('a' + i);
	*p = '\0';
}

void maildir_parse_letters(const char *letters, uint32_t *flags_r, uint64_t *keywords_r)
{
	uint32_t flags = 0;
	uint64_t keywords = 0;
	for (const char *p = letters; *p != '\0' && *p != ','; p++) {
		switch (*p) {
		case 'D': flags |= STORE_FLAG_DRAFT; break;
		case 'F': flags |= STORE_FLAG_FLAGGED; break;
		case 'R': flags |= STORE_FLAG_ANSWERED; break;
		case 'S': flags |= STORE_FLAG_SEEN; break;
		case 'T': flags |= STORE_FLAG_DELETED; break;
		default:
			if (*p >= 'a' && *p <= 'z')
				keywords |= (uint64_t)1 << (*p - 'a');
		}
	}
	*flags_r = flags;
	*keywords_r = keywords;
}

void maildir_msg_path(struct buf *out, const char *dir, const struct msg_rec *rec,
		      const char *base)
{
	buf_reset(out);
	if (rec->flags & MSG_IN_NEW) {
		buf_printf(out, "%s/new/%s", dir, base);
	} else {
		char letters[48];
		maildir_flag_letters(rec->flags, rec->keywords, letters);
		buf_printf(out, "%s/cur/%s:2,%s", dir, base, letters);
	}
}

char *maildir_new_base(struct store *store, uint64_t size, uint64_t crlf_size)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return xasprintf("%lld.M%ldP%dQ%u.%s,S=%llu,W=%llu", (long long)tv.tv_sec,
			 (long)tv.tv_usec, (int)getpid(), ++store->counter, store->hostname,
			 (unsigned long long)size, (unsigned long long)crlf_size);
}

int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int ret = fsync(fd);
	close(fd);
	return ret;
}

int maildir_rename_flags(const char *dir, const struct msg_rec *old_rec,
			 const struct msg_rec *new_rec, const char *base)
{
	struct buf from = BUF_INIT, to = BUF_INIT;
	maildir_msg_path(&from, dir, old_rec, base);
	maildir_msg_path(&to, dir, new_rec, base);
	int ret = strcmp(from.data, to.data) == 0 ? 0 : rename(from.data, to.data);
	buf_free(&from);
	buf_free(&to);
	return ret;
}

void maildir_uidlist_append(struct store *store, const char *dir, uint32_t uidvalidity,
			    uint32_t uid, const char *base)
{
	char *path = xasprintf("%s/dovecot-uidlist", dir);
	int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd >= 0) {
			store_give(store, path);
			char header[64];
			int n = snprintf(header, sizeof(header), "3 V%u N%u\n", uidvalidity, uid);
			if (write(fd, header, (size_t)n) != n)
				log_warn("event=store_uidlist_write_failed path=%s", path);
		}
	}
	if (fd >= 0) {
		struct buf line = BUF_INIT;
		buf_printf(&line, "%u :%s\n", uid, base);
		if (write(fd, line.data, line.len) != (ssize_t)line.len)
			log_warn("event=store_uidlist_write_failed path=%s", path);
		buf_free(&line);
		close(fd);
	}
	free(path);
}

void maildir_uidlist_rewrite(struct store_account *acct, MDB_txn *txn,
			     const struct mbox_rec *rec, const char *dir)
{
	struct buf text = BUF_INIT;
	MDB_cursor *cur;
	if (mdb_cursor_open(txn, acct->db_msg, &cur) != 0)
		return;
	buf_printf(&text, "3 V%u N%u\n", rec->uidvalidity, rec->uidnext);
	MDB_val v;
	uint32_t uid;
	bool started = false;
	while (index_id_next(cur, rec->id, 0, &started, &uid, &v))
		buf_printf(&text, "%u :%s\n", uid,
			   (const char *)v.mv_data + sizeof(struct msg_rec));
	mdb_cursor_close(cur);
	char *path = xasprintf("%s/dovecot-uidlist", dir);
	char *tmp = xasprintf("%s.postern-tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0) {
		bool ok = write(fd, text.data, text.len) == (ssize_t)text.len;
		close(fd);
		store_give(acct->store, tmp);
		if (!ok || rename(tmp, path) < 0)
			unlink(tmp);
	}
	free(tmp);
	free(path);
	buf_free(&text);
}

void maildir_keywords_write(struct store_account *acct, MDB_txn *txn, uint32_t id,
			    const char *dir)
{
	struct buf text = BUF_INIT;
	MDB_cursor *cur;
	if (mdb_cursor_open(txn, acct->db_kw, &cur) != 0)
		return;
	MDB_val v;
	uint32_t index;
	bool started = false;
	while (index_id_next(cur, id, 0, &started, &index, &v)) {
		if (index < 26)
			buf_printf(&text, "%u %.*s\n", index, (int)v.mv_size,
				   (const char *)v.mv_data);
	}
	mdb_cursor_close(cur);
	char *path = xasprintf("%s/dovecot-keywords", dir);
	char *tmp = xasprintf("%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0) {
		bool ok = write(fd, text.data != NULL ? text.data : "", text.len) ==
			  (ssize_t)text.len;
		close(fd);
		if (ok) {
			store_give(acct->store, tmp);
			rename(tmp, path);
		}
		else
			unlink(tmp);
	}
	free(tmp);
	free(path);
	buf_free(&text);
}

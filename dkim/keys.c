/* DKIM keys on disk: DATA/dkim/DOMAIN/SELECTOR.pem, made with OpenSSL
 * (RSA-2048 or Ed25519, PKCS#8 PEM), and the public key records to
 * publish (RFC 6376 3.6.1, RFC 8463 4). */
#include "dkim/dkim-private.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_SUFFIX ".pem"
#define KEY_FILE_MAX (16 * 1024)

static char key_error[512];

static const char *set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *set_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(key_error, sizeof(key_error), fmt, ap);
	va_end(ap);
	return key_error;
}

const char *dkim_algorithm_name(enum dkim_algorithm alg)
{
	return alg == DKIM_ALG_ED25519 ? "ed25519" : "rsa";
}

int dkim_algorithm_parse(const char *name, enum dkim_algorithm *alg_r)
{
	if (strcmp(name, "rsa") == 0)
		*alg_r = DKIM_ALG_RSA;
	else if (strcmp(name, "ed25519") == 0)
		*alg_r = DKIM_ALG_ED25519;
	else
		return -1;
	return 0;
}

bool dkim_selector_valid(const char *s)
{
	size_t len = strlen(s);
	if (len == 0 || len > DKIM_SELECTOR_MAX || s[0] == '-' || s[len - 1] == '-')
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return false;
	}
	return true;
}

/* A domain as a directory name: a lowercase LDH host name, no dot at
 * either end, no empty label. What comes from a From: field is checked
 * with this before any path is made of it. */
bool dkim_domain_safe(const char *d)
{
	size_t len = strlen(d);
	if (len == 0 || len > 253 || d[0] == '.' || d[len - 1] == '.' || d[0] == '-')
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = d[i];
		if (c == '.' && d[i + 1] == '.')
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		      c == '_'))
			return false;
	}
	return true;
}

char *dkim_domain_dir(const char *data_dir, const char *domain)
{
	return xasprintf("%s/dkim/%s", data_dir, domain);
}

static char *key_path(const char *data_dir, const char *domain, const char *selector)
{
	return xasprintf("%s/dkim/%s/%s" KEY_SUFFIX, data_dir, domain, selector);
}

/* ---- reading ---- */

int dkim_key_read(const char *path, char **pem_r, EVP_PKEY **pkey_r, const char **error_r)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		*error_r = set_error("%s: %s", path, strerror(errno));
		return -1;
	}
	char *pem = xmalloc(KEY_FILE_MAX + 1);
	size_t len = 0;
	ssize_t n;
	while (len < KEY_FILE_MAX && (n = read(fd, pem + len, KEY_FILE_MAX - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*error_r = set_error("%s: %s", path, strerror(errno));
			close(fd);
			free(pem);
			return -1;
		}
		len += (size_t)n;
	}
	close(fd);
	pem[len] = '\0';
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	EVP_PKEY *pkey = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	if (pkey == NULL || (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA &&
			     EVP_PKEY_get_base_id(pkey) != EVP_PKEY_ED25519)) {
		EVP_PKEY_free(pkey);
		explicit_bzero(pem, len);
		free(pem);
		*error_r = set_error("%s: not an RSA or Ed25519 private key", path);
		return -1;
	}
	if (pem_r != NULL)
		*pem_r = pem;
	else {
		explicit_bzero(pem, len);
		free(pem);
	}
	if (pkey_r != NULL)
		*pkey_r = pkey;
	else
		EVP_PKEY_free(pkey);
	return 0;
}

static int selector_cmp(const void *a, const void *b)
{
	return strcmp(((const struct dkim_key *)a)->selector,
		      ((const struct dkim_key *)b)->selector);
}

int dkim_keys_list(const char *data_dir, const char *domain, struct dkim_key **keys_r,
		   size_t *count_r, const char **error_r)
{
	*keys_r = NULL;
	*count_r = 0;
	if (!dkim_domain_safe(domain)) {
		*error_r = set_error("invalid domain name '%s'", domain);
		return -1;
	}
	char *dir = dkim_domain_dir(data_dir, domain);
	DIR *d = opendir(dir);
	if (d == NULL) {
		int err = errno;
		free(dir);
		if (err == ENOENT)
			return 0;
		*error_r = set_error("%s/dkim/%s: %s", data_dir, domain, strerror(err));
		return -1;
	}
	struct dkim_key *keys = NULL;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		size_t slen = strlen(KEY_SUFFIX);
		if (len <= slen || strcmp(de->d_name + len - slen, KEY_SUFFIX) != 0)
			continue;
		char selector[DKIM_SELECTOR_MAX + 1];
		if (len - slen >= sizeof(selector))
			continue;
		memcpy(selector, de->d_name, len - slen);
		selector[len - slen] = '\0';
		if (!dkim_selector_valid(selector))
			continue;
		char *path = xasprintf("%s/%s", dir, de->d_name);
		struct stat st;
		EVP_PKEY *pkey = NULL;
		const char *why;
		if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) &&
		    dkim_key_read(path, NULL, &pkey, &why) == 0) {
			keys = xrealloc(keys, (n + 1) * sizeof(*keys));
			struct dkim_key *k = &keys[n++];
			memset(k, 0, sizeof(*k));
			memcpy(k->selector, selector, sizeof(k->selector));
			k->alg = EVP_PKEY_get_base_id(pkey) == EVP_PKEY_ED25519 ? DKIM_ALG_ED25519 :
									 DKIM_ALG_RSA;
			k->bits = EVP_PKEY_get_bits(pkey);
			k->created = st.st_mtime;
			EVP_PKEY_free(pkey);
		}
		free(path);
	}
	closedir(d);
	free(dir);
	if (n > 1)
		qsort(keys, n, sizeof(*keys), selector_cmp);
	*keys_r = keys;
	*count_r = n;
	return 0;
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int dkim_domains_list(const char *data_dir, char ***domains_r, size_t *count_r,
		      const char **error_r)
{
	*domains_r = NULL;
	*count_r = 0;
	char *dir = xasprintf("%s/dkim", data_dir);
	DIR *d = opendir(dir);
	free(dir);
	if (d == NULL) {
		if (errno == ENOENT)
			return 0;
		*error_r = set_error("%s/dkim: %s", data_dir, strerror(errno));
		return -1;
	}
	char **list = NULL;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (!dkim_domain_safe(de->d_name))
			continue;
		list = xrealloc(list, (n + 1) * sizeof(*list));
		list[n++] = xstrdup(de->d_name);
	}
	closedir(d);
	if (n > 1)
		qsort(list, n, sizeof(*list), str_cmp);
	*domains_r = list;
	*count_r = n;
	return 0;
}

void dkim_domains_free(char **domains, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(domains[i]);
	free(domains);
}

int dkim_default_selector(const char *data_dir, const char *domain, time_t now, char *out,
			  size_t size, const char **error_r)
{
	struct tm tm;
	gmtime_r(&now, &tm);
	char base[40];
	snprintf(base, sizeof(base), "p%04d%02d", tm.tm_year + 1900, tm.tm_mon + 1);
	for (char suffix = 'a'; suffix <= 'z'; suffix++) {
		if (suffix == 'a')
			snprintf(out, size, "%s", base);
		else
			snprintf(out, size, "%s%c", base, suffix);
		char *path = key_path(data_dir, domain, out);
		bool taken = access(path, F_OK) == 0;
		free(path);
		if (!taken)
			return 0;
	}
	*error_r = set_error("every default selector of this month is taken; use --selector");
	return -1;
}

/* ---- making and removing ---- */

static EVP_PKEY *key_new(enum dkim_algorithm alg)
{
	if (alg == DKIM_ALG_ED25519)
		return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)DKIM_RSA_BITS);
}

int dkim_key_generate(const char *data_dir, const char *run_as, const char *domain,
		      const char *selector, enum dkim_algorithm alg, const char **error_r)
{
	if (!dkim_domain_safe(domain)) {
		*error_r = set_error("invalid domain name '%s'", domain);
		return -1;
	}
	if (!dkim_selector_valid(selector)) {
		*error_r = set_error("invalid selector '%s' (1-63 of a-z, 0-9 and -)", selector);
		return -1;
	}
	char *dir = dkim_domain_dir(data_dir, domain);
	char *path = key_path(data_dir, domain, selector);
	char *tmp = xasprintf("%s/.%s.tmp", dir, selector);
	int ret = -1;
	int fd = -1;
	EVP_PKEY *pkey = NULL;
	BIO *bio = NULL;
	char *top = xasprintf("%s/dkim", data_dir);
	/* keys are secrets: the directories are run_as's alone */
	if (privs_mkdir_p(top, 0700, run_as, error_r) < 0 ||
	    privs_mkdir_p(dir, 0700, run_as, error_r) < 0)
		goto out;
	if (access(path, F_OK) == 0) {
		*error_r = set_error("%s has a key with selector %s already", domain, selector);
		goto out;
	}
	pkey = key_new(alg);
	if (pkey == NULL) {
		*error_r = "cannot make the key (OpenSSL)";
		goto out;
	}
	bio = BIO_new(BIO_s_mem());
	if (bio == NULL || PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) != 1) {
		*error_r = "cannot encode the key (OpenSSL)";
		goto out;
	}
	char *pem;
	long pem_len = BIO_get_mem_data(bio, &pem);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		*error_r = set_error("%s: %s", tmp, strerror(errno));
		goto out;
	}
	if (write(fd, pem, (size_t)pem_len) != (ssize_t)pem_len || fsync(fd) != 0) {
		*error_r = set_error("%s: %s", tmp, strerror(errno));
		unlink(tmp);
		goto out;
	}
	if (privs_give(tmp, run_as, error_r) < 0) {
		unlink(tmp);
		goto out;
	}
	/* link, not rename: a key made meanwhile under the same name stays */
	if (link(tmp, path) < 0) {
		*error_r = errno == EEXIST ?
			   set_error("%s has a key with selector %s already", domain, selector) :
			   set_error("%s: %s", path, strerror(errno));
		unlink(tmp);
		goto out;
	}
	unlink(tmp);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	BIO_free(bio);
	EVP_PKEY_free(pkey);
	free(top);
	free(tmp);
	free(path);
	free(dir);
	return ret;
}

int dkim_key_delete(const char *data_dir, const char *domain, const char *selector,
		    const char **error_r)
{
	if (!dkim_domain_safe(domain) || !dkim_selector_valid(selector)) {
		*error_r = set_error("no key %s for %s", selector, domain);
		return -1;
	}
	char *path = key_path(data_dir, domain, selector);
	int ret = unlink(path);
	if (ret < 0)
		*error_r = errno == ENOENT ? set_error("no key %s for %s", selector, domain) :
			   set_error("%s: %s", path, strerror(errno));
	free(path);
	if (ret == 0) {
		/* the last key gone: the domain's directory goes too (when empty) */
		char *dir = dkim_domain_dir(data_dir, domain);
		(void)rmdir(dir);
		free(dir);
	}
	return ret;
}

/* ---- the public key record ---- */

void dkim_base64_append(struct buf *out, const unsigned char *data, size_t len)
{
	size_t need = 4 * ((len + 2) / 3) + 1;
	buf_reserve(out, need);
	int n = EVP_EncodeBlock((unsigned char *)out->data + out->len, data, (int)len);
	out->len += (size_t)n;
	out->data[out->len] = '\0';
}

int dkim_public_record(EVP_PKEY *pkey, struct buf *out)
{
	if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_ED25519) {
		unsigned char raw[64];
		size_t len = sizeof(raw);
		if (EVP_PKEY_get_raw_public_key(pkey, raw, &len) != 1)
			return -1;
		buf_append_str(out, "v=DKIM1; k=ed25519; p=");
		dkim_base64_append(out, raw, len);
		return 0;
	}
	unsigned char *der = NULL;
	int len = i2d_PUBKEY(pkey, &der);
	if (len <= 0)
		return -1;
	buf_append_str(out, "v=DKIM1; k=rsa; p=");
	dkim_base64_append(out, der, (size_t)len);
	OPENSSL_free(der);
	return 0;
}

int dkim_key_record(const char *data_dir, const char *domain, const char *selector,
		    struct buf *out, const char **error_r)
{
	if (!dkim_domain_safe(domain) || !dkim_selector_valid(selector)) {
		*error_r = set_error("no key %s for %s", selector, domain);
		return -1;
	}
	char *path = key_path(data_dir, domain, selector);
	EVP_PKEY *pkey = NULL;
	int ret = dkim_key_read(path, NULL, &pkey, error_r);
	free(path);
	if (ret == 0 && dkim_public_record(pkey, out) < 0) {
		*error_r = "cannot encode the public key (OpenSSL)";
		ret = -1;
	}
	EVP_PKEY_free(pkey);
	return ret;
}

void dkim_txt_quote(const char *text, struct buf *out)
{
	size_t len = strlen(text);
	size_t pos = 0;
	do {
		size_t n = len - pos > 255 ? 255 : len - pos;
		if (pos > 0)
			buf_append_char(out, ' ');
		buf_append_char(out, '"');
		for (size_t i = 0; i < n; i++) {
			char c = text[pos + i];
			if (c == '"' || c == '\\')
				buf_append_char(out, '\\');
			buf_append_char(out, c);
		}
		buf_append_char(out, '"');
		pos += n;
	} while (pos < len);
}

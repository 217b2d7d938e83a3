/* Password storage: a yescrypt hash for PLAIN/LOGIN, and SCRAM secrets
 * (RFC 5802: StoredKey = H(HMAC(SaltedPassword, "Client Key")),
 * ServerKey = HMAC(SaltedPassword, "Server Key")) computed at set-password
 * time, so that SCRAM never needs the clear password. */
#include "auth/auth.h"
#include "auth/auth-private.h"
#include "core/buf.h"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

int auth_password_hash(const char *password, char *hash_r, size_t size,
		       const char **error_r)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	if (crypt_gensalt_rn("$y$", 0, NULL, 0, setting, sizeof(setting)) == NULL) {
		*error_r = "crypt_gensalt: yescrypt unavailable";
		return -1;
	}
	struct crypt_data *data = xcalloc(1, sizeof(*data));
	const char *hash = crypt_r(password, setting, data);
	int ret = 0;
	if (hash == NULL || hash[0] == '*' || strlen(hash) >= size) {
		*error_r = "crypt: hashing failed";
		ret = -1;
	} else {
		memcpy(hash_r, hash, strlen(hash) + 1);
	}
	OPENSSL_cleanse(data, sizeof(*data));
	free(data);
	return ret;
}

bool auth_password_verify(const char *password, const char *hash)
{
	struct crypt_data *data = xcalloc(1, sizeof(*data));
	const char *got = crypt_r(password, hash, data);
	size_t len = strlen(hash);
	bool ok = got != NULL && got[0] != '*' && strlen(got) == len &&
		CRYPTO_memcmp(got, hash, len) == 0;
	OPENSSL_cleanse(data, sizeof(*data));
	free(data);
	return ok;
}

static void base64_encode(const unsigned char *src, size_t len, char *dst)
{
	EVP_EncodeBlock((unsigned char *)dst, src, (int)len);
}

/* Formats Cyrus' authPassword value from the two keys. */
int auth_scram_format(bool sha256, unsigned iterations, const unsigned char *salt,
		      size_t salt_len, const unsigned char *stored_key,
		      const unsigned char *server_key, char *dst, size_t size)
{
	size_t key_len = sha256 ? 32 : 20;
	char salt64[4 * ((AUTH_SCRAM_SALT_MAX + 2) / 3) + 1];
	char stored64[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
	char server64[sizeof(stored64)];

	if (salt_len > AUTH_SCRAM_SALT_MAX)
		return -1;
	base64_encode(salt, salt_len, salt64);
	base64_encode(stored_key, key_len, stored64);
	base64_encode(server_key, key_len, server64);
	int n = snprintf(dst, size, "%s$%u:%s$%s:%s",
			 sha256 ? "SCRAM-SHA-256" : "SCRAM-SHA-1",
			 iterations, salt64, stored64, server64);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

int auth_scram_keys(bool sha256, const char *password, const unsigned char *salt,
		    size_t salt_len, unsigned iterations,
		    unsigned char *stored_key_r, unsigned char *server_key_r)
{
	const EVP_MD *md = sha256 ? EVP_sha256() : EVP_sha1();
	size_t key_len = (size_t)EVP_MD_get_size(md);
	unsigned char salted[EVP_MAX_MD_SIZE], client_key[EVP_MAX_MD_SIZE];
	unsigned int out_len;
	int ret = -1;

	if (PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)salt_len,
			      (int)iterations, md, (int)key_len, salted) != 1)
		goto out;
	if (HMAC(md, salted, (int)key_len, (const unsigned char *)"Client Key", 10,
		 client_key, &out_len) == NULL)
		goto out;
	if (EVP_Digest(client_key, key_len, stored_key_r, NULL, md, NULL) != 1)
		goto out;
	if (HMAC(md, salted, (int)key_len, (const unsigned char *)"Server Key", 10,
		 server_key_r, &out_len) == NULL)
		goto out;
	ret = 0;
out:
	OPENSSL_cleanse(salted, sizeof(salted));
	OPENSSL_cleanse(client_key, sizeof(client_key));
	return ret;
}

int auth_scram_secret(bool sha256, const char *password, const unsigned char *salt,
		      size_t salt_len, unsigned iterations, char *dst, size_t size)
{
	unsigned char stored[EVP_MAX_MD_SIZE], server[EVP_MAX_MD_SIZE];
	if (auth_scram_keys(sha256, password, salt, salt_len, iterations,
			    stored, server) < 0)
		return -1;
	return auth_scram_format(sha256, iterations, salt, salt_len, stored, server,
				 dst, size);
}

#include "test.h"
#include "auth/auth.h"

static void check_ok(const char *text, const char *address, const char *key)
{
	struct auth_address addr;
	const char *error = NULL;
	TEST_ASSERT_INT(auth_address_parse(text, &addr, &error), 0);
	TEST_ASSERT_STR(addr.address, address);
	TEST_ASSERT_STR(addr.key, key);
}

static void check_bad(const char *text)
{
	struct auth_address addr;
	const char *error = NULL;
	int ret = auth_address_parse(text, &addr, &error);
	TEST_ASSERT_INT(ret, -1);
	if (ret == 0)
		fprintf(stderr, "  accepted: '%s'\n", text);
	TEST_ASSERT(error != NULL);
}

static void test_case(void)
{
	check_ok("bob@example.org", "bob@example.org", "bob@example.org");
	check_ok("Bob.Smith@EXAMPLE.Org", "Bob.Smith@example.org", "bob.smith@example.org");
	check_ok("a+tag@sub.example.org", "a+tag@sub.example.org", "a+tag@sub.example.org");
	check_ok("!#$%&'*+-/=?^_`{|}~@x.org", "!#$%&'*+-/=?^_`{|}~@x.org",
		 "!#$%&'*+-/=?^_`{|}~@x.org");
}

static void test_utf8(void)
{
	/* RFC 6531 local parts: kept as given; only ASCII is lowercased */
	check_ok("J\xc3\xb6rg@Example.org", "J\xc3\xb6rg@example.org", "j\xc3\xb6rg@example.org");
	check_ok("\xe7\x94\xa8\xe6\x88\xb7@example.org", "\xe7\x94\xa8\xe6\x88\xb7@example.org",
		 "\xe7\x94\xa8\xe6\x88\xb7@example.org");
	check_ok("\xf0\x9f\x98\x80@example.org", "\xf0\x9f\x98\x80@example.org",
		 "\xf0\x9f\x98\x80@example.org");
}

static void test_quoted(void)
{
	check_ok("\"john doe\"@example.org", "\"john doe\"@example.org",
		 "\"john doe\"@example.org");
	check_ok("\"a@b\"@example.org", "\"a@b\"@example.org", "\"a@b\"@example.org");
	check_ok("\"q\\\"x\"@example.org", "\"q\\\"x\"@example.org", "\"q\\\"x\"@example.org");
}

static void test_idna(void)
{
	check_ok("user@bücher.example", "user@xn--bcher-kva.example",
		 "user@xn--bcher-kva.example");
	check_ok("User@BÜCHER.example", "User@xn--bcher-kva.example",
		 "user@xn--bcher-kva.example");
	check_ok("a@xn--bcher-kva.example", "a@xn--bcher-kva.example",
		 "a@xn--bcher-kva.example");
	char domain[AUTH_DOMAIN_MAX + 1];
	const char *error;
	TEST_ASSERT_INT(auth_domain_normalise("Ünicode.Example", domain, &error), 0);
	TEST_ASSERT_STR(domain, "xn--nicode-2ya.example");
}

static void test_bad(void)
{
	check_bad("");
	check_bad("bob");
	check_bad("@example.org");
	check_bad("bob@");
	check_bad(".bob@example.org");
	check_bad("bob.@example.org");
	check_bad("bo..b@example.org");
	check_bad("bo b@example.org");
	check_bad("bo(b@example.org");
	check_bad("bob@exa_mple.org");
	check_bad("bob@-example.org");
	check_bad("bob@example-.org");
	check_bad("bob@example..org");
	check_bad("bob@example.org.");
	check_bad("bob@[127.0.0.1]");
	check_bad("\"unterminated@example.org");
	check_bad("\"bad\"x@example.org");
	check_bad("a\r\nb@example.org");
	check_bad("\xff@example.org");              /* not UTF-8 */
	check_bad("a\xc3@example.org");             /* truncated */
	check_bad("\xc0\xaf@example.org");          /* overlong */
	check_bad("\xed\xa0\x80@example.org");      /* surrogate */
	check_bad("\"\xfe\"@example.org");

	char local[80], long_label[80], address[600];
	memset(local, 'a', 65);
	local[65] = '\0';
	snprintf(address, sizeof(address), "%s@example.org", local);
	check_bad(address);                       /* local part > 64 */
	local[64] = '\0';
	check_ok(address + 1, address + 1, address + 1);   /* 64 is fine */

	memset(long_label, 'b', 64);
	long_label[64] = '\0';
	snprintf(address, sizeof(address), "x@%s.org", long_label);
	check_bad(address);                       /* label > 63 */

	/* 4 labels of 63 = 255 octets of domain: fine alone, too long as an
	 * address (254) */
	char domain[400];
	memset(long_label, 'c', 63);
	long_label[63] = '\0';
	snprintf(domain, sizeof(domain), "%s.%s.%s.%s", long_label, long_label,
		 long_label, long_label);
	char out[AUTH_DOMAIN_MAX + 1];
	const char *error;
	TEST_ASSERT_INT(auth_domain_normalise(domain, out, &error), 0);
	snprintf(address, sizeof(address), "x@%s", domain);
	check_bad(address);
}

int main(void)
{
	test_run("address_case", test_case);
	test_run("address_quoted", test_quoted);
	test_run("address_utf8", test_utf8);
	test_run("address_idna", test_idna);
	test_run("address_bad", test_bad);
	return test_end();
}

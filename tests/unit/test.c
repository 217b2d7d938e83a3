#include "test.h"

#include <dirent.h>
#include <ftw.h>
#include <unistd.h>

int test_failures;
int test_checks;
const char *test_current = "";
static char tmpdir[256];

void test_run(const char *name, void (*fn)(void))
{
	int before = test_failures;
	test_current = name;
	fn();
	printf("%s %s\n", test_failures == before ? "ok  " : "FAIL", name);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

const char *test_tmpdir(void)
{
	if (tmpdir[0] == '\0') {
		const char *base = getenv("TMPDIR");
		snprintf(tmpdir, sizeof(tmpdir), "%s/postern-test-XXXXXX",
			 base != NULL ? base : "/tmp");
		if (mkdtemp(tmpdir) == NULL) {
			perror("mkdtemp");
			exit(1);
		}
	}
	return tmpdir;
}

int test_end(void)
{
	if (tmpdir[0] != '\0')
		nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	printf("%d checks, %d failed\n", test_checks, test_failures);
	return test_failures == 0 ? 0 : 1;
}

size_t test_count_files(const char *root, const char *sub)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s%s%s", root, sub != NULL ? "/" : "",
		 sub != NULL ? sub : "");
	DIR *d = opendir(path);
	size_t n = 0;
	struct dirent *de;
	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

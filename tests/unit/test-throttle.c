/* The shared failure counter behind login throttling (auth/throttle.c). */
#include "test.h"
#include "auth/auth-private.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static struct throttle *open_throttle(const char *name, int delay_after, int block_after,
				      int block_time)
{
	char dir[512];
	struct throttle *t = NULL;
	const char *error = NULL;
	struct throttle_policy policy = { delay_after, block_after, block_time };
	snprintf(dir, sizeof(dir), "%s/%s", test_tmpdir(), name);
	mkdir(dir, 0700);
	if (throttle_open(dir, "nobody", &policy, &t, &error) < 0) {
		fprintf(stderr, "throttle_open: %s\n", error);
		exit(1);
	}
	return t;
}

static void test_delay_and_block(void)
{
	struct throttle *t = open_throttle("a", 3, 6, 600);   /* decay: 100 s */
	time_t now = 1000000;
	TEST_ASSERT_INT(throttle_fail(t, "ip:x", now), 0);
	TEST_ASSERT_INT(throttle_fail(t, "ip:x", now), 0);
	TEST_ASSERT_INT(throttle_delay_ms(t, "ip:x", now), 0);
	TEST_ASSERT_INT(throttle_fail(t, "ip:x", now), 1000);   /* 3rd: delays start */
	TEST_ASSERT_INT(throttle_fail(t, "ip:x", now), 2000);
	TEST_ASSERT_INT(throttle_fail(t, "ip:x", now), 3000);
	TEST_ASSERT(!throttle_is_blocked(t, "ip:x", now));
	TEST_ASSERT_INT(throttle_fail(t, "ip:x", now), 4000);   /* 6th: blocked */
	TEST_ASSERT(throttle_is_blocked(t, "ip:x", now));
	TEST_ASSERT(throttle_is_blocked(t, "ip:x", now + 599));
	TEST_ASSERT(!throttle_is_blocked(t, "ip:x", now + 600));
	TEST_ASSERT(!throttle_is_blocked(t, "ip:y", now));
	/* decay: one failure per 100 s */
	TEST_ASSERT_INT(throttle_delay_ms(t, "ip:x", now + 100), 3000);
	TEST_ASSERT_INT(throttle_delay_ms(t, "ip:x", now + 350), 1000);
	TEST_ASSERT_INT(throttle_delay_ms(t, "ip:x", now + 400), 0);
	/* the cap */
	for (int i = 0; i < 50; i++)
		throttle_fail(t, "ip:z", now);
	TEST_ASSERT_INT(throttle_delay_ms(t, "ip:z", now), 10000);
	throttle_clear(t, "ip:z");
	TEST_ASSERT_INT(throttle_delay_ms(t, "ip:z", now), 0);
	throttle_close(&t);
	TEST_ASSERT(t == NULL);
}

static void test_decay_keeps_remainder(void)
{
	/* a failure 150 s after the first leaves one decayed and the clock
	 * of the second intact: counts never drop faster than the policy */
	struct throttle *t = open_throttle("b", 1, 100, 10000);   /* decay: 100 s */
	time_t now = 2000000;
	throttle_fail(t, "user:a", now);
	throttle_fail(t, "user:a", now);
	TEST_ASSERT_INT(throttle_delay_ms(t, "user:a", now + 150), 1000);
	TEST_ASSERT_INT(throttle_delay_ms(t, "user:a", now + 199), 1000);
	TEST_ASSERT_INT(throttle_delay_ms(t, "user:a", now + 200), 0);
	throttle_close(&t);
}

static void test_shared_between_processes(void)
{
	struct throttle *t = open_throttle("c", 1, 3, 60);
	time_t now = 3000000;
	pid_t pid = fork();
	if (pid == 0) {
		struct throttle *child = open_throttle("c", 1, 3, 60);
		for (int i = 0; i < 3; i++)
			throttle_fail(child, "ip:shared", now);
		throttle_close(&child);
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	TEST_ASSERT(throttle_is_blocked(t, "ip:shared", now));
	throttle_close(&t);
}

int main(void)
{
	test_run("delay_and_block", test_delay_and_block);
	test_run("decay_keeps_remainder", test_decay_keeps_remainder);
	test_run("shared_between_processes", test_shared_between_processes);
	return test_end();
}

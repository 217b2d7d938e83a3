/* The sd_notify(3) protocol as the master speaks it, against a datagram
 * socket of the test's own named by $NOTIFY_SOCKET (a path, then an
 * abstract name as systemd gives it). */
#include "test.h"
#include "core/notify.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int listen_dgram(const char *name, bool abstract)
{
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	TEST_ASSERT(fd >= 0);
	struct sockaddr_un sa;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	socklen_t len;
	if (abstract) {
		/* systemd writes an abstract address as "@name" */
		snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "%s", name);
		len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name));
		char env[128];
		snprintf(env, sizeof(env), "@%s", name);
		setenv("NOTIFY_SOCKET", env, 1);
	} else {
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", name);
		len = sizeof(sa);
		setenv("NOTIFY_SOCKET", name, 1);
	}
	TEST_ASSERT(bind(fd, (struct sockaddr *)&sa, len) == 0);
	return fd;
}

/* The next datagram, or "" when none came within a second. */
static const char *next_message(int fd)
{
	static char buf[1024];
	struct pollfd pfd = { fd, POLLIN, 0 };
	buf[0] = '\0';
	if (poll(&pfd, 1, 1000) == 1) {
		ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = '\0';
	}
	return buf;
}

static bool has_line(const char *msg, const char *line)
{
	size_t len = strlen(line);
	for (const char *p = msg; *p != '\0'; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : "") {
		if (strncmp(p, line, len) == 0 && (p[len] == '\n' || p[len] == '\0'))
			return true;
	}
	return false;
}

static void exchange(int fd)
{
	TEST_ASSERT_INT(notify_ready("serving, 2 workers"), 1);
	const char *msg = next_message(fd);
	TEST_ASSERT(has_line(msg, "READY=1"));
	TEST_ASSERT(has_line(msg, "STATUS=serving, 2 workers"));

	TEST_ASSERT_INT(notify_reloading(), 1);
	msg = next_message(fd);
	TEST_ASSERT(has_line(msg, "RELOADING=1"));
	TEST_ASSERT(strstr(msg, "\nMONOTONIC_USEC=") != NULL);
	TEST_ASSERT(!has_line(msg, "READY=1"));
	TEST_ASSERT_INT(notify_ready(NULL), 1);
	TEST_ASSERT_STR(next_message(fd), "READY=1\n");

	TEST_ASSERT_INT(notify_stopping(NULL), 1);
	msg = next_message(fd);
	TEST_ASSERT(has_line(msg, "STOPPING=1"));
	TEST_ASSERT(has_line(msg, "STATUS=stopping"));
	TEST_ASSERT_INT(notify_stopping("a worker failed to start"), 1);
	TEST_ASSERT(has_line(next_message(fd), "STATUS=a worker failed to start"));

	/* a status is one field: a newline in it cannot add another */
	TEST_ASSERT_INT(notify_status("bad\nREADY=1"), 1);
	msg = next_message(fd);
	TEST_ASSERT_STR(msg, "STATUS=bad READY=1");
	TEST_ASSERT(!has_line(msg, "READY=1"));
}

static void test_path_socket(void)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/notify", test_tmpdir());
	int fd = listen_dgram(path, false);
	exchange(fd);
	close(fd);
	unsetenv("NOTIFY_SOCKET");
}

static void test_abstract_socket(void)
{
	char name[64];
	snprintf(name, sizeof(name), "postern-test-notify-%d", (int)getpid());
	int fd = listen_dgram(name, true);
	exchange(fd);
	close(fd);
	unsetenv("NOTIFY_SOCKET");
}

static void test_without_systemd(void)
{
	unsetenv("NOTIFY_SOCKET");
	TEST_ASSERT_INT(notify_ready("serving"), 0);
	TEST_ASSERT_INT(notify_stopping(NULL), 0);
}

static void test_socket_gone(void)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/nobody-listens", test_tmpdir());
	setenv("NOTIFY_SOCKET", path, 1);
	TEST_ASSERT_INT(notify_ready(NULL), -1);
	unsetenv("NOTIFY_SOCKET");
}

int main(void)
{
	test_run("path socket", test_path_socket);
	test_run("abstract socket", test_abstract_socket);
	test_run("without systemd", test_without_systemd);
	test_run("socket gone", test_socket_gone);
	return test_end();
}

#include "core/notify.h"
#include "core/buf.h"
#include "core/log.h"

#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

static int notify_send(const char *state)
{
	int ret = sd_notify(0, state);
	if (ret < 0) {
		log_warn("event=notify-failed error=\"%s\"", strerror(-ret));
		return -1;
	}
	return ret > 0 ? 1 : 0;
}

/* A status line is one line of text: no newline may start another field. */
static int notify_with_status(const char *fields, const char *status)
{
	char line[256];
	size_t n = 0;
	for (const char *p = status; p != NULL && *p != '\0' && n < sizeof(line) - 1; p++)
		line[n++] = (*p == '\n' || *p == '\r') ? ' ' : *p;
	line[n] = '\0';
	char *state = status != NULL ? xasprintf("%sSTATUS=%s", fields, line) : xstrdup(fields);
	int ret = notify_send(state);
	free(state);
	return ret;
}

int notify_ready(const char *status)
{
	return notify_with_status("READY=1\n", status);
}

int notify_reloading(void)
{
	/* systemd 253 and later want the monotonic clock with RELOADING=1
	 * (Type=notify-reload); 252 ignores the field */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	char *state = xasprintf("RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
				(unsigned long long)ts.tv_sec * 1000000ULL +
				(unsigned long long)ts.tv_nsec / 1000ULL);
	int ret = notify_send(state);
	free(state);
	return ret;
}

int notify_stopping(const char *status)
{
	return notify_with_status("STOPPING=1\n", status != NULL ? status : "stopping");
}

int notify_status(const char *status)
{
	return notify_with_status("", status);
}

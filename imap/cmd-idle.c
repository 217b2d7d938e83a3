/* IDLE (RFC 2177): untagged updates as soon as the store's notification
 * fd says something changed in the account, until the client sends DONE. */
#include "imap/imap-private.h"
#include "store/store.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

static void imap_idle_wake(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct imap_session *s = arg;
	const char *saved = log_get_context();
	log_set_context(s->log_ctx);
	store_account_watch_consume(s->account);
	imap_sync(s, true);
	log_set_context(saved);
}

void imap_idle_stop(struct imap_session *s)
{
	if (s->idle_ev != NULL)
		event_free(s->idle_ev);
	s->idle_ev = NULL;
	free(s->idle_tag);
	s->idle_tag = NULL;
}

void imap_cmd_idle(struct imap_session *s, struct imap_cmd *cmd)
{
	if (cmd->count != 0) {
		imap_bad(s, cmd->tag, "Invalid arguments");
		return;
	}
	int fd = store_account_watch_fd(s->account);
	s->log_ctx = log_get_context();
	if (fd >= 0) {
		s->idle_ev = event_new(conn_event_base(s->conn), fd, EV_READ | EV_PERSIST,
				       imap_idle_wake, s);
		if (s->idle_ev == NULL)
			fatal("event=event-new-failed");
		event_add(s->idle_ev, NULL);
	} else {
		/* no inotify: look every second */
		s->idle_ev = event_new(conn_event_base(s->conn), -1, EV_PERSIST, imap_idle_wake, s);
		if (s->idle_ev == NULL)
			fatal("event=event-new-failed");
		struct timeval tv = { 1, 0 };
		event_add(s->idle_ev, &tv);
	}
	s->idle_tag = xstrdup(cmd->tag);
	conn_write_str(s->conn, "+ idling\r\n");
	imap_set_mode(s, IMAP_INPUT_IDLE);
	imap_sync(s, true);
}

void imap_idle_input(struct imap_session *s, const char *line, size_t len)
{
	char *tag = s->idle_tag;
	s->idle_tag = NULL;
	imap_idle_stop(s);
	imap_set_mode(s, IMAP_INPUT_COMMAND);
	if (len == 4 && ascii_strncasecmp(line, "DONE", 4) == 0) {
		imap_sync(s, true);
		imap_ok(s, tag, "IDLE terminated");
	} else {
		imap_bad(s, tag, "Expected DONE");
	}
	free(tag);
}

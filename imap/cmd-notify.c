/* NOTIFY (RFC 5465): NOTIFY SET [(STATUS)] (filter events)... and
 * NOTIFY NONE. Once set, the session watches the account's change
 * notification (the store's inotify fd, as IDLE does) and, between
 * commands and in IDLE, tells what changed:
 * - the selected mailbox ("selected": EXISTS, EXPUNGE, FETCH FLAGS at
 *   once; "selected-delayed": the same but expunges wait for a command
 *   that may send them; without FlagChange a flag change alone waits for
 *   a command; MessageNew's fetch attributes, those without a body
 *   section, as a FETCH for each new message after its EXISTS);
 * - other mailboxes matched by inboxes, personal, subscribed, subtree or
 *   mailboxes: STATUS (MESSAGES UIDNEXT UIDVALIDITY UNSEEN [HIGHESTMODSEQ])
 *   for MessageNew/MessageExpunge/FlagChange, LIST for MailboxName
 *   (created, deleted: \NonExistent, renamed: OLDNAME, told apart by the
 *   MAILBOXID) and SubscriptionChange, METADATA for MailboxMetadataChange;
 * - METADATA "" for ServerMetadataChange.
 * What changed is found by comparing a snapshot of the account (mailbox
 * names, subscriptions, counters, metadata digests) taken at each wake-up
 * with the previous one: the store tells that something changed, not
 * what. A wake-up during a command is kept for when it ends. */
#include "imap/imap-private.h"
#include "store/store.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

enum {
	EV_MESSAGE_NEW = 1 << 0, EV_MESSAGE_EXPUNGE = 1 << 1, EV_FLAG_CHANGE = 1 << 2,
	EV_MAILBOX_NAME = 1 << 3, EV_SUBSCRIPTION = 1 << 4, EV_MAILBOX_METADATA = 1 << 5,
	EV_SERVER_METADATA = 1 << 6,
};
#define EV_MESSAGE (EV_MESSAGE_NEW | EV_MESSAGE_EXPUNGE | EV_FLAG_CHANGE)

enum filter_kind {
	FILTER_SELECTED, FILTER_SELECTED_DELAYED, FILTER_INBOXES, FILTER_PERSONAL,
	FILTER_SUBSCRIBED, FILTER_SUBTREE, FILTER_MAILBOXES,
};

struct notify_filter {
	enum filter_kind kind;
	char **names;          /* subtree / mailboxes: store names */
	size_t name_count;
	unsigned int events;
	char **fetch;          /* selected: MessageNew's fetch attributes */
	size_t fetch_count;
};

struct notify_meta { char *name; uint64_t digest; };

struct notify_box {
	char *name;
	uint32_t uidvalidity, messages, uidnext, unseen;
	uint64_t modseq;
	bool subscribed;
	struct notify_meta *meta;
	size_t meta_count;
};

struct notify_snapshot {
	struct notify_box *boxes;
	size_t count;
	struct notify_meta *server_meta;
	size_t server_meta_count;
};

struct imap_notify {
	struct notify_filter *filters;
	size_t filter_count;
	struct event *ev;
	struct notify_snapshot snap;
	bool pending;           /* a wake-up came during a command */
	/* MessageNew (fetch-att): the highest UID of the selected mailbox
	 * (by name and UIDVALIDITY) whose attributes were told or known */
	char *sel_name;
	uint32_t sel_uidvalidity, sel_last_uid;
};

static const char *const event_names[] = {
	"MessageNew", "MessageExpunge", "FlagChange", "MailboxName", "SubscriptionChange",
	"MailboxMetadataChange", "ServerMetadataChange",
};
#define EVENT_COUNT (sizeof(event_names) / sizeof(event_names[0]))

/* ---- snapshots ----------------------------------------------------------- */

static void meta_free(struct notify_meta *m, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(m[i].name);
	free(m);
}

static void snapshot_free(struct notify_snapshot *snap)
{
	for (size_t i = 0; i < snap->count; i++) {
		free(snap->boxes[i].name);
		meta_free(snap->boxes[i].meta, snap->boxes[i].meta_count);
	}
	free(snap->boxes);
	meta_free(snap->server_meta, snap->server_meta_count);
	memset(snap, 0, sizeof(*snap));
}

static uint64_t digest(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t h = UINT64_C(0xcbf29ce484222325);
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= UINT64_C(0x100000001b3);
	}
	return h;
}

/* Every entry of an owner (NULL = the server), as names and digests. */
static void meta_take(struct imap_session *s, const char *mailbox, struct notify_meta **out,
		      size_t *count_r)
{
	struct store_metadata md = { NULL, 0, 0 };
	const char *error;
	store_metadata_get(s->account, mailbox, "/private", -1, &md, &error);
	store_metadata_get(s->account, mailbox, "/shared", -1, &md, &error);
	*out = xcalloc(md.count + 1, sizeof(**out));
	for (size_t i = 0; i < md.count; i++) {
		(*out)[i].name = xstrdup(md.entries[i].name);
		(*out)[i].digest = digest(md.entries[i].value, md.entries[i].len);
	}
	*count_r = md.count;
	store_metadata_free(&md);
}

static unsigned int all_events(const struct imap_notify *n)
{
	unsigned int ev = 0;
	for (size_t i = 0; i < n->filter_count; i++)
		ev |= n->filters[i].events;
	return ev;
}

static void snapshot_take(struct imap_session *s, struct imap_notify *n,
			  struct notify_snapshot *snap)
{
	struct store_list list;
	const char *error;
	unsigned int events = all_events(n);
	memset(snap, 0, sizeof(*snap));
	if (store_mailbox_list(s->account, "*", false, &list, &error) < 0) {
		log_error("event=notify-list-failed error=\"%s\"", error);
		return;
	}
	snap->boxes = xcalloc(list.count + 1, sizeof(*snap->boxes));
	for (size_t i = 0; i < list.count; i++) {
		const struct store_list_entry *e = &list.entries[i];
		struct store_status st;
		if ((e->attrs & STORE_LIST_NOSELECT) ||
		    store_mailbox_status(s->account, e->name, &st, &error) < 0)
			continue;
		struct notify_box *b = &snap->boxes[snap->count++];
		b->name = xstrdup(e->name);
		b->uidvalidity = st.uidvalidity;
		b->messages = st.messages;
		b->uidnext = st.uidnext;
		b->unseen = st.unseen;
		b->modseq = st.highestmodseq;
		b->subscribed = (e->attrs & STORE_LIST_SUBSCRIBED) != 0;
		if (events & EV_MAILBOX_METADATA)
			meta_take(s, e->name, &b->meta, &b->meta_count);
	}
	store_list_free(&list);
	if (events & EV_SERVER_METADATA)
		meta_take(s, NULL, &snap->server_meta, &snap->server_meta_count);
}

/* ---- which filter governs a mailbox ------------------------------------- */

static bool name_under(const char *name, const char *root)
{
	size_t len = strlen(root);
	return strcmp(name, root) == 0 || (strncmp(name, root, len) == 0 && name[len] == '/');
}

/* The events asked for mailbox name (not the selected one): the first
 * filter that covers it decides. */
static unsigned int events_for(const struct imap_session *s, const struct imap_notify *n,
			       const char *name, bool subscribed)
{
	if (s->mbox != NULL && strcmp(store_mailbox_name(s->mbox), name) == 0)
		return 0;   /* the selected mailbox has its own filter */
	for (size_t i = 0; i < n->filter_count; i++) {
		const struct notify_filter *f = &n->filters[i];
		bool match = false;
		switch (f->kind) {
		case FILTER_SELECTED:
		case FILTER_SELECTED_DELAYED:
			break;
		case FILTER_INBOXES:
			match = strcmp(name, "INBOX") == 0;   /* mail is delivered there only */
			break;
		case FILTER_PERSONAL:
			match = true;
			break;
		case FILTER_SUBSCRIBED:
			match = subscribed;
			break;
		case FILTER_SUBTREE:
		case FILTER_MAILBOXES:
			for (size_t j = 0; j < f->name_count && !match; j++)
				match = f->kind == FILTER_SUBTREE ? name_under(name, f->names[j])
								  : strcmp(name, f->names[j]) == 0;
			break;
		}
		if (match)
			return f->events;
	}
	return 0;
}

static const struct notify_filter *selected_filter(const struct imap_notify *n)
{
	for (size_t i = 0; i < n->filter_count; i++)
		if (n->filters[i].kind == FILTER_SELECTED ||
		    n->filters[i].kind == FILTER_SELECTED_DELAYED)
			return &n->filters[i];
	return NULL;
}

/* ---- responses ------------------------------------------------------------ */

static void append_status(struct imap_session *s, struct buf *b, const struct notify_box *box)
{
	buf_append_str(b, "* STATUS ");
	imap_append_mailbox(s, b, box->name);
	buf_printf(b, " (MESSAGES %u UIDNEXT %u UIDVALIDITY %u UNSEEN %u", box->messages,
		   box->uidnext, box->uidvalidity, box->unseen);
	if (s->enabled & IMAP_ENABLED_CONDSTORE)
		buf_printf(b, " HIGHESTMODSEQ %llu", (unsigned long long)box->modseq);
	buf_append_str(b, ")\r\n");
}

static void append_list(struct imap_session *s, struct buf *b, const char *attrs,
			const char *name, const char *old_name)
{
	buf_printf(b, "* LIST (%s) \"/\" ", attrs);
	imap_append_mailbox(s, b, name);
	if (old_name != NULL) {
		buf_append_str(b, " (\"OLDNAME\" (");
		imap_append_mailbox(s, b, old_name);
		buf_append_str(b, "))");
	}
	buf_append_str(b, "\r\n");
}

static const struct notify_box *find_box(const struct notify_snapshot *snap, const char *name,
					 uint32_t uidvalidity)
{
	for (size_t i = 0; i < snap->count; i++)
		if (name != NULL ? strcmp(snap->boxes[i].name, name) == 0
				 : snap->boxes[i].uidvalidity == uidvalidity)
			return &snap->boxes[i];
	return NULL;
}

/* The entry names whose value appeared, changed or went away. */
static void append_meta_changes(struct imap_session *s, struct buf *b, const char *owner,
				const struct notify_meta *old, size_t old_count,
				const struct notify_meta *now, size_t now_count)
{
	struct buf names = BUF_INIT;
	for (size_t i = 0; i < now_count; i++) {
		size_t j = 0;
		while (j < old_count && strcmp(old[j].name, now[i].name) != 0)
			j++;
		if (j == old_count || old[j].digest != now[i].digest)
			buf_printf(&names, " %s", now[i].name);
	}
	for (size_t j = 0; j < old_count; j++) {
		size_t i = 0;
		while (i < now_count && strcmp(old[j].name, now[i].name) != 0)
			i++;
		if (i == now_count)
			buf_printf(&names, " %s", old[j].name);
	}
	if (names.len > 0) {
		buf_append_str(b, "* METADATA ");
		if (owner == NULL)
			buf_append_str(b, "\"\"");
		else
			imap_append_mailbox(s, b, owner);
		buf_printf(b, " (%s)\r\n", names.data + 1);
	}
	buf_free(&names);
}

/* What changed between two snapshots, as the filters want it told. */
static void notify_diff(struct imap_session *s, struct imap_notify *n,
			const struct notify_snapshot *old, const struct notify_snapshot *now,
			struct buf *b)
{
	for (size_t i = 0; i < now->count; i++) {
		const struct notify_box *box = &now->boxes[i];
		unsigned int ev = events_for(s, n, box->name, box->subscribed);
		const struct notify_box *was = find_box(old, box->name, 0);
		if (was == NULL || was->uidvalidity != box->uidvalidity) {
			/* created, or renamed from a name that is gone now */
			const struct notify_box *from = find_box(old, NULL, box->uidvalidity);
			if (from != NULL && find_box(now, from->name, 0) != NULL)
				from = NULL;
			if (ev & EV_MAILBOX_NAME)
				append_list(s, b, "", box->name, from != NULL ? from->name : NULL);
			continue;
		}
		if ((ev & EV_SUBSCRIPTION) && was->subscribed != box->subscribed)
			append_list(s, b, box->subscribed ? "\\Subscribed" : "", box->name, NULL);
		bool messages = was->messages != box->messages || was->uidnext != box->uidnext;
		bool flags = was->unseen != box->unseen || was->modseq != box->modseq;
		if (((ev & (EV_MESSAGE_NEW | EV_MESSAGE_EXPUNGE)) && messages) ||
		    ((ev & EV_FLAG_CHANGE) && flags))
			append_status(s, b, box);
		if (ev & EV_MAILBOX_METADATA)
			append_meta_changes(s, b, box->name, was->meta, was->meta_count, box->meta,
					    box->meta_count);
	}
	for (size_t i = 0; i < old->count; i++) {
		const struct notify_box *was = &old->boxes[i];
		const struct notify_box *now_box = find_box(now, was->name, 0);
		if (now_box != NULL && now_box->uidvalidity == was->uidvalidity)
			continue;
		/* gone: unless it was renamed (told above with OLDNAME) */
		const struct notify_box *moved = find_box(now, NULL, was->uidvalidity);
		if (moved != NULL || now_box != NULL)
			continue;
		if (events_for(s, n, was->name, was->subscribed) & EV_MAILBOX_NAME)
			append_list(s, b, "\\NonExistent", was->name, NULL);
	}
	if (all_events(n) & EV_SERVER_METADATA)
		append_meta_changes(s, b, NULL, old->server_meta, old->server_meta_count,
				    now->server_meta, now->server_meta_count);
}

/* ---- wake-ups --------------------------------------------------------------- */

/* MessageNew (fetch-att ...): FETCH of those attributes for every message
 * of the selected mailbox above the last one told (EXISTS came first). */
/* Before a sync: a mailbox selected since the last look starts from what
 * its view holds (the SELECT told those). */
static void notify_track_selected(struct imap_session *s, struct imap_notify *n)
{
	struct store_status st;
	size_t count;
	if (s->mbox == NULL)
		return;
	store_mailbox_get_status(s->mbox, &st);
	const uint32_t *uids = store_mailbox_uids(s->mbox, &count);
	const char *name = store_mailbox_name(s->mbox);
	if (n->sel_name != NULL && strcmp(n->sel_name, name) == 0 &&
	    n->sel_uidvalidity == st.uidvalidity)
		return;
	free(n->sel_name);
	n->sel_name = xstrdup(name);
	n->sel_uidvalidity = st.uidvalidity;
	n->sel_last_uid = count > 0 ? uids[count - 1] : 0;
}

static void notify_new_messages(struct imap_session *s, struct imap_notify *n,
				const struct notify_filter *sel)
{
	size_t count;
	const uint32_t *uids = store_mailbox_uids(s->mbox, &count);
	uint32_t top = count > 0 ? uids[count - 1] : 0;
	struct buf b = BUF_INIT;
	struct pool *pool = pool_new(1024);
	for (size_t i = imap_uid_lower_bound(uids, count, n->sel_last_uid + 1); i < count; i++)
		imap_fetch_simple(s, pool, (const char *const *)sel->fetch, sel->fetch_count, uids[i],
				  &b);
	pool_free(&pool);
	n->sel_last_uid = top > n->sel_last_uid ? top : n->sel_last_uid;
	imap_write_buf(s, &b);
	buf_free(&b);
}

void imap_notify_run(struct imap_session *s)
{
	struct imap_notify *n = s->notify;
	if (n == NULL)
		return;
	n->pending = false;
	const struct notify_filter *sel = selected_filter(n);
	if (sel != NULL && sel->fetch_count > 0)
		notify_track_selected(s, n);
	struct store_status cur, seen;
	const char *error;
	if (sel != NULL && (sel->events & EV_MESSAGE) && s->mbox != NULL &&
	    s->mode != IMAP_INPUT_IDLE &&
	    store_mailbox_status(s->account, store_mailbox_name(s->mbox), &cur, &error) == 0) {
		/* without FlagChange, a change of flags alone waits for a command */
		store_mailbox_get_status(s->mbox, &seen);
		bool messages = cur.messages != seen.messages || cur.uidnext != seen.uidnext ||
				cur.uidvalidity != seen.uidvalidity;
		bool flags = (sel->events & EV_FLAG_CHANGE) && cur.highestmodseq != seen.highestmodseq;
		if (messages || flags)
			imap_sync(s, sel->kind == FILTER_SELECTED);
	}
	if (sel != NULL && sel->fetch_count > 0 && s->mbox != NULL)
		notify_new_messages(s, n, sel);
	struct notify_snapshot now;
	snapshot_take(s, n, &now);
	struct buf b = BUF_INIT;
	notify_diff(s, n, &n->snap, &now, &b);
	imap_write_buf(s, &b);
	buf_free(&b);
	snapshot_free(&n->snap);
	n->snap = now;
}

static void notify_wake(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct imap_session *s = arg;
	const char *saved = log_get_context();
	log_set_context(s->log_ctx);
	store_account_watch_consume(s->account);
	/* in the middle of a command (a FETCH streaming, a delayed reply):
	 * after it */
	if (s->cmd_async || s->mode == IMAP_INPUT_WAIT || s->mode == IMAP_INPUT_SASL)
		s->notify->pending = true;
	else if (!conn_is_closing(s->conn))
		imap_notify_run(s);
	log_set_context(saved);
}

void imap_notify_after_command(struct imap_session *s)
{
	if (s->notify != NULL && s->notify->pending && !s->cmd_async && !conn_is_closing(s->conn))
		imap_notify_run(s);
}

void imap_notify_free(struct imap_session *s)
{
	struct imap_notify *n = s->notify;
	if (n == NULL)
		return;
	s->notify = NULL;
	if (n->ev != NULL)
		event_free(n->ev);
	for (size_t i = 0; i < n->filter_count; i++) {
		for (size_t j = 0; j < n->filters[i].name_count; j++)
			free(n->filters[i].names[j]);
		free(n->filters[i].names);
		for (size_t j = 0; j < n->filters[i].fetch_count; j++)
			free(n->filters[i].fetch[j]);
		free(n->filters[i].fetch);
	}
	free(n->sel_name);
	free(n->filters);
	snapshot_free(&n->snap);
	free(n);
}

/* ---- the command ------------------------------------------------------------ */

/* -1: BAD (message in *why); -2: NO [BADEVENT]. */
static int parse_events(struct imap_cmd *cmd, const struct imap_arg *arg, bool selected,
			struct notify_filter *f, const char **why)
{
	unsigned int *events_r = &f->events;
	*events_r = 0;
	if (imap_arg_is_atom(arg, "NONE"))
		return 0;
	if (arg->type != IMAP_ARG_LIST || arg->count == 0) {
		*why = "Invalid event list";
		return -1;
	}
	for (size_t i = 0; i < arg->count; i++) {
		size_t e = 0;
		while (e < EVENT_COUNT && !imap_arg_is_atom(&arg->items[i], event_names[e]))
			e++;
		if (e == EVENT_COUNT)
			return -2;   /* AnnotationChange too: no per-message annotations */
		*events_r |= 1u << e;
		if (e == 0 && i + 1 < arg->count && arg->items[i + 1].type == IMAP_ARG_LIST) {
			/* MessageNew's fetch attributes: for the selected mailbox
			 * only, and those that need no body section */
			const struct imap_arg *atts = &arg->items[++i];
			if (!selected) {
				*why = "Fetch attributes only for the selected mailbox";
				return -1;
			}
			f->fetch = xcalloc(atts->count + 1, sizeof(*f->fetch));
			for (size_t k = 0; k < atts->count; k++) {
				const char *att;
				if (!imap_arg_atom(&atts->items[k], &att) ||
				    !imap_fetch_att_simple(cmd->pool, att)) {
					*why = "Unsupported fetch attribute for MessageNew";
					return -1;
				}
				f->fetch[f->fetch_count++] = xstrdup(att);
			}
		}
	}
	/* RFC 5465 5: MessageNew and MessageExpunge go together, FlagChange
	 * needs both */
	unsigned int pair = *events_r & (EV_MESSAGE_NEW | EV_MESSAGE_EXPUNGE);
	if ((pair != 0 && pair != (EV_MESSAGE_NEW | EV_MESSAGE_EXPUNGE)) ||
	    ((*events_r & EV_FLAG_CHANGE) && pair == 0)) {
		*why = "MessageNew and MessageExpunge go together, and FlagChange needs them";
		return -1;
	}
	if (selected && (*events_r & ~EV_MESSAGE)) {
		*why = "Only message events for the selected mailbox";
		return -1;
	}
	return 0;
}

static int parse_names(struct imap_session *s, struct imap_cmd *cmd, const struct imap_arg *arg,
		       struct notify_filter *f)
{
	const struct imap_arg *items = arg->type == IMAP_ARG_LIST ? arg->items : arg;
	size_t count = arg->type == IMAP_ARG_LIST ? arg->count : 1;
	if (count == 0)
		return -1;
	f->names = xcalloc(count, sizeof(*f->names));
	for (size_t i = 0; i < count; i++) {
		const char *raw, *name;
		if (!imap_arg_astring(&items[i], &raw) ||
		    (name = imap_mailbox_from_client(s, cmd->pool, raw)) == NULL)
			return -1;
		f->names[f->name_count++] = xstrdup(name);
	}
	return 0;
}

static int parse_filter(struct imap_session *s, struct imap_cmd *cmd, const struct imap_arg *g,
			struct notify_filter *f, const char **why)
{
	static const struct { const char *name; enum filter_kind kind; } kinds[] = {
		{ "selected", FILTER_SELECTED }, { "selected-delayed", FILTER_SELECTED_DELAYED },
		{ "inboxes", FILTER_INBOXES }, { "personal", FILTER_PERSONAL },
		{ "subscribed", FILTER_SUBSCRIBED }, { "subtree", FILTER_SUBTREE },
		{ "mailboxes", FILTER_MAILBOXES },
	};
	*why = "Invalid filter";
	if (g->type != IMAP_ARG_LIST || g->count < 2)
		return -1;
	size_t k = 0;
	while (k < sizeof(kinds) / sizeof(kinds[0]) && !imap_arg_is_atom(&g->items[0], kinds[k].name))
		k++;
	if (k == sizeof(kinds) / sizeof(kinds[0]))
		return -1;
	f->kind = kinds[k].kind;
	size_t pos = 1;
	if (f->kind == FILTER_SUBTREE || f->kind == FILTER_MAILBOXES) {
		if (g->count != 3 || parse_names(s, cmd, &g->items[1], f) < 0)
			return -1;
		pos = 2;
	}
	if (pos + 1 != g->count)
		return -1;
	return parse_events(cmd, &g->items[pos], f->kind <= FILTER_SELECTED_DELAYED, f, why);
}

void imap_cmd_notify(struct imap_session *s, struct imap_cmd *cmd)
{
	if (cmd->count == 1 && imap_arg_is_atom(&cmd->args[0], "NONE")) {
		imap_notify_free(s);
		imap_ok(s, cmd->tag, "NOTIFY completed");
		return;
	}
	if (cmd->count < 2 || !imap_arg_is_atom(&cmd->args[0], "SET")) {
		imap_bad(s, cmd->tag, "Invalid arguments");
		return;
	}
	size_t pos = 1;
	bool status = false;
	const struct imap_arg *a = &cmd->args[1];
	if (a->type == IMAP_ARG_LIST && a->count == 1 && imap_arg_is_atom(&a->items[0], "STATUS")) {
		status = true;
		pos = 2;
	}
	if (pos >= cmd->count) {
		imap_bad(s, cmd->tag, "Missing event groups");
		return;
	}
	struct imap_notify *n = xcalloc(1, sizeof(*n));
	n->filters = xcalloc(cmd->count, sizeof(*n->filters));
	bool have_selected = false;
	for (size_t i = pos; i < cmd->count; i++) {
		struct notify_filter *f = &n->filters[n->filter_count++];
		const char *why;
		int ret = parse_filter(s, cmd, &cmd->args[i], f, &why);
		bool sel = ret == 0 && f->kind <= FILTER_SELECTED_DELAYED;
		if (ret == 0 && sel && have_selected) {
			ret = -1;
			why = "Only one filter for the selected mailbox";
		}
		have_selected |= sel;
		if (ret < 0) {
			struct imap_notify *old = s->notify;
			s->notify = n;
			imap_notify_free(s);
			s->notify = old;
			if (ret == -2) {
				struct buf b = BUF_INIT;
				for (size_t e = 0; e < EVENT_COUNT; e++)
					buf_printf(&b, "%s%s", e > 0 ? " " : "", event_names[e]);
				imap_no(s, cmd->tag, "[BADEVENT (%s)] Unsupported event", b.data);
				buf_free(&b);
			} else {
				imap_bad(s, cmd->tag, why);
			}
			return;
		}
	}
	/* replaces what was set before */
	imap_notify_free(s);
	s->notify = n;
	s->log_ctx = log_get_context();
	int fd = store_account_watch_fd(s->account);
	n->ev = fd >= 0 ? event_new(conn_event_base(s->conn), fd, EV_READ | EV_PERSIST, notify_wake, s)
			: event_new(conn_event_base(s->conn), -1, EV_PERSIST, notify_wake, s);
	if (n->ev == NULL)
		fatal("event=event-new-failed");
	struct timeval second = { 1, 0 };
	event_add(n->ev, fd >= 0 ? NULL : &second);
	snapshot_take(s, n, &n->snap);
	notify_track_selected(s, n);
	if (status) {
		/* RFC 5465 3.1: the status of every mailbox with message events */
		struct buf b = BUF_INIT;
		for (size_t i = 0; i < n->snap.count; i++) {
			const struct notify_box *box = &n->snap.boxes[i];
			if (events_for(s, n, box->name, box->subscribed) & EV_MESSAGE)
				append_status(s, &b, box);
		}
		imap_write_buf(s, &b);
		buf_free(&b);
	}
	imap_ok(s, cmd->tag, "NOTIFY completed");
}

/* Shared counters (metrics.h): DATA/metrics.shm mapped by the master
 * before it forks, read by the web process and by `postern status`. */
#include "core/metrics.h"
#include "core/log.h"
#include "core/privs.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define METRICS_FILE "metrics.shm"
#define METRICS_MAGIC 0x54454d50u   /* "PMET" */
#define METRICS_VERSION 1u
#define METRICS_MAX_SLOTS 4096

struct metrics_row {
	uint32_t open[LISTEN_COUNT];
};

struct metrics {
	uint32_t magic;
	uint32_t version;
	uint32_t size;            /* bytes of the whole mapping */
	uint32_t slots;
	int64_t master_pid;
	uint64_t master_starttime; /* /proc/PID/stat field 22: tells a reused pid */
	int64_t started;
	int64_t certificate_expiry;
	uint64_t counters[METRIC_COUNT];
	struct metrics_row rows[];
};

/* The mapping this process writes into, inherited from the master: the
 * one piece of process-wide state here, like the log's level. */
static struct metrics *shared;

static const char *const proto_names[METRICS_PROTO_COUNT] = { "smtp", "imap", "pop3" };
static const char *const child_names[METRICS_CHILD_COUNT] = { "worker", "relay", "web", "auth" };

const char *metrics_proto_name(enum metrics_proto p)
{
	return proto_names[p];
}

const char *metrics_child_name(enum metrics_child c)
{
	return child_names[c];
}

static size_t metrics_size(int slots)
{
	return sizeof(struct metrics) + (size_t)slots * sizeof(struct metrics_row);
}

/* Field 22 of /proc/PID/stat (start time in clock ticks), 0 if unknown. */
static uint64_t proc_starttime(pid_t pid)
{
	char path[64], text[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	text[n] = '\0';
	/* the command name may hold spaces and parentheses: count after the last ')' */
	char *p = strrchr(text, ')');
	if (p == NULL)
		return 0;
	int field = 2;
	for (char *save = NULL, *tok = strtok_r(p + 1, " ", &save); tok != NULL;
	     tok = strtok_r(NULL, " ", &save)) {
		if (++field == 22)
			return strtoull(tok, NULL, 10);
	}
	return 0;
}

int metrics_setup(const char *data_dir, const char *run_as, int slots, const char **error_r)
{
	static char error[512];
	if (slots < 1 || slots > METRICS_MAX_SLOTS) {
		*error_r = "metrics: bad number of slots";
		return -1;
	}
	size_t size = metrics_size(slots);
	char *path = xasprintf("%s/%s", data_dir, METRICS_FILE);
	char *tmp = xasprintf("%s.%d", path, (int)getpid());
	int ret = -1;
	void *p = MAP_FAILED;
	/* a new file renamed into place: processes of an earlier server keep
	 * their own pages, and a reader never maps a file being sized */
	int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0 ||
	    (p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED) {
		snprintf(error, sizeof(error), "%s: %s", tmp, strerror(errno));
		*error_r = error;
		goto out;
	}
	struct metrics *m = p;
	m->size = (uint32_t)size;
	m->slots = (uint32_t)slots;
	m->master_pid = getpid();
	m->master_starttime = proc_starttime(getpid());
	m->started = time(NULL);
	m->version = METRICS_VERSION;
	m->magic = METRICS_MAGIC;
	if (privs_give(tmp, run_as, error_r) < 0)
		goto out;
	if (rename(tmp, path) < 0) {
		snprintf(error, sizeof(error), "%s: %s", path, strerror(errno));
		*error_r = error;
		goto out;
	}
	if (shared != NULL)
		munmap(shared, shared->size);
	shared = m;
	p = MAP_FAILED;
	ret = 0;
out:
	if (p != MAP_FAILED)
		munmap(p, size);
	if (fd >= 0)
		close(fd);
	if (ret < 0)
		unlink(tmp);
	free(tmp);
	free(path);
	return ret;
}

void metrics_count(enum metric m)
{
	if (shared != NULL && m < METRIC_COUNT)
		__atomic_fetch_add(&shared->counters[m], 1, __ATOMIC_RELAXED);
}

void metrics_count_listener(enum metric base, enum listener_kind kind)
{
	metrics_count((enum metric)(base + (int)kind));
}

void metrics_login(const char *service, bool ok)
{
	enum metrics_proto p;
	if (strcmp(service, "smtp") == 0)
		p = METRICS_SMTP;
	else if (strcmp(service, "imap") == 0)
		p = METRICS_IMAP;
	else if (strcmp(service, "pop") == 0 || strcmp(service, "pop3") == 0)
		p = METRICS_POP3;
	else
		return;
	metrics_count((enum metric)((ok ? METRIC_LOGINS_OK : METRIC_LOGINS_FAILED) + (int)p));
}

void metrics_relay_result(int code, bool local)
{
	if (code >= 200 && code < 300) {
		metrics_count(METRIC_RELAY_SENT);
		if (!local)
			metrics_count(METRIC_DELIVERED_REMOTE);
	} else if (code >= 500) {
		metrics_count(METRIC_RELAY_BOUNCED);
	} else {
		metrics_count(METRIC_RELAY_DEFERRED);
	}
}

void metrics_connection_open(int slot, enum listener_kind kind, int delta)
{
	if (shared == NULL || slot < 0 || (uint32_t)slot >= shared->slots)
		return;
	uint32_t *v = &shared->rows[slot].open[kind];
	if (delta > 0)
		__atomic_fetch_add(v, 1, __ATOMIC_RELAXED);
	else if (__atomic_load_n(v, __ATOMIC_RELAXED) > 0)
		__atomic_fetch_sub(v, 1, __ATOMIC_RELAXED);
}

void metrics_clear_slot(int slot)
{
	if (shared == NULL || slot < 0 || (uint32_t)slot >= shared->slots)
		return;
	for (int i = 0; i < LISTEN_COUNT; i++)
		__atomic_store_n(&shared->rows[slot].open[i], 0, __ATOMIC_RELAXED);
}

void metrics_set_certificate_expiry(time_t not_after)
{
	if (shared != NULL)
		__atomic_store_n(&shared->certificate_expiry, (int64_t)not_after, __ATOMIC_RELAXED);
}

/* ---- reading ---- */

const struct metrics *metrics_current(void)
{
	return shared;
}

int metrics_attach(const char *data_dir, const struct metrics **m_r, const char **error_r)
{
	static char error[512];
	char *path = xasprintf("%s/%s", data_dir, METRICS_FILE);
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	void *p = MAP_FAILED;
	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(error, sizeof(error), "%s: %s", path, strerror(errno));
		goto fail;
	}
	if ((size_t)st.st_size < sizeof(struct metrics) ||
	    (p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0)) == MAP_FAILED) {
		snprintf(error, sizeof(error), "%s: not a metrics file", path);
		goto fail;
	}
	const struct metrics *m = p;
	if (m->magic != METRICS_MAGIC || m->version != METRICS_VERSION ||
	    m->size != (uint64_t)st.st_size || m->slots > METRICS_MAX_SLOTS ||
	    metrics_size((int)m->slots) != m->size) {
		snprintf(error, sizeof(error), "%s: made by another version of postern", path);
		munmap(p, (size_t)st.st_size);
		goto fail;
	}
	close(fd);
	free(path);
	*m_r = m;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	free(path);
	*error_r = error;
	return -1;
}

void metrics_detach(const struct metrics **m)
{
	if (*m != NULL && *m != shared)
		munmap((void *)*m, (*m)->size);
	*m = NULL;
}

uint64_t metrics_value(const struct metrics *m, enum metric id)
{
	return id < METRIC_COUNT ? __atomic_load_n(&m->counters[id], __ATOMIC_RELAXED) : 0;
}

uint64_t metrics_open_connections(const struct metrics *m, enum listener_kind kind)
{
	uint64_t total = 0;
	for (uint32_t i = 0; i < m->slots; i++)
		total += __atomic_load_n(&m->rows[i].open[kind], __ATOMIC_RELAXED);
	return total;
}

pid_t metrics_master_pid(const struct metrics *m)
{
	return (pid_t)m->master_pid;
}

time_t metrics_started(const struct metrics *m)
{
	return (time_t)m->started;
}

time_t metrics_certificate_expiry(const struct metrics *m)
{
	return (time_t)__atomic_load_n(&m->certificate_expiry, __ATOMIC_RELAXED);
}

bool metrics_server_running(const struct metrics *m)
{
	pid_t pid = (pid_t)m->master_pid;
	if (pid <= 0 || (kill(pid, 0) < 0 && errno != EPERM))
		return false;
	/* the same process, not a later one that got its pid */
	uint64_t now = proc_starttime(pid);
	return m->master_starttime == 0 || now == 0 || now == m->master_starttime;
}

/* ---- Prometheus text format ---- */

static void family(struct buf *out, const char *name, const char *type, const char *help)
{
	buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void per_listener(struct buf *out, const struct metrics *m, const struct config *cfg,
			 const char *name, const char *type, const char *help, int base)
{
	family(out, name, type, help);
	for (int i = 0; i < LISTEN_COUNT; i++) {
		if (cfg != NULL && cfg->listen[i] == NULL)
			continue;
		uint64_t v = base < 0 ? metrics_open_connections(m, (enum listener_kind)i) :
				        metrics_value(m, (enum metric)(base + i));
		buf_printf(out, "%s{listener=\"%s\"} %llu\n", name, listener_kind_name(i),
			   (unsigned long long)v);
	}
}

static void single(struct buf *out, const char *name, const char *type, const char *help,
		   long long value)
{
	family(out, name, type, help);
	buf_printf(out, "%s %lld\n", name, value);
}

void metrics_render(const struct metrics *m, const struct config *cfg,
		    const struct metrics_queue *queue, time_t now, struct buf *out)
{
	single(out, "postern_start_time_seconds", "gauge",
	       "When the server's master process started, in Unix time.",
	       (long long)metrics_started(m));
	per_listener(out, m, cfg, "postern_connections_total", "counter",
		     "Connections accepted, per listener.", METRIC_CONNECTIONS);
	per_listener(out, m, cfg, "postern_connections_refused_total", "counter",
		     "Connections refused by the connection limits, per listener.",
		     METRIC_CONNECTIONS_REFUSED);
	per_listener(out, m, cfg, "postern_connections_open", "gauge",
		     "Connections open now, per listener.", -1);
	per_listener(out, m, cfg, "postern_tls_handshakes_total", "counter",
		     "TLS handshakes completed (implicit TLS and STARTTLS), per listener.",
		     METRIC_TLS_HANDSHAKES);
	per_listener(out, m, cfg, "postern_tls_handshake_failures_total", "counter",
		     "TLS handshakes that failed, per listener.", METRIC_TLS_FAILURES);

	family(out, "postern_logins_total", "counter", "Logins, per protocol and result.");
	for (int p = 0; p < METRICS_PROTO_COUNT; p++) {
		buf_printf(out, "postern_logins_total{protocol=\"%s\",result=\"ok\"} %llu\n",
			   proto_names[p], (unsigned long long)metrics_value(
				   m, (enum metric)(METRIC_LOGINS_OK + p)));
		buf_printf(out, "postern_logins_total{protocol=\"%s\",result=\"failed\"} %llu\n",
			   proto_names[p], (unsigned long long)metrics_value(
				   m, (enum metric)(METRIC_LOGINS_FAILED + p)));
	}

	single(out, "postern_messages_accepted_total", "counter",
	       "Messages acknowledged to SMTP clients (the 250 after DATA or BDAT).",
	       (long long)metrics_value(m, METRIC_MESSAGES_ACCEPTED));
	family(out, "postern_messages_delivered_total", "counter",
	       "Recipients delivered: into a mailbox here (local) or taken by the next hop (remote).");
	buf_printf(out, "postern_messages_delivered_total{destination=\"local\"} %llu\n"
		   "postern_messages_delivered_total{destination=\"remote\"} %llu\n",
		   (unsigned long long)metrics_value(m, METRIC_DELIVERED_LOCAL),
		   (unsigned long long)metrics_value(m, METRIC_DELIVERED_REMOTE));
	single(out, "postern_messages_deferred_total", "counter",
	       "Recipients whose delivery attempt failed for now (each attempt counts).",
	       (long long)metrics_value(m, METRIC_RELAY_DEFERRED));
	single(out, "postern_messages_bounced_total", "counter",
	       "Recipients that failed for good or expired in the queue.",
	       (long long)(metrics_value(m, METRIC_RELAY_BOUNCED) +
			   metrics_value(m, METRIC_EXPIRED)));
	family(out, "postern_relay_attempts_total", "counter",
	       "The relay's delivery attempts, one per recipient, by result.");
	buf_printf(out, "postern_relay_attempts_total{result=\"sent\"} %llu\n"
		   "postern_relay_attempts_total{result=\"deferred\"} %llu\n"
		   "postern_relay_attempts_total{result=\"bounced\"} %llu\n",
		   (unsigned long long)metrics_value(m, METRIC_RELAY_SENT),
		   (unsigned long long)metrics_value(m, METRIC_RELAY_DEFERRED),
		   (unsigned long long)metrics_value(m, METRIC_RELAY_BOUNCED));

	if (queue != NULL && queue->known) {
		single(out, "postern_queue_messages", "gauge",
		       "Messages in the outbound queue.", (long long)queue->messages);
		long long age = queue->oldest_arrival > 0 && now > queue->oldest_arrival ?
				(long long)(now - queue->oldest_arrival) : 0;
		single(out, "postern_queue_oldest_age_seconds", "gauge",
		       "Age of the oldest message in the outbound queue (0 when empty).", age);
	}

	family(out, "postern_process_restarts_total", "counter",
	       "Children the master started again after they died, per kind.");
	for (int c = 0; c < METRICS_CHILD_COUNT; c++)
		buf_printf(out, "postern_process_restarts_total{process=\"%s\"} %llu\n",
			   child_names[c], (unsigned long long)metrics_value(
				   m, (enum metric)(METRIC_RESTARTS + c)));
	if (metrics_certificate_expiry(m) > 0)
		single(out, "postern_tls_certificate_expiry_timestamp_seconds", "gauge",
		       "When the certificate the server presents expires, in Unix time.",
		       (long long)metrics_certificate_expiry(m));
}

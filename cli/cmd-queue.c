/* `postern queue list [--json] | show ID | flush [ID] | delete ID [--bounce]`
 * and, for tests and admins, `postern queue inject --from SENDER [options]
 * RCPT... < message` (enqueues a message as submission would).
 * They open DATA/queue.lmdb directly; the running relay sees every change
 * (records are re-read at each scan; flush and inject wake it up). */
#include "cli/cli.h"
#include "auth/auth.h"
#include "core/services.h"
#include "intake/intake.h"
#include "store/store.h"
#include "queue/queue.h"
#include "relay/relay.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void print_duration(FILE *out, long long secs)
{
	if (secs < 0)
		secs = 0;
	if (secs < 120)
		fprintf(out, "%llds", secs);
	else if (secs < 7200)
		fprintf(out, "%lldm", secs / 60);
	else if (secs < 172800)
		fprintf(out, "%lldh%lldm", secs / 3600, secs / 60 % 60);
	else
		fprintf(out, "%lldd%lldh", secs / 86400, secs / 3600 % 24);
}

static const char *state_name(enum queue_rcpt_state s)
{
	return s == QUEUE_RCPT_DONE ? "done" : s == QUEUE_RCPT_FAILED ? "failed" : "pending";
}

static void print_json_string(FILE *out, const char *s)
{
	fputc('"', out);
	for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(out, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(out, "\\u%04x", *p);
		else
			fputc(*p, out);
	}
	fputc('"', out);
}

static const char *last_error_of(const struct queue_entry *e)
{
	const char *last = NULL;
	for (size_t i = 0; i < e->rcpt_count; i++) {
		if (e->rcpts[i].state == QUEUE_RCPT_PENDING && e->rcpts[i].last_error != NULL)
			last = e->rcpts[i].last_error;
	}
	return last;
}

struct list_ctx {
	bool json;
	bool first;
	time_t now;
};

static int list_one(const struct queue_entry *e, void *arg)
{
	struct list_ctx *ctx = arg;
	const char *last = last_error_of(e);
	if (ctx->json) {
		fprintf(stdout, "%s{\"id\":\"%s\",\"arrival\":%lld,\"sender\":", ctx->first ? "" : ",",
			e->id, (long long)e->arrival);
		print_json_string(stdout, e->sender);
		fputs(",\"recipients\":[", stdout);
		for (size_t i = 0; i < e->rcpt_count; i++) {
			fprintf(stdout, "%s{\"address\":", i ? "," : "");
			print_json_string(stdout, e->rcpts[i].address);
			fprintf(stdout, ",\"state\":\"%s\",\"attempts\":%d,\"last_error\":",
				state_name(e->rcpts[i].state), e->rcpts[i].attempts);
			print_json_string(stdout, e->rcpts[i].last_error);
			fputs(",\"tls\":", stdout);
			print_json_string(stdout, e->rcpts[i].last_tls);
			fputc('}', stdout);
		}
		fprintf(stdout, "],\"attempts\":%d,\"next_attempt\":%lld,\"size\":%llu}",
			e->attempts, (long long)e->next_attempt, (unsigned long long)e->size);
		ctx->first = false;
		return 0;
	}
	fprintf(stdout, "%s\t", e->id);
	print_duration(stdout, (long long)(ctx->now - e->arrival));
	fprintf(stdout, "\t<%s>\t", e->sender);
	for (size_t i = 0; i < e->rcpt_count; i++)
		fprintf(stdout, "%s%s%s", i ? "," : "", e->rcpts[i].address,
			e->rcpts[i].state == QUEUE_RCPT_PENDING ? "" :
			e->rcpts[i].state == QUEUE_RCPT_DONE ? "(done)" : "(failed)");
	fprintf(stdout, "\tattempts=%d\tnext=", e->attempts);
	if (e->next_attempt <= ctx->now) {
		fputs("now", stdout);
	} else {
		fputs("in ", stdout);
		print_duration(stdout, (long long)(e->next_attempt - ctx->now));
	}
	fprintf(stdout, "\t%s\n", last != NULL ? last : "-");
	return 0;
}

static int queue_cmd_list(struct queue *q, bool json)
{
	struct list_ctx ctx = { json, true, time(NULL) };
	const char *error;
	if (json)
		fputc('[', stdout);
	if (queue_list(q, list_one, &ctx, &error) < 0)
		return cli_error("%s", error);
	if (json)
		fputs("]\n", stdout);
	return 0;
}

static int get_entry(struct queue *q, const char *id, struct queue_entry *e)
{
	const char *error;
	int r = queue_entry_get(q, id, e, &error);
	if (r < 0)
		return cli_error("%s", error);
	if (r == 0)
		return cli_error("no queued message '%s'", id);
	return 0;
}

static void print_header_line(char *line)
{
	line[strcspn(line, "\r\n")] = '\0';
	for (char *p = line; *p; p++) {
		if ((unsigned char)*p < 0x20 && *p != '\t')
			*p = '?';
	}
	printf("%s\n", line);
}

/* The header as it leaves: the fields intake's filters put on top (every
 * copy's, then the remote copies', e.g. DKIM-Signature), then the spool
 * file's. */
static void show_headers(struct queue *q, const struct queue_entry *e)
{
	const char *prepended[2] = { e->prepend, e->prepend_remote };
	fputs("\n", stdout);
	for (size_t i = 0; i < 2; i++) {
		for (const char *p = prepended[i]; p != NULL && *p != '\0';) {
			size_t n = strcspn(p, "\n");
			char *line = xstrndup(p, n);
			print_header_line(line);
			free(line);
			p += n + (p[n] == '\n');
		}
	}
	char *path = queue_spool_path(q, e->id);
	FILE *f = fopen(path, "r");
	free(path);
	if (f == NULL)
		return;
	char line[1024];
	while (fgets(line, sizeof(line), f) != NULL) {
		if (line[0] == '\r' || line[0] == '\n')
			break;
		print_header_line(line);
	}
	fclose(f);
}

static int queue_cmd_show(struct queue *q, const char *id)
{
	struct queue_entry e;
	if (get_entry(q, id, &e) != 0)
		return EXIT_USER_ERROR;
	time_t now = time(NULL);
	printf("id: %s\nsender: <%s>\n", e.id, e.sender);
	if (e.user != NULL)
		printf("user: %s\n", e.user);
	if (e.envid != NULL)
		printf("envid: %s\n", e.envid);
	printf("ret: %s\nbody: %s\nsmtputf8: %s\nsize: %llu\n",
	       e.ret == QUEUE_RET_FULL ? "full" : e.ret == QUEUE_RET_HDRS ? "hdrs" : "-",
	       e.body == QUEUE_BODY_8BITMIME ? "8bitmime" : e.body == QUEUE_BODY_BINARYMIME ?
	       "binarymime" : "7bit", e.smtputf8 ? "yes" : "no", (unsigned long long)e.size);
	printf("age: ");
	print_duration(stdout, (long long)(now - e.arrival));
	printf("\nattempts: %d\nnext attempt: ", e.attempts);
	if (e.next_attempt <= now) {
		printf("now");
	} else {
		printf("in ");
		print_duration(stdout, (long long)(e.next_attempt - now));
	}
	printf("\ndelay warning sent: %s\n", e.delay_warned ? "yes" : "no");
	for (size_t i = 0; i < e.rcpt_count; i++) {
		const struct queue_rcpt *r = &e.rcpts[i];
		printf("recipient: %s state=%s attempts=%d%s", r->address, state_name(r->state),
		       r->attempts, r->local ? " local" : "");
		if (r->orcpt != NULL)
			printf(" orcpt=%s", r->orcpt);
		if (r->last_host != NULL)
			printf(" host=%s", r->last_host);
		if (r->last_tls != NULL)
			printf(" tls=\"%s\"", r->last_tls);
		printf(" last_error=%s\n", r->last_error != NULL ? r->last_error : "-");
	}
	show_headers(q, &e);
	queue_entry_free(&e);
	return 0;
}

static int flush_one(struct queue *q, const struct queue_entry *entry)
{
	struct queue_entry e;
	const char *error;
	size_t len;
	char *data = queue_entry_serialize(entry, &len);
	int ok = queue_entry_parse(data, len, &e);
	free(data);
	if (ok < 0)
		return 0;
	e.next_attempt = time(NULL);
	int r = queue_entry_replace(q, &e, &error);
	queue_entry_free(&e);
	if (r < 0)
		return cli_error("%s", error);
	return 0;
}

static int flush_cb(const struct queue_entry *e, void *arg)
{
	return flush_one(arg, e) != 0 ? 1 : 0;
}

static int queue_cmd_flush(struct queue *q, const char *id)
{
	const char *error;
	int ret = 0;
	if (id != NULL) {
		struct queue_entry e;
		if (get_entry(q, id, &e) != 0)
			return EXIT_USER_ERROR;
		ret = flush_one(q, &e);
		queue_entry_free(&e);
	} else if (queue_list(q, flush_cb, q, &error) < 0) {
		ret = cli_error("%s", error);
	}
	queue_kick(q);
	return ret;
}

static int queue_cmd_delete(struct config *cfg, struct queue *q, const char *id, bool bounce)
{
	struct queue_entry e;
	const char *error;
	if (get_entry(q, id, &e) != 0)
		return EXIT_USER_ERROR;
	int ret = 0;
	if (bounce) {
		struct services svc = { .queue = q };
		if (auth_db_open(cfg->data_dir, cfg->run_as, &svc.auth, &error) < 0 ||
		    store_open(cfg->data_dir, cfg->run_as, &svc.store, &error) < 0 ||
		    relay_bounce_pending(cfg, &svc, &e, "550 5.0.0 deleted from the queue by the "
					 "administrator", &error) < 0)
			ret = cli_error("%s", error);
		if (svc.store != NULL)
			store_free(&svc.store);
		auth_db_close(&svc.auth);
	}
	if (ret == 0 && queue_entry_remove(q, id, &error) < 0)
		ret = cli_error("%s", error);
	queue_entry_free(&e);
	if (ret == 0)
		queue_kick(q);
	return ret;
}

/* inject: options first, then recipients. The message goes through
 * intake like every other (line ends, loop count, Received, the filters),
 * and every recipient is queued for the relay. */
static int queue_cmd_inject(struct config *cfg, struct queue *q, int argc, char **argv)
{
	struct intake_envelope env = { .origin = INTAKE_INJECT };
	struct intake_rcpt_params *params = xcalloc((size_t)argc + 1, sizeof(*params));
	const char **rcpts = xcalloc((size_t)argc + 1, sizeof(*rcpts));
	size_t nrcpt = 0;
	unsigned int notify = 0;
	const char *orcpt = NULL, *error;
	int ret = 0;
	for (int i = 0; i < argc && ret == 0; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		bool local = false;
		if (strcmp(a, "--from") == 0 && v != NULL) {
			env.sender = v;
			i++;
		} else if (strcmp(a, "--envid") == 0 && v != NULL) {
			env.envid = v;
			i++;
		} else if (strcmp(a, "--ret") == 0 && v != NULL) {
			env.ret = strcmp(v, "full") == 0 ? INTAKE_RET_FULL : INTAKE_RET_HDRS;
			i++;
		} else if (strcmp(a, "--notify") == 0 && v != NULL) {
			notify = 0;
			notify |= strstr(v, "never") ? INTAKE_NOTIFY_NEVER : 0;
			notify |= strstr(v, "success") ? INTAKE_NOTIFY_SUCCESS : 0;
			notify |= strstr(v, "failure") ? INTAKE_NOTIFY_FAILURE : 0;
			notify |= strstr(v, "delay") ? INTAKE_NOTIFY_DELAY : 0;
			i++;
		} else if (strcmp(a, "--orcpt") == 0 && v != NULL) {
			orcpt = v;
			i++;
		} else if (strcmp(a, "--8bit") == 0) {
			env.body = INTAKE_BODY_8BITMIME;
		} else if (strcmp(a, "--smtputf8") == 0) {
			env.smtputf8 = true;
		} else if ((local = strcmp(a, "--local") == 0) || a[0] != '-') {
			/* --local is kept for old scripts: intake knows the
			 * hosted mailboxes by itself */
			if (local && v == NULL) {
				ret = cli_usage("queue inject: --local needs an address");
				break;
			}
			params[nrcpt].notify = notify;
			params[nrcpt].orcpt = orcpt;
			rcpts[nrcpt++] = local ? v : a;
			orcpt = NULL;
			if (local)
				i++;
		} else {
			ret = cli_usage("queue inject: unknown option '%s'", a);
		}
	}
	if (ret == 0 && (env.sender == NULL || nrcpt == 0))
		ret = cli_usage("queue inject: --from SENDER and a recipient needed");
	struct services sv = { .queue = q };
	struct intake *job = NULL;
	struct intake_status st;
	if (ret == 0 && (auth_db_open(cfg->data_dir, cfg->run_as, &sv.auth, &error) < 0 ||
			 store_open(cfg->data_dir, cfg->run_as, &sv.store, &error) < 0))
		ret = cli_error("%s", error);
	if (ret == 0 && intake_begin(&sv, cfg, &env, &job, &st) < 0)
		ret = cli_error("%s", st.text);
	for (size_t i = 0; ret == 0 && i < nrcpt; i++) {
		if (intake_add_rcpt(job, rcpts[i], &params[i], &st) < 0)
			ret = cli_error("%s: %d %s %s", rcpts[i], st.reply, st.enhanced, st.text);
	}
	char chunk[65536];
	ssize_t n;
	while (ret == 0 && (n = read(STDIN_FILENO, chunk, sizeof(chunk))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			ret = cli_error("reading the message: %s", strerror(errno));
		else
			intake_write(job, chunk, (size_t)n);
	}
	if (ret == 0) {
		intake_end(job, NULL, NULL, NULL);
		st = *intake_result(job);
		if (st.code != INTAKE_OK)
			ret = cli_error("%d %s %s", st.reply, st.enhanced, st.text);
		else
			printf("%s\n", intake_queue_id(job));
	}
	intake_free(&job);
	if (sv.store != NULL)
		store_free(&sv.store);
	auth_db_close(&sv.auth);
	free(params);
	free(rcpts);
	return ret;
}

int cmd_queue(int argc, char **argv)
{
	const char *path = cli_take_config_arg(&argc, argv);
	if (path == NULL)
		return EXIT_USAGE;
	bool json = cli_take_flag(&argc, argv, "--json");
	bool bounce = cli_take_flag(&argc, argv, "--bounce");
	if (argc == 0)
		return cli_usage("queue: list | show ID | flush [ID] | delete ID [--bounce]");
	const char *sub = argv[0];
	if (!(strcmp(sub, "list") == 0 && argc == 1) && !(strcmp(sub, "show") == 0 && argc == 2) &&
	    !(strcmp(sub, "flush") == 0 && argc <= 2) &&
	    !(strcmp(sub, "delete") == 0 && argc == 2) && strcmp(sub, "inject") != 0)
		return cli_usage("queue: list | show ID | flush [ID] | delete ID [--bounce]");

	struct config cfg;
	if (cli_load_config(path, &cfg, false) < 0)
		return EXIT_USER_ERROR;
	cli_register_filters();   /* inject and --bounce write messages that leave */
	struct queue *q = NULL;
	const char *error;
	int ret;
	if (queue_open(cfg.data_dir, cfg.run_as, &q, &error) < 0) {
		ret = cli_error("%s", error);
	} else if (strcmp(sub, "list") == 0) {
		ret = queue_cmd_list(q, json);
	} else if (strcmp(sub, "show") == 0) {
		ret = queue_cmd_show(q, argv[1]);
	} else if (strcmp(sub, "flush") == 0) {
		ret = queue_cmd_flush(q, argc == 2 ? argv[1] : NULL);
	} else if (strcmp(sub, "delete") == 0) {
		ret = queue_cmd_delete(&cfg, q, argv[1], bounce);
	} else {
		ret = queue_cmd_inject(&cfg, q, argc - 1, argv + 1);
	}
	queue_close(&q);
	config_free(&cfg);
	return ret;
}

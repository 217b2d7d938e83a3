/* The intake job: the envelope, the recipients (aliases expanded, hosted
 * or remote, relay policy, quota read from the account database at that
 * moment), the protocol-neutral statuses, the results. The bytes are
 * message.c's, the end finish.c's. */
#include "intake/intake-private.h"
#include "auth/auth.h"
#include "core/services.h"
#include "store/store.h"

#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- statuses ---------------------------------------------------------- */

struct code_info {
	int reply;
	const char *enhanced;
	const char *text;
};

static const struct code_info codes[] = {
	[INTAKE_OK] = { 250, "2.0.0", "Ok" },
	[INTAKE_UNKNOWN_USER] = { 550, "5.1.1", "Recipient address rejected: user unknown" },
	[INTAKE_NO_TARGET] = { 550, "5.1.1", "Recipient address rejected: no deliverable target" },
	[INTAKE_RELAY_DENIED] = { 554, "5.7.1", "Relay access denied" },
	[INTAKE_RELAY_DISABLED] = { 554, "5.7.1",
				    "Relay access denied: this server delivers only locally" },
	[INTAKE_BINARY_REMOTE] = { 554, "5.6.3", "BINARYMIME cannot be relayed to other servers" },
	[INTAKE_OVER_QUOTA] = { 552, "5.2.2", "Mailbox full" },
	[INTAKE_TOO_MANY_RCPTS] = { 452, "4.5.3", "Error: too many recipients" },
	[INTAKE_LOOKUP_FAILED] = { 451, "4.3.0", "Temporary failure looking up the recipient" },
	[INTAKE_NOT_LOCAL] = { 550, "5.1.1", "Not a hosted mailbox" },
	[INTAKE_SENDER_NOT_OWNED] = { 553, "5.7.1", "Sender address rejected: not owned by the user" },
	[INTAKE_FROM_NOT_OWNED] = { 553, "5.7.1",
				    "From: header address not owned by the authenticated user" },
	[INTAKE_FROM_UNPARSABLE] = { 553, "5.7.1",
				     "From: header cannot be checked against the login" },
	[INTAKE_LOOP] = { 554, "5.4.6", "Too many Received: headers, mail loop suspected" },
	[INTAKE_HEADER_TOO_BIG] = { 552, "5.3.4", "Message header size exceeds the limit" },
	[INTAKE_BARE_NEWLINE] = { 550, "5.6.0",
				  "Message contains bare CR or LF line endings (see RFC 5321 2.3.8)" },
	[INTAKE_LINE_TOO_LONG] = { 550, "5.6.0", "Message contains a line longer than 1000 octets" },
	[INTAKE_TOO_BIG] = { 552, "5.3.4", "Message size exceeds fixed maximum message size" },
	[INTAKE_NO_SPACE] = { 452, "4.3.1", "Insufficient system storage" },
	[INTAKE_LOCAL_ERROR] = { 451, "4.3.0", "Error: local problem storing the message" },
	[INTAKE_FILTER_REJECT] = { 550, "5.7.1", "Message refused" },
	[INTAKE_FILTER_TEMPFAIL] = { 451, "4.7.1", "Message deferred, try again later" },
};

void intake_status_set(struct intake_status *st, const struct config *cfg,
		       enum intake_code code, const char *text)
{
	const struct code_info *ci = &codes[code];
	st->code = code;
	st->reply = ci->reply;
	snprintf(st->enhanced, sizeof(st->enhanced), "%s", ci->enhanced);
	if (code == INTAKE_OVER_QUOTA && cfg != NULL && cfg->smtp_quota_full_tempfail) {
		st->reply = 452;
		snprintf(st->enhanced, sizeof(st->enhanced), "4.2.2");
	}
	snprintf(st->text, sizeof(st->text), "%s", text != NULL ? text : ci->text);
}

void intake_status_ok(struct intake_status *st)
{
	intake_status_set(st, NULL, INTAKE_OK, NULL);
}

/* A filter's "5.7.1 reason": its enhanced code, its text. */
void intake_status_from_reply(struct intake_status *st, enum intake_code code,
			      const char *reply)
{
	intake_status_set(st, NULL, code, NULL);
	const char *p = reply;
	size_t n = strspn(p, "0123456789.");
	char cls = code == INTAKE_FILTER_REJECT ? '5' : '4';
	if (n >= 5 && n < sizeof(st->enhanced) && p[0] == cls && p[1] == '.') {
		memcpy(st->enhanced, p, n);
		st->enhanced[n] = '\0';
		p += n;
		while (*p == ' ')
			p++;
	}
	if (*p != '\0') {
		struct buf b = BUF_INIT;
		buf_append_sanitized(&b, p, strlen(p));
		snprintf(st->text, sizeof(st->text), "%s", buf_str(&b));
		buf_free(&b);
	}
}

/* ---- a job ------------------------------------------------------------- */

static void new_id(char *id, size_t size)
{
	unsigned char rnd[6];
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		fatal("event=rand-failed");
	snprintf(id, size, "%02X%02X%02X%02X%02X%02X", rnd[0], rnd[1], rnd[2], rnd[3], rnd[4],
		 rnd[5]);
}

static const char *pdup(struct pool *pool, const char *s)
{
	return s != NULL ? pool_strdup(pool, s) : NULL;
}

int intake_begin(struct services *sv, const struct config *cfg,
		 const struct intake_envelope *env, struct intake **job_r,
		 struct intake_status *status_r)
{
	intake_status_ok(status_r);
	if (env->origin == INTAKE_SUBMISSION && env->sender[0] != '\0' &&
	    (env->user == NULL || !auth_sender_allowed(sv->auth, env->user, env->sender))) {
		char text[sizeof(status_r->text)];
		snprintf(text, sizeof(text), "Sender address rejected: not owned by user %s",
			 env->user != NULL ? env->user : "(none)");
		intake_status_set(status_r, cfg, INTAKE_SENDER_NOT_OWNED, text);
		log_info("event=sender-rejected reason=login-mismatch");
		return -1;
	}
	struct intake *job = xcalloc(1, sizeof(*job));
	job->sv = sv;
	job->cfg = cfg;
	job->pool = pool_new(4096);
	job->env = *env;
	job->env.sender = pdup(job->pool, env->sender != NULL ? env->sender : "");
	job->env.user = pdup(job->pool, env->user);
	job->env.helo = pdup(job->pool, env->helo);
	job->env.remote_ip = pdup(job->pool, env->remote_ip);
	job->env.tls = pdup(job->pool, env->tls);
	job->env.envid = pdup(job->pool, env->envid);
	job->env.mailbox = pdup(job->pool, env->mailbox);
	job->env.queue_id = pdup(job->pool, env->queue_id);
	job->env.prepend = pdup(job->pool, env->prepend);
	if (env->id != NULL)
		snprintf(job->id, sizeof(job->id), "%s", env->id);
	else
		new_id(job->id, sizeof(job->id));
	job->env.id = job->id;
	buf_init(&job->field);
	buf_init(&job->kept);
	buf_init(&job->from_values);
	intake_status_ok(&job->status);
	*job_r = job;
	return 0;
}

size_t intake_rcpt_count(const struct intake *job)
{
	return job->rcpt_count;
}

uint64_t intake_size(const struct intake *job)
{
	return job->size;
}

bool intake_is_hosted(struct services *sv, const char *address)
{
	const char *at = strrchr(address, '@');
	return at != NULL && auth_domain_is_local(sv->auth, at + 1);
}

/* Adds (or finds) a final destination; returns its index. */
static size_t add_target(struct intake *job, size_t rcpt, const char *address, bool local)
{
	for (size_t i = 0; i < job->target_count; i++) {
		if (job->targets[i].local == local &&
		    ascii_strcasecmp(job->targets[i].address, address) == 0)
			return i;
	}
	if (job->target_count == job->target_cap) {
		job->target_cap = job->target_cap == 0 ? 4 : job->target_cap * 2;
		job->targets = xrealloc(job->targets, job->target_cap * sizeof(*job->targets));
	}
	struct intake_target *t = &job->targets[job->target_count];
	memset(t, 0, sizeof(*t));
	t->address = pool_strdup(job->pool, address);
	t->local = local;
	t->rcpt = rcpt;
	if (local)
		job->local_count++;
	else
		job->remote_count++;
	return job->target_count++;
}

/* May a message from this origin go to other hosts? */
static bool may_relay(const struct intake *job)
{
	switch (job->env.origin) {
	case INTAKE_SUBMISSION:
	case INTAKE_RETRY:
	case INTAKE_REPORT:
	case INTAKE_INJECT:
		return true;
	case INTAKE_INBOUND:
	case INTAKE_LOCAL:
		return false;
	}
	return false;
}

/* The quota of account, read from the account database now and pushed to
 * its store index; 1 when incoming more bytes would go over it. */
static int quota_check(struct intake *job, const char *account, uint64_t incoming)
{
	struct store_account *acct;
	const char *error;
	if (store_account_open(job->sv->store, account, &acct, &error) < 0)
		return 0;   /* delivery will tell */
	int r = intake_quota_refresh(job->sv, acct, account);
	uint64_t used = 0, limit = 0;
	if (r == 0 && store_account_get_quota(acct, &used, &limit, &error) < 0)
		r = -1;
	store_account_close(&acct);
	return r == 0 && limit != 0 && used + incoming > limit;
}

int intake_quota_refresh(struct services *sv, struct store_account *acct, const char *account)
{
	struct auth_user user;
	const char *error;
	uint64_t used, limit;
	if (auth_user_lookup(sv->auth, account, &user) != 1)
		return -1;
	if (store_account_get_quota(acct, &used, &limit, &error) < 0)
		return -1;
	if (limit != user.quota && store_account_set_quota(acct, user.quota, &error) < 0) {
		log_warn("event=quota-sync-failed account=%s error=\"%s\"", account, error);
		return -1;
	}
	return 0;
}

static int refuse(struct intake *job, struct intake_status *st, enum intake_code code)
{
	intake_status_set(st, job->cfg, code, NULL);
	return -1;
}

int intake_add_rcpt(struct intake *job, const char *address,
		    const struct intake_rcpt_params *params, struct intake_status *status_r)
{
	const struct config *cfg = job->cfg;
	intake_status_ok(status_r);
	if (job->started)
		return refuse(job, status_r, INTAKE_LOCAL_ERROR);
	bool smtp = job->env.origin == INTAKE_SUBMISSION || job->env.origin == INTAKE_INBOUND;
	if (smtp && job->rcpt_count >= (size_t)cfg->smtp_max_recipients)
		return refuse(job, status_r, INTAKE_TOO_MANY_RCPTS);
	bool hosted = intake_is_hosted(job->sv, address);
	if (!hosted) {
		if (job->env.origin == INTAKE_LOCAL || job->env.origin == INTAKE_RETRY)
			return refuse(job, status_r, INTAKE_NOT_LOCAL);
		if (!may_relay(job))
			return refuse(job, status_r, INTAKE_RELAY_DENIED);
		/* an admin's injection waits in the queue for relaying to be on */
		if (cfg->relay_mode == RELAY_NONE && job->env.origin != INTAKE_INJECT)
			return refuse(job, status_r, INTAKE_RELAY_DISABLED);
		if (job->env.body == INTAKE_BODY_BINARYMIME && smtp)
			return refuse(job, status_r, INTAKE_BINARY_REMOTE);
	}

	struct auth_recipients list = { NULL, 0 };
	if (hosted) {
		const char *error = NULL;
		int found = auth_resolve_recipient(job->sv->auth, address, &list, &error);
		if (found == 0)
			return refuse(job, status_r, INTAKE_UNKNOWN_USER);
		if (found < 0) {
			log_warn("event=rcpt-lookup-failed error=\"%s\"", error != NULL ? error : "");
			return refuse(job, status_r, INTAKE_LOOKUP_FAILED);
		}
	}
	/* which targets it reaches */
	size_t idx[64];
	size_t n = 0;
	bool any_full = false, relay_ok = may_relay(job) || hosted;
	if (!hosted) {
		idx[n++] = SIZE_MAX;   /* itself, remote */
	} else {
		for (size_t i = 0; i < list.count && n < sizeof(idx) / sizeof(idx[0]); i++) {
			const struct auth_recipient *r = &list.items[i];
			if (r->local) {
				uint64_t incoming = job->env.declared_size;
				if (quota_check(job, r->address, incoming) == 1) {
					any_full = true;
					if (list.count == 1)
						break;
				}
			} else if (cfg->relay_mode == RELAY_NONE || !relay_ok ||
				   job->env.origin == INTAKE_LOCAL) {
				continue;   /* an alias's outside target we cannot reach */
			}
			idx[n++] = i;
		}
	}
	if (any_full && list.count == 1) {
		auth_recipients_free(&list);
		return refuse(job, status_r, INTAKE_OVER_QUOTA);
	}
	if (n == 0) {
		auth_recipients_free(&list);
		return refuse(job, status_r, job->env.origin == INTAKE_LOCAL ? INTAKE_NOT_LOCAL :
					     INTAKE_NO_TARGET);
	}
	if (job->rcpt_count == job->rcpt_cap) {
		job->rcpt_cap = job->rcpt_cap == 0 ? 4 : job->rcpt_cap * 2;
		job->rcpts = xrealloc(job->rcpts, job->rcpt_cap * sizeof(*job->rcpts));
	}
	size_t ri = job->rcpt_count++;
	struct intake_rcpt *r = &job->rcpts[ri];
	memset(r, 0, sizeof(*r));
	r->address = pool_strdup(job->pool, address);
	r->notify = params != NULL ? params->notify : 0;
	r->orcpt = params != NULL && params->orcpt != NULL ?
		   pool_strdup(job->pool, params->orcpt) : NULL;
	r->targets = pool_alloc(job->pool, n * sizeof(*r->targets));
	for (size_t i = 0; i < n; i++) {
		if (idx[i] == SIZE_MAX)
			r->targets[r->target_count++] = add_target(job, ri, address, false);
		else
			r->targets[r->target_count++] =
				add_target(job, ri, list.items[idx[i]].address,
					   list.items[idx[i]].local);
	}
	intake_status_ok(&r->result);
	auth_recipients_free(&list);
	return 0;
}

/* ---- results ----------------------------------------------------------- */

const struct intake_status *intake_result(const struct intake *job)
{
	return &job->status;
}

const char *intake_queue_id(const struct intake *job)
{
	return job->queue_id;
}

const char *intake_id(const struct intake *job)
{
	return job->id;
}

const struct intake_status *intake_rcpt_result(const struct intake *job, size_t i)
{
	return i < job->rcpt_count ? &job->rcpts[i].result : NULL;
}

uint32_t intake_rcpt_uid(const struct intake *job, size_t i)
{
	if (i >= job->rcpt_count)
		return 0;
	const struct intake_rcpt *r = &job->rcpts[i];
	for (size_t k = 0; k < r->target_count; k++) {
		const struct intake_target *t = &job->targets[r->targets[k]];
		if (t->local && t->store_result == 0 && t->uid != 0)
			return t->uid;
	}
	return 0;
}

void intake_free(struct intake **jobp)
{
	struct intake *job = *jobp;
	if (job == NULL)
		return;
	intake_cancel(job);
	filter_run_free(&job->run);
	message_free(job);
	buf_free(&job->field);
	buf_free(&job->kept);
	buf_free(&job->from_values);
	for (size_t i = 0; i < job->target_count; i++)
		free(job->targets[i].store_error);
	free(job->targets);
	free(job->rcpts);
	pool_free(&job->pool);
	free(job);
	*jobp = NULL;
}

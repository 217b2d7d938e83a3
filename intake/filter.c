/* The filter chain: the filters registered in this process, and each
 * job's run of them. A run owns a copy of everything its filters may read
 * (the envelope, the info), so that its end steps can finish in a thread
 * after the job that started them is gone. */
#include "intake/intake-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Set up once per process before the first job, read-only afterwards. */
static const struct intake_filter *registered[INTAKE_MAX_FILTERS];
static size_t registered_count;

void intake_filter_register(const struct intake_filter *f)
{
	if (registered_count == INTAKE_MAX_FILTERS)
		fatal("event=intake-filter-limit name=%s", f->name);
	registered[registered_count++] = f;
}

void intake_filter_reset(void)
{
	registered_count = 0;
}

struct intake_filter_run {
	struct pool *pool;
	struct intake_envelope env;
	struct intake_info info;
	const struct intake_filter *filters[INTAKE_MAX_FILTERS];
	void *states[INTAKE_MAX_FILTERS];
	size_t count;
	struct intake_verdict verdict;
};

static const char *pdup(struct pool *pool, const char *s)
{
	return s != NULL ? pool_strdup(pool, s) : NULL;
}

struct intake_filter_run *filter_run_new(struct intake *job)
{
	if (registered_count == 0)
		return NULL;
	struct intake_filter_run *run = xcalloc(1, sizeof(*run));
	run->pool = pool_new(1024);
	run->env = job->env;
	run->env.sender = pdup(run->pool, job->env.sender);
	run->env.user = pdup(run->pool, job->env.user);
	run->env.helo = pdup(run->pool, job->env.helo);
	run->env.remote_ip = pdup(run->pool, job->env.remote_ip);
	run->env.tls = pdup(run->pool, job->env.tls);
	run->env.id = pdup(run->pool, job->env.id);
	run->env.envid = pdup(run->pool, job->env.envid);
	run->env.mailbox = pdup(run->pool, job->env.mailbox);
	run->env.queue_id = pdup(run->pool, job->env.queue_id);
	run->env.prepend = pdup(run->pool, job->env.prepend);
	run->info.env = &run->env;
	run->info.cfg = job->cfg;
	run->info.has_local = job->local_count > 0;
	run->info.has_remote = job->remote_count > 0;
	buf_init(&run->verdict.prepend);
	buf_init(&run->verdict.prepend_remote);
	for (size_t i = 0; i < registered_count; i++) {
		const struct intake_filter *f = registered[i];
		void *state = f->begin != NULL ? f->begin(&run->info) : NULL;
		if (state == NULL)
			continue;
		run->filters[run->count] = f;
		run->states[run->count++] = state;
	}
	if (run->count == 0)
		filter_run_free(&run);
	return run;
}

bool filter_run_active(const struct intake_filter_run *run)
{
	return run != NULL && run->count > 0;
}

bool filter_run_touches_stored(const struct intake_filter_run *run)
{
	for (size_t i = 0; run != NULL && i < run->count; i++) {
		if (!run->filters[i]->remote_only)
			return true;
	}
	return false;
}

bool filter_run_header(struct intake_filter_run *run, const char *field, size_t len)
{
	for (size_t i = 0; i < run->count; i++) {
		const struct intake_filter *f = run->filters[i];
		if (f->header != NULL && !f->header(run->states[i], field, len))
			return false;   /* dropped: the later filters never see it */
	}
	return true;
}

void filter_run_header_end(struct intake_filter_run *run)
{
	for (size_t i = 0; i < run->count; i++) {
		if (run->filters[i]->header_end != NULL)
			run->filters[i]->header_end(run->states[i]);
	}
}

void filter_run_body(struct intake_filter_run *run, const char *data, size_t len)
{
	for (size_t i = 0; i < run->count; i++) {
		if (run->filters[i]->body != NULL)
			run->filters[i]->body(run->states[i], data, len);
	}
}

void filter_run_set_from_domain(struct intake_filter_run *run, const char *domain)
{
	run->info.from_domain = pdup(run->pool, domain);
}

const char *filter_run_from_domain(const struct intake_filter_run *run)
{
	return run->info.from_domain;
}

void filter_run_end(struct intake_filter_run *run, const char *from_domain)
{
	run->info.from_domain = from_domain;
	for (size_t i = 0; i < run->count; i++) {
		const struct intake_filter *f = run->filters[i];
		if (f->end != NULL)
			f->end(run->states[i], &run->info, &run->verdict);
		if (run->verdict.action != INTAKE_ACCEPT)
			break;
	}
}

const struct intake_verdict *filter_run_verdict(const struct intake_filter_run *run)
{
	return &run->verdict;
}

void filter_run_free(struct intake_filter_run **runp)
{
	struct intake_filter_run *run = *runp;
	if (run == NULL)
		return;
	for (size_t i = 0; i < run->count; i++) {
		if (run->filters[i]->free != NULL)
			run->filters[i]->free(run->states[i]);
	}
	buf_free(&run->verdict.prepend);
	buf_free(&run->verdict.prepend_remote);
	pool_free(&run->pool);
	free(run);
	*runp = NULL;
}

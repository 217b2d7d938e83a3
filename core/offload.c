/* A pool of threads for CPU work, completions back on the event loop
 * through an eventfd. Two lists under one mutex: jobs waiting for a
 * thread, and jobs finished and waiting for the loop. */
#include "core/offload.h"
#include "core/buf.h"
#include "core/log.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define OFFLOAD_MAX_THREADS 8

struct offload_job {
	struct offload_job *next;
	offload_work_fn *work;
	offload_done_fn *done;
	offload_release_fn *release;
	void *arg, *ctx;
	const char *log_ctx;       /* the submitter's, restored for done */
	bool cancelled;            /* loop side only */
};

struct job_list {
	struct offload_job *head, *tail;
};

struct offload {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct job_list pending, finished;
	bool stopping;
	int efd;
	struct event_base *base;
	struct event *ev;
	pthread_t threads[OFFLOAD_MAX_THREADS];
	unsigned nthreads;
};

static void list_push(struct job_list *l, struct offload_job *job)
{
	job->next = NULL;
	if (l->tail != NULL)
		l->tail->next = job;
	else
		l->head = job;
	l->tail = job;
}

static struct offload_job *list_take_all(struct job_list *l)
{
	struct offload_job *head = l->head;
	l->head = l->tail = NULL;
	return head;
}

static void *offload_thread(void *arg)
{
	struct offload *o = arg;
	pthread_mutex_lock(&o->lock);
	for (;;) {
		while (!o->stopping && o->pending.head == NULL)
			pthread_cond_wait(&o->wake, &o->lock);
		if (o->stopping)
			break;
		struct offload_job *job = o->pending.head;
		o->pending.head = job->next;
		if (o->pending.head == NULL)
			o->pending.tail = NULL;
		pthread_mutex_unlock(&o->lock);
		job->work(job->arg);
		pthread_mutex_lock(&o->lock);
		list_push(&o->finished, job);
		uint64_t one = 1;
		/* cannot fail short of a counter at 2^64-1 */
		(void)!write(o->efd, &one, sizeof(one));
	}
	pthread_mutex_unlock(&o->lock);
	return NULL;
}

static void finish_jobs(struct offload_job *job)
{
	while (job != NULL) {
		struct offload_job *next = job->next;
		if (!job->cancelled) {
			const char *saved = log_get_context();
			log_set_context(job->log_ctx);
			job->done(job->ctx, job->arg);
			log_set_context(saved);
		} else if (job->release != NULL)
			job->release(job->arg);
		free(job);
		job = next;
	}
}

static void offload_event_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct offload *o = arg;
	uint64_t count;
	if (read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		log_warn("event=offload-read-failed errno=%d", errno);
	pthread_mutex_lock(&o->lock);
	struct offload_job *done = list_take_all(&o->finished);
	pthread_mutex_unlock(&o->lock);
	finish_jobs(done);
}

struct offload *offload_new(struct event_base *base, unsigned threads)
{
	struct offload *o = xcalloc(1, sizeof(*o));
	o->base = base;
	if (threads < 1)
		threads = 1;
	if (threads > OFFLOAD_MAX_THREADS)
		threads = OFFLOAD_MAX_THREADS;
	pthread_mutex_init(&o->lock, NULL);
	pthread_cond_init(&o->wake, NULL);
	o->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (o->efd < 0)
		goto fail;
	o->ev = event_new(base, o->efd, EV_READ | EV_PERSIST, offload_event_cb, o);
	if (o->ev == NULL || event_add(o->ev, NULL) < 0)
		goto fail;
	/* signals stay with the loop's thread: the pool starts with all blocked */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (unsigned i = 0; i < threads; i++) {
		if (pthread_create(&o->threads[i], NULL, offload_thread, o) != 0)
			break;
		o->nthreads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (o->nthreads == threads)
		return o;
fail:
	offload_free(&o);
	return NULL;
}

void offload_free(struct offload **op)
{
	struct offload *o = *op;
	if (o == NULL)
		return;
	*op = NULL;
	pthread_mutex_lock(&o->lock);
	o->stopping = true;
	pthread_cond_broadcast(&o->wake);
	pthread_mutex_unlock(&o->lock);
	for (unsigned i = 0; i < o->nthreads; i++)
		pthread_join(o->threads[i], NULL);
	struct offload_job *jobs[2] = { list_take_all(&o->pending), list_take_all(&o->finished) };
	for (int i = 0; i < 2; i++) {
		for (struct offload_job *job = jobs[i]; job != NULL; job = job->next)
			job->cancelled = true;
		finish_jobs(jobs[i]);
	}
	if (o->ev != NULL)
		event_free(o->ev);
	if (o->efd >= 0)
		close(o->efd);
	pthread_cond_destroy(&o->wake);
	pthread_mutex_destroy(&o->lock);
	free(o);
}

struct offload_job *offload_submit(struct offload *o, offload_work_fn *work,
				   offload_done_fn *done, offload_release_fn *release,
				   void *arg, void *ctx)
{
	struct offload_job *job = xcalloc(1, sizeof(*job));
	job->work = work;
	job->done = done;
	job->release = release;
	job->arg = arg;
	job->ctx = ctx;
	job->log_ctx = log_get_context();
	pthread_mutex_lock(&o->lock);
	list_push(&o->pending, job);
	pthread_cond_signal(&o->wake);
	pthread_mutex_unlock(&o->lock);
	return job;
}

void offload_cancel(struct offload_job *job)
{
	if (job != NULL)
		job->cancelled = true;
}

struct event_base *offload_base(const struct offload *o)
{
	return o->base;
}

#ifndef POSTERN_OFFLOAD_H
#define POSTERN_OFFLOAD_H

/* CPU work that would stall a worker's event loop (a password hash is
 * ~100 ms of yescrypt) runs in a small pool of threads; its completion
 * runs back on the loop. A work function touches nothing but its own
 * argument: no libevent, no LMDB, no session, no logging.
 *
 *   job = offload_submit(o, work, done, release, arg, ctx);
 *   ... work(arg) in a pool thread, then done(ctx, arg) on the loop, which
 *   takes arg over. offload_cancel(job) when ctx goes away first: done is
 *   not called, release(arg) is instead, once the work is over (the job
 *   handle is gone then). done runs in the log context current at the
 *   submit (a connection's, which lives as long as the job's ctx). */

struct event_base;
struct offload;
struct offload_job;

typedef void offload_work_fn(void *arg);
typedef void offload_done_fn(void *ctx, void *arg);
typedef void offload_release_fn(void *arg);

/* threads: at least 1. NULL when a thread cannot be started. */
struct offload *offload_new(struct event_base *base, unsigned threads);
/* Waits for the work in progress, releases every argument without calling
 * done, joins the threads. */
void offload_free(struct offload **o);

struct offload_job *offload_submit(struct offload *o, offload_work_fn *work,
				   offload_done_fn *done, offload_release_fn *release,
				   void *arg, void *ctx);
void offload_cancel(struct offload_job *job);
/* The loop o reports to. */
struct event_base *offload_base(const struct offload *o);

#endif

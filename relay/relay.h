#ifndef POSTERN_RELAY_H
#define POSTERN_RELAY_H

/* The relay process (relay/): runs the outbound queue. `postern serve`
 * starts it as one supervised child (server_setup.relay_main); the admin
 * CLI uses the bounce helper for `postern queue delete --bounce`.
 * The queue itself is relay/queue.h. */

#include "core/config.h"
#include "core/services.h"

struct queue_entry;

/* Runs the queue until SIGTERM: new entries are picked up as soon as they
 * are committed (inotify), retries follow [relay] retry_schedule, expired
 * messages bounce. Returns 0 after a clean drain. */
int relay_main(const struct config *cfg, struct services *services);

/* Sends a failure DSN for every recipient of entry that is still pending
 * (reason as their diagnostic) and marks them failed in entry. Used by
 * `postern queue delete --bounce`. 0, or -1 with a message. */
int relay_bounce_pending(const struct config *cfg, struct services *services,
			 struct queue_entry *entry, const char *reason,
			 const char **error_r);

#endif

#ifndef POSTERN_SANDBOX_H
#define POSTERN_SANDBOX_H

/* The kernel's own walls around a child process, raised once it has
 * opened what it needs (docs/security.md):
 *
 * - PR_SET_NO_NEW_PRIVS;
 * - Landlock, where the kernel has it (ABI 2 or later): the files the
 *   process may touch are those under the paths sandbox.c lists for its
 *   kind (one table: add a path there), and nothing else;
 * - a seccomp allowlist (libseccomp): any other system call kills the
 *   process with SIGSYS after one log line (event=sandbox-violation);
 *   the master logs the death and starts a new one.
 *
 * And for the master, sandbox_master(): after binding, it keeps only the
 * capabilities it needs to reload and to fork children that drop to
 * run_as. */

#include <stdbool.h>

#include "core/config.h"

enum sandbox_kind { SANDBOX_WORKER, SANDBOX_RELAY, SANDBOX_AUTH, SANDBOX_WEB };

/* -1 with a reason when a wall could not be raised (Landlock missing is
 * not an error: logged once, the rest still applies). */
int sandbox_enter(const struct config *cfg, enum sandbox_kind kind, const char **error_r);
/* Whether the last sandbox_enter() raised Landlock. */
bool sandbox_landlocked(void);
/* The master, after binding its listeners: drops every capability but
 * those for reloading and forking (setuid, setgid, kill, chown,
 * dac_read_search) and sets no_new_privs. Only acts when root. */
int sandbox_master(const char **error_r);

/* Tests (POSTERN_SANDBOX_TEST in the environment, SIGUSR2 to a worker):
 * tries to open the files of data_dir a worker must or must not reach and
 * logs each result (event=sandbox-probe); with violate, then calls
 * execve(), which the sandbox answers with death. */
void sandbox_probe(const struct config *cfg, bool violate);

#endif

#ifndef POSTERN_ACCOUNT_END_H
#define POSTERN_ACCOUNT_END_H

/* Ending an account while the server runs (`postern user del`). The CLI
 * is another process than the workers holding the account's sessions, so
 * it leaves a mark every process can see: one small file per ended
 * account in DATA/mail/.ended/ (named by the first 32 hex digits of the
 * SHA-256 of the lowercased address, holding the address). A file rather
 * than a signal: the CLI may run as root or as run_as, needs no pid, and
 * the mark outlives the moment:
 * - workers watch the directory with inotify and end the account's
 *   sessions as soon as a mark appears (account_end_watch/consume);
 * - the store refuses to open a marked account, so a delivery that
 *   resolved the address before the deletion cannot bring its mailbox
 *   back for a later owner of the address;
 * - `postern user add` clears the mark.
 * It lives under mail/ so that it is on the same file system as the
 * mailboxes and reachable by a process confined to them. */

#include <stdbool.h>

/* Writes the mark for address (atomically: a temp file renamed into
 * place), given to run_as when running as root. */
int account_end_mark(const char *data_dir, const char *address, const char *run_as,
		     const char **error_r);
/* Removes the mark (no error when there is none). */
int account_end_clear(const char *data_dir, const char *address, const char **error_r);
/* True when address carries a mark (compared without case). */
bool account_end_marked(const char *data_dir, const char *address);

/* A non-blocking inotify descriptor reporting new marks, creating the
 * directory when missing; -1 with a reason when it cannot. */
int account_end_watch(const char *data_dir, const char **error_r);
/* Drains fd and calls fn once for every account marked since. */
void account_end_consume(int fd, const char *data_dir,
			 void (*fn)(const char *address, void *ctx), void *ctx);

#endif

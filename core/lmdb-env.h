#ifndef POSTERN_LMDB_ENV_H
#define POSTERN_LMDB_ENV_H

/* LMDB environments opened the same way everywhere (DESIGN.md, "LMDB
 * facts"): one file (MDB_NOSUBDIR) plus its lock file, both given to
 * run_as; MDB_NOTLS; a map sized up front; a map grown by another process
 * adopted. Used by auth/ (accounts, throttling) and relay/ (the queue). */

#include <lmdb.h>
#include <stddef.h>

/* Opens an LMDB environment at path (a file; MDB_NOSUBDIR | MDB_NOTLS are
 * added to flags) with the given map size, giving the files to run_as. */
int lmdb_env_open(const char *path, unsigned flags, size_t mapsize, unsigned maxdbs,
		  const char *run_as, MDB_env **env_r, const char **error_r);
/* A compacted copy of the environment at path into the new file dst
 * (mdb_env_copy2 with MDB_CP_COMPACT: one read snapshot, no free pages),
 * while other processes go on using it. A lock file it has to create is
 * given to run_as. */
int lmdb_env_copy_compact(const char *path, const char *dst, const char *run_as,
			  const char **error_r);
/* mdb_txn_begin that adopts a map grown by another process. */
int lmdb_env_txn_begin(MDB_env *env, unsigned flags, MDB_txn **txn_r);

#endif

/* stores.h -- the storage engines behind the store interface (core/store.h): SQLite, the
 * one a server runs on, and a memory store for tests. The library's wiring (lib/) picks one;
 * core only ever sees the interface. */
#ifndef AS_STORES_H
#define AS_STORES_H

#include "../core/store.h"

/* Opens (creating when missing) the SQLite database at `path`. A file that is not an
 * aftersale database, or one of a newer schema, or a corrupt one, is refused with AS_EIO and
 * a sentence; it is never recreated or half-read. Free with s->engine->close(s). */
int as__store_sqlite_open(const char *path, as_store **out, as_error *err);

/* Opens the SQLite database at `path` for reading only, for the tools that read a file a
 * server may be writing (`aftersale db`): no writer lock, nothing written, nothing migrated
 * (SQLITE_OPEN_READONLY; a WAL file is read through its shared-memory index, which the
 * server keeps). A missing file, one that is not aftersale's, one of a newer schema and one
 * of an older schema (with a sentence asking to start the server once, which migrates it)
 * are refused with AS_EIO. load() works; commit() refuses with AS_EIO; there is no sync.
 * Free with s->engine->close(s). */
int as__store_sqlite_open_readonly(const char *path, as_store **out, as_error *err);

/* A memory store: the same rows, kept in this process. Its rows outlive the runtimes
 * attached to it (close() lets go without freeing), so a test can free a runtime and restore
 * a new one from them; as__store_memory_free frees them. NULL on OOM. */
as_store *as__store_memory_new(void);
void as__store_memory_free(as_store *s);

#endif

/* lazy_deps.c - SQLite and libcrypto, loaded when the shim starts, not when
 * the process does.
 *
 * The shim is preloaded into every process the user starts, and most never
 * open a connection the shim cares about (`ls`, `make`, a shell). Linked
 * as DT_NEEDED, libcrypto and libsqlite3 cost every one of them their
 * loading and relocation, about 3 ms. So the library links neither: the
 * few functions the core calls are defined here, each forwarding to the
 * real one, which lazy_deps_load() finds with dlopen() at the shim's start
 * (the first connection it tracks). A process that already loaded them
 * gets its own copy back from dlopen: one SQLite, one libcrypto.
 *
 * Built with RETRYSAFE_LAZY_DEPS only (the glibc shim). The musl build
 * links static copies in, and the tool links them normally; for those,
 * lazy_deps_load() has nothing to do.
 */
#include "lazy_deps.h"

#ifndef RETRYSAFE_LAZY_DEPS

int lazy_deps_load(char *err, size_t err_size)
{
    (void)err, (void)err_size;
    return 0;
}

#else

#include <dlfcn.h>
#define OPENSSL_SUPPRESS_DEPRECATED   /* SHA256_Init and its kin: see key.c */
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <sqlite3.h>
#include <stdio.h>

/* The real functions, by the prototypes of their own headers. */
#define REAL(name) static __typeof__(name) *real_##name
REAL(sqlite3_bind_blob); REAL(sqlite3_bind_int); REAL(sqlite3_bind_int64);
REAL(sqlite3_bind_null); REAL(sqlite3_bind_text); REAL(sqlite3_busy_handler);
REAL(sqlite3_changes); REAL(sqlite3_close); REAL(sqlite3_column_blob);
REAL(sqlite3_column_bytes); REAL(sqlite3_column_int); REAL(sqlite3_column_int64);
REAL(sqlite3_column_text); REAL(sqlite3_db_mutex); REAL(sqlite3_errmsg);
REAL(sqlite3_errstr); REAL(sqlite3_exec); REAL(sqlite3_extended_errcode);
REAL(sqlite3_extended_result_codes); REAL(sqlite3_finalize);
REAL(sqlite3_get_autocommit); REAL(sqlite3_last_insert_rowid);
REAL(sqlite3_open_v2); REAL(sqlite3_prepare_v2); REAL(sqlite3_prepare_v3);
REAL(sqlite3_reset); REAL(sqlite3_step); REAL(sqlite3_stmt_status);
REAL(sqlite3_stricmp);
REAL(OPENSSL_cleanse); REAL(SHA256); REAL(SHA256_Final); REAL(SHA256_Init);
REAL(SHA256_Update);
#undef REAL

struct lazy_symbol {
    const char *name;
    void **slot;
    int crypto;                /* in libcrypto; else in libsqlite3 */
};

#define SQ(name) { #name, (void **)&real_##name, 0 }
#define CR(name) { #name, (void **)&real_##name, 1 }
static const struct lazy_symbol symbols[] = {
    SQ(sqlite3_bind_blob), SQ(sqlite3_bind_int), SQ(sqlite3_bind_int64),
    SQ(sqlite3_bind_null), SQ(sqlite3_bind_text), SQ(sqlite3_busy_handler),
    SQ(sqlite3_changes), SQ(sqlite3_close), SQ(sqlite3_column_blob),
    SQ(sqlite3_column_bytes), SQ(sqlite3_column_int), SQ(sqlite3_column_int64),
    SQ(sqlite3_column_text), SQ(sqlite3_db_mutex), SQ(sqlite3_errmsg),
    SQ(sqlite3_errstr), SQ(sqlite3_exec), SQ(sqlite3_extended_errcode),
    SQ(sqlite3_extended_result_codes), SQ(sqlite3_finalize),
    SQ(sqlite3_get_autocommit), SQ(sqlite3_last_insert_rowid),
    SQ(sqlite3_open_v2), SQ(sqlite3_prepare_v2), SQ(sqlite3_prepare_v3),
    SQ(sqlite3_reset), SQ(sqlite3_step), SQ(sqlite3_stmt_status),
    SQ(sqlite3_stricmp),
    CR(OPENSSL_cleanse), CR(SHA256), CR(SHA256_Final), CR(SHA256_Init),
    CR(SHA256_Update),
};
#undef SQ
#undef CR

/* The sonames the build linked against (the Makefile passes them). */
#ifndef RETRYSAFE_SQLITE_SONAME
#define RETRYSAFE_SQLITE_SONAME "libsqlite3.so.0"
#endif
#ifndef RETRYSAFE_CRYPTO_SONAME
#define RETRYSAFE_CRYPTO_SONAME "libcrypto.so.3"
#endif

int lazy_deps_load(char *err, size_t err_size)
{
    static int loaded;
    if (__atomic_load_n(&loaded, __ATOMIC_ACQUIRE))
        return 0;
    /* RTLD_LOCAL: nothing of theirs is added to the process's global
     * scope that was not there; NODELETE: never unloaded under us. */
    void *libs[2] = {
        dlopen(RETRYSAFE_SQLITE_SONAME, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE),
        dlopen(RETRYSAFE_CRYPTO_SONAME, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE),
    };
    for (int i = 0; i < 2; i++)
        if (!libs[i]) {
            snprintf(err, err_size, "cannot load %s: %s",
                     i ? RETRYSAFE_CRYPTO_SONAME : RETRYSAFE_SQLITE_SONAME, dlerror());
            return -1;
        }
    for (size_t i = 0; i < sizeof(symbols) / sizeof(symbols[0]); i++) {
        *symbols[i].slot = dlsym(libs[symbols[i].crypto], symbols[i].name);
        if (!*symbols[i].slot) {
            snprintf(err, err_size, "%s has no %s",
                     symbols[i].crypto ? RETRYSAFE_CRYPTO_SONAME : RETRYSAFE_SQLITE_SONAME,
                     symbols[i].name);
            return -1;
        }
    }
    __atomic_store_n(&loaded, 1, __ATOMIC_RELEASE);
    return 0;
}

/* ---- SQLite ---- */

int sqlite3_bind_blob(sqlite3_stmt *s, int i, const void *v, int n, void (*d)(void *))
{ return real_sqlite3_bind_blob(s, i, v, n, d); }
int sqlite3_bind_int(sqlite3_stmt *s, int i, int v)
{ return real_sqlite3_bind_int(s, i, v); }
int sqlite3_bind_int64(sqlite3_stmt *s, int i, sqlite3_int64 v)
{ return real_sqlite3_bind_int64(s, i, v); }
int sqlite3_bind_null(sqlite3_stmt *s, int i)
{ return real_sqlite3_bind_null(s, i); }
int sqlite3_bind_text(sqlite3_stmt *s, int i, const char *v, int n, void (*d)(void *))
{ return real_sqlite3_bind_text(s, i, v, n, d); }
int sqlite3_busy_handler(sqlite3 *db, int (*fn)(void *, int), void *arg)
{ return real_sqlite3_busy_handler(db, fn, arg); }
int sqlite3_changes(sqlite3 *db)
{ return real_sqlite3_changes(db); }
int sqlite3_close(sqlite3 *db)
{ return real_sqlite3_close(db); }
const void *sqlite3_column_blob(sqlite3_stmt *s, int i)
{ return real_sqlite3_column_blob(s, i); }
int sqlite3_column_bytes(sqlite3_stmt *s, int i)
{ return real_sqlite3_column_bytes(s, i); }
int sqlite3_column_int(sqlite3_stmt *s, int i)
{ return real_sqlite3_column_int(s, i); }
sqlite3_int64 sqlite3_column_int64(sqlite3_stmt *s, int i)
{ return real_sqlite3_column_int64(s, i); }
const unsigned char *sqlite3_column_text(sqlite3_stmt *s, int i)
{ return real_sqlite3_column_text(s, i); }
sqlite3_mutex *sqlite3_db_mutex(sqlite3 *db)
{ return real_sqlite3_db_mutex(db); }
const char *sqlite3_errmsg(sqlite3 *db)
{ return real_sqlite3_errmsg(db); }
const char *sqlite3_errstr(int rc)
{ return real_sqlite3_errstr(rc); }
int sqlite3_exec(sqlite3 *db, const char *sql, int (*cb)(void *, int, char **, char **),
                 void *arg, char **errmsg)
{ return real_sqlite3_exec(db, sql, cb, arg, errmsg); }
int sqlite3_extended_errcode(sqlite3 *db)
{ return real_sqlite3_extended_errcode(db); }
int sqlite3_extended_result_codes(sqlite3 *db, int on)
{ return real_sqlite3_extended_result_codes(db, on); }
int sqlite3_finalize(sqlite3_stmt *s)
{ return real_sqlite3_finalize(s); }
int sqlite3_get_autocommit(sqlite3 *db)
{ return real_sqlite3_get_autocommit(db); }
sqlite3_int64 sqlite3_last_insert_rowid(sqlite3 *db)
{ return real_sqlite3_last_insert_rowid(db); }
int sqlite3_open_v2(const char *file, sqlite3 **db, int flags, const char *vfs)
{ return real_sqlite3_open_v2(file, db, flags, vfs); }
int sqlite3_prepare_v2(sqlite3 *db, const char *sql, int n, sqlite3_stmt **s,
                       const char **tail)
{ return real_sqlite3_prepare_v2(db, sql, n, s, tail); }
int sqlite3_prepare_v3(sqlite3 *db, const char *sql, int n, unsigned int flags,
                       sqlite3_stmt **s, const char **tail)
{ return real_sqlite3_prepare_v3(db, sql, n, flags, s, tail); }
int sqlite3_reset(sqlite3_stmt *s)
{ return real_sqlite3_reset(s); }
int sqlite3_step(sqlite3_stmt *s)
{ return real_sqlite3_step(s); }
int sqlite3_stmt_status(sqlite3_stmt *s, int op, int reset)
{ return real_sqlite3_stmt_status(s, op, reset); }
int sqlite3_stricmp(const char *a, const char *b)
{ return real_sqlite3_stricmp(a, b); }

/* ---- libcrypto ---- */

void OPENSSL_cleanse(void *p, size_t n)
{ real_OPENSSL_cleanse(p, n); }
unsigned char *SHA256(const unsigned char *d, size_t n, unsigned char *md)
{ return real_SHA256(d, n, md); }
int SHA256_Final(unsigned char *md, SHA256_CTX *c)
{ return real_SHA256_Final(md, c); }
int SHA256_Init(SHA256_CTX *c)
{ return real_SHA256_Init(c); }
int SHA256_Update(SHA256_CTX *c, const void *d, size_t n)
{ return real_SHA256_Update(c, d, n); }

#endif

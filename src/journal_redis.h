/* journal_redis.h - what the files of the Redis journal share. Private to
 * journal_redis*.c; the backend itself is journal_redis_ops
 * (journal_backend.h). */
#ifndef RETRYSAFE_JOURNAL_REDIS_H
#define RETRYSAFE_JOURNAL_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "journal_backend.h"

/* Every key the journal uses starts with this (see journal_redis_lua.c). */
#define REDIS_PREFIX "retrysafe:"

/* The attempt log keeps about this many entries (two per attempt). */
#define REDIS_LOG_CAP "200000"

enum redis_script {
    REDIS_APPLY, REDIS_LOOK, REDIS_FORGET, REDIS_FINISH_OWNER, REDIS_KEEPALIVE,
    REDIS_SET_ONCE,
    REDIS_SCRIPTS
};
extern const char *const redis_scripts[REDIS_SCRIPTS];

/* An attempt's id, as the journal's callers know it: its epoch (see
 * journal_redis_lua.c) in the top bits, its number below. */
enum { RD_ID_NUMBER_BITS = 40 };

static inline int64_t rd_id_of(int64_t epoch, int64_t number)
{
    return epoch << RD_ID_NUMBER_BITS | number;
}

static inline int64_t rd_id_number(int64_t id)
{
    return id & (((int64_t)1 << RD_ID_NUMBER_BITS) - 1);
}

static inline int64_t rd_id_epoch(int64_t id)
{
    return id >> RD_ID_NUMBER_BITS;
}

/* One connection's state (journal_redis.c). */
struct rd;
struct redisReply;

/* Runs a command; returns its reply (freeReplyObject it), or NULL with
 * the failure reported (journal_fail). An error reply is a failure. */
struct redisReply *rd_command(struct rd *r, int argc, const char **argv,
                              const size_t *lens, const char *what);

/* The attempt log, read back (journal_redis_log.c): the journal_ops of
 * the same names, state being a struct rd. */
int rd_each(void *state, const struct journal_filter *f,
            int (*fn)(void *ctx, const struct journal_row *row), void *ctx);
int rd_stats(void *state, int (*fn)(void *ctx, const struct journal_host_stats *s),
             void *ctx);
int rd_prune(void *state, int64_t before_ms, int64_t *deleted);

#endif

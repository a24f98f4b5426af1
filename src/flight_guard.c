/* flight_guard.c - guard mode's decision for one request, made when it is
 * complete and before a byte of it leaves: send it, or answer it here (a
 * replay of the recorded answer, or a 409) without sending anything.
 *
 * The journal decides (journal_claim: one transaction, so of several
 * processes sending the same request exactly one sends it); this file
 * waits when a twin is in flight and turns the verdict into bytes the
 * application reads as if the server had sent them.
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "conn.h"
#include "flight.h"
#include "guard.h"
#include "journal.h"
#include "log.h"
#include "shim.h"
#include "clock.h"

/* How often a retry waiting for its twin asks the journal again: short
 * enough that the replay follows the answer closely, long enough that a
 * few waiting processes cost the journal little. */
#define GUARD_POLL_MS 25

static void pause_ms(int64_t ms)
{
    struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static enum guard_refusal refusal_of(enum journal_verdict v)
{
    if (v == JOURNAL_REFUSE_IN_FLIGHT)
        return GUARD_IN_FLIGHT;
    if (v == JOURNAL_REFUSE_TOO_LARGE)
        return GUARD_TOO_LARGE;
    return GUARD_UNKNOWN_OUTCOME;
}

/* The bytes the application gets instead of the server's. A recorded
 * answer that cannot be replayed (it should always parse: we recorded it
 * as a complete answer) is refused like one too large to keep. */
static int answer_bytes(const struct journal_claim *cl, const struct journal_attempt *a,
                        int64_t waited_ms, struct buf *out)
{
    if (cl->verdict == JOURNAL_REPLAY && guard_replay(cl->answer, cl->answer_len, out) == 0)
        return 0;
    struct guard_refusal_info info = {
        .why = cl->verdict == JOURNAL_REPLAY ? GUARD_TOO_LARGE : refusal_of(cl->verdict),
        .key = a->key, .method = a->method, .host = a->host, .path = a->path,
        .first_ms = cl->state.first_ms ? cl->state.first_ms : a->time_ms,
        .attempts = cl->state.attempts > 0 ? cl->state.attempts : 1,
        .owner_pid = cl->state.in_flight_pid, .waited_ms = waited_ms,
        .status = cl->state.answer_status,
    };
    return guard_refusal(&info, out);
}

static void log_verdict(const struct journal_claim *cl, const struct journal_attempt *a)
{
    static const char *const what[] = {
        [JOURNAL_SEND] = "sent", [JOURNAL_REPLAY] = "replayed the recorded answer",
        [JOURNAL_WAIT] = "waiting",
        [JOURNAL_REFUSE_UNKNOWN] = "refused (409): an earlier attempt's outcome is unknown",
        [JOURNAL_REFUSE_IN_FLIGHT] = "refused (409): its twin is still in flight",
        [JOURNAL_REFUSE_TOO_LARGE] = "refused (409): its answer was too large to keep",
    };
    log_msg(cl->verdict == JOURNAL_SEND ? CONFIG_LOG_DEBUG : CONFIG_LOG_INFO,
            "guard: %s %s%s attempt %d with key %s: %s", a->method, a->host, a->path,
            cl->attempt, a->key, what[cl->verdict]);
}

enum outbound_verdict flight_guard_claim(struct conn *c, struct journal *j,
                                         const struct journal_attempt *a, int64_t *id)
{
    const struct config *cfg = shim_config();
    int64_t start = clock_ms(CLOCK_MONOTONIC);
    int64_t deadline = start + (int64_t)cfg->wait_ms;
    struct journal_guard_rules rules = { 1, cfg->on_unknown_resend };
    struct journal_claim cl;
    *id = 0;
    for (;;) {
        int64_t now = clock_ms(CLOCK_MONOTONIC);
        rules.may_wait = now < deadline;
        if (journal_claim(j, a, &rules, &cl) != 0) {
            /* Never break the host: unguarded, but sent. */
            shim_journal_trouble(journal_error(j));
            return OUTBOUND_SEND;
        }
        if (cl.verdict != JOURNAL_WAIT)
            break;
        int64_t left = deadline - now;
        pause_ms(left < GUARD_POLL_MS ? (left > 0 ? left : 0) : GUARD_POLL_MS);
    }
    log_verdict(&cl, a);
    if (cl.verdict == JOURNAL_SEND) {
        *id = cl.id;
        return OUTBOUND_SEND;
    }
    struct buf bytes = { 0 };
    int rc = answer_bytes(&cl, a, clock_ms(CLOCK_MONOTONIC) - start, &bytes);
    free(cl.answer);
    if (rc == 0)
        rc = conn_add_answer(c, bytes.data, bytes.len);
    buf_free(&bytes);
    if (rc != 0) {
        /* No memory for the answer: the journal says it was not sent, and
         * nothing else can be done but send it. */
        log_msg(CONFIG_LOG_WARN, "guard: out of memory; %s %s%s sent after all",
                a->method, a->host, a->path);
        return OUTBOUND_SEND;
    }
    return OUTBOUND_ANSWERED;
}

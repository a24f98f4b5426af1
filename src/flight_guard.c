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

#include "claim_table.h"
#include "conn.h"
#include "flight.h"
#include "guard.h"
#include "journal.h"
#include "journal_queue.h"
#include "log.h"
#include "seen_filter.h"
#include "shim.h"
#include "clock.h"

/* How often a retry waiting for its twin asks the journal again: short
 * enough that the replay follows the answer closely, long enough that a
 * few waiting processes cost the journal little. */
#define GUARD_POLL_MS 25

/* Until the next poll: GUARD_POLL_MS, or the left ms if fewer. */
static void pause_for_poll(int64_t left)
{
    int64_t ms = left < GUARD_POLL_MS ? (left > 0 ? left : 0) : GUARD_POLL_MS;
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

/* A claim refused here, without the journal: its twin holds the key's
 * slot (claim_table.h): in flight past RETRYSAFE_WAIT, or dead without
 * its row, when the journal could not take the dead one's row either. */
static void refuse_here(enum journal_verdict verdict, const struct claim_holder *h,
                        struct journal_claim *cl)
{
    *cl = (struct journal_claim){ .verdict = verdict, .attempt = 2 };
    cl->state.attempts = 1;
    cl->state.first_ms = h->time_ms;
    cl->state.in_flight_pid = h->pid;
}

/* The attempt of a process that died holding a's slot may have left
 * before its row was written: the journal gets it now, outcome unknown,
 * so that the claim that follows reads it as any other. */
static int record_dead_twin(struct journal *j, const struct journal_attempt *a,
                            const struct claim_holder *h)
{
    struct journal_op op = { .kind = JOURNAL_OP_BEGIN, .attempt = *a, .ref = -1 };
    op.attempt.pid = h->pid;
    op.attempt.time_ms = h->time_ms;
    op.attempt.outcome = JOURNAL_UNKNOWN;
    log_msg(CONFIG_LOG_INFO, "guard: %s %s%s with key %s was sent by a process "
            "(%d) that ended before journaling it: its outcome is unknown", a->method,
            a->host, a->path, a->key, h->pid);
    return journal_apply(j, &op, 1);
}

/* What take_slot got. */
enum slot_result {
    SLOT_NONE,       /* claim through the journal, without a slot */
    SLOT_FRESH,      /* the slot is ours; a fast claim may follow */
    SLOT_TAKEN_OVER, /* ours, from a dead twin now journaled: the journal decides */
    SLOT_VERDICT     /* refused here: *cl */
};

/* Takes a's slot in the claim table, waiting for a twin that holds it. */
static enum slot_result take_slot(struct claim_table *t, struct seen_filter *seen,
                                  struct journal *j, const struct journal_attempt *a,
                                  int64_t deadline, struct claim_ref *ref,
                                  struct journal_claim *cl)
{
    struct claim_holder h;
    int marked = 0;
    for (;;) {
        enum claim_take r = claim_table_take(t, a->key, a->pid, a->time_ms, &h, ref);
        switch (r) {
        case CLAIM_TAKEN:
            return SLOT_FRESH;
        case CLAIM_TAKEN_FROM_DEAD:
            if (record_dead_twin(j, a, &h) == 0)
                return SLOT_TAKEN_OVER;
            /* Not journaled: the slot stays the dead one's, and this
             * claim, which cannot know more, is refused. */
            claim_table_give_back(ref, &h);
            refuse_here(JOURNAL_REFUSE_UNKNOWN, &h, cl);
            return SLOT_VERDICT;
        case CLAIM_BUSY:
        case CLAIM_BLOCKED:
            /* Another key's slot: not waited for. Our fingerprint's bits
             * are set first, so a twin that takes the slot after us finds
             * them and goes to the journal too, where one transaction
             * orders us; then the slot is looked at once more, in case a
             * twin took it in between. The fence keeps our bits before
             * that look, as flight_guard_claim's keeps a taker's slot
             * before its look at the bits. */
            if (marked)
                return SLOT_NONE;
            seen_filter_add(seen, a->fingerprint);
            __atomic_thread_fence(__ATOMIC_SEQ_CST);
            marked = 1;
            continue;
        case CLAIM_HELD:
            break;
        }
        int64_t left = deadline - clock_ms(CLOCK_MONOTONIC);
        if (left <= 0) {
            refuse_here(JOURNAL_REFUSE_IN_FLIGHT, &h, cl);
            return SLOT_VERDICT;
        }
        pause_for_poll(left);
    }
}

/* The journal's claim, waiting for a twin in flight as the deadline
 * allows. Returns 0, or -1 when the journal failed. */
static int journal_decides(struct journal *j, const struct journal_attempt *a,
                           int64_t deadline, struct journal_claim *cl)
{
    const struct config *cfg = shim_config();
    struct journal_guard_rules rules = { 1, cfg->on_unknown_resend };
    for (;;) {
        int64_t now = clock_ms(CLOCK_MONOTONIC);
        rules.may_wait = now < deadline;
        if (journal_claim(j, a, &rules, cl) != 0) {
            /* Never break the host: unguarded, but sent. */
            shim_journal_trouble(journal_error(j));
            return -1;
        }
        if (cl->verdict != JOURNAL_WAIT)
            return 0;
        pause_for_poll(deadline - now);
    }
}

enum outbound_verdict flight_guard_claim(struct conn *c, struct journal *j,
                                         const struct journal_attempt *a,
                                         struct journal_ticket **ticket)
{
    const struct config *cfg = shim_config();
    int64_t start = clock_ms(CLOCK_MONOTONIC);
    int64_t deadline = start + (int64_t)cfg->wait_ms;
    shim_check_shared_files();
    struct seen_filter *seen = shim_seen_filter();
    struct claim_table *table = seen ? shim_claim_table() : NULL;
    struct journal_claim cl = { 0 };
    struct claim_ref ref = { 0 };
    *ticket = NULL;
    enum slot_result slot = table ? take_slot(table, seen, j, a, deadline, &ref, &cl)
                                  : SLOT_NONE;
    /* Looked at holding the slot, before our own bits are set. Every
     * claimer sets its bits before it gives the slot back (a fast one only
     * once its row is written), and the fence orders our take before this
     * look; so "never seen" here means no row of this request exists or
     * can appear but ours. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    int unseen = slot == SLOT_FRESH && !seen_filter_maybe(seen, a->fingerprint);
    seen_filter_add(seen, a->fingerprint);
    if (unseen) {
        /* Nothing to read: no process ever sent this request. Sent, and
         * its row queued; the slot is held until the row is written. */
        *ticket = journal_queue_begin_claimed(a, &ref);
        if (*ticket)
            return OUTBOUND_SEND;
    }
    if (slot != SLOT_VERDICT) {
        /* Given back before the journal's claim, which may wait: a twin
         * that takes the slot now sees our bits and asks the journal too,
         * and a retry killed while it waits leaves no slot behind. */
        claim_table_release(&ref);
        if (journal_decides(j, a, deadline, &cl) != 0)
            return OUTBOUND_SEND;
    } else {
        /* Refused without the journal: our attempt is journaled refused. */
        struct journal_ticket *t = journal_queue_begin(a);
        journal_queue_finish(t, JOURNAL_REFUSED, 409, 0);
    }
    log_verdict(&cl, a);
    if (cl.verdict == JOURNAL_SEND) {
        /* The journal holds its row: a ticket for its outcome. */
        *ticket = cl.id ? journal_queue_ticket(cl.id) : NULL;
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

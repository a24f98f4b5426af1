/* guard.h - what guard mode answers in the server's place: a recorded answer
 * replayed, or a 409 that tells the program (often an agent) why its retry
 * was not sent and what to do instead.
 * Pure: no I/O, no globals; allocates only through struct buf.
 */
#ifndef RETRYSAFE_GUARD_H
#define RETRYSAFE_GUARD_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* A status that settles the operation: a retry must not do it again.
 * 2xx, 3xx and 4xx other than 408, 409, 425 and 429. 1xx, 5xx, 408, 409,
 * 425, 429 and anything outside 100..599 are not final (a retry may go out
 * again). */
int guard_status_is_final(int status);

/* The bytes a program gets instead of sending a request again. recorded is
 * a complete HTTP/1.x response exactly as the server sent it: status line,
 * header lines, the empty line, then the body in whatever framing it came
 * (Content-Length, chunked with trailers, or up to the close). The output
 * is the same message with:
 *   - every Connection, Keep-Alive and Proxy-Connection header line removed
 *     (names case-insensitive, whitespace before the colon tolerated), with
 *     the obs-fold continuation lines under it;
 *   - "Connection: close" and then "Idempotent-Replayed: true" added as the
 *     last header lines: the shim closes the read side after the replay, so
 *     the client must not reuse the connection;
 *   - everything else byte for byte the same: the status line, the other
 *     header lines in their order with their continuation lines, the empty
 *     line and the body.
 * Lines may end in CRLF or bare LF; added lines take the status line's.
 * Appends to out. Returns 0, or -1 when recorded does not start with
 * "HTTP/1.", has no empty line ending its head, or memory runs out; out's
 * length is then what it was. */
int guard_replay(const char *recorded, size_t len, struct buf *out);

enum guard_refusal {
    GUARD_UNKNOWN_OUTCOME,  /* an earlier attempt's outcome is unknown */
    GUARD_IN_FLIGHT,        /* a twin is still in flight after the wait */
    GUARD_TOO_LARGE         /* the answer was final but too large to keep for replay */
};

struct guard_refusal_info {
    enum guard_refusal why;
    const char *key;        /* the Idempotency-Key, 32 base64url chars */
    const char *method;     /* e.g. "POST" */
    const char *host;       /* normalised authority: "api.example.com", "127.0.0.1:8080" */
    const char *path;       /* without query */
    int64_t first_ms;       /* wall clock ms since the epoch of this key's first
                               attempt; 0 unknown */
    int attempts;           /* attempts made so far with this key (>= 1) */
    int owner_pid;          /* GUARD_IN_FLIGHT: process of the attempt in flight; 0 unknown */
    int64_t waited_ms;      /* GUARD_IN_FLIGHT: how long this retry waited */
    int status;             /* GUARD_TOO_LARGE: the status the first attempt got */
};

/* A complete "HTTP/1.1 409 Conflict" answer with an RFC 9457 problem
 * details body an agent can act on. Head, in this order: Content-Type
 * application/problem+json, the exact Content-Length, Connection: close,
 * Retrysafe-Refused (unknown-outcome, in-flight or too-large) and
 * Idempotency-Key. Body: one JSON object on one line, then LF; its members:
 * type ("tag:retrysafe,2026:<kind>"), title, status (409), detail,
 * idempotency_key, request {method, host, path}, first_attempt_at (RFC 3339
 * UTC with milliseconds; null when first_ms is 0 or below, or has no
 * 4-digit year), attempts, then
 * may_have_succeeded: true (unknown-outcome, in-flight) or succeeded: true
 * and original_status (too-large), then for in-flight owner_pid (null when
 * unknown) and waited_ms, and last next_steps, an array of imperative
 * sentences. Strings are JSON-escaped: '"', '\' and bytes below 0x20 (as
 * \u00xx); bytes from 0x80 pass through as they are. NULL strings count as
 * empty. key must be what the shim derived (it goes into a header line as
 * it is).
 * Appends to out. Returns 0, or -1 when why is none of the three or memory
 * runs out; out's length is then what it was. */
int guard_refusal(const struct guard_refusal_info *info, struct buf *out);

#endif

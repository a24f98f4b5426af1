/* fuzz_canon.c - the body canonicaliser (src/canon.c) under libFuzzer.
 *
 * Input, after the seed: a first line, the ignored fields as a comma-
 * separated list, then the body. The seed picks the kind (JSON, form, raw).
 * Properties, from canon.h:
 *   - the result depends on the input only: a second call gives the same;
 *   - on failure out is as it was, on success what was in it stays;
 *   - raw is the bytes as they are;
 *   - a canonical form is canonical: canonicalised again, with the same
 *     ignored fields or none, it comes back the same;
 *   - JSON: whitespace around the value changes nothing; form: empty pairs
 *     change nothing, and the output is only unreserved bytes, %XX in upper
 *     case, '=' and '&'.
 * The first line is also a Content-Type for canon_kind_of, whose verdict
 * must not depend on letter case nor, without parameters, on adding one.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "canon.h"
#include "fuzz_util.h"

#define MAX_IGNORE 8

struct ignore {
    char *names[MAX_IGNORE];
    size_t n;
};

static void grow(struct buf *b, const void *p, size_t n)
{
    fuzz_check(buf_append(b, p, n) == 0, "out of memory in the harness");
}

static void ignore_parse(struct ignore *ig, const char *s, size_t n)
{
    const char *end = s + n;

    ig->n = 0;
    while (s < end && ig->n < MAX_IGNORE) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *stop = comma ? comma : end;
        char *name = malloc((size_t)(stop - s) + 1);
        fuzz_check(name != NULL, "out of memory in the harness");
        memcpy(name, s, (size_t)(stop - s));
        name[stop - s] = '\0';
        ig->names[ig->n++] = name;
        s = comma ? comma + 1 : end;
    }
}

static void ignore_free(struct ignore *ig)
{
    for (size_t i = 0; i < ig->n; i++)
        free(ig->names[i]);
}

/* canon_body into a buffer that already holds some bytes: checks that they
 * stay and, on failure, that nothing was added. The result is the canonical
 * form alone (the caller frees it); rc says whether there is one. */
static struct buf canon(enum canon_kind kind, const char *body, size_t len,
                        const struct ignore *ig, int *rc)
{
    static const char before[] = "kept";
    struct buf out = { 0 };
    size_t mark = (size_t)(len % sizeof before);

    grow(&out, before, mark);
    *rc = canon_body(kind, body, len, (const char *const *)ig->names, ig->n, &out);
    fuzz_check(*rc == 0 || *rc == -1, "canon_body returned neither 0 nor -1");
    fuzz_check(out.len >= mark && (mark == 0 || memcmp(out.data, before, mark) == 0),
               "canon_body changed what was in out");
    fuzz_check(*rc == 0 || out.len == mark, "failed canon_body left bytes in out");
    if (mark) {
        memmove(out.data, out.data + mark, out.len - mark);
        out.len -= mark;
    }
    return out;
}

/* canon of the body with text around it must give want exactly. */
static void same_around(enum canon_kind kind, const char *pre, const char *body,
                        size_t len, const char *post, const struct ignore *ig,
                        const struct buf *want, const char *what)
{
    struct buf in = { 0 }, got;
    int rc;

    grow(&in, pre, strlen(pre));
    grow(&in, body, len);
    grow(&in, post, strlen(post));
    got = canon(kind, in.data, in.len, ig, &rc);
    fuzz_check(rc == 0, what);
    fuzz_same(want->data, want->len, got.data, got.len, what);
    buf_free(&got);
    buf_free(&in);
}

static int is_upper_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

/* Whether s[i] may stand where it is in a canonical form body. */
static int form_byte_ok(const char *s, size_t n, size_t i)
{
    char c = s[i];

    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
        return 1;
    if (c == '%')
        return n - i > 2 && is_upper_hex(s[i + 1]) && is_upper_hex(s[i + 2]);
    return c == '-' || c == '.' || c == '_' || c == '~' || c == '=' || c == '&';
}

static void check_form_output(const struct buf *out)
{
    for (size_t i = 0; i < out->len; i++) {
        fuzz_check(form_byte_ok(out->data, out->len, i),
                   "form output has a byte that should be escaped");
        if (out->data[i] == '%')
            i += 2;
    }
}

static void check_canonical(enum canon_kind kind, const char *body, size_t len,
                            const struct ignore *ig)
{
    static const struct ignore none = { { NULL }, 0 };
    struct buf first, again;
    int rc, rc2;

    first = canon(kind, body, len, ig, &rc);
    again = canon(kind, body, len, ig, &rc2);
    fuzz_check(rc == rc2, "canon_body gave two verdicts on one input");
    fuzz_same(first.data, first.len, again.data, again.len,
              "canon_body gave two results for one input");
    buf_free(&again);
    if (rc == 0 && kind == CANON_RAW)
        fuzz_same(body, len, first.data, first.len, "raw body changed");
    if (rc == 0 && kind != CANON_RAW) {
        same_around(kind, "", first.data, first.len, "", ig, &first,
                    "canonical form not canonical (same ignore list)");
        same_around(kind, "", first.data, first.len, "", &none, &first,
                    "canonical form not canonical (no ignore list)");
    }
    if (rc == 0 && kind == CANON_JSON)
        same_around(kind, " \t\r\n", body, len, "\n ", ig, &first,
                    "whitespace around JSON changed its canonical form");
    if (rc == 0 && kind == CANON_FORM) {
        check_form_output(&first);
        same_around(kind, "&&", body, len, "&", ig, &first,
                    "empty form pairs changed the canonical form");
    }
    buf_free(&first);
}

static void check_kind_of(const char *ct, size_t n)
{
    char *upper = malloc(n + 32), *lower = malloc(n + 32);
    enum canon_kind kind = canon_kind_of(ct, n);

    fuzz_check(upper && lower, "out of memory in the harness");
    for (size_t i = 0; i < n; i++) {
        char c = ct[i];
        upper[i] = c >= 'a' && c <= 'z' ? (char)(c - 32) : c;
        lower[i] = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
    }
    fuzz_check(canon_kind_of(upper, n) == kind && canon_kind_of(lower, n) == kind,
               "canon_kind_of depends on letter case");
    if (!memchr(ct, ';', n)) {
        memcpy(upper + n, ";charset=utf-8", 14);
        fuzz_check(canon_kind_of(upper, n + 14) == kind,
                   "a parameter changed canon_kind_of's verdict");
    }
    fuzz_check(canon_kind_of(NULL, n) == CANON_RAW, "NULL Content-Type not raw");
    free(upper);
    free(lower);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const enum canon_kind kinds[] = {
        CANON_JSON, CANON_JSON, CANON_JSON, CANON_JSON, CANON_FORM, CANON_FORM,
        CANON_FORM, CANON_RAW
    };
    struct fuzz_rng rng;
    struct ignore ig;

    fuzz_split_seed(&data, &size, &rng);
    const char *s = (const char *)data;
    const char *nl = memchr(s, '\n', size);
    size_t first = nl ? (size_t)(nl - s) : 0;
    const char *body = nl ? nl + 1 : s;
    size_t len = size - (size_t)(body - s);

    check_kind_of(s, first);
    ignore_parse(&ig, s, first);
    /* An empty body comes as NULL, as outbound.c hands it over. */
    check_canonical(kinds[fuzz_below(&rng, 8)], len ? body : NULL, len, &ig);
    ignore_free(&ig);
    return 0;
}

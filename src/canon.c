/* canon.c - canonical forms of JSON and form bodies (rules in canon.h).
 *
 * The JSON parser writes canonical text straight into the output while it
 * parses. An object's members are first written in the order they came;
 * when its '}' is reached the members are sorted and the object's region of
 * the output is rewritten in that order. So memory stays a small multiple
 * of the body and no tree is built; each byte is copied once per enclosing
 * object, at most CANON_MAX_DEPTH times.
 */
#include "canon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ascii.h"

/* ---- shared helpers ---------------------------------------------------- */

static inline int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Gives a scratch buffer memory up front, so that its data is never NULL
 * even when everything put in it is empty (memcmp and pointer arithmetic
 * on NULL are undefined even for length 0). */
static int scratch_init(struct buf *b)
{
    if (buf_append(b, "", 1) < 0)
        return -1;
    b->len = 0;
    return 0;
}

/* memcmp order, the shorter first when one is a prefix of the other. */
static int bytes_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c;
    return an < bn ? -1 : an > bn;
}

/* ---- Content-Type -------------------------------------------------------- */

enum canon_kind canon_kind_of(const char *ct, size_t len)
{
    size_t i = 0;
    if (!ct)
        return CANON_RAW;
    while (i < len && (ct[i] == ' ' || ct[i] == '\t'))
        i++;
    const char *type = ct + i;
    while (i < len && ct[i] != ';' && ct[i] != ' ' && ct[i] != '\t')
        i++;
    size_t n = (size_t)(ct + i - type);
    while (i < len && (ct[i] == ' ' || ct[i] == '\t'))
        i++;
    if (i < len && ct[i] != ';')
        return CANON_RAW;               /* "application/json garbage" */

    if (ascii_ieq(type, n, "application/json"))
        return CANON_JSON;
    if (ascii_ieq(type, n, "application/x-www-form-urlencoded"))
        return CANON_FORM;
    const char *slash = memchr(type, '/', n);
    if (slash && slash > type) {
        size_t sub = n - (size_t)(slash + 1 - type);
        if (sub > 5 && ascii_ieq(type + n - 5, 5, "+json"))
            return CANON_JSON;
    }
    return CANON_RAW;
}

/* ---- JSON --------------------------------------------------------------- */

struct seg {
    size_t off, len;        /* an unescaped key in json.keys */
};

struct json {
    const char *p, *end;
    struct buf *out;
    /* Scratch, used as a stack: the unescaped keys of the open objects'
     * members, then any string value being decoded. */
    struct buf keys;
    const char *const *ignore;
    size_t n_ignore;
    struct seg path[CANON_MAX_DEPTH];  /* keys from the top to this object */
    int depth;
};

struct member {
    size_t key_off, key_len;    /* in json.keys */
    size_t val_off, val_len;    /* in json.out */
    const char *key;            /* set only for sorting, when keys stays put */
    int dropped;
};

static int json_value(struct json *j, int plen);

static void skip_ws(struct json *j)
{
    while (j->p < j->end &&
           (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

/* Length of the well-formed UTF-8 sequence at s, or 0 (RFC 3629: no
 * overlong forms, no encoded surrogates, nothing past U+10FFFF). lo and hi
 * bound the second byte; the others are always 80..BF. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    size_t len = c < 0x80 ? 1 : c < 0xC2 ? 0 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF5 ? 4 : 0;
    if (c == 0xE0)
        lo = 0xA0;
    else if (c == 0xED)
        hi = 0x9F;
    else if (c == 0xF0)
        lo = 0x90;
    else if (c == 0xF4)
        hi = 0x8F;
    if (len <= 1)
        return len;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return len;
}

static int utf8_valid(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_len(u + i, n - i);
        if (k == 0)
            return 0;
        i += k;
    }
    return 1;
}

static int utf8_put(struct buf *dst, unsigned long cp)
{
    static const unsigned char lead[] = { 0, 0, 0xC0, 0xE0, 0xF0 };
    unsigned char b[4];
    size_t n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    for (size_t i = n - 1; i > 0; i--, cp >>= 6)
        b[i] = (unsigned char)(0x80 | (cp & 0x3F));
    b[0] = (unsigned char)(lead[n] | cp);
    return buf_append(dst, b, n);
}

static int hex4(struct json *j, unsigned long *v)
{
    if (j->end - j->p < 4)
        return -1;
    *v = 0;
    for (int i = 0; i < 4; i++) {
        int h = ascii_hex_value(j->p[i]);
        if (h < 0)
            return -1;
        *v = *v << 4 | (unsigned long)h;
    }
    j->p += 4;
    return 0;
}

/* One escape after its backslash, decoded into dst. */
static int json_escape(struct json *j, struct buf *dst)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    unsigned long cp, lo;
    if (j->p >= j->end)
        return -1;
    char c = *j->p++;
    if (c != 'u') {
        const char *at = c ? strchr(from, c) : NULL;
        return at ? buf_append(dst, &to[at - from], 1) : -1;
    }
    if (hex4(j, &cp) < 0 || (cp >= 0xDC00 && cp <= 0xDFFF))
        return -1;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u')
            return -1;
        j->p += 2;
        if (hex4(j, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF)
            return -1;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    return utf8_put(dst, cp);
}

/* A string at its opening quote, unescaped into dst. */
static int json_string(struct json *j, struct buf *dst)
{
    j->p++;
    for (;;) {
        const char *run = j->p;
        while (j->p < j->end && *j->p != '"' && *j->p != '\\' &&
               (unsigned char)*j->p >= 0x20)
            j->p++;
        /* A run ends at ASCII or the end, so it never splits a sequence. */
        size_t n = (size_t)(j->p - run);
        if (!utf8_valid(run, n) || buf_append(dst, run, n) < 0)
            return -1;
        if (j->p >= j->end || (unsigned char)*j->p < 0x20)
            return -1;
        if (*j->p++ == '"')
            return 0;
        if (json_escape(j, dst) < 0)
            return -1;
    }
}

/* Writes unescaped bytes as a canonical JSON string. */
static int emit_string(struct buf *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (buf_append(out, "\"", 1) < 0)
        return -1;
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        while (i < n && s[i] != '"' && s[i] != '\\' && (unsigned char)s[i] >= 0x20)
            i++;
        if (buf_append(out, s + run, i - run) < 0)
            return -1;
        if (i == n)
            break;
        unsigned char c = (unsigned char)s[i++];
        char esc[6] = { '\\', (char)c };
        size_t len = 2;
        switch (c) {
        case '"': case '\\': break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 0xF];
            len = 6;
        }
        if (buf_append(out, esc, len) < 0)
            return -1;
    }
    return buf_append(out, "\"", 1);
}

static int json_string_value(struct json *j)
{
    size_t mark = j->keys.len;
    int rc = json_string(j, &j->keys);
    if (rc == 0)
        rc = emit_string(j->out, j->keys.data + mark, j->keys.len - mark);
    j->keys.len = mark;
    return rc;
}

/* Digit i of the integer digits followed by the fraction digits. */
static inline char digit_at(const char *ip, size_t il, const char *fp, size_t i)
{
    return i < il ? ip[i] : fp[i - il];
}

/* Writes ±D×10^x, D being digits [lead, trail] of int ++ frac. */
static int number_emit(struct buf *out, int neg, const char *ip, size_t il,
                       const char *fp, size_t lead, size_t trail, long long x)
{
    if (neg && buf_append(out, "-", 1) < 0)
        return -1;
    if (lead < il && buf_append(out, ip + lead, (trail < il ? trail + 1 : il) - lead) < 0)
        return -1;
    if (trail >= il) {
        size_t from = lead > il ? lead : il;
        if (buf_append(out, fp + (from - il), trail + 1 - from) < 0)
            return -1;
    }
    if (x == 0)
        return 0;
    char e[24];
    int n = snprintf(e, sizeof e, "e%lld", x);
    return buf_append(out, e, (size_t)n);
}

static int json_number(struct json *j)
{
    const char *p = j->p, *end = j->end;
    int neg = p < end && *p == '-';
    p += neg;
    const char *ip = p;
    if (p < end && *p == '0')
        p++;
    else if (p < end && is_digit(*p))
        while (p < end && is_digit(*p))
            p++;
    else
        return -1;
    size_t il = (size_t)(p - ip), fl = 0;
    const char *fp = p;
    if (p < end && *p == '.') {
        fp = ++p;
        while (p < end && is_digit(*p))
            p++;
        fl = (size_t)(p - fp);
        if (fl == 0)
            return -1;
    }
    long long e = 0;
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        int eneg = p < end && *p == '-';
        if (p < end && (*p == '-' || *p == '+'))
            p++;
        const char *ep = p;
        while (p < end && is_digit(*p))
            p++;
        if (p == ep)
            return -1;
        while (ep < p && *ep == '0')
            ep++;
        if (p - ep > 18)        /* beyond what we fold exactly: go raw */
            return -1;
        for (; ep < p; ep++)
            e = e * 10 + (*ep - '0');
        if (eneg)
            e = -e;
    }
    j->p = p;

    /* The digits of int ++ frac, without leading and trailing zeros. */
    size_t n = il + fl, lead = 0, trail = n - 1;
    while (lead < n && digit_at(ip, il, fp, lead) == '0')
        lead++;
    if (lead == n)
        return buf_append(j->out, "0", 1);      /* -0 and 0.0e9 too */
    while (digit_at(ip, il, fp, trail) == '0')
        trail--;
    /* value = D × 10^(e - fl + (n - 1 - trail)) = D × 10^(e + il - 1 - trail) */
    long long x;
    if (__builtin_add_overflow(e, (long long)il - 1 - (long long)trail, &x))
        return -1;
    /* The written exponent must be one this parser takes back (18 digits
     * at most): "10e999999999999999999" would give "1e1000000000000000000",
     * a canonical form that does not canonicalise. */
    if (x > 999999999999999999LL || x < -999999999999999999LL)
        return -1;
    return number_emit(j->out, neg, ip, il, fp, lead, trail, x);
}

static int json_literal(struct json *j, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0)
        return -1;
    j->p += n;
    return buf_append(j->out, lit, n);
}

/* Whether the member key (in keys) of an object at path[0..plen) is one of
 * the ignored dotted paths. */
static int json_ignored(const struct json *j, int plen, size_t key_off, size_t key_len)
{
    for (size_t k = 0; k < j->n_ignore; k++) {
        const char *s = j->ignore[k];
        int i;
        for (i = 0; i <= plen; i++) {
            struct seg seg = i < plen ? j->path[i] : (struct seg){ key_off, key_len };
            const char *dot = strchr(s, '.');
            size_t n = dot ? (size_t)(dot - s) : strlen(s);
            if (n != seg.len || memcmp(s, j->keys.data + seg.off, n) != 0)
                break;
            if ((i < plen) != (dot != NULL))
                break;                  /* path and entry differ in length */
            if (dot)
                s = dot + 1;
        }
        if (i > plen)
            return 1;
    }
    return 0;
}

static int member_cmp(const void *a, const void *b)
{
    const struct member *x = a, *y = b;
    return bytes_cmp(x->key, x->key_len, y->key, y->key_len);
}

/* Rewrites out from region on (the members' values, in the order they came)
 * as the canonical object. */
static int object_emit(struct json *j, size_t region, struct member *m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        m[i].key = j->keys.data + m[i].key_off;
    qsort(m, n, sizeof *m, member_cmp);
    for (size_t i = 1; i < n; i++)
        if (member_cmp(&m[i - 1], &m[i]) == 0)
            return -1;                  /* duplicate key: ambiguous */

    struct buf *out = j->out;
    size_t vlen = out->len - region;
    char *vals = vlen ? malloc(vlen) : NULL;
    if (vlen && !vals)
        return -1;
    if (vlen)
        memcpy(vals, out->data + region, vlen);
    out->len = region;
    int rc = buf_append(out, "{", 1), first = 1;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (m[i].dropped)
            continue;
        if (!first)
            rc = buf_append(out, ",", 1);
        first = 0;
        if (rc == 0)
            rc = emit_string(out, m[i].key, m[i].key_len);
        if (rc == 0)
            rc = buf_append(out, ":", 1);
        if (rc == 0)
            rc = buf_append(out, vals + (m[i].val_off - region), m[i].val_len);
    }
    if (rc == 0)
        rc = buf_append(out, "}", 1);
    free(vals);
    return rc;
}

/* An object at its '{'. plen is the length of its key path from the top, or
 * -1 when it sits under an array (nothing in it is ignored). */
static int json_object(struct json *j, int plen)
{
    struct buf members = { 0 };
    size_t keys_mark = j->keys.len, region = j->out->len;
    int rc = -1;
    j->p++;
    skip_ws(j);
    if (j->p < j->end && *j->p == '}') {
        j->p++;
        rc = buf_append(j->out, "{}", 2);
        goto done;
    }
    for (;;) {
        struct member m = { 0 };
        skip_ws(j);
        if (j->p >= j->end || *j->p != '"')
            goto done;
        m.key_off = j->keys.len;
        if (json_string(j, &j->keys) < 0)
            goto done;
        m.key_len = j->keys.len - m.key_off;
        skip_ws(j);
        if (j->p >= j->end || *j->p++ != ':')
            goto done;
        m.dropped = plen >= 0 && json_ignored(j, plen, m.key_off, m.key_len);
        int child = -1;
        if (plen >= 0 && plen < CANON_MAX_DEPTH) {
            j->path[plen] = (struct seg){ m.key_off, m.key_len };
            child = plen + 1;
        }
        m.val_off = j->out->len;
        if (json_value(j, child) < 0)
            goto done;
        m.val_len = m.dropped ? 0 : j->out->len - m.val_off;
        if (m.dropped)
            j->out->len = m.val_off;
        if (buf_append(&members, &m, sizeof m) < 0)
            goto done;
        skip_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p >= j->end || *j->p++ != '}')
            goto done;
        break;
    }
    /* buf memory comes from realloc, aligned for any struct. */
    rc = object_emit(j, region, (struct member *)(void *)members.data,
                     members.len / sizeof(struct member));
done:
    j->keys.len = keys_mark;
    buf_free(&members);
    return rc;
}

static int json_array(struct json *j)
{
    j->p++;
    if (buf_append(j->out, "[", 1) < 0)
        return -1;
    skip_ws(j);
    if (j->p < j->end && *j->p == ']') {
        j->p++;
        return buf_append(j->out, "]", 1);
    }
    for (;;) {
        if (json_value(j, -1) < 0)
            return -1;
        skip_ws(j);
        if (j->p >= j->end)
            return -1;
        char c = *j->p++;
        if (c == ']')
            return buf_append(j->out, "]", 1);
        if (c != ',' || buf_append(j->out, ",", 1) < 0)
            return -1;
    }
}

static int json_value(struct json *j, int plen)
{
    int rc;
    skip_ws(j);
    if (j->p >= j->end)
        return -1;
    switch (*j->p) {
    case '{':
    case '[':
        if (j->depth == CANON_MAX_DEPTH)
            return -1;
        j->depth++;
        rc = *j->p == '{' ? json_object(j, plen) : json_array(j);
        j->depth--;
        return rc;
    case '"':
        return json_string_value(j);
    case 't':
        return json_literal(j, "true");
    case 'f':
        return json_literal(j, "false");
    case 'n':
        return json_literal(j, "null");
    default:
        return json_number(j);
    }
}

static int canon_json(const char *body, size_t len, const char *const *ignore,
                      size_t n_ignore, struct buf *out)
{
    struct json j = { .p = body, .end = body + len, .out = out,
                      .ignore = ignore, .n_ignore = n_ignore };
    int rc = scratch_init(&j.keys);
    if (rc == 0)
        rc = json_value(&j, 0);
    skip_ws(&j);
    if (rc == 0 && j.p != j.end)
        rc = -1;
    buf_free(&j.keys);
    return rc;
}

/* ---- application/x-www-form-urlencoded ------------------------------------ */

struct pair {
    size_t name_off, name_len, val_off, val_len;  /* in the decoded bytes */
    size_t index;                                 /* order in the body */
    const char *base;                             /* the decoded bytes, for sorting */
};

static int form_decode(struct buf *dst, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        while (i < n && s[i] != '+' && s[i] != '%')
            i++;
        if (buf_append(dst, s + run, i - run) < 0)
            return -1;
        if (i == n)
            break;
        char c = ' ';
        if (s[i] == '%') {
            if (n - i < 3 || ascii_hex_value(s[i + 1]) < 0 || ascii_hex_value(s[i + 2]) < 0)
                return -1;
            c = (char)(ascii_hex_value(s[i + 1]) << 4 | ascii_hex_value(s[i + 2]));
            i += 2;
        }
        i++;
        if (buf_append(dst, &c, 1) < 0)
            return -1;
    }
    return 0;
}

static int form_encode(struct buf *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        while (i < n && ((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
                         is_digit(s[i]) || s[i] == '-' || s[i] == '.' ||
                         s[i] == '_' || s[i] == '~'))
            i++;
        if (buf_append(out, s + run, i - run) < 0)
            return -1;
        if (i == n)
            break;
        unsigned char c = (unsigned char)s[i++];
        char esc[3] = { '%', hex[c >> 4], hex[c & 0xF] };
        if (buf_append(out, esc, 3) < 0)
            return -1;
    }
    return 0;
}

static int form_ignored(const char *name, size_t len, const char *const *ignore,
                        size_t n_ignore)
{
    for (size_t k = 0; k < n_ignore; k++)
        if (strlen(ignore[k]) == len && memcmp(ignore[k], name, len) == 0)
            return 1;
    return 0;
}

static int pair_cmp(const void *a, const void *b)
{
    const struct pair *x = a, *y = b;
    int c = bytes_cmp(x->base + x->name_off, x->name_len, y->base + y->name_off, y->name_len);
    if (c)
        return c;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Decodes every kept pair into dec and its place into pairs. */
static int form_split(const char *body, size_t len, const char *const *ignore,
                      size_t n_ignore, struct buf *dec, struct buf *pairs)
{
    size_t index = 0;
    for (const char *p = body, *end = body + len; p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        if (stop > p) {
            const char *eq = memchr(p, '=', (size_t)(stop - p));
            const char *name_end = eq ? eq : stop;
            struct pair pr = { .name_off = dec->len, .index = index++ };
            if (form_decode(dec, p, (size_t)(name_end - p)) < 0)
                return -1;
            pr.name_len = dec->len - pr.name_off;
            pr.val_off = dec->len;
            if (eq && form_decode(dec, eq + 1, (size_t)(stop - eq - 1)) < 0)
                return -1;
            pr.val_len = dec->len - pr.val_off;
            /* Checked after decoding, so a bad escape in an ignored pair
             * still fails like anywhere else. */
            if (form_ignored(dec->data + pr.name_off, pr.name_len, ignore, n_ignore))
                dec->len = pr.name_off;
            else if (buf_append(pairs, &pr, sizeof pr) < 0)
                return -1;
        }
        p = amp ? amp + 1 : end;
    }
    return 0;
}

static int canon_form(const char *body, size_t len, const char *const *ignore,
                      size_t n_ignore, struct buf *out)
{
    struct buf dec = { 0 }, pairs = { 0 };
    int rc = scratch_init(&dec);
    if (rc == 0)
        rc = form_split(body, len, ignore, n_ignore, &dec, &pairs);
    struct pair *pr = (struct pair *)(void *)pairs.data;  /* realloc'd: aligned */
    size_t n = pairs.len / sizeof *pr;
    for (size_t i = 0; rc == 0 && i < n; i++)
        pr[i].base = dec.data;
    if (rc == 0 && n > 1)
        qsort(pr, n, sizeof *pr, pair_cmp);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (i > 0)
            rc = buf_append(out, "&", 1);
        if (rc == 0)
            rc = form_encode(out, dec.data + pr[i].name_off, pr[i].name_len);
        if (rc == 0)
            rc = buf_append(out, "=", 1);
        if (rc == 0)
            rc = form_encode(out, dec.data + pr[i].val_off, pr[i].val_len);
    }
    buf_free(&dec);
    buf_free(&pairs);
    return rc;
}

/* ---- entry point ---------------------------------------------------------- */

int canon_body(enum canon_kind kind, const char *body, size_t len,
               const char *const *ignore, size_t n_ignore, struct buf *out)
{
    size_t mark = out->len;
    int rc;
    /* The parsers do pointer arithmetic on body, undefined on NULL even
     * when len is 0; a request without a body does come as NULL. */
    if (!body)
        body = "";
    switch (kind) {
    case CANON_JSON:
        rc = canon_json(body, len, ignore, n_ignore, out);
        break;
    case CANON_FORM:
        rc = canon_form(body, len, ignore, n_ignore, out);
        break;
    case CANON_RAW:
    default:
        rc = buf_append(out, body, len);
        break;
    }
    if (rc < 0)
        out->len = mark;
    return rc;
}

/* http_internal.h - what the request and response parsers share.
 *
 * Both parsers must judge a header line, a Content-Length and a chunk-size
 * line by one set of rules: a byte one of them took and the other refused
 * would make the two directions of a connection disagree about framing.
 * So the rules live here, once, as static inline functions. Only http.c and
 * http_response.c include this file; nothing in it is part of the module's
 * interface.
 */
#ifndef RETRYSAFE_HTTP_INTERNAL_H
#define RETRYSAFE_HTTP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "http.h"

/* ---- characters ------------------------------------------------------- */

/* RFC 9110 tchar: ! # $ % & ' * + - . ^ _ ` | ~ DIGIT ALPHA */
static inline int is_tchar(unsigned char c)
{
    /* The 128 ASCII bytes as a bit map. */
    static const uint64_t map[2] = {
        UINT64_C(0x03ff6cfa00000000), UINT64_C(0x57ffffffc7fffffe)
    };
    return c < 128 && ((map[c >> 6] >> (c & 63)) & 1);
}

/* field-value bytes: VCHAR, obs-text, SP, HTAB; no other CTL. */
static inline int is_value_char(unsigned char c)
{
    return c >= 0x20 ? c != 0x7f : c == '\t';
}

static inline int is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static inline int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static inline size_t skip_ows(const char *s, size_t i, size_t n)
{
    while (i < n && is_ows((unsigned char)s[i]))
        i++;
    return i;
}

/* The reason for refusing byte c where the grammar wanted something else.
 * A CR left inside a line (after its terminator's CR is removed) is bare:
 * naming that is kinder to whoever reads the log than "bad header value". */
static inline const char *bad_byte(char c, const char *why)
{
    return c == '\r' ? "bare CR in line" : why;
}

/* ---- field lines -------------------------------------------------------- */

struct field {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* Splits a non-empty header or trailer line (terminator removed). */
static inline const char *split_field(const char *s, size_t n, struct field *f)
{
    size_t i = 0, b, e;

    if (is_ows((unsigned char)s[0]))
        return "obs-fold or leading whitespace";
    while (i < n && is_tchar((unsigned char)s[i]))
        i++;
    if (i == n)
        return "bad header name";
    if (i > 0 && is_ows((unsigned char)s[i]))
        return "whitespace before colon";
    if (i == 0 || s[i] != ':')
        return bad_byte(s[i], "bad header name");
    b = skip_ows(s, i + 1, n);
    e = n;
    while (e > b && is_ows((unsigned char)s[e - 1]))
        e--;
    for (size_t k = b; k < e; k++)
        if (!is_value_char((unsigned char)s[k]))
            return bad_byte(s[k], "bad header value");
    f->name = s;
    f->name_len = i;
    f->value = s + b;
    f->value_len = e - b;
    return NULL;
}

/* 1*DIGIT at s[*i], into *out; advances *i. */
static inline const char *parse_decimal(const char *s, size_t n, size_t *i,
                                        uint64_t *out)
{
    size_t start = *i;
    uint64_t v = 0;

    for (; *i < n && s[*i] >= '0' && s[*i] <= '9'; (*i)++) {
        unsigned d = (unsigned)(s[*i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return "Content-Length overflow";
        v = v * 10 + d;
    }
    if (*i == start)
        return "bad Content-Length";
    *out = v;
    return NULL;
}

/* A Content-Length value: 1*DIGIT, or a list of equal ones ("5, 5"), which
 * RFC 9110 §8.6 lets a recipient take as one; so are repeated headers that
 * agree, which is what *seen and *length carry from one to the next. Any
 * disagreement, or an empty member, is refused. */
static inline const char *content_length_list(const char *v, size_t n,
                                              int *seen, uint64_t *length)
{
    size_t i = 0;

    for (;;) {
        uint64_t x;
        const char *why = parse_decimal(v, n, &i, &x);
        if (why)
            return why;
        if (*seen && x != *length)
            return "conflicting Content-Length";
        *seen = 1;
        *length = x;
        i = skip_ows(v, i, n);
        if (i == n)
            return NULL;
        if (v[i] != ',')
            return "bad Content-Length";
        i = skip_ows(v, i + 1, n);
    }
}

/* ---- chunks ------------------------------------------------------------- */

/* Chunk extensions are ignored but must look like them: optional
 * whitespace, ';', then field-value bytes (so no CR). */
static inline const char *chunk_extension(const char *s, size_t n)
{
    size_t i;

    if (n == 0)
        return NULL;
    i = skip_ows(s, 0, n);
    if (i == n || s[i] != ';')
        return i == n ? "bad chunk size" : bad_byte(s[i], "bad chunk size");
    for (; i < n; i++)
        if (!is_value_char((unsigned char)s[i]))
            return bad_byte(s[i], "bad chunk extension");
    return NULL;
}

/* A chunk-size line (terminator removed): 1*HEXDIG, then extensions. */
static inline const char *chunk_size(const char *s, size_t n, uint64_t *size)
{
    uint64_t v = 0;
    size_t i = 0;

    for (; i < n; i++) {
        int d = hex_value((unsigned char)s[i]);
        if (d < 0)
            break;
        if (v > UINT64_MAX >> 4)
            return "chunk size overflow";
        v = v << 4 | (uint64_t)d;
    }
    if (i == 0)
        return n ? bad_byte(s[0], "bad chunk size") : "bad chunk size";
    *size = v;
    return chunk_extension(s + i, n - i);
}

#endif

/* canon.h - canonical forms of request bodies, so that a request the model
 * regenerated with other key order or spacing gets the same fingerprint.
 * Pure: no I/O, no globals; allocates only through struct buf and malloc.
 *
 * Canonical JSON (RFC 8259, strict):
 *   - Grammar as the RFC: any value at the top, whitespace only space, tab,
 *     LF, CR; no trailing commas, comments, single quotes, NaN/Infinity,
 *     leading zeros, '+' signs or byte-order mark. Nesting deeper than
 *     CANON_MAX_DEPTH arrays and objects fails.
 *   - No whitespace between tokens.
 *   - Objects: members sorted by their keys' unescaped UTF-8 bytes (memcmp;
 *     a key that is a prefix of another sorts first). Two keys equal after
 *     unescaping ("a" and "\u0061") fail: servers disagree on which wins.
 *   - Arrays keep their order.
 *   - Strings: escapes decoded (\uXXXX with surrogate pairs to UTF-8), then
 *     written as raw UTF-8 except '"' as \", '\' as \\, and bytes below 0x20
 *     as \b \f \n \r \t or else \u00xx (lower-case hex). Nothing else is
 *     escaped, not '/', DEL or U+2028. Invalid UTF-8 (overlong forms,
 *     encoded surrogates, beyond U+10FFFF), lone surrogates and raw control
 *     bytes fail.
 *   - Numbers by exact decimal value, never through a double: the digits D
 *     without leading or trailing zeros and an exponent X with
 *     value = D x 10^X, written "[-]D" when X is 0 and "[-]DeX" otherwise.
 *     So 1, 1.0, 1e0, 10e-1 and 0.1e1 are "1"; 100 is "1e2"; 1.50 is
 *     "15e-1"; 1e400 is "1e400"; every zero (-0, 0.0e7) is "0". An exponent
 *     written with more than 18 significant digits fails.
 *   - true, false, null as they are.
 *   - Ignored fields are dotted paths of keys through objects from the top:
 *     "nonce" drops the top-level member "nonce", "meta.nonce" drops member
 *     "nonce" of the top-level object "meta". Each segment matches one
 *     unescaped key byte for byte, so a key containing '.' is never matched.
 *     Arrays end a path: members of objects inside arrays are never dropped.
 *     A dropped member's value must still parse, and its key still counts
 *     for duplicates.
 *
 * Canonical form (application/x-www-form-urlencoded):
 *   - Split on '&'; empty pairs are dropped; each pair splits at its first
 *     '=' (a pair without '=' has an empty value, so "a" is "a=").
 *   - Names and values percent-decoded: '+' is a space, %XX either case; a
 *     '%' without two hex digits fails. Other bytes are taken as they are.
 *   - Pairs whose decoded name equals an ignored name are dropped (plain
 *     names: no dotted paths).
 *   - Pairs sorted by name bytes; pairs with the same name keep their order
 *     (a=2&a=1 is a list, not a set; "tags" in another order is another
 *     request).
 *   - Re-encoded: A-Z a-z 0-9 - . _ ~ as they are, every other byte %XX in
 *     upper-case hex (space is %20), joined with '=' and '&'.
 */
#ifndef RETRYSAFE_CANON_H
#define RETRYSAFE_CANON_H

#include <stddef.h>

#include "buf.h"

#define CANON_MAX_DEPTH 64

enum canon_kind { CANON_RAW, CANON_JSON, CANON_FORM };

/* The kind a Content-Type value calls for: application/json, or any
 * type/subtype whose subtype ends in "+json", is JSON;
 * application/x-www-form-urlencoded is FORM; anything else (and NULL) RAW.
 * Case-insensitive; parameters such as charset are ignored. */
enum canon_kind canon_kind_of(const char *content_type, size_t len);

/* Appends the canonical form of body to out (RAW: the bytes as they are).
 * ignore holds n_ignore NUL-terminated field names (see above); it may be
 * NULL when n_ignore is 0, and body may be NULL when len is 0 (a request
 * without a body). Returns 0, or -1 when the body does not parse as
 * kind (the caller fingerprints the raw bytes) or memory runs out; out's
 * length is then what it was. */
int canon_body(enum canon_kind kind, const char *body, size_t len,
               const char *const *ignore, size_t n_ignore, struct buf *out);

#endif

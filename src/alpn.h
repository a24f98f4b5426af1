/* alpn.h - ALPN protocol lists (RFC 7301 wire format: each name prefixed by
 * its length byte). Pure. */
#ifndef RETRYSAFE_ALPN_H
#define RETRYSAFE_ALPN_H

#include <stddef.h>

/* protos without its "h2" entries, written to out. Returns the new length;
 * 0 when protos offers no h2, offers nothing else (a client that speaks
 * only h2 is left as it is), is malformed, or does not fit in size. */
unsigned int alpn_without_h2(const unsigned char *protos, unsigned int len,
                             unsigned char *out, size_t size);

#endif

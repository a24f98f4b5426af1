/* alpn.c - ALPN protocol lists. */
#include "alpn.h"

#include <string.h>

unsigned int alpn_without_h2(const unsigned char *protos, unsigned int len,
                             unsigned char *out, size_t size)
{
    unsigned int o = 0, i = 0;
    int had_h2 = 0;
    while (i < len) {
        unsigned int n = protos[i];
        if (n == 0 || i + 1 + n > len)
            return 0;
        if (n == 2 && memcmp(protos + i + 1, "h2", 2) == 0) {
            had_h2 = 1;
        } else {
            if (o + 1 + n > size)
                return 0;
            memcpy(out + o, protos + i, 1 + n);
            o += 1 + n;
        }
        i += 1 + n;
    }
    return had_h2 ? o : 0;
}

/* buf.c - a growable byte buffer. */
#include "buf.h"

#include <stdlib.h>
#include <string.h>

int buf_append(struct buf *b, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    if (len > b->cap - b->len) {
        size_t need = b->len + len;
        if (need < b->len)
            return -1;
        size_t cap = b->cap ? b->cap : 256;
        while (cap < need)
            cap = cap * 2 > cap ? cap * 2 : need;
        char *grown = realloc(b->data, cap);
        if (!grown)
            return -1;
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

void buf_reset(struct buf *b, size_t keep)
{
    b->len = 0;
    if (b->cap > keep)
        buf_free(b);
}

void buf_consume(struct buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

/* buf.h - a growable byte buffer. */
#ifndef RETRYSAFE_BUF_H
#define RETRYSAFE_BUF_H

#include <stddef.h>

struct buf {
    char *data;
    size_t len;
    size_t cap;
};

/* Appends len bytes; returns 0, or -1 when out of memory (buf unchanged). */
int buf_append(struct buf *b, const void *data, size_t len);
/* Empties the buffer; gives memory back when it grew past keep bytes, so a
 * long-lived connection does not pin its largest request forever. */
void buf_reset(struct buf *b, size_t keep);
/* Drops the first n bytes. */
void buf_consume(struct buf *b, size_t n);
void buf_free(struct buf *b);

#endif

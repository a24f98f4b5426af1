/* clock.h - milliseconds on a clock, for deadlines (CLOCK_MONOTONIC) and
 * the journal's timestamps (CLOCK_REALTIME). */
#ifndef RETRYSAFE_CLOCK_H
#define RETRYSAFE_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif

/* tool_journal.c - what the journal commands share. */
#include "tool_journal.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "location.h"
#include "tool.h"

struct journal *tool_open_journal(const char *option)
{
    char path[PATH_MAX];
    return tool_open_journal_at(option, path, sizeof(path));
}

struct journal *tool_open_journal_at(const char *option, char *path, size_t size)
{
    const char *configured = option ? option : getenv("RETRYSAFE_JOURNAL");
    if (configured && !*configured)
        configured = NULL;
    switch (location_journal(configured, path, size)) {
    case LOCATION_OFF:
        tool_error("the journal is off (RETRYSAFE_JOURNAL=off): nothing was recorded");
        return NULL;
    case LOCATION_NONE:
        tool_error("no journal location: set RETRYSAFE_JOURNAL or HOME");
        return NULL;
    case LOCATION_FOUND:
        break;
    }
    struct stat st;
    if (strncmp(path, "redis://", 8) != 0 && stat(path, &st) != 0) {
        tool_error("no journal at %s: %s (nothing recorded yet?)", path, strerror(errno));
        return NULL;
    }
    char err[512] = "";
    struct journal *j = journal_open(path, 0, err, sizeof(err));
    if (!j)
        tool_error("cannot open the journal %s: %s", path, err);
    return j;
}

int64_t tool_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

enum journal_outcome tool_outcome(const struct journal_row *row)
{
    if (row->outcome != JOURNAL_PENDING || row->pid <= 0)
        return row->outcome;
    if (kill(row->pid, 0) != 0 && errno == ESRCH)
        return JOURNAL_UNKNOWN;
    return JOURNAL_PENDING;
}

void tool_iso_time(int64_t ms, char *out, size_t size)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char date[32];
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, size, "%s.%03dZ", date, (int)(ms % 1000));
}

void tool_json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(out, "\\u%04x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

void tool_table_field(FILE *out, const char *s, int width)
{
    int n = 0;
    for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) {
        if (*p < 0x20 || *p >= 0x7f)
            n += fprintf(out, "\\x%02x", *p);
        else
            n += fputc(*p, out) != EOF;
    }
    for (; n < width; n++)
        fputc(' ', out);
}

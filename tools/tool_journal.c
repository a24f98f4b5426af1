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

/* The shim refuses a journal whose directories another user could change
 * (location_journal_private), and so does a command that writes to it
 * (prune, forget): its changes would go to a file the shim does not use,
 * or to one swapped in under it. A command that only reads (dump, stats)
 * warns and goes on: looking at such a journal is how a person finds out
 * what is in it, and what it prints is data only, escaped (tool_table_field,
 * tool_json_string). */
static struct journal *open_journal(const char *option, char *path, size_t size,
                                    int read_only)
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
    if (journal_scheme_len(path) == 0 && stat(path, &st) != 0) {
        tool_error("no journal at %s: %s (nothing recorded yet?)", path, strerror(errno));
        return NULL;
    }
    char err[512] = "";
    if (location_journal_private(path, err, sizeof(err)) != 0) {
        if (!read_only) {
            tool_error("%s; the shim does not use it either", err);
            return NULL;
        }
        fprintf(stderr, "retrysafe: warning: %s; the shim does not use it, reading it "
                "anyway\n", err);
    }
    struct journal *j = journal_open(path, 0, err, sizeof(err));
    char shown[PATH_MAX];
    location_describe(path, shown, sizeof(shown));
    if (!j)
        tool_error("cannot open the journal %s: %s", shown, err);
    return j;
}

struct journal *tool_open_journal(const char *option)
{
    char path[PATH_MAX];
    return open_journal(option, path, sizeof(path), 0);
}

struct journal *tool_open_journal_at(const char *option, char *path, size_t size)
{
    return open_journal(option, path, size, 0);
}

struct journal *tool_open_journal_to_read(const char *option)
{
    char path[PATH_MAX];
    return open_journal(option, path, sizeof(path), 1);
}

int64_t tool_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

enum journal_outcome tool_outcome(const struct journal_row *row)
{
    if (row->outcome != JOURNAL_PENDING || row->pid <= 0 || row->settled)
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

/* The length of the well-formed UTF-8 sequence at p (RFC 3629: no
 * overlong forms, no surrogates, nothing past U+10FFFF) with its code
 * point in *cp, or 0 when p does not start one. */
static size_t utf8_sequence(const unsigned char *p, unsigned *cp)
{
    size_t n = p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc0 ? 2 : 0;
    static const unsigned least[] = { 0, 0, 0x80, 0x800, 0x10000 };
    if (n == 0 || p[0] > 0xf4)
        return 0;
    unsigned c = p[0] & (0x7f >> n);
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;   /* also stops at the NUL */
        c = c << 6 | (p[i] & 0x3f);
    }
    if (c < least[n] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return n;
}

void tool_json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; p && *p;) {
        unsigned cp = *p;
        size_t n = *p < 0x80 ? 1 : utf8_sequence(p, &cp);
        if (n == 0) {
            fputs("\\ufffd", out);   /* not UTF-8: JSON cannot carry it */
            p++;
            continue;
        }
        if (cp == '"' || cp == '\\')
            fprintf(out, "\\%c", (int)cp);
        else if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029)
            fprintf(out, "\\u%04x", cp);   /* C0, DEL, C1, JS line ends */
        else
            fwrite(p, 1, n, out);
        p += n;
    }
    fputc('"', out);
}

void tool_table_field(FILE *out, const char *s, int width)
{
    int n = 0;
    for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) {
        if (*p < 0x20 || *p >= 0x7f)
            n += fprintf(out, "\\x%02x", *p);
        else if (*p == '\\')
            n += fprintf(out, "\\\\");   /* so a literal "\\x1b" is not taken for ESC */
        else
            n += fputc(*p, out) != EOF;
    }
    for (; n < width; n++)
        fputc(' ', out);
}

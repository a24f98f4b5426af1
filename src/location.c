/* location.c - where the journal is. */
#include "location.h"

#include <stdio.h>
#include <string.h>

#include "journal.h"
#include "private_path.h"
#include "redis_url.h"
#include "secret.h"

static int fits(int n, size_t size)
{
    return n > 0 && (size_t)n < size;
}

enum location_kind location_journal(const char *configured, char *out, size_t size)
{
    if (configured && strcmp(configured, "off") == 0)
        return LOCATION_OFF;
    if (configured)
        return fits(snprintf(out, size, "%s", configured), size) ? LOCATION_FOUND
                                                                 : LOCATION_NONE;
    char dir[4096];
    if (secret_state_dir(dir, sizeof(dir)) != 0)
        return LOCATION_NONE;
    return fits(snprintf(out, size, "%s/journal.db", dir), size) ? LOCATION_FOUND
                                                                 : LOCATION_NONE;
}

int location_journal_private(const char *path, char *err, size_t err_size)
{
    char why[400];
    if (journal_scheme_len(path) > 0 || private_path_check_file(path, why, sizeof(why)) == 0)
        return 0;
    snprintf(err, err_size, "refusing journal %s: %s", path, why);
    return -1;
}

void location_describe(const char *location, char *out, size_t size)
{
    size_t scheme = journal_scheme_len(location);
    struct redis_url url;
    char err[8];
    if (scheme == 0)
        snprintf(out, size, "%s", location);
    else if (redis_url_parse(location, &url, err, sizeof(err)) == 0)
        redis_url_describe(&url, out, size);
    else
        snprintf(out, size, "%.*s://(a malformed location)", (int)scheme, location);
}

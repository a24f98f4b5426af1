/* scratch.c - a fresh directory per test. */
#include "scratch.h"

#include <check.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

void pathf(char *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, PATH_MAX, fmt, ap);
    va_end(ap);
    ck_assert_int_lt(n, PATH_MAX);
}

void scratch_make(char base[PATH_MAX], const char *name)
{
    pathf(base, "/tmp/retrysafe-%s-XXXXXX", name);
    ck_assert_ptr_nonnull(mkdtemp(base));
}

/* Tests make directories unreadable on purpose: open them up first. */
static int remove_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_D || flag == FTW_DP || flag == FTW_DNR)
        chmod(p, 0700);
    return remove(p);
}

void scratch_remove(const char *base)
{
    chmod(base, 0700);
    nftw(base, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* private_path.c - may a directory hold this user's private files? See
 * private_path.h for the rule and why.
 *
 * This runs inside other people's processes: no fd opened, nothing kept,
 * errno as the caller left it. */
#include "private_path.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int refuse(char *err, size_t err_size, const char *fmt, ...)
{
    va_list ap;
    if (err && err_size > 0) {
        va_start(ap, fmt);
        vsnprintf(err, err_size, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Drops the last component of path (and the slashes before it): "a/b" ->
 * "a", "/a" -> "/", "a" -> ".". */
static void drop_last(char *path)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    while (n > 0 && path[n - 1] != '/')
        n--;
    while (n > 1 && path[n - 1] == '/')
        n--;
    if (n == 0)
        strcpy(path, ".");
    else
        path[n] = '\0';
}

/* The nearest existing directory at or above dir, resolved (absolute, no
 * links, no "..") into real. */
static int nearest_existing(const char *dir, char real[PATH_MAX], char *err,
                            size_t err_size)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s", *dir ? dir : ".") >= (int)sizeof path)
        return refuse(err, err_size, "directory %.200s...: the name is too long", dir);
    for (;;) {
        if (realpath(path, real))
            return 0;
        if (errno != ENOENT || strcmp(path, ".") == 0 || strcmp(path, "/") == 0)
            return refuse(err, err_size, "cannot look at directory %s: %s", path,
                          strerror(errno));
        drop_last(path);
    }
}

static int check_one(const char *dir, const struct stat *st, char *err, size_t err_size)
{
    uid_t me = geteuid();
    int sticky = (st->st_mode & S_ISVTX) != 0;
    if (!S_ISDIR(st->st_mode))
        return refuse(err, err_size, "%s is not a directory", dir);
    if (st->st_uid != me && st->st_uid != 0)
        return refuse(err, err_size, "directory %s belongs to uid %lu, neither to "
                      "uid %lu nor to root", dir, (unsigned long)st->st_uid,
                      (unsigned long)me);
    if ((st->st_mode & S_IWOTH) && !sticky)
        return refuse(err, err_size, "directory %s is writable by every user and "
                      "has no sticky bit", dir);
    if ((st->st_mode & S_IWGRP) && !sticky && st->st_uid != me)
        return refuse(err, err_size, "directory %s belongs to root and is writable "
                      "by group %lu, without the sticky bit", dir,
                      (unsigned long)st->st_gid);
    return 0;
}

int private_path_check_dir(const char *dir, char *err, size_t err_size)
{
    int saved = errno, rc = 0;
    char real[PATH_MAX];
    struct stat st;
    if (!dir)
        dir = ".";
    if (nearest_existing(dir, real, err, err_size) < 0)
        rc = -1;
    /* From the directory itself up to /, the last one checked. */
    while (rc == 0) {
        if (stat(real, &st) != 0)
            rc = refuse(err, err_size, "cannot look at directory %s: %s", real,
                        strerror(errno));
        else
            rc = check_one(real, &st, err, err_size);
        if (strcmp(real, "/") == 0)
            break;
        drop_last(real);
    }
    errno = saved;
    return rc;
}

int private_path_check_file(const char *file, char *err, size_t err_size)
{
    char dir[PATH_MAX];
    if (!file || snprintf(dir, sizeof dir, "%s", file) >= (int)sizeof dir)
        return refuse(err, err_size, "file %.200s...: the name is too long",
                      file ? file : "");
    drop_last(dir);
    return private_path_check_dir(dir, err, err_size);
}

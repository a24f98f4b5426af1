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

/* dir resolved as the kernel would, link by link, into real (absolute, no
 * links, no ".."), as far as it exists: what does not exist yet is made
 * 0700 by whoever makes it, so its nearest existing ancestor is what
 * counts. A link that belongs to another user than this one or root is
 * refused: its owner can point it elsewhere once we have looked. */
static int resolve_existing(const char *dir, char real[PATH_MAX], char *err,
                            size_t err_size)
{
    char todo[PATH_MAX], next[PATH_MAX], target[PATH_MAX];
    int hops = 0;
    real[0] = '\0';
    if (snprintf(todo, sizeof todo, "%s", *dir ? dir : ".") >= (int)sizeof todo)
        return refuse(err, err_size, "directory %.200s...: the name is too long", dir);
    if (todo[0] != '/' && !getcwd(real, PATH_MAX))
        return refuse(err, err_size, "cannot look at directory %s: %s", dir,
                      strerror(errno));
    if (strcmp(real, "/") == 0)
        real[0] = '\0';   /* names are built as real + "/" + name */
    char *rest = todo;
    for (;;) {
        while (*rest == '/')
            rest++;
        if (!*rest)
            break;
        size_t len = strcspn(rest, "/");
        char *after = rest + len;
        if (len == 1 && rest[0] == '.') {
            rest = after;
            continue;
        }
        if (len == 2 && rest[0] == '.' && rest[1] == '.') {
            char *slash = strrchr(real, '/');
            if (slash)
                *slash = '\0';
            rest = after;
            continue;
        }
        if (snprintf(next, sizeof next, "%s/%.*s", real, (int)len, rest) >= (int)sizeof next)
            return refuse(err, err_size, "directory %.200s...: the name is too long", dir);
        struct stat st;
        if (lstat(next, &st) != 0) {
            if (errno == ENOENT)
                break;
            return refuse(err, err_size, "cannot look at directory %s: %s", dir,
                          strerror(errno));
        }
        if (!S_ISLNK(st.st_mode)) {
            memcpy(real, next, strlen(next) + 1);
            rest = after;
            continue;
        }
        if (st.st_uid != geteuid() && st.st_uid != 0)
            return refuse(err, err_size, "link %s belongs to uid %lu, neither to uid "
                          "%lu nor to root", next, (unsigned long)st.st_uid,
                          (unsigned long)geteuid());
        ssize_t n = readlink(next, target, sizeof target - 1);
        if (n < 0 || ++hops > 40)
            return refuse(err, err_size, "cannot look at directory %s: %s", dir,
                          strerror(n < 0 ? errno : ELOOP));
        target[n] = '\0';
        /* The link's target, then what followed the link. */
        if (snprintf(next, sizeof next, "%s%s", target, after) >= (int)sizeof next)
            return refuse(err, err_size, "directory %.200s...: the name is too long", dir);
        memcpy(todo, next, strlen(next) + 1);
        rest = todo;
        if (target[0] == '/')
            real[0] = '\0';
    }
    if (!real[0])
        strcpy(real, "/");
    return 0;
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
    if (resolve_existing(dir, real, err, err_size) < 0)
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

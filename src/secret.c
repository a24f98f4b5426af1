/* secret.c - the per-user key-derivation secret file. See secret.h.
 *
 * The file is created by writing a complete temporary file and link()ing it
 * into place: link() never replaces an existing name, so when two processes
 * race, exactly one wins and the other reads the winner's secret, and no
 * reader ever sees a half-written file.
 *
 * Every fd opened here is O_CLOEXEC and closed on every path: this code runs
 * inside other people's processes, which may fork and exec at any moment.
 */
#include "secret.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<sys/random.h>)
#include <sys/random.h>
#define SECRET_HAVE_GETRANDOM 1
#endif
#endif

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

#define SECRET_FILE     "secret"
#define SECRET_MAX      256   /* longest secret file accepted, in bytes */
#define SECRET_RANDOM   32    /* random bytes in a new secret */
#define SECRET_ATTEMPTS 3     /* open-or-create rounds before giving up */

enum { CREATED = 0, FAILED = -1, LOST_RACE = 1 };

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void set_err(char *err, size_t err_size, const char *fmt, ...)
{
    va_list ap;
    if (!err || err_size == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
}

/* memset that the compiler may not drop although the buffer dies next. */
static void wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;
    while (n--)
        *v++ = 0;
}

/* ---- the state directory ---- */

/* snprintf into out; -1 unless the whole string fitted. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int format_path(char *out, size_t out_size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, out_size, fmt, ap);
    va_end(ap);
    return n >= 0 && (size_t)n < out_size ? 0 : -1;
}

/* The home directory from the password database, for processes started
 * without HOME (cron, systemd services). */
static int passwd_home(char *out, size_t out_size)
{
    size_t size = 1024;
    for (;;) {
        struct passwd pw, *found = NULL;
        char *buf = malloc(size);
        if (!buf)
            return -1;
        int rc = getpwuid_r(getuid(), &pw, buf, size, &found);
        if (rc == ERANGE && size < (1u << 20)) {
            free(buf);
            size *= 2;
            continue;
        }
        int ok = rc == 0 && found && found->pw_dir && found->pw_dir[0] == '/';
        ok = ok && format_path(out, out_size, "%s", found->pw_dir) == 0;
        free(buf);
        return ok ? 0 : -1;
    }
}

int secret_state_dir(char *out, size_t out_size)
{
    char home[PATH_MAX];
    if (!out || out_size == 0)
        return -1;
    /* The XDG spec says relative values are invalid and to be ignored; a
     * relative HOME would likewise make the directory depend on the cwd. */
    const char *xdg = getenv("XDG_STATE_HOME");
    if (xdg && xdg[0] == '/')
        return format_path(out, out_size, "%s/retrysafe", xdg);
    const char *h = getenv("HOME");
    if (!h || h[0] != '/') {
        if (passwd_home(home, sizeof home) < 0)
            return -1;
        h = home;
    }
    return format_path(out, out_size, "%s/.local/state/retrysafe", h);
}

/* Makes one directory unless it exists. Existing directories are left as
 * they are: their modes belong to the user. */
static int make_one_dir(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return 0;
        errno = ENOTDIR;
        return -1;
    }
    if (errno != ENOENT)
        return -1;
    if (mkdir(path, 0700) == 0)
        return 0;
    if (errno != EEXIST)
        return -1;
    /* Another process made it between our stat and mkdir. */
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return 0;
    errno = ENOTDIR;
    return -1;
}

int secret_make_dir(const char *path)
{
    if (!path || !*path) {
        errno = ENOENT;
        return -1;
    }
    size_t n = strlen(path);
    char *buf = malloc(n + 1);
    if (!buf) {
        errno = ENOMEM;
        return -1;
    }
    memcpy(buf, path, n + 1);
    int rc = 0;
    for (size_t i = 1; i < n && rc == 0; i++) {
        if (buf[i] != '/' || buf[i - 1] == '/')
            continue;
        buf[i] = '\0';
        rc = make_one_dir(buf);
        buf[i] = '/';
    }
    if (rc == 0)
        rc = make_one_dir(buf);
    int saved = errno;
    free(buf);
    errno = saved;
    return rc;
}

/* ---- reading ---- */

/* Reads until EOF or size bytes. */
static ssize_t read_full(int fd, char *buf, size_t size)
{
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r == 0)
            break;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* The file must be the user's own and private: anyone who can read the
 * secret can predict every key, anyone who can write it can change them. */
static int check_owner_mode(int fd, const char *path, char *err, size_t err_size)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        set_err(err, err_size, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        set_err(err, err_size, "refusing %s: it is not a regular file", path);
        return -1;
    }
    if (st.st_uid != geteuid()) {
        set_err(err, err_size, "refusing %s: it belongs to uid %lu, not to "
                "uid %lu", path, (unsigned long)st.st_uid,
                (unsigned long)geteuid());
        return -1;
    }
    if ((st.st_mode & 077) != 0) {
        set_err(err, err_size, "refusing %s: mode %04o lets other users read "
                "or change it (chmod 600 %s)", path,
                (unsigned)(st.st_mode & 07777), path);
        return -1;
    }
    return 0;
}

/* Checks and reads an open secret file into a malloc'd string. */
static int read_secret(int fd, const char *path, char **out, char *err,
                       size_t err_size)
{
    /* Room for the longest secret, its newline, and one byte more to tell
     * a file that is too long from one that is just full. */
    char buf[SECRET_MAX + 2];
    if (check_owner_mode(fd, path, err, err_size) < 0)
        return -1;
    ssize_t got = read_full(fd, buf, sizeof buf);
    int rc = -1;
    size_t n = got > 0 ? (size_t)got : 0;
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (got < 0)
        set_err(err, err_size, "cannot read %s: %s", path, strerror(errno));
    else if (n > SECRET_MAX)
        set_err(err, err_size, "refusing %s: it is longer than %d bytes",
                path, SECRET_MAX);
    else if (n == 0)
        set_err(err, err_size, "refusing %s: it is empty", path);
    else if (memchr(buf, '\0', n))
        set_err(err, err_size, "refusing %s: it contains a NUL byte", path);
    else if (!(*out = malloc(n + 1)))
        set_err(err, err_size, "cannot read %s: out of memory", path);
    else {
        memcpy(*out, buf, n);
        (*out)[n] = '\0';
        rc = 0;
    }
    wipe(buf, sizeof buf);
    return rc;
}

/* ---- creating ---- */

static int urandom_bytes(unsigned char *buf, size_t n)
{
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -1;
    ssize_t got = read_full(fd, (char *)buf, n);
    int saved = errno;
    close(fd);
    errno = saved;
    return got == (ssize_t)n ? 0 : -1;
}

static int random_bytes(unsigned char *buf, size_t n)
{
#ifdef SECRET_HAVE_GETRANDOM
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(buf + got, n - got, 0);
        if (r > 0)
            got += (size_t)r;
        else if (!(r < 0 && errno == EINTR))
            break;
    }
    if (got == n)
        return 0;
    /* ENOSYS before Linux 3.17, EPERM under some seccomp filters. */
#endif
    return urandom_bytes(buf, n);
}

static int write_full(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Makes the new directory entry durable, so a crash right after cannot
 * bring back a state without the secret (and with different keys).
 * Best effort: the secret itself is already safe on disk. */
static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return;
    (void)fsync(fd);
    close(fd);
}

static int make_temp(const char *dir, char *tmp, size_t tmp_size)
{
    if (format_path(tmp, tmp_size, "%s/.secret.XXXXXX", dir) < 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd >= 0 || errno != ENOENT)
        return fd;
    /* The directory is missing: make it and try once more. mkostemp may
     * have scribbled on the template, so write it afresh. */
    if (secret_make_dir(dir) < 0)
        return -1;
    (void)format_path(tmp, tmp_size, "%s/.secret.XXXXXX", dir);
    return mkostemp(tmp, O_CLOEXEC);
}

/* Writes text into a private temp file and links it to path; with
 * replace, renames it over whatever path holds. */
static int publish(const char *dir, const char *path, const char *text,
                   size_t len, int replace)
{
    char tmp[PATH_MAX];
    int fd = make_temp(dir, tmp, sizeof tmp);
    if (fd < 0)
        return FAILED;
    /* mkostemp already uses 0600; fchmod states it rather than trusting it. */
    int rc = fchmod(fd, 0600) == 0 && write_full(fd, text, len) == 0 &&
             fsync(fd) == 0 ? CREATED : FAILED;
    int saved = errno;
    if (close(fd) < 0 && rc == CREATED) {
        rc = FAILED;
        saved = errno;
    }
    if (rc == CREATED && replace && rename(tmp, path) < 0) {
        saved = errno;
        rc = FAILED;
    } else if (rc == CREATED && !replace && link(tmp, path) < 0) {
        saved = errno;
        rc = saved == EEXIST ? LOST_RACE : FAILED;
    }
    unlink(tmp);
    errno = saved;
    return rc;
}

int secret_generate(char out[SECRET_CHARS + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[SECRET_RANDOM];
    if (random_bytes(raw, sizeof raw) < 0)
        return -1;
    for (size_t i = 0; i < sizeof raw; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[2 * SECRET_RANDOM] = '\0';
    wipe(raw, sizeof raw);
    return 0;
}

static int create_secret(const char *dir, const char *path, char **out,
                         char *err, size_t err_size)
{
    char text[2 * SECRET_RANDOM + 1];
    int rc = FAILED;

    if (secret_generate(text) < 0) {
        set_err(err, err_size, "cannot create %s: no random bytes: %s", path,
                strerror(errno));
        return FAILED;
    }
    text[2 * SECRET_RANDOM] = '\n';

    rc = publish(dir, path, text, sizeof text, 0);
    if (rc == FAILED)
        set_err(err, err_size, "cannot create %s: %s", path, strerror(errno));
    if (rc == CREATED) {
        sync_dir(dir);
        *out = malloc(2 * SECRET_RANDOM + 1);
        if (*out) {
            memcpy(*out, text, 2 * SECRET_RANDOM);
            (*out)[2 * SECRET_RANDOM] = '\0';
        } else {
            set_err(err, err_size, "cannot read %s: out of memory", path);
            rc = FAILED;
        }
    }
    wipe(text, sizeof text);
    return rc;
}

int secret_store_file(const char *dir, const char *name, const char *secret,
                      char *err, size_t err_size)
{
    char path[PATH_MAX];
    size_t len = strlen(secret);
    if (format_path(path, sizeof path, "%s/%s", dir, name) < 0 || len == 0 ||
        len > SECRET_MAX) {
        set_err(err, err_size, "cannot store a secret in %s", dir);
        return -1;
    }
    char text[SECRET_MAX + 1];
    memcpy(text, secret, len);
    text[len] = '\n';
    int rc = publish(dir, path, text, len + 1, 1);
    wipe(text, sizeof text);
    if (rc != CREATED) {
        set_err(err, err_size, "cannot store %s: %s", path, strerror(errno));
        return -1;
    }
    sync_dir(dir);
    return 0;
}

/* Opens path for reading the secret: an fd, or -1 with errno set (ENOENT:
 * none) and, unless ENOENT, the reason in err. */
static int open_secret(const char *path, char *err, size_t err_size)
{
    /* O_NONBLOCK: a FIFO planted at the path must not hang us in open();
     * the fstat check then refuses it. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
    if (fd >= 0 || errno == ENOENT)
        return fd;
    int e = errno;
    if (e == ELOOP)
        set_err(err, err_size, "refusing %s: it is a symbolic link", path);
    else
        set_err(err, err_size, "cannot open %s: %s", path, strerror(e));
    errno = e;
    return -1;
}

int secret_load_file(const char *dir, const char *name, char **out, char *err,
                     size_t err_size)
{
    char path[PATH_MAX];
    *out = NULL;
    if (format_path(path, sizeof path, "%s/%s", dir, name) < 0) {
        set_err(err, err_size, "cannot name the secret file in %s", dir);
        return -1;
    }
    int fd = open_secret(path, err, err_size);
    if (fd < 0)
        return errno == ENOENT ? 1 : -1;
    int rc = read_secret(fd, path, out, err, err_size);
    close(fd);
    return rc;
}

int secret_load_or_create(const char *dir, char **out, char *err, size_t err_size)
{
    char path[PATH_MAX];
    if (err && err_size > 0)
        err[0] = '\0';
    if (!out) {
        set_err(err, err_size, "no place to return the secret");
        return -1;
    }
    *out = NULL;
    if (!dir || !*dir || format_path(path, sizeof path, "%s/" SECRET_FILE, dir) < 0) {
        set_err(err, err_size, "cannot name the secret file: the state "
                "directory is missing or too long");
        return -1;
    }
    for (int attempt = 0; attempt < SECRET_ATTEMPTS; attempt++) {
        int fd = open_secret(path, err, err_size);
        if (fd >= 0) {
            int rc = read_secret(fd, path, out, err, err_size);
            close(fd);
            return rc;
        }
        if (errno != ENOENT)
            return -1;
        int rc = create_secret(dir, path, out, err, err_size);
        if (rc != LOST_RACE)
            return rc == CREATED ? 0 : -1;
        /* Another process linked its secret first: read that one. */
    }
    set_err(err, err_size, "cannot create %s: it keeps appearing and "
            "vanishing", path);
    return -1;
}

/* log.c - diagnostics, safe to call from any hook. See log.h.
 *
 * A message is formatted into a stack buffer and written with one write():
 * no allocation, no stdio lock (a hook may run inside the host's printf or
 * in a signal handler), and concurrent messages never interleave mid-line.
 *
 * The level and the destination are the core's only mutable globals. They
 * are set by log_open at start-up and read by every thread, hence atomics.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_LINE_MAX 1024

static _Atomic int log_level = CONFIG_LOG_WARN;
static _Atomic int log_fd = STDERR_FILENO;
/* Identity of the log file, published before log_fd (release/acquire). */
static _Atomic dev_t log_dev;
static _Atomic ino_t log_ino;

static const char *level_name(enum config_log_level level)
{
    switch (level) {
    case CONFIG_LOG_ERROR: return "error";
    case CONFIG_LOG_WARN:  return "warn";
    case CONFIG_LOG_INFO:  return "info";
    case CONFIG_LOG_DEBUG: return "debug";
    case CONFIG_LOG_OFF:   break;
    }
    return "log";
}

int log_enabled(enum config_log_level level)
{
    return level != CONFIG_LOG_OFF &&
           (int)level <= atomic_load_explicit(&log_level, memory_order_relaxed);
}

/* The fd to write to. The host may close our log file's fd and reuse
 * the number for a socket or a database of its own; a log line written there
 * would corrupt it. So a file fd is used only while it is still our file. */
static int current_fd(void)
{
    struct stat st;
    int fd = atomic_load_explicit(&log_fd, memory_order_acquire);
    if (fd == STDERR_FILENO)
        return fd;
    if (fstat(fd, &st) == 0 &&
        st.st_dev == atomic_load_explicit(&log_dev, memory_order_relaxed) &&
        st.st_ino == atomic_load_explicit(&log_ino, memory_order_relaxed))
        return fd;
    /* Not ours any more, and not ours to close: back to stderr. */
    atomic_store_explicit(&log_fd, STDERR_FILENO, memory_order_release);
    return STDERR_FILENO;
}

void log_open(enum config_log_level level, const char *file)
{
    int saved = errno;
    struct stat st;

    if ((int)level < CONFIG_LOG_OFF || level > CONFIG_LOG_DEBUG)
        level = CONFIG_LOG_WARN;
    atomic_store_explicit(&log_level, (int)level, memory_order_relaxed);
    if (!file || !*file) {
        errno = saved;
        return;
    }
    int fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY,
                  0600);
    if (fd < 0 || fstat(fd, &st) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        log_msg(CONFIG_LOG_WARN, "cannot open log file %s: %s; logging to "
                "stderr", file, strerror(e));
        errno = saved;
        return;
    }
    atomic_store_explicit(&log_dev, st.st_dev, memory_order_relaxed);
    atomic_store_explicit(&log_ino, st.st_ino, memory_order_relaxed);
    int old = atomic_exchange_explicit(&log_fd, fd, memory_order_acq_rel);
    /* Only a second log_open gets here with a file of ours to close. */
    if (old != STDERR_FILENO && old != fd)
        close(old);
    errno = saved;
}

/* Replaces control characters in the text with '?': one message is one
 * line, whatever a request's bytes put into it. */
static void sanitize(char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            s[i] = '?';
    }
}

void log_msg(enum config_log_level level, const char *fmt, ...)
{
    char line[LOG_LINE_MAX];
    va_list ap;

    if (!fmt || !log_enabled(level))
        return;
    int saved = errno;
    int head = snprintf(line, sizeof line, "retrysafe[%ld]: %s: ",
                        (long)getpid(), level_name(level));
    if (head < 0 || (size_t)head >= sizeof line) {
        errno = saved;
        return;
    }
    /* errno is still the caller's here, so "%m" means what they meant. */
    va_start(ap, fmt);
    int text = vsnprintf(line + head, sizeof line - (size_t)head, fmt, ap);
    va_end(ap);
    if (text < 0)
        text = snprintf(line + head, sizeof line - (size_t)head,
                        "(unformattable message)");

    size_t len = (size_t)head + (size_t)text;
    if (len + 1 > sizeof line) {
        /* Too long: keep what fits and say so. */
        len = sizeof line - 4;
        sanitize(line + head, len - (size_t)head);
        memcpy(line + len, "...\n", 4);
        len += 4;
    } else {
        sanitize(line + head, (size_t)text);
        line[len++] = '\n';
    }

    ssize_t w = write(current_fd(), line, len);
    (void)w;   /* nowhere to report a failed diagnostic */
    errno = saved;
}

/* hooks_fd.c - a connection's lifetime: connect starts tracking, close and
 * its relatives end it, dup copies it, fork splits it. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hooks.h"
#include "journal_queue.h"
#include "late.h"
#include "shim.h"
#include "tls_map.h"

int hooks_table_is_ours(void)
{
    return conn_table && getpid() == conn_owner_pid;
}

int hooks_trackable(int fd, const struct sockaddr *addr)
{
    if (!addr || (addr->sa_family != AF_INET && addr->sa_family != AF_INET6))
        return 0;
    if (shim_disabled())
        return 0;
    int type = 0;
    socklen_t len = sizeof(type);
    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
}

struct conn *hooks_track(int fd, const struct sockaddr *addr, socklen_t len)
{
    hooks_in_shim++;
    const struct outbound_env *env = shim_start();
    struct conn *c = env ? conn_track(fd, addr, len, env) : NULL;
    hooks_in_shim--;
    return c;
}

EXPORT int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    real_ensure();
    int r = real.connect(fd, addr, len);
    int e = errno;
    if (hooks_in_shim || (r != 0 && e != EINPROGRESS && e != EINTR))
        return r;
    if (hooks_trackable(fd, addr))
        conn_release(hooks_track(fd, addr, len));
    errno = e;
    return r;
}

void hooks_forget_closing(int fd)
{
    if (!conn_maybe_tracked(fd) || !hooks_table_is_ours())
        return;
    int e = errno;
    struct conn *c = conn_acquire(fd);
    if (conn_forget(fd) && c && !hooks_in_shim) {
        hooks_release_held(c, fd, HOOKS_RELEASE_ON_CLOSE_MS);
        /* Guard mode: an answer still due is read in the background. */
        late_adopt_socket(c, fd);
    }
    /* A socket kept open by the late reader: the epoll sets must forget
     * fd now, since the kernel will not until the socket closes. */
    if (c && __atomic_load_n(&c->late_dup, __ATOMIC_ACQUIRE))
        conn_epoll_drop_fd(c, fd);
    conn_release(c);
    errno = e;
}

EXPORT int close(int fd)
{
    real_ensure();
    /* Forget first: once close returns, the number may name a new socket. */
    hooks_forget_closing(fd);
    conn_epoll_closed(fd);
    return real.close(fd);
}

EXPORT int close_range(unsigned int first, unsigned int last, int flags)
{
    real_ensure();
#ifdef CLOSE_RANGE_CLOEXEC
    if (!(flags & CLOSE_RANGE_CLOEXEC))
#endif
    {
        unsigned int end = conn_table && last >= (unsigned)conn_table_size
                               ? (unsigned)conn_table_size - 1 : last;
        for (unsigned int fd = first; conn_table && fd <= end && fd >= first; fd++)
            hooks_forget_closing((int)fd);
    }
    if (real.close_range)
        return real.close_range(first, last, flags);
#ifdef SYS_close_range
    return (int)syscall(SYS_close_range, first, last, flags);
#else
    errno = ENOSYS;
    return -1;
#endif
}

EXPORT int shutdown(int fd, int how)
{
    real_ensure();
    if (how != SHUT_RD && hooks_table_is_ours()) {
        struct conn *c = hooks_tracked(fd);
        if (c)
            hooks_release_held(c, fd, HOOKS_RELEASE_ON_CLOSE_MS);
        conn_release(c);
    }
    return real.shutdown(fd, how);
}

static void dup_tracked(int oldfd, int newfd)
{
    if (newfd < 0 || oldfd == newfd || !conn_maybe_tracked(oldfd) || !hooks_table_is_ours())
        return;
    int e = errno;
    conn_dup(oldfd, newfd);
    errno = e;
}

EXPORT int dup(int fd)
{
    real_ensure();
    int r = real.dup(fd);
    dup_tracked(fd, r);
    return r;
}

/* dup2 and dup3 close newfd first: what is held for it goes out before. */
EXPORT int dup2(int oldfd, int newfd)
{
    real_ensure();
    if (oldfd != newfd)
        hooks_forget_closing(newfd);
    int r = real.dup2(oldfd, newfd);
    dup_tracked(oldfd, r);
    return r;
}

EXPORT int dup3(int oldfd, int newfd, int flags)
{
    real_ensure();
    if (oldfd != newfd)
        hooks_forget_closing(newfd);
    int r = real.dup3(oldfd, newfd, flags);
    dup_tracked(oldfd, r);
    return r;
}

static int fcntl_common(int (*fn)(int, int, ...), int fd, int cmd, void *arg)
{
    int r = fn(fd, cmd, arg);
    if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)
        dup_tracked(fd, r);
    return r;
}

/* Every fcntl argument is an int, a long or a pointer; passing on one
 * pointer-sized value is how libc's own wrappers forward it. */
EXPORT int fcntl(int fd, int cmd, ...)
{
    real_ensure();
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return fcntl_common(real.fcntl, fd, cmd, arg);
}

EXPORT int fcntl64(int fd, int cmd, ...)
{
    real_ensure();
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return fcntl_common(real.fcntl64 ? real.fcntl64 : real.fcntl, fd, cmd, arg);
}

void hooks_release_all_held(void)
{
    struct conn *conns[64];
    /* Inside the shim, this thread may hold any of its locks (_exit from
     * a signal handler that interrupted it): nothing is released then. */
    if (!hooks_table_is_ours() || hooks_in_shim || conn_thread_holds_stripe())
        return;
    int n = conn_holding_list(conns, 64);
    for (int i = 0; i < n; i++) {
        int fd = conn_some_fd_now(conns[i]);
        if (fd >= 0)
            hooks_release_held(conns[i], fd, HOOKS_RELEASE_ON_CLOSE_MS);
        conn_release(conns[i]);
    }
}

/* A process that ends with _exit() (a forked child, often) runs no
 * destructor: what it holds goes out, and what its journal queue holds is
 * written, first, briefly. Never in a vfork()ed child, which would touch
 * its parent's connections and queue. */
static void before_exit_now(void)
{
    if (hooks_table_is_ours() && !hooks_in_shim) {
        hooks_release_all_held();
        journal_queue_flush_at_exit(HOOKS_RELEASE_ON_CLOSE_MS);
    }
}

EXPORT void _exit(int status)
{
    real_ensure();
    before_exit_now();
    real.exit_now(status);
    __builtin_unreachable();
}

EXPORT void _Exit(int status)
{
    real_ensure();
    before_exit_now();
    (real.exit_now_c99 ? real.exit_now_c99 : real.exit_now)(status);
    __builtin_unreachable();
}

/* The child must not inherit a lock another thread held at the fork. The
 * locks are taken outermost first (TLS, the fd table, then the start and
 * journal locks, which are taken inside connection locks at run time, and
 * last the late reader's, which is taken with no other held) and released
 * in the reverse order. */
EXPORT pid_t fork(void)
{
    real_ensure();
    int tracking = conn_table != NULL;
    tls_fork(FORK_PREPARE);
    if (tracking)
        conn_fork_prepare();
    shim_fork_prepare();
    late_fork(FORK_PREPARE);
    pid_t pid = real.fork();
    int e = errno;
    if (pid == 0) {
        late_fork(FORK_CHILD);
        shim_fork_child();
        if (tracking)
            conn_fork_child();
        tls_fork(FORK_CHILD);
    } else {
        late_fork(FORK_PARENT);
        shim_fork_parent();
        if (tracking)
            conn_fork_parent();
        tls_fork(FORK_PARENT);
    }
    errno = e;
    return pid;
}

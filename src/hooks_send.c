/* hooks_send.c - the write family: the application's outbound bytes. */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "flight.h"
#include "hooks.h"
#include "outbound.h"
#include "clock.h"

__thread int hooks_in_shim __attribute__((tls_model("initial-exec")));
__thread struct conn *hooks_tls_writer __attribute__((tls_model("initial-exec")));

void hooks_note_tls_socket(int fd)
{
    struct conn *c = hooks_tls_writer;
    struct stat st;
    if (c->sock_fd == fd || fstat(fd, &st) != 0)
        return;
    c->dev = st.st_dev;
    c->ino = st.st_ino;
    c->sock_fd = fd;
}

__attribute__((constructor)) static void hooks_load(void)
{
    real_ensure();
}

enum send_kind { SEND_WRITE, SEND_SOCKET };

struct send_call {
    struct conn *c;
    int fd;
    int flags;
    enum send_kind kind;
    long long deadline_ms;   /* CLOCK_MONOTONIC; -1: wait as long as it takes */
    int own_slot;            /* the application's call: fd must still name c */
};

static ssize_t real_send_iov(void *ctx, const struct iovec *iov, int iovcnt)
{
    struct send_call *s = ctx;
    /* One call of the application's can take several sends. Between two,
     * another thread may close the fd and a new connection take the
     * number: the kernel would have failed the rest of this call, not
     * sent it there. */
    if (s->own_slot && !conn_slot_is(s->fd, s->c)) {
        errno = EBADF;
        return -1;
    }
    struct msghdr m = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };
    if (s->c->fastopen) {
        /* sendto(MSG_FASTOPEN) connected nothing yet: our first send does. */
        m.msg_name = &s->c->fastopen_addr;
        m.msg_namelen = s->c->fastopen_len;
        s->c->fastopen = 0;
        return real.sendmsg(s->fd, &m, s->flags | MSG_FASTOPEN);
    }
    if (s->kind == SEND_WRITE)
        return real.writev(s->fd, iov, iovcnt);
    return real.sendmsg(s->fd, &m, s->flags);
}

static int add_answer(void *ctx, const char *bytes, size_t len)
{
    struct send_call *s = ctx;
    return conn_add_answer(s->c, bytes, len);
}

static int wait_writable(void *ctx)
{
    struct send_call *s = ctx;
    struct pollfd p = { .fd = s->fd, .events = POLLOUT };
    int r;
    do {
        int wait = -1;
        if (s->deadline_ms >= 0) {
            long long left = s->deadline_ms - clock_ms(CLOCK_MONOTONIC);
            if (left <= 0)
                return -1;
            wait = left > INT_MAX ? INT_MAX : (int)left;
        }
        r = real.poll(&p, 1, wait);
    } while (r < 0 && errno == EINTR);
    return r > 0 ? 0 : -1;
}

/* A request answered without being sent: the application will read that
 * answer and then end of stream, so the read side is shut. The socket then
 * polls readable in every way a program can wait (poll, select, epoll,
 * io_uring), and the real read after our bytes returns 0. */
static enum outbound_verdict record(void *ctx, const struct outbound_record *rec)
{
    struct send_call *s = ctx;
    enum outbound_verdict v = flight_record(s->c, rec);
    if (v == OUTBOUND_ANSWERED)
        real.shutdown(s->fd, SHUT_RD);
    return v;
}

static void failed(void *ctx, int err)
{
    flight_failed(((struct send_call *)ctx)->c, err);
}

static void passed(void *ctx, int head)
{
    flight_passed(((struct send_call *)ctx)->c, head);
}

static struct outbound_io io_for(struct send_call *call)
{
    return (struct outbound_io){
        .send = real_send_iov, .answer = add_answer, .wait_writable = wait_writable,
        .generation = flight_generation, .record = record, .failed = failed,
        .passed = passed, .ctx = call,
    };
}

/* A sendto(MSG_FASTOPEN) whose bytes we held must still connect. */
static int finish_fastopen(struct conn *c, int fd)
{
    if (!c->fastopen)
        return 0;
    c->fastopen = 0;
    if (real.connect(fd, (struct sockaddr *)&c->fastopen_addr, c->fastopen_len) == 0 ||
        errno == EINPROGRESS)
        return 0;
    return -1;
}

static ssize_t send_untracked(int fd, const struct iovec *iov, int iovcnt, int flags,
                              enum send_kind kind)
{
    if (kind == SEND_WRITE)
        return real.writev(fd, iov, iovcnt);
    struct msghdr m = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };
    return real.sendmsg(fd, &m, flags);
}

static ssize_t send_tracked(struct conn *c, int fd, const struct iovec *iov, int iovcnt,
                            int flags, enum send_kind kind)
{
    int caller_errno = errno;
    hooks_in_shim++;
    pthread_mutex_lock(&c->out_lock);
    ssize_t r;
    if (!conn_same_socket(c, fd)) {
        /* The fd was closed behind our back (fclose, closefrom) and its
         * number reused: whatever we held is not this file's, and the
         * caller's bytes are the new file's. But if it was closed through
         * our hooks, another thread did so while this call waited for the
         * lock: the call raced that close(), which the kernel would have
         * answered with EBADF. Sending would put the bytes on whatever
         * took the number since, another connection perhaps. */
        outbound_disown(&c->out);
        conn_note_holding(c);
        pthread_mutex_unlock(&c->out_lock);
        if (conn_forget_stale(fd, c)) {
            r = send_untracked(fd, iov, iovcnt, flags, kind);
        } else {
            errno = EBADF;
            r = -1;
        }
    } else {
        struct send_call call = { c, fd, flags, kind, -1, 1 };
        struct outbound_io io = io_for(&call);
        r = outbound_write(&c->out, iov, iovcnt, &io);
        if (r >= 0 && finish_fastopen(c, fd) != 0)
            r = -1;
        int e = errno;
        conn_note_holding(c);
        pthread_mutex_unlock(&c->out_lock);
        errno = e;
    }
    caller_errno = r < 0 ? errno : caller_errno;
    hooks_in_shim--;
    conn_release(c);
    errno = caller_errno;
    return r;
}

void hooks_release_held(struct conn *c, int fd, int wait_ms)
{
    if (!__atomic_load_n(&c->holding, __ATOMIC_ACQUIRE))
        return;
    int e = errno;
    hooks_in_shim++;
    /* A thread holding the lock is sending on c right now; blocking here
     * would keep, say, shutdown() from waking it. */
    if (pthread_mutex_trylock(&c->out_lock) == 0) {
        if (outbound_holding(&c->out) && conn_same_socket(c, fd)) {
            long long deadline = wait_ms < 0 ? -1 : clock_ms(CLOCK_MONOTONIC) + wait_ms;
            struct send_call call = { c, fd, MSG_NOSIGNAL, SEND_SOCKET, deadline, 0 };
            struct outbound_io io = io_for(&call);
            outbound_release(&c->out, &io);
            conn_note_holding(c);
        }
        pthread_mutex_unlock(&c->out_lock);
    }
    hooks_in_shim--;
    errno = e;
}

int hooks_bypass(int fd)
{
    struct conn *c = hooks_tracked(fd);
    if (!c)
        return 0;
    int e = errno;
    hooks_in_shim++;
    /* Unlike a waiting reader, the bypassing call must not overtake what is
     * held: wait for a writer on another thread, then send it first. */
    pthread_mutex_lock(&c->out_lock);
    if (outbound_holding(&c->out) && conn_same_socket(c, fd)) {
        struct send_call call = { c, fd, MSG_NOSIGNAL, SEND_SOCKET,
                                  clock_ms(CLOCK_MONOTONIC) + HOOKS_RELEASE_ON_CLOSE_MS, 0 };
        struct outbound_io io = io_for(&call);
        outbound_release(&c->out, &io);
        conn_note_holding(c);
    }
    int still_holding = outbound_holding(&c->out);
    outbound_pass_for_good(&c->out);
    pthread_mutex_unlock(&c->out_lock);
    hooks_in_shim--;
    conn_release(c);
    errno = still_holding ? EAGAIN : e;
    return still_holding ? -1 : 0;
}

EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
    real_ensure();
    struct conn *c = hooks_tracked(fd);
    if (!c)
        return real.write(fd, buf, n);
    struct iovec iov = { (void *)buf, n };
    return send_tracked(c, fd, &iov, 1, 0, SEND_WRITE);
}

EXPORT ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
    real_ensure();
    struct conn *c = hooks_tracked(fd);
    if (!c)
        return real.writev(fd, iov, iovcnt);
    return send_tracked(c, fd, iov, iovcnt, 0, SEND_WRITE);
}

/* Out-of-band data and zero-copy sends are the application's business
 * with the kernel (zero-copy completions refer to its buffers). */
static int bypass_flags(int flags)
{
    int mask = MSG_OOB;
#ifdef MSG_ZEROCOPY
    mask |= MSG_ZEROCOPY;
#endif
    return flags & mask;
}

EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
    real_ensure();
    if (bypass_flags(flags)) {
        if (hooks_bypass(fd) != 0)
            return -1;
        return real.send(fd, buf, n, flags);
    }
    struct conn *c = hooks_tracked(fd);
    if (!c)
        return real.send(fd, buf, n, flags);
    struct iovec iov = { (void *)buf, n };
    return send_tracked(c, fd, &iov, 1, flags, SEND_SOCKET);
}

/* sendto(MSG_FASTOPEN) on an unconnected socket connects and sends at
 * once: the connection starts here, and our first send carries the SYN. */
static struct conn *track_fastopen(int fd, const struct sockaddr *addr, socklen_t len)
{
    if (!addr || len > sizeof(struct sockaddr_storage) || conn_maybe_tracked(fd) ||
        hooks_in_shim || !hooks_trackable(fd, addr))
        return NULL;
    struct conn *c = hooks_track(fd, addr, len);
    if (c) {
        memcpy(&c->fastopen_addr, addr, len);
        c->fastopen_len = len;
        c->fastopen = 1;
    }
    return c;
}

EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags,
                      const struct sockaddr *addr, socklen_t addr_len)
{
    real_ensure();
    if (bypass_flags(flags)) {
        if (hooks_bypass(fd) != 0)
            return -1;
        return real.sendto(fd, buf, n, flags, addr, addr_len);
    }
    struct conn *c = (flags & MSG_FASTOPEN) ? track_fastopen(fd, addr, addr_len) : NULL;
    if (!c)
        c = hooks_tracked(fd);
    if (!c)
        return real.sendto(fd, buf, n, flags, addr, addr_len);
    struct iovec iov = { (void *)buf, n };
    return send_tracked(c, fd, &iov, 1, flags & ~MSG_FASTOPEN, SEND_SOCKET);
}

EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    real_ensure();
    if (!msg || !conn_maybe_tracked(fd))
        return real.sendmsg(fd, msg, flags);
    if (bypass_flags(flags) || msg->msg_controllen || msg->msg_name) {
        if (hooks_bypass(fd) != 0)
            return -1;
        return real.sendmsg(fd, msg, flags);
    }
    struct conn *c = hooks_tracked(fd);
    if (!c)
        return real.sendmsg(fd, msg, flags);
    return send_tracked(c, fd, msg->msg_iov, (int)msg->msg_iovlen, flags, SEND_SOCKET);
}

EXPORT int sendmmsg(int fd, struct mmsghdr *msgs, unsigned int vlen, real_mmsg_flags flags)
{
    real_ensure();
    if (!conn_maybe_tracked(fd) || hooks_in_shim)
        return real.sendmmsg(fd, msgs, vlen, flags);
    /* On a stream socket the messages are consecutive stream bytes. */
    int e = errno;
    unsigned int i;
    for (i = 0; i < vlen && i < INT_MAX; i++) {
        ssize_t r = sendmsg(fd, &msgs[i].msg_hdr, (int)flags);
        if (r < 0) {
            if (i == 0)
                return -1;
            break;
        }
        msgs[i].msg_len = (unsigned int)r;
        size_t want = 0;
        for (size_t j = 0; j < (size_t)msgs[i].msg_hdr.msg_iovlen; j++)
            want += msgs[i].msg_hdr.msg_iov[j].iov_len;
        if ((size_t)r < want) {
            i++;
            break;
        }
    }
    errno = e;
    return (int)i;
}

EXPORT ssize_t sendfile(int out_fd, int in_fd, off_t *offset, size_t count)
{
    real_ensure();
    if (hooks_bypass(out_fd) != 0)
        return -1;
    return real.sendfile(out_fd, in_fd, offset, count);
}

EXPORT ssize_t sendfile64(int out_fd, int in_fd, off_t *offset, size_t count)
{
    real_ensure();
    if (hooks_bypass(out_fd) != 0)
        return -1;
    if (real.sendfile64)
        return real.sendfile64(out_fd, in_fd, offset, count);
    return real.sendfile(out_fd, in_fd, offset, count);
}

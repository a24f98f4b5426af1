/* hooks_recv.c - the read family. Answers the shim gave in the server's
 * place (a 100 Continue) are read before the socket's own bytes; and a
 * reader that blocks waiting for the server tells us the application will
 * send no more of a request we hold. */
#include <errno.h>
#include <fcntl.h>

#include "flight.h"
#include "hooks.h"

/* Whether a read on fd with flags would wait for the server. */
static int read_blocks(int fd, int flags)
{
    if (flags & MSG_DONTWAIT)
        return 0;
    int fl = real.fcntl(fd, F_GETFL);
    return fl >= 0 && !(fl & O_NONBLOCK);
}

/* Returns the answer bytes served into iov, 0 when there are none. */
static ssize_t before_read(int fd, const struct iovec *iov, int iovcnt, int flags)
{
    int answers = __atomic_load_n(&conn_answers_pending, __ATOMIC_ACQUIRE);
    int holding = __atomic_load_n(&conn_holding_count, __ATOMIC_ACQUIRE);
    if ((!answers && !holding) || hooks_in_shim)
        return 0;
    struct conn *c = conn_acquire(fd);
    if (!c)
        return 0;
    int e = errno;
    /* Marked as the shim's work: a signal handler's _exit must not wait
     * for the locks this takes. */
    hooks_in_shim++;
    size_t n = conn_take_answer(c, iov, iovcnt, flags & MSG_PEEK);
    if (n == 0 && __atomic_load_n(&c->holding, __ATOMIC_ACQUIRE) && read_blocks(fd, flags))
        hooks_release_held(c, fd, -1);
    hooks_in_shim--;
    conn_release(c);
    errno = e;
    return (ssize_t)n;
}

static ssize_t before_read1(int fd, void *buf, size_t len, int flags)
{
    struct iovec iov = { buf, len };
    return len ? before_read(fd, &iov, 1, flags) : 0;
}

/* After a real read: answers to journaled requests are matched as the
 * application reads them (the bytes themselves are not touched). */
static ssize_t after_read(int fd, const struct iovec *iov, int iovcnt, ssize_t r, int flags)
{
    if (r < 0 || (flags & MSG_PEEK) || hooks_in_shim ||
        !__atomic_load_n(&flight_awaiting_count, __ATOMIC_ACQUIRE))
        return r;
    size_t asked = 0;
    for (int i = 0; i < iovcnt; i++)
        asked += iov[i].iov_len;
    if (r == 0 && asked == 0)
        return r;
    int e = errno;
    struct conn *c = conn_acquire(fd);
    if (c && __atomic_load_n(&c->awaiting, __ATOMIC_ACQUIRE)) {
        hooks_in_shim++;
        if (r == 0)
            flight_eof(c);
        else
            flight_read(c, iov, iovcnt, (size_t)r);
        hooks_in_shim--;
    }
    conn_release(c);
    errno = e;
    return r;
}

static ssize_t after_read1(int fd, void *buf, size_t len, ssize_t r, int flags)
{
    struct iovec iov = { buf, len };
    return after_read(fd, &iov, 1, r, flags);
}

static size_t smaller(size_t a, size_t b)
{
    return a < b ? a : b;
}

EXPORT ssize_t read(int fd, void *buf, size_t len)
{
    real_ensure();
    ssize_t n = before_read1(fd, buf, len, 0);
    return n > 0 ? n : after_read1(fd, buf, len, real.read(fd, buf, len), 0);
}

EXPORT ssize_t __read_chk(int fd, void *buf, size_t len, size_t buflen)
{
    real_ensure();
    ssize_t n = before_read1(fd, buf, smaller(len, buflen), 0);
    if (n > 0)
        return n;
    return after_read1(fd, buf, len,
                       real.read_chk ? real.read_chk(fd, buf, len, buflen)
                                     : real.read(fd, buf, len), 0);
}

EXPORT ssize_t readv(int fd, const struct iovec *iov, int iovcnt)
{
    real_ensure();
    if (!iov)
        return real.readv(fd, iov, iovcnt);
    ssize_t n = before_read(fd, iov, iovcnt, 0);
    return n > 0 ? n : after_read(fd, iov, iovcnt, real.readv(fd, iov, iovcnt), 0);
}

EXPORT ssize_t recv(int fd, void *buf, size_t len, int flags)
{
    real_ensure();
    ssize_t n = before_read1(fd, buf, len, flags);
    return n > 0 ? n : after_read1(fd, buf, len, real.recv(fd, buf, len, flags), flags);
}

EXPORT ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags)
{
    real_ensure();
    ssize_t n = before_read1(fd, buf, smaller(len, buflen), flags);
    if (n > 0)
        return n;
    return after_read1(fd, buf, len,
                       real.recv_chk ? real.recv_chk(fd, buf, len, buflen, flags)
                                     : real.recv(fd, buf, len, flags), flags);
}

EXPORT ssize_t recvfrom(int fd, void *buf, size_t len, int flags,
                        struct sockaddr *addr, socklen_t *addr_len)
{
    real_ensure();
    ssize_t n = before_read1(fd, buf, len, flags);
    if (n > 0) {
        if (addr_len)
            *addr_len = 0;
        return n;
    }
    return after_read1(fd, buf, len, real.recvfrom(fd, buf, len, flags, addr, addr_len),
                       flags);
}

EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t len, size_t buflen, int flags,
                              struct sockaddr *addr, socklen_t *addr_len)
{
    real_ensure();
    ssize_t n = before_read1(fd, buf, smaller(len, buflen), flags);
    if (n > 0) {
        if (addr_len)
            *addr_len = 0;
        return n;
    }
    ssize_t r = real.recvfrom_chk
                    ? real.recvfrom_chk(fd, buf, len, buflen, flags, addr, addr_len)
                    : real.recvfrom(fd, buf, len, flags, addr, addr_len);
    return after_read1(fd, buf, len, r, flags);
}

EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
    real_ensure();
    ssize_t n = msg ? before_read(fd, msg->msg_iov, (int)msg->msg_iovlen, flags) : 0;
    if (n > 0) {
        msg->msg_namelen = 0;
        msg->msg_controllen = 0;
        msg->msg_flags = 0;
        return n;
    }
    ssize_t r = real.recvmsg(fd, msg, flags);
    return msg ? after_read(fd, msg->msg_iov, (int)msg->msg_iovlen, r, flags) : r;
}

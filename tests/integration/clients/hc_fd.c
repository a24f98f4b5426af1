/* hc_fd.c - single-threaded fd games around a request the shim holds
 * (test_hardcases.py). Each mode writes a POST head whose body has not
 * come yet, so the shim is holding it, then does one awkward thing.
 *
 * usage: hc_fd MODE PORT [ARG]      (the server is 127.0.0.1:PORT)
 *
 *   dup2, dup3, close_range  the socket's fd is closed implicitly: dup2 or
 *            dup3 of /dev/null over it, or close_range(fd, fd, 0). Then
 *            writes 1 byte to the fd (now /dev/null).
 *   stale ARG  fclose(fdopen(fd)) (glibc closes without calling close()),
 *            then opens file ARG, which gets the same fd number, and writes
 *            15 bytes to it.
 *   sendmsg_name, oob  the body goes with sendmsg() with msg_name set to
 *            the peer, or with send(MSG_OOB).
 *   recvmsg_null  recvmsg(fd, NULL, 0) and recvmsg(fd, NULL, MSG_DONTWAIT).
 *   epfd ARG  ARG is a second server's port. The socket (A) is registered
 *            with epoll, moved by dup()+close(), and its old number reused by
 *            a connection to ARG (B); the head is written to A and the
 *            program waits on epoll for 1.5 s, prints "waited", reads a line
 *            from stdin, then sends a complete request of its own on B.
 *
 * Prints what each call returned (value and errno) on stdout, one line
 * each; exits 0, or 2 when the setup itself failed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int port;

static void fail(const char *what)
{
    printf("setup failed: %s: %s\n", what, strerror(errno));
    exit(2);
}

static int connect_to(int p)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)p),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        fail("connect");
    return fd;
}

/* The head of a POST with a 7-byte body ({"x":5}) that is not sent yet. */
static int write_head(int fd, const char *path)
{
    char head[256];
    int n = snprintf(head, sizeof head, "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                     "Content-Length: 7\r\n\r\n", path, port);
    ssize_t w = write(fd, head, (size_t)n);
    printf("head %zd\n", w);
    return w == n ? 0 : -1;
}

static void report(const char *what, ssize_t r)
{
    printf("%s %zd %d\n", what, r, r < 0 ? errno : 0);
}

static int implicit_close(const char *mode)
{
    int fd = connect_to(port);
    write_head(fd, "/implicit");
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull < 0)
        fail("/dev/null");
    int r;
    if (strcmp(mode, "dup2") == 0)
        r = dup2(devnull, fd);
    else if (strcmp(mode, "dup3") == 0)
        r = dup3(devnull, fd, O_CLOEXEC);
    else {
#ifdef __GLIBC__
        r = close_range((unsigned)fd, (unsigned)fd, 0);
#else
        r = -1;   /* musl has no close_range() wrapper (only the syscall) */
        errno = ENOSYS;
#endif
    }
    report(mode, r);
    report("write", write(fd, "x", 1));
    return 0;
}

static int stale(const char *path)
{
    int fd = connect_to(port);
    write_head(fd, "/stale");
    FILE *f = fdopen(fd, "r+");
    if (f == NULL)
        fail("fdopen");
    fclose(f);
    int file = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    printf("fds %d %d\n", fd, file);
    if (file != fd)
        return 2;
    report("write", write(file, "important data\n", 15));
    report("close", close(file));
    return 0;
}

static int side_path(const char *mode)
{
    int fd = connect_to(port);
    write_head(fd, "/side");
    char body[] = "{\"x\":5}";
    ssize_t r;
    if (strcmp(mode, "oob") == 0) {
        r = send(fd, body, 7, MSG_OOB);
    } else {
        struct sockaddr_in peer;
        socklen_t len = sizeof peer;
        getpeername(fd, (struct sockaddr *)&peer, &len);
        struct iovec iov = { body, 7 };
        struct msghdr m = { .msg_name = &peer, .msg_namelen = len, .msg_iov = &iov,
                            .msg_iovlen = 1 };
        r = sendmsg(fd, &m, 0);
    }
    report(mode, r);
    report("close", close(fd));
    return 0;
}

static int recvmsg_null(void)
{
    int fd = connect_to(port);
    write_head(fd, "/recvmsg");
    report("recvmsg", recvmsg(fd, NULL, 0));
    report("recvmsg_dontwait", recvmsg(fd, NULL, MSG_DONTWAIT));
    return 0;
}

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int epfd_reuse(int port_b)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int fd = connect_to(port);                  /* connection A */
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
        fail("epoll");
    int a = dup(fd);                            /* A moves to another number; */
    close(fd);                                  /* its registration lives on */
    int b = connect_to(port_b);                 /* B gets A's old number */
    printf("fds %d %d %d\n", fd, a, b);
    if (b != fd)
        return 2;
    char head[256];
    int n = snprintf(head, sizeof head, "POST /pay HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                     "Authorization: Bearer SECRET-A\r\nContent-Length: 9\r\n\r\n", port);
    report("write", write(a, head, (size_t)n));
    int events = 0;
    long long end = now_ms() + 1500;
    while (now_ms() < end) {                    /* waiting for A's answer */
        struct epoll_event out[4];
        int r = epoll_wait(ep, out, 4, 100);
        events += r > 0 ? r : 0;
    }
    printf("waited %d\n", events);
    fflush(stdout);
    char line[16];
    if (fgets(line, sizeof line, stdin) == NULL)
        return 2;
    n = snprintf(head, sizeof head, "POST /b HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                 "Content-Length: 3\r\n\r\nb=1", port_b);
    report("write_b", write(b, head, (size_t)n));
    close(a);
    close(b);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 3) {
        fprintf(stderr, "usage: hc_fd MODE PORT [ARG]\n");
        return 2;
    }
    const char *mode = argv[1];
    const char *arg = argc > 3 ? argv[3] : "";
    port = atoi(argv[2]);
    if (!strcmp(mode, "dup2") || !strcmp(mode, "dup3") || !strcmp(mode, "close_range"))
        return implicit_close(mode);
    if (!strcmp(mode, "stale"))
        return stale(arg);
    if (!strcmp(mode, "sendmsg_name") || !strcmp(mode, "oob"))
        return side_path(mode);
    if (!strcmp(mode, "recvmsg_null"))
        return recvmsg_null();
    if (!strcmp(mode, "epfd"))
        return epfd_reuse(atoi(arg));
    fprintf(stderr, "hc_fd: unknown mode %s\n", mode);
    return 2;
}

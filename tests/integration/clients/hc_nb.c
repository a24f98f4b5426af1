/* hc_nb.c - non-blocking writes to a server that does not read yet
 * (test_hardcases.py).
 *
 * usage: hc_nb MODE PORT         (the server is 127.0.0.1:PORT)
 *
 *   pollwait  writes a POST head with a 4 MiB body, then the body until the
 *            socket is full or only its last byte is left; prints "wrote N"
 *            (body bytes written) and "poll R MS" for poll(POLLIN, 200 ms).
 *            Then reads a line from stdin (the server reads from now on),
 *            writes the rest of the body waiting with poll(POLLOUT), prints
 *            "done" and closes.
 *   binary, http  one write() of 64 MiB: 0x16 bytes (not HTTP), or a whole
 *            POST whose body is over RETRYSAFE_MAX_BODY; then writes on
 *            until EAGAIN (at most 100 more calls). Prints "first R ERRNO"
 *            and "total N" (bytes the writes reported), and closes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BODY (4u << 20)
#define BIG (64u << 20)

static int port;

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int connect_nb(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("connect");
        exit(2);
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

/* Writes len bytes, waiting for the socket at most 10 s at a time. */
static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t r = write(fd, p, len);
        if (r < 0 && errno != EAGAIN && errno != EINTR)
            return -1;
        if (r < 0) {
            struct pollfd w = { fd, POLLOUT, 0 };
            if (poll(&w, 1, 10000) <= 0)
                return -1;
            continue;
        }
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

static int pollwait(void)
{
    int fd = connect_nb();
    char head[256];
    int hl = snprintf(head, sizeof head, "POST /poll HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                      "Content-Length: %u\r\n\r\n", port, BODY);
    char *body = malloc(BODY);
    if (body == NULL || write_all(fd, head, (size_t)hl) != 0)
        return 2;
    for (size_t i = 0; i < BODY; i++)
        body[i] = (char)('a' + i % 26);
    size_t sent = 0;
    while (sent < BODY - 1) {
        ssize_t r = write(fd, body + sent, BODY - 1 - sent);
        if (r < 0)
            break;
        sent += (size_t)r;
    }
    printf("wrote %zu\n", sent);
    struct pollfd p = { fd, POLLIN, 0 };
    long long t = now_ms();
    int r = poll(&p, 1, 200);
    printf("poll %d %lld\n", r, now_ms() - t);
    fflush(stdout);
    char line[16];
    if (fgets(line, sizeof line, stdin) == NULL)
        return 2;
    if (write_all(fd, body + sent, BODY - sent) != 0) {
        printf("write failed: %s\n", strerror(errno));
        return 1;
    }
    printf("done\n");
    close(fd);
    return 0;
}

static int big_write(const char *kind)
{
    char *b = malloc(BIG);
    if (b == NULL)
        return 2;
    memset(b, 0x16, BIG);
    if (strcmp(kind, "http") == 0) {
        /* Content-Length has 8 digits whatever the head's length. */
        char head[256];
        int hl = snprintf(head, sizeof head, "POST /big HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                          "Content-Length: %u\r\n\r\n", port, BIG);
        hl = snprintf(head, sizeof head, "POST /big HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                      "Content-Length: %u\r\n\r\n", port, BIG - (unsigned)hl);
        memset(b, 'b', BIG);
        memcpy(b, head, (size_t)hl);
    }
    int fd = connect_nb();
    ssize_t r = write(fd, b, BIG);
    printf("first %zd %d\n", r, r < 0 ? errno : 0);
    size_t total = r > 0 ? (size_t)r : 0;
    for (int i = 0; i < 100 && total < BIG; i++) {
        ssize_t k = write(fd, b + total, BIG - total);
        if (k < 0)
            break;
        total += (size_t)k;
    }
    printf("total %zu\n", total);
    close(fd);
    free(b);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 3) {
        fprintf(stderr, "usage: hc_nb MODE PORT\n");
        return 2;
    }
    port = atoi(argv[2]);
    if (!strcmp(argv[1], "pollwait"))
        return pollwait();
    if (!strcmp(argv[1], "binary") || !strcmp(argv[1], "http"))
        return big_write(argv[1]);
    fprintf(stderr, "hc_nb: unknown mode %s\n", argv[1]);
    return 2;
}

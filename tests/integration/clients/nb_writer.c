/* nb_writer.c - a non-blocking raw-socket POST through a small send buffer.
 *
 * usage: nb_writer HOST PORT [BODY_SIZE [PATH]]
 *
 * Connects without blocking, sets SO_SNDBUF to 4096, and writes
 *
 *   POST PATH HTTP/1.1\r\nHost: HOST:PORT\r\n
 *   Content-Type: application/octet-stream\r\nContent-Length: N\r\n\r\n
 *
 * followed by BODY_SIZE (default 3 MiB) bytes of "abc...xyz" repeated, all
 * with write() in a poll() loop that handles EAGAIN and partial writes. Then
 * reads one response and prints it to stdout. Counts go to stderr as
 * "writes=N partial=N eagain=N". Exits 0 on a complete response.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define TIMEOUT_MS 15000

static int wait_for(int fd, short events)
{
    struct pollfd p = {.fd = fd, .events = events};
    int n;
    do {
        n = poll(&p, 1, TIMEOUT_MS);
    } while (n < 0 && errno == EINTR);
    if (n == 0) {
        fprintf(stderr, "nb_writer: timed out\n");
        return -1;
    }
    return n < 0 ? -1 : 0;
}

static int connect_nb(const char *host, const char *port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "nb_writer: %s\n", gai_strerror(rc));
        return -1;
    }
    int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0)
        goto fail;
    int sndbuf = 4096;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        if (errno != EINPROGRESS)
            goto fail;
        if (wait_for(fd, POLLOUT) < 0)
            goto fail;
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            errno = err;
            goto fail;
        }
    }
    freeaddrinfo(ai);
    return fd;
fail:
    perror("nb_writer: connect");
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    return -1;
}

/* Length of a complete response at the start of buf (skipping 1xx
 * answers), or 0 when more is needed. */
static size_t response_len(const char *buf, size_t len)
{
    size_t start = 0;
    for (;;) {
        const char *end = memmem(buf + start, len - start, "\r\n\r\n", 4);
        if (end == NULL)
            return 0;
        size_t head = (size_t)(end - buf) + 4;
        if (len - start >= 12 && buf[start + 9] == '1') {
            start = head;     /* 100 Continue: the real answer follows */
            continue;
        }
        size_t clen = 0;
        const char *p = buf + start;
        while (p < end) {
            const char *eol = memmem(p, (size_t)(end - p) + 2, "\r\n", 2);
            if (strncasecmp(p, "Content-Length:", 15) == 0)
                clen = strtoul(p + 15, NULL, 10);
            p = eol + 2;
        }
        return len >= head + clen ? head + clen : 0;
    }
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: nb_writer HOST PORT [BODY_SIZE [PATH]]\n");
        return 2;
    }
    size_t body_size = argc > 3 ? strtoul(argv[3], NULL, 10) : 3u << 20;
    const char *path = argc > 4 ? argv[4] : "/nb";

    char head[1024];
    int head_len = snprintf(head, sizeof head,
                            "POST %s HTTP/1.1\r\nHost: %s:%s\r\n"
                            "Content-Type: application/octet-stream\r\n"
                            "Content-Length: %zu\r\n\r\n",
                            path, argv[1], argv[2], body_size);
    size_t total = (size_t)head_len + body_size;
    char *req = malloc(total);
    if (req == NULL)
        return 1;
    memcpy(req, head, (size_t)head_len);
    for (size_t i = 0; i < body_size; i++)
        req[(size_t)head_len + i] = (char)('a' + i % 26);

    int fd = connect_nb(argv[1], argv[2]);
    if (fd < 0)
        return 1;

    unsigned long writes = 0, partial = 0, eagain = 0;
    size_t off = 0;
    while (off < total) {
        ssize_t n = write(fd, req + off, total - off);
        writes++;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                perror("nb_writer: write");
                return 1;
            }
            eagain++;
            if (wait_for(fd, POLLOUT) < 0)
                return 1;
            continue;
        }
        if ((size_t)n < total - off)
            partial++;
        off += (size_t)n;
    }
    fprintf(stderr, "writes=%lu partial=%lu eagain=%lu\n", writes, partial,
            eagain);

    char resp[65536];
    size_t got = 0, want = 0;
    while (want == 0 && got < sizeof resp) {
        ssize_t n = read(fd, resp + got, sizeof resp - got);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                perror("nb_writer: read");
                return 1;
            }
            if (wait_for(fd, POLLIN) < 0)
                return 1;
            continue;
        }
        if (n == 0)
            break;
        got += (size_t)n;
        want = response_len(resp, got);
    }
    fwrite(resp, 1, got, stdout);
    close(fd);
    free(req);
    if (want == 0) {
        fprintf(stderr, "nb_writer: incomplete response\n");
        return 1;
    }
    return 0;
}

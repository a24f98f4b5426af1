/* raw_send.c - send a file's bytes over a plain socket with a chosen
 * syscall and split pattern, then read the answers.
 *
 * usage: raw_send [-m MODE] [-s N | -p OFF,OFF,...] [-g G] [-d MS]
 *                 [-n RESPONSES] [-w] HOST PORT FILE
 *
 *   -m MODE  write (default), send, sendto, sendmsg, writev, sendmmsg, or
 *            fastopen (the first piece goes with sendto(MSG_FASTOPEN) on an
 *            unconnected socket, the rest with send()).
 *   -s N     split the bytes into pieces of N bytes;
 *   -p LIST  or split them at the given offsets.
 *   -g G     pieces per call. Default: 1 for write, send, sendto and
 *            fastopen; every piece in one call (as iovecs, or as messages for
 *            sendmmsg; at most 1024 a call) for writev, sendmsg, sendmmsg.
 *   -d MS    sleep MS milliseconds between calls.
 *   -n N     final (non-1xx) responses to wait for; default 1. With 0, read
 *            until the server closes the connection.
 *   -w       shut down the sending side after the last byte.
 *
 * Everything received is printed to stdout. Exits 0 when N responses (or,
 * for -n 0, end of stream) arrived, 1 on any error or a 15 s timeout.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifndef MSG_FASTOPEN
#define MSG_FASTOPEN 0x20000000
#endif

#define MAX_VEC 1024
#define TIMEOUT_MS 15000

enum mode { M_WRITE, M_SEND, M_SENDTO, M_SENDMSG, M_WRITEV, M_SENDMMSG,
            M_FASTOPEN };

static const char *mode_names[] = {"write", "send", "sendto", "sendmsg",
                                   "writev", "sendmmsg", "fastopen"};

struct piece {
    const char *p;
    size_t len;
};

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        die(path);
    size_t cap = 65536, n = 0, r;
    char *data = malloc(cap);
    while (data && (r = fread(data + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap)
            data = realloc(data, cap *= 2);
    }
    if (data == NULL)
        die("malloc");
    fclose(f);
    *len = n;
    return data;
}

static size_t make_pieces(const char *data, size_t len, size_t size,
                          const char *offsets, struct piece **out)
{
    struct piece *ps = malloc(sizeof *ps * (len + 1));
    size_t n = 0, at = 0;
    if (ps == NULL)
        die("malloc");
    if (offsets != NULL) {
        char *copy = strdup(offsets), *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t;
             t = strtok_r(NULL, ",", &save)) {
            size_t off = strtoul(t, NULL, 10);
            if (off <= at || off >= len)
                continue;
            ps[n++] = (struct piece){data + at, off - at};
            at = off;
        }
        free(copy);
    } else if (size > 0) {
        while (len - at > size) {
            ps[n++] = (struct piece){data + at, size};
            at += size;
        }
    }
    if (at < len || n == 0)
        ps[n++] = (struct piece){data + at, len - at};
    *out = ps;
    return n;
}

/* Drops `sent` bytes from the front of the pieces list. */
static void advance(struct piece *ps, size_t n, size_t *first, size_t sent)
{
    while (sent > 0 && *first < n) {
        size_t take = sent < ps[*first].len ? sent : ps[*first].len;
        ps[*first].p += take;
        ps[*first].len -= take;
        sent -= take;
        if (ps[*first].len == 0)
            (*first)++;
    }
}

static void pause_ms(long ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* One call sending up to g pieces from ps[first]; returns bytes sent. */
static ssize_t send_some(int fd, enum mode m, struct piece *ps, size_t n,
                         size_t first, size_t g)
{
    struct iovec iov[MAX_VEC];
    struct mmsghdr mm[MAX_VEC];
    size_t k = 0;
    if (g > MAX_VEC)
        g = MAX_VEC;
    for (; k < g && first + k < n; k++)
        iov[k] = (struct iovec){(void *)ps[first + k].p, ps[first + k].len};

    switch (m) {
    case M_WRITE:
        return write(fd, iov[0].iov_base, iov[0].iov_len);
    case M_SEND:
    case M_FASTOPEN:
        return send(fd, iov[0].iov_base, iov[0].iov_len, 0);
    case M_SENDTO:
        return sendto(fd, iov[0].iov_base, iov[0].iov_len, 0, NULL, 0);
    case M_WRITEV:
        return writev(fd, iov, (int)k);
    case M_SENDMSG: {
        struct msghdr mh = {0};
        mh.msg_iov = iov;
        mh.msg_iovlen = k;
        return sendmsg(fd, &mh, 0);
    }
    case M_SENDMMSG: {
        memset(mm, 0, sizeof mm[0] * k);
        for (size_t i = 0; i < k; i++) {
            mm[i].msg_hdr.msg_iov = &iov[i];
            mm[i].msg_hdr.msg_iovlen = 1;
        }
        int r = sendmmsg(fd, mm, (unsigned)k, 0);
        if (r < 0)
            return -1;
        ssize_t sent = 0;
        for (int i = 0; i < r; i++)
            sent += mm[i].msg_len;
        return sent;
    }
    }
    return -1;
}

/* Length of the first complete non-1xx response in buf, counting any 1xx
 * answers before it, or 0 when more is needed. */
static size_t response_len(const char *buf, size_t len)
{
    size_t start = 0;
    for (;;) {
        const char *end = memmem(buf + start, len - start, "\r\n\r\n", 4);
        if (end == NULL)
            return 0;
        size_t head = (size_t)(end - buf) + 4;
        if (len - start >= 12 && buf[start + 9] == '1') {
            start = head;
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
    enum mode m = M_WRITE;
    size_t size = 0, g = 0;
    const char *offsets = NULL;
    long delay = 0, want = 1;
    int shut = 0, opt;
    while ((opt = getopt(argc, argv, "m:s:p:g:d:n:w")) != -1) {
        switch (opt) {
        case 'm': {
            size_t i = 0;
            while (i < sizeof mode_names / sizeof *mode_names &&
                   strcmp(optarg, mode_names[i]) != 0)
                i++;
            if (i == sizeof mode_names / sizeof *mode_names) {
                fprintf(stderr, "raw_send: unknown mode %s\n", optarg);
                return 2;
            }
            m = (enum mode)i;
            break;
        }
        case 's': size = strtoul(optarg, NULL, 10); break;
        case 'p': offsets = optarg; break;
        case 'g': g = strtoul(optarg, NULL, 10); break;
        case 'd': delay = strtol(optarg, NULL, 10); break;
        case 'n': want = strtol(optarg, NULL, 10); break;
        case 'w': shut = 1; break;
        default:
            fprintf(stderr, "usage: raw_send [-m MODE] [-s N | -p OFFS] [-g G]"
                            " [-d MS] [-n N] [-w] HOST PORT FILE\n");
            return 2;
        }
    }
    if (argc - optind != 3) {
        fprintf(stderr, "raw_send: need HOST PORT FILE\n");
        return 2;
    }
    if (g == 0)
        g = (m == M_WRITEV || m == M_SENDMSG || m == M_SENDMMSG) ? MAX_VEC : 1;

    size_t len;
    char *data = read_file(argv[optind + 2], &len);
    struct piece *ps;
    size_t n = make_pieces(data, len, size, offsets, &ps);

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai;
    int rc = getaddrinfo(argv[optind], argv[optind + 1], &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "raw_send: %s\n", gai_strerror(rc));
        return 1;
    }
    int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0)
        die("socket");

    size_t first = 0;
    if (m == M_FASTOPEN) {
        ssize_t r = sendto(fd, ps[0].p, ps[0].len, MSG_FASTOPEN, ai->ai_addr,
                           ai->ai_addrlen);
        if (r < 0)
            die("sendto(MSG_FASTOPEN)");
        advance(ps, n, &first, (size_t)r);
        pause_ms(delay);
    } else if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        die("connect");
    }
    freeaddrinfo(ai);

    while (first < n) {
        if (ps[first].len == 0) {
            first++;
            continue;
        }
        ssize_t r = send_some(fd, m, ps, n, first, g);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            die(mode_names[m]);
        }
        advance(ps, n, &first, (size_t)r);
        if (first < n)
            pause_ms(delay);
    }
    if (shut && shutdown(fd, SHUT_WR) < 0)
        die("shutdown");

    size_t cap = 65536, got = 0, at = 0;
    long responses = 0;
    char *resp = malloc(cap);
    if (resp == NULL)
        die("malloc");
    while (want == 0 || responses < want) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int pr = poll(&p, 1, TIMEOUT_MS);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0) {
            fprintf(stderr, "raw_send: %s waiting for the answer\n",
                    pr == 0 ? "timed out" : strerror(errno));
            break;
        }
        if (got == cap && (resp = realloc(resp, cap *= 2)) == NULL)
            die("realloc");
        ssize_t r = read(fd, resp + got, cap - got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            perror("raw_send: read");
            break;
        }
        if (r == 0) {
            if (want == 0)
                responses = -1;   /* end of stream was what we waited for */
            break;
        }
        got += (size_t)r;
        size_t one;
        while (want > 0 && responses < want &&
               (one = response_len(resp + at, got - at)) > 0) {
            at += one;
            responses++;
        }
    }
    fwrite(resp, 1, got, stdout);
    close(fd);
    free(resp);
    free(ps);
    free(data);
    if (want == 0)
        return responses == -1 ? 0 : 1;
    if (responses < want) {
        fprintf(stderr, "raw_send: got %ld of %ld responses\n", responses, want);
        return 1;
    }
    return 0;
}

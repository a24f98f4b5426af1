/* post_loop.c - POSTs over one kept-alive loopback connection to a server
 * thread in the same process (its accepted socket is never tracked: only
 * connect() is). Measures what the shim adds per tagged request.
 * usage: post_loop N BODY_BYTES   prints: "requests_per_s X" */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int listener;
static long requests;
static size_t body_bytes;

/* Reads one request (head, then Content-Length bytes). */
static int read_request(int fd, char *buf, size_t cap)
{
    size_t have = 0;
    char *end = NULL;
    while (!(end = memmem(buf, have, "\r\n\r\n", 4))) {
        ssize_t r = read(fd, buf + have, cap - have);
        if (r <= 0)
            return -1;
        have += (size_t)r;
    }
    size_t need = (size_t)(end + 4 - buf) + body_bytes;
    while (have < need) {
        ssize_t r = read(fd, buf + have, cap - have);
        if (r <= 0)
            return -1;
        have += (size_t)r;
    }
    return 0;
}

static void *serve(void *arg)
{
    (void)arg;
    static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    int fd = accept(listener, NULL, NULL);
    size_t cap = body_bytes + 65536;
    char *buf = malloc(cap);
    for (long i = 0; i < requests; i++) {
        if (read_request(fd, buf, cap) != 0)
            break;
        if (write(fd, answer, sizeof(answer) - 1) < 0)
            break;
    }
    free(buf);
    close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    requests = argc > 1 ? atol(argv[1]) : 20000;
    body_bytes = argc > 2 ? (size_t)atol(argv[2]) : 64;
    listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    bind(listener, (struct sockaddr *)&a, sizeof(a));
    listen(listener, 1);
    getsockname(listener, (struct sockaddr *)&a, &len);
    pthread_t t;
    pthread_create(&t, NULL, serve, NULL);

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    /* Head and body go in two writes; without NODELAY the second waits
     * for a delayed ACK and the bench would measure the kernel's timers. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
        return 1;
    char *body = malloc(body_bytes);
    memset(body, 'b', body_bytes);
    char head[256];
    int head_len = snprintf(head, sizeof(head),
                            "POST /bench HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                            "Content-Length: %zu\r\n\r\n", ntohs(a.sin_port), body_bytes);
    char reply[256];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < requests; i++) {
        /* Each request its own key (guard mode would replay a repeat):
         * the run's pid and the request's number lead the body. */
        char id[40];
        int n = snprintf(id, sizeof(id), "%d-%ld-", (int)getpid(), i);
        memcpy(body, id, (size_t)n < body_bytes ? (size_t)n : body_bytes);
        if (write(fd, head, (size_t)head_len) != head_len ||
            write(fd, body, body_bytes) != (ssize_t)body_bytes)
            return 1;
        size_t got = 0;
        while (got < 40) {  /* the 40-byte answer */
            ssize_t r = read(fd, reply + got, sizeof(reply) - got);
            if (r <= 0)
                return 1;
            got += (size_t)r;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("requests_per_s %.0f\n", requests / s);
    pthread_join(t, NULL);
    return 0;
}

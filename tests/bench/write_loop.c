/* write_loop.c - the cost of write() and send() on fds the shim does not
 * track, while it is tracking a connection (its table exists).
 * usage: write_loop N PORT [PAIRS]   (PORT: a listener to connect to first;
 *        N write() calls, then PAIRS send()+recv() pairs, N if not given)
 * prints: "write_ns X\nsend_recv_ns Y\n": per call, per pair. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 10000000;
    int port = argc > 2 ? atoi(argv[2]) : 0;
    long pairs = argc > 3 ? atol(argv[3]) : n;
    if (port) {
        /* A tracked connection, so the shim is fully started. */
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port) };
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(s, (struct sockaddr *)&a, sizeof(a)) != 0)
            perror("connect");
    }
    int null = open("/dev/null", O_WRONLY);
    int pair[2];
    socketpair(AF_UNIX, SOCK_DGRAM, 0, pair);
    char byte = 'x';

    double t0 = now_ns();
    for (long i = 0; i < n; i++)
        if (write(null, &byte, 1) != 1)
            return 1;
    double t1 = now_ns();
    for (long i = 0; i < pairs; i++) {
        if (send(pair[0], &byte, 1, MSG_DONTWAIT) != 1)
            return 1;
        if (recv(pair[1], &byte, 1, 0) != 1)
            return 1;
    }
    double t2 = now_ns();
    printf("write_ns %.2f\nsend_recv_ns %.2f\n", (t1 - t0) / n, (t2 - t1) / pairs);
    return 0;
}

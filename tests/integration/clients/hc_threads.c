/* hc_threads.c - one thread acts on a connection another thread is using
 * (test_hardcases.py).
 *
 * usage: hc_threads MODE ARG
 *
 *   shutdown PORT, close PORT  a thread writes 64 MiB (0x16 bytes: not HTTP)
 *            to 127.0.0.1:PORT, whose server does not read, and blocks. The
 *            main thread then calls shutdown(SHUT_RDWR) or close() on the fd
 *            and prints "op R ERRNO MS"; reads a line from stdin; waits up
 *            to 8 s for the writer and prints "writer R ERRNO MS" (MS since
 *            the shutdown or close), or "writer blocked".
 *   forkstart DELAY_US  a thread makes the process's first connection (the
 *            shim starts then) while the main thread forks after DELAY_US;
 *            the child connects and exits. Prints "child ok", or "child
 *            hung" when the child was still stuck after 3 s (exit 1).
 *   epoll_churn MS  for MS milliseconds, three threads call epoll_wait while
 *            the main thread connects, writes a POST head, registers the fd
 *            with epoll, dup2()s /dev/null over it and closes it. Prints
 *            "iterations N".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BIG (64u << 20)

static int fd, port;
static volatile int stop;
static int writing;
static long long op_at;

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int connect_to(int p)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)p),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("connect");
        exit(2);
    }
    return s;
}

static int listen_any(void)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 64) != 0 ||
        getsockname(l, (struct sockaddr *)&a, &len) != 0) {
        perror("listen");
        exit(2);
    }
    port = ntohs(a.sin_port);
    return l;
}

/* ---- a writer blocked on a full socket -------------------------------- */

static void *writer(void *arg)
{
    static char line[64];
    char *b = malloc(BIG);
    (void)arg;
    if (b == NULL)
        exit(2);
    memset(b, 0x16, BIG);
    __atomic_store_n(&writing, 1, __ATOMIC_RELEASE);
    ssize_t r = write(fd, b, BIG);
    snprintf(line, sizeof line, "writer %zd %d %lld\n", r, r < 0 ? errno : 0,
             now_ms() - __atomic_load_n(&op_at, __ATOMIC_ACQUIRE));
    free(b);
    return line;
}

static int blocked_writer(const char *op, int p)
{
    signal(SIGPIPE, SIG_IGN);
    fd = connect_to(p);
    pthread_t th;
    pthread_create(&th, NULL, writer, NULL);
    while (!__atomic_load_n(&writing, __ATOMIC_ACQUIRE))
        usleep(1000);
    usleep(300000);      /* by now the socket is full and the writer blocked */
    long long t = now_ms();
    __atomic_store_n(&op_at, t, __ATOMIC_RELEASE);
    int r = strcmp(op, "close") == 0 ? close(fd) : shutdown(fd, SHUT_RDWR);
    printf("%s %d %d %lld\n", op, r, r < 0 ? errno : 0, now_ms() - t);
    char line[16];
    if (fgets(line, sizeof line, stdin) == NULL)
        return 2;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 8;
    void *res;
    if (pthread_timedjoin_np(th, &res, &until) != 0) {
        printf("writer blocked\n");
        fflush(stdout);
        _exit(0);
    }
    fputs(res, stdout);
    return 0;
}

/* ---- fork while the shim starts ---------------------------------------- */

static void *first_connection(void *arg)
{
    (void)arg;
    close(connect_to(port));
    return NULL;
}

static int forkstart(int delay_us)
{
    int l = listen_any();
    pthread_t th;
    pthread_create(&th, NULL, first_connection, NULL);
    usleep((useconds_t)delay_us);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(3);
        close(connect_to(port));
        _exit(0);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid) {
        perror("fork");
        return 2;
    }
    pthread_join(th, NULL);
    close(l);
    if (WIFSIGNALED(st)) {
        printf("child %s\n", WTERMSIG(st) == SIGALRM ? "hung" : "killed");
        return 1;
    }
    printf("child ok\n");
    return WEXITSTATUS(st) ? 1 : 0;
}

/* ---- epoll waiters while connections die -------------------------------- */

static int ep;

static void *waiter(void *arg)
{
    struct epoll_event ev[8];
    (void)arg;
    while (!stop)
        epoll_wait(ep, ev, 8, 1);
    return NULL;
}

static void *acceptor(void *arg)
{
    int l = *(int *)arg;
    while (!stop) {
        int s = accept(l, NULL, NULL);
        if (s >= 0)
            close(s);
    }
    return NULL;
}

static int epoll_churn(int ms)
{
    int l = listen_any();
    ep = epoll_create1(0);
    int devnull = open("/dev/null", O_WRONLY);
    if (ep < 0 || devnull < 0)
        return 2;
    pthread_t w[3], ac;
    pthread_create(&ac, NULL, acceptor, &l);
    for (int i = 0; i < 3; i++)
        pthread_create(&w[i], NULL, waiter, NULL);
    char head[128];
    int n = snprintf(head, sizeof head, "POST /u HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                     "Content-Length: 9\r\n\r\n", port);
    long iterations = 0;
    long long end = now_ms() + ms;
    while (now_ms() < end) {
        int s = connect_to(port);
        if (write(s, head, (size_t)n) != n)
            return 2;
        struct epoll_event e = { .events = EPOLLIN, .data.fd = s };
        epoll_ctl(ep, EPOLL_CTL_ADD, s, &e);
        dup2(devnull, s);
        close(s);
        iterations++;
    }
    stop = 1;
    for (int i = 0; i < 3; i++)
        pthread_join(w[i], NULL);
    printf("iterations %ld\n", iterations);
    fflush(stdout);
    _exit(0);     /* the acceptor stays blocked in accept() */
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 3) {
        fprintf(stderr, "usage: hc_threads MODE ARG\n");
        return 2;
    }
    const char *mode = argv[1];
    int arg = atoi(argv[2]);
    if (!strcmp(mode, "shutdown") || !strcmp(mode, "close"))
        return blocked_writer(mode, arg);
    if (!strcmp(mode, "forkstart"))
        return forkstart(arg);
    if (!strcmp(mode, "epoll_churn"))
        return epoll_churn(arg);
    fprintf(stderr, "hc_threads: unknown mode %s\n", mode);
    return 2;
}

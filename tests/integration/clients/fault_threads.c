/* fault_threads.c - multithreaded programs for the fault tests
 * (test_faults.py). Every request is a POST of a form body to
 * 127.0.0.1:PORT; every answer expected is the recording server's
 * "HTTP/1.1 200 OK ... ok".
 *
 * usage: fault_threads MODE ARGS
 *
 *   threads PORT NTHREADS N  each thread connects on its own and POSTs N
 *            requests on its connection ("/t<T>", body "t=<T>&i=<I>",
 *            head and body in two send() calls), reading each answer.
 *            Prints "done".
 *   sigwrite PORT_A PORT_B MS  SIGALRM every 200 us (setitimer); the
 *            handler writes a 4-byte counter to a pipe (untracked) and, on
 *            every 2nd signal, one whole request ("/sig", body
 *            "n=<8 digits>") to connection B in one write(). For MS ms the
 *            main thread POSTs 64 KiB bodies (no Content-Type) in 256-byte
 *            send()s on connection A ("/a", body
 *            "i=<6 digits>&pad=xxx...") and reads each answer, so most
 *            signals land inside send(). B's fd is A's + 64 (the same
 *            lock stripe in the shim). Prints "a N", "b N SHORT" (requests
 *            written, writes that came short), "signals N" and
 *            "pipe N ORDERED" (records a reader thread got, 1 when they
 *            were 0, 1, 2, ... in order).
 *   closerace PORT MS  a writer thread writes whole requests ("/c<K>",
 *            body "k=<K>&i=<I>&pad=..." of 1-4 KiB, no Content-Type, one
 *            write() each) to
 *            the fd in `cur`, connection K; another thread closes that fd
 *            at random moments and connects connection K+1, which gets
 *            the same number, and publishes it. Prints "conns N", "reused
 *            N" (new connections that got the closed number) and "stable
 *            I..." (the requests written whole while no close or connect
 *            was under way: those went to connection K, which the shim
 *            had tracked).
 *   stalecall PORT  connection A (to a listener of this program that never
 *            reads) gets fd F; a thread writes 64 MiB of 0x16 to it and
 *            blocks in send(), holding A in the shim; a second thread
 *            calls write(F) with a whole request ("/w") and waits for A
 *            behind the first. The main thread then closes F and
 *            connects to 127.0.0.1:PORT, which gets F again; resets A's
 *            peer, which ends the first thread's send; and once the
 *            second thread's write has returned, POSTs "/new" (body
 *            "n=1") on F and reads its answer. Prints "fds F F2",
 *            "w R ERRNO" and "new ok".
 *   forkloop PORT ROUNDS  four threads POST in a loop ("/th<T>", body
 *            "t=<T>&i=<I>") on their own connections while the main
 *            thread forks ROUNDS times; each child makes a connection,
 *            POSTs "/child<R>" (body "r=<R>") and _exits. A child still
 *            running after 5 s is killed by SIGALRM: "child hung", exit 1.
 *            Prints "parent PID", "child R PID" per round and "threads N"
 *            (requests the threads made).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void die(const char *what)
{
    fprintf(stderr, "fault_threads: %s: %s\n", what, strerror(errno));
    exit(2);
}

/* A connected socket, or -1 (errno set). */
static int try_connect(int port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (s < 0)
        return -1;
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
        int e = errno;
        close(s);
        errno = e;
        return -1;
    }
    return s;
}

static int connect_to(int port)
{
    int s = try_connect(port);
    if (s < 0)
        die("connect");
    return s;
}

static size_t send_piece = (size_t)-1;   /* largest send() */

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n < send_piece ? n : send_piece, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads until the answer's body "ok" has come. */
static int read_answer(int fd)
{
    char buf[512];
    size_t have = 0;
    for (;;) {
        ssize_t r = recv(fd, buf + have, sizeof(buf) - 1 - have, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        have += (size_t)r;
        buf[have] = 0;
        if (have >= 2 && memcmp(buf + have - 2, "ok", 2) == 0)
            return strncmp(buf, "HTTP/1.1 200 ", 13) == 0 ? 0 : -1;
        if (have >= sizeof(buf) - 1)
            return -1;
    }
}

/* The Content-Type line of posts: a form, unless a mode sends raw bytes
 * (whose key the tests compute quickly for large bodies). */
static const char *ctype = "Content-Type: application/x-www-form-urlencoded\r\n";

/* One POST: head and body in separate sends, as python and node do. */
static int post(int fd, int port, const char *path, const char *body, size_t len)
{
    char head[256];
    int n = snprintf(head, sizeof head, "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                     "%sContent-Length: %zu\r\n\r\n", path, port, ctype, len);
    if (send_all(fd, head, (size_t)n) != 0 || send_all(fd, body, len) != 0)
        return -1;
    return read_answer(fd);
}

/* ---- threads: one connection each ------------------------------------- */

static int g_port;
static int g_per_thread;       /* requests per thread; -1: until g_stop */
static const char *g_prefix = "/t";
static int g_stop, g_failed;
static int g_posts;            /* atomic: requests answered */

static void *poster(void *arg)
{
    int t = (int)(intptr_t)arg;
    int fd = connect_to(g_port);
    char path[32], body[64];
    snprintf(path, sizeof path, "%s%d", g_prefix, t);
    for (int i = 0; g_per_thread < 0 ? !__atomic_load_n(&g_stop, __ATOMIC_ACQUIRE)
                                     : i < g_per_thread; i++) {
        int n = snprintf(body, sizeof body, "t=%d&i=%d", t, i);
        if (post(fd, g_port, path, body, (size_t)n) != 0) {
            fprintf(stderr, "thread %d request %d failed: %s\n", t, i, strerror(errno));
            __atomic_store_n(&g_failed, 1, __ATOMIC_RELEASE);
            break;
        }
        __atomic_add_fetch(&g_posts, 1, __ATOMIC_ACQ_REL);
    }
    close(fd);
    return NULL;
}

static int threads(int port, int nthreads, int n)
{
    g_port = port;
    g_per_thread = n;
    pthread_t th[64];
    if (nthreads > 64)
        return 2;
    for (int t = 0; t < nthreads; t++)
        if (pthread_create(&th[t], NULL, poster, (void *)(intptr_t)t) != 0)
            die("pthread_create");
    for (int t = 0; t < nthreads; t++)
        pthread_join(th[t], NULL);
    if (g_failed)
        return 1;
    printf("done\n");
    return 0;
}

/* ---- sigwrite: write() from a signal handler --------------------------- */

static int pipe_w, b_fd;
static volatile sig_atomic_t b_written, b_short;
static volatile uint32_t signals;
static char sig_req[160];
static size_t sig_req_len, sig_digits;   /* where the 8 digits of n= go */

static void on_alarm(int sig)
{
    int e = errno;
    (void)sig;
    uint32_t n = signals;
    unsigned char rec[4] = { (unsigned char)(n >> 24), (unsigned char)(n >> 16),
                             (unsigned char)(n >> 8), (unsigned char)n };
    if (write(pipe_w, rec, 4) != 4)
        b_short = b_short + 1000;      /* a pipe write must not come short */
    if (n % 2 == 0) {
        uint32_t v = (uint32_t)b_written;
        for (int i = 7; i >= 0; i--, v /= 10)
            sig_req[sig_digits + (size_t)i] = (char)('0' + v % 10);
        ssize_t w = write(b_fd, sig_req, sig_req_len);
        if (w == (ssize_t)sig_req_len)
            b_written = b_written + 1;
        else
            b_short = b_short + 1;
    }
    signals = n + 1;
    errno = e;
}

struct pipe_check {
    int fd;
    uint32_t records;
    int ordered;
};

/* B's answers are read, so that its server never stops reading. */
static void *b_drainer(void *arg)
{
    char buf[4096];
    (void)arg;
    while (recv(b_fd, buf, sizeof buf, 0) > 0 || errno == EINTR)
        ;
    return NULL;
}

static void *pipe_reader(void *arg)
{
    struct pipe_check *pc = arg;
    unsigned char rec[4];
    size_t have = 0;
    pc->ordered = 1;
    for (;;) {
        ssize_t r = read(pc->fd, rec + have, 4 - have);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        have += (size_t)r;
        if (have < 4)
            continue;
        uint32_t v = (uint32_t)rec[0] << 24 | (uint32_t)rec[1] << 16 |
                     (uint32_t)rec[2] << 8 | rec[3];
        if (v != pc->records)
            pc->ordered = 0;
        pc->records++;
        have = 0;
    }
    return NULL;
}

static int sigwrite(int port_a, int port_b, int ms)
{
    int p[2];
    if (pipe(p) != 0)
        die("pipe");
    pipe_w = p[1];
    struct pipe_check pc = { .fd = p[0] };
    int a = connect_to(port_a);
    int b = connect_to(port_b);
    b_fd = dup2(b, a + 64);
    if (b_fd < 0)
        die("dup2");
    close(b);
    /* The helper threads must not take the signals: the main thread is
     * the one inside send(). */
    pthread_t reader, drainer;
    sigset_t alrm, old;
    sigemptyset(&alrm);
    sigaddset(&alrm, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &alrm, &old);
    if (pthread_create(&reader, NULL, pipe_reader, &pc) != 0 ||
        pthread_create(&drainer, NULL, b_drainer, NULL) != 0)
        die("pthread_create");
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    int n = snprintf(sig_req, sizeof sig_req, "POST /sig HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                     "Content-Type: application/x-www-form-urlencoded\r\n"
                     "Content-Length: 10\r\n\r\nn=", port_b);
    sig_digits = (size_t)n;
    memcpy(sig_req + n, "00000000", 8);
    sig_req_len = (size_t)n + 8;

    size_t len = 64 * 1024;
    char *body = malloc(len);
    if (body == NULL)
        die("malloc");
    memset(body, 'x', len);
    memcpy(body, "i=000000&pad=", 13);

    send_piece = 256;
    ctype = "";
    struct sigaction sa = { .sa_handler = on_alarm, .sa_flags = SA_RESTART };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = { { 0, 200 }, { 0, 200 } };
    setitimer(ITIMER_REAL, &it, NULL);

    int sent = 0, rc = 0;
    long long end = now_ms() + ms;
    while (now_ms() < end) {
        char digits[16];
        snprintf(digits, sizeof digits, "%06d", sent % 1000000);
        memcpy(body + 2, digits, 6);
        if (post(a, port_a, "/a", body, len) != 0) {
            fprintf(stderr, "request %d on A failed: %s\n", sent, strerror(errno));
            rc = 1;
            break;
        }
        sent++;
    }
    struct itimerval off = { { 0, 0 }, { 0, 0 } };
    setitimer(ITIMER_REAL, &off, NULL);
    signal(SIGALRM, SIG_IGN);
    close(pipe_w);
    pthread_join(reader, NULL);
    printf("a %d\nb %d %d\nsignals %u\npipe %u %d\n", sent, (int)b_written, (int)b_short,
           (unsigned)signals, pc.records, pc.ordered);
    /* B's answers are read to the end (the server closes once it has had
     * every request): a socket closed with unread bytes is reset, and the
     * kernel drops what it had yet to send. */
    shutdown(b_fd, SHUT_WR);
    pthread_join(drainer, NULL);
    close(a);
    close(b_fd);
    free(body);
    return rc;
}

/* ---- closerace: close() racing write() ---------------------------------- */

static int cur = -1;           /* atomic: the fd the writer writes to */
static int cur_k;              /* atomic: its connection's number */
static int race_stop;
/* atomic: odd while the closer closes cur and connects the next one */
static unsigned epoch;
static int *stable;            /* the writer's: requests written whole */
static size_t n_stable, cap_stable;

static void *race_writer(void *arg)
{
    int port = *(int *)arg;
    static char req[8192];
    unsigned seed = 7;
    for (int i = 0; !__atomic_load_n(&race_stop, __ATOMIC_ACQUIRE); i++) {
        unsigned before = __atomic_load_n(&epoch, __ATOMIC_ACQUIRE);
        int fd = __atomic_load_n(&cur, __ATOMIC_ACQUIRE);
        int k = __atomic_load_n(&cur_k, __ATOMIC_ACQUIRE);
        size_t pad = 1024 + (size_t)(rand_r(&seed) % 3072);
        char body[4200];
        int bl = snprintf(body, sizeof body, "k=%d&i=%d&pad=", k, i);
        memset(body + bl, 'p', pad);
        bl += (int)pad;
        int n = snprintf(req, sizeof req, "POST /c%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                         "Content-Length: %d\r\n\r\n", k, port, bl);
        memcpy(req + n, body, (size_t)bl);
        /* Errors (EBADF, EPIPE, ENOTCONN) are the race's: carry on. */
        ssize_t w = write(fd, req, (size_t)(n + bl));
        if (w == n + bl && before % 2 == 0 &&
            __atomic_load_n(&epoch, __ATOMIC_ACQUIRE) == before) {
            if (n_stable == cap_stable) {
                cap_stable = cap_stable ? 2 * cap_stable : 1024;
                if (!(stable = realloc(stable, cap_stable * sizeof(*stable))))
                    die("realloc");
            }
            stable[n_stable++] = i;
        }
    }
    return NULL;
}

static int closerace(int port, int ms)
{
    signal(SIGPIPE, SIG_IGN);
    __atomic_store_n(&cur, connect_to(port), __ATOMIC_RELEASE);
    pthread_t w;
    if (pthread_create(&w, NULL, race_writer, &port) != 0)
        die("pthread_create");
    /* The shim opens its journal with the first request: a number closed
     * here meanwhile could go to one of its files, and the writer, still
     * writing to that number, would write into the journal. */
    usleep(100000);
    unsigned seed = 11;
    int conns = 1, reused = 0;
    long long end = now_ms() + ms;
    while (now_ms() < end) {
        usleep((useconds_t)(rand_r(&seed) % 3000));
        int old = __atomic_load_n(&cur, __ATOMIC_ACQUIRE);
        __atomic_add_fetch(&epoch, 1, __ATOMIC_ACQ_REL);
        close(old);
        int s = try_connect(port);
        if (s < 0)
            die("connect");
        reused += s == old;
        __atomic_store_n(&cur_k, conns, __ATOMIC_RELEASE);
        __atomic_store_n(&cur, s, __ATOMIC_RELEASE);
        __atomic_add_fetch(&epoch, 1, __ATOMIC_ACQ_REL);
        conns++;
    }
    __atomic_store_n(&race_stop, 1, __ATOMIC_RELEASE);
    pthread_join(w, NULL);
    close(__atomic_load_n(&cur, __ATOMIC_ACQUIRE));
    printf("conns %d\nreused %d\nstable", conns, reused);
    for (size_t j = 0; j < n_stable; j++)
        printf(" %d", stable[j]);
    printf("\n");
    free(stable);
    return 0;
}

/* ---- stalecall: a write that waited while its fd was closed and reused -- */

static int stale_fd;
static char stale_line[64];

static void *stale_blocker(void *arg)
{
    (void)arg;
    size_t len = 64u << 20;
    char *b = malloc(len);
    if (b == NULL)
        die("malloc");
    memset(b, 0x16, len);
    (void)!write(stale_fd, b, len);
    free(b);
    return NULL;
}

static void *stale_waiter(void *arg)
{
    const char *req = arg;
    ssize_t r = write(stale_fd, req, strlen(req));
    snprintf(stale_line, sizeof stale_line, "w %zd %d\n", r, r < 0 ? errno : 0);
    return NULL;
}

static int stalecall(int port)
{
    signal(SIGPIPE, SIG_IGN);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof a;
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 4) != 0 ||
        getsockname(l, (struct sockaddr *)&a, &alen) != 0)
        die("listen");
    stale_fd = connect_to(ntohs(a.sin_port));
    int peer = accept(l, NULL, NULL);
    if (peer < 0)
        die("accept");
    static char req[256];
    snprintf(req, sizeof req, "POST /w HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
             "Content-Length: 3\r\n\r\nw=1", port);
    pthread_t blocker, waiter;
    if (pthread_create(&blocker, NULL, stale_blocker, NULL) != 0)
        die("pthread_create");
    usleep(300000);      /* the socket is full: the blocker waits in send() */
    if (pthread_create(&waiter, NULL, stale_waiter, req) != 0)
        die("pthread_create");
    usleep(300000);      /* and the waiter behind it */
    int f = stale_fd;
    close(f);
    int f2 = connect_to(port);
    printf("fds %d %d\n", f, f2);
    if (f2 != f)
        return 2;
    struct timeval tv = { 3, 0 };    /* an answer that never comes: fail */
    setsockopt(f2, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct linger lg = { 1, 0 };
    setsockopt(peer, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(peer);         /* a reset: the blocker's send() ends */
    pthread_join(blocker, NULL);
    pthread_join(waiter, NULL);
    fputs(stale_line, stdout);
    if (post(f2, port, "/new", "n=1", 3) != 0) {
        printf("new failed\n");
        return 1;
    }
    printf("new ok\n");
    close(f2);
    close(l);
    return 0;
}

/* ---- forkloop: fork while threads post ---------------------------------- */

static int forkloop(int port, int rounds)
{
    g_port = port;
    g_per_thread = -1;
    g_prefix = "/th";
    pthread_t th[4];
    for (int t = 0; t < 4; t++)
        if (pthread_create(&th[t], NULL, poster, (void *)(intptr_t)t) != 0)
            die("pthread_create");
    printf("parent %d\n", (int)getpid());
    int rc = 0;
    for (int r = 0; r < rounds && rc == 0; r++) {
        usleep(20000);
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0)
            die("fork");
        if (pid == 0) {
            alarm(5);
            char path[32], body[32];
            snprintf(path, sizeof path, "/child%d", r);
            int n = snprintf(body, sizeof body, "r=%d", r);
            int fd = connect_to(port);
            int ok = post(fd, port, path, body, (size_t)n) == 0;
            close(fd);
            _exit(ok ? 0 : 3);
        }
        int st = 0;
        if (waitpid(pid, &st, 0) != pid)
            die("waitpid");
        printf("child %d %d\n", r, (int)pid);
        if (WIFSIGNALED(st)) {
            printf("child %s\n", WTERMSIG(st) == SIGALRM ? "hung" : "killed");
            rc = 1;
        } else if (WEXITSTATUS(st) != 0) {
            printf("child exited %d\n", WEXITSTATUS(st));
            rc = 1;
        }
    }
    __atomic_store_n(&g_stop, 1, __ATOMIC_RELEASE);
    for (int t = 0; t < 4; t++)
        pthread_join(th[t], NULL);
    printf("threads %d\n", g_posts);
    return rc ? rc : (g_failed ? 1 : 0);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 3) {
        fprintf(stderr, "usage: fault_threads MODE ARGS\n");
        return 2;
    }
    const char *mode = argv[1];
    if (!strcmp(mode, "threads") && argc > 4)
        return threads(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]));
    if (!strcmp(mode, "sigwrite") && argc > 4)
        return sigwrite(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]));
    if (!strcmp(mode, "closerace"))
        return closerace(atoi(argv[2]), atoi(argv[3]));
    if (!strcmp(mode, "stalecall"))
        return stalecall(atoi(argv[2]));
    if (!strcmp(mode, "forkloop"))
        return forkloop(atoi(argv[2]), atoi(argv[3]));
    fprintf(stderr, "fault_threads: unknown mode %s\n", mode);
    return 2;
}

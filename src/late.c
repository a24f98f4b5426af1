/* late.c - the background reader of answers the application gave up on.
 * See late.h.
 *
 * One thread serves every adopted connection: it polls their private fds
 * and a wake-up pipe, feeds what it reads to the connection's flights (which
 * record the answer exactly as if the application had read it), and lets a
 * connection go once nothing waits on it, at end of stream, on an error, or
 * at its deadline (its requests then stay unknown). The thread ends when it
 * has nothing left to watch; it never runs in a process that did not adopt
 * a connection.
 */
#include "late.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "flight.h"
#include "hooks.h"
#include "log.h"
#include "shim.h"
#include "clock.h"

/* Watched at once; more wait for a free place (rare: each is a request
 * its application gave up on within RETRYSAFE_LATE_WAIT). */
#define LATE_MAX 64
#define LATE_READ 16384

struct late_entry {
    struct conn *c;
    int fd;
    dev_t dev;                 /* which socket: the number must still name it */
    ino_t ino;
    int64_t deadline_ms;
    struct late_source src;    /* read NULL: plain socket */
};

static pthread_mutex_t late_lock = PTHREAD_MUTEX_INITIALIZER;
static struct late_entry entries[LATE_MAX];
static int n_entries;
static int thread_running;
static int wake_pipe[2] = { -1, -1 };

int late_private_fd(int fd)
{
    struct rlimit rl;
    long floor = 256;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        floor = (long)rl.rlim_cur / 2 < 1024 ? (long)rl.rlim_cur / 2 : 1024;
    int priv = real.fcntl(fd, F_DUPFD_CLOEXEC, (int)floor);
    if (priv < 0)
        priv = real.fcntl(fd, F_DUPFD_CLOEXEC, 3);
    return priv;
}

/* ---- one connection ---- */

static ssize_t read_plain(int fd, void *buf, size_t len)
{
    return real.recv(fd, buf, len, MSG_DONTWAIT);
}

/* Reads what is there. Returns 1 when the entry is done with. */
static int serve(struct late_entry *e)
{
    struct stat st;
    /* Closed behind our back and the number reused: not ours to read. */
    if (fstat(e->fd, &st) != 0 || st.st_dev != e->dev || st.st_ino != e->ino) {
        e->fd = -1;
        flight_abandon(e->c);
        return 1;
    }
    char buf[LATE_READ];
    for (;;) {
        ssize_t r = e->src.read ? e->src.read(e->src.arg, buf, sizeof(buf))
                                : read_plain(e->fd, buf, sizeof(buf));
        if (r > 0) {
            struct iovec iov = { buf, (size_t)r };
            flight_read(e->c, &iov, 1, (size_t)r);
            if (!__atomic_load_n(&e->c->awaiting, __ATOMIC_ACQUIRE))
                return 1;
            continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return 0;
        if (r == 0)
            flight_eof(e->c);
        else
            flight_abandon(e->c);
        return 1;
    }
}

static void let_go(struct late_entry *e)
{
    if (e->src.finish)
        e->src.finish(e->src.arg);
    if (e->fd >= 0)
        real.close(e->fd);
    conn_release(e->c);
}

/* ---- the thread ---- */

static void drain_wake_pipe(void)
{
    char buf[64];
    while (real.read(wake_pipe[0], buf, sizeof(buf)) > 0)
        ;
}

/* Under late_lock: removes entries[i], handing it to the caller. */
static struct late_entry take_entry(int i)
{
    struct late_entry e = entries[i];
    entries[i] = entries[--n_entries];
    return e;
}

/* Serves the entries whose fds poll marked, and those past their
 * deadline. Returns how many are left. */
static int serve_ready(const struct pollfd *p, int n)
{
    int64_t now = clock_ms(CLOCK_MONOTONIC);
    for (int i = 0; i < n; i++) {
        pthread_mutex_lock(&late_lock);
        int k;   /* the entry may have moved: find it by its fd */
        for (k = 0; k < n_entries && entries[k].fd != p[i].fd; k++)
            ;
        int ready = k < n_entries && (p[i].revents || entries[k].deadline_ms <= now);
        struct late_entry e = ready ? take_entry(k) : (struct late_entry){ 0 };
        pthread_mutex_unlock(&late_lock);
        if (!ready)
            continue;
        int done = p[i].revents ? serve(&e) : 1;
        if (!p[i].revents || (!done && e.deadline_ms <= now)) {
            log_msg(CONFIG_LOG_INFO, "guard: no late answer within RETRYSAFE_LATE_WAIT; "
                    "the outcome stays unknown");
            flight_abandon(e.c);
            done = 1;
        }
        if (done) {
            let_go(&e);
            continue;
        }
        pthread_mutex_lock(&late_lock);
        entries[n_entries++] = e;   /* there is room: it just left it */
        pthread_mutex_unlock(&late_lock);
    }
    pthread_mutex_lock(&late_lock);
    int left = n_entries;
    if (!left)
        thread_running = 0;        /* under the lock: an adopter starts anew */
    pthread_mutex_unlock(&late_lock);
    return left;
}

static void *late_thread(void *arg)
{
    (void)arg;
    hooks_in_shim = 1;   /* everything this thread does is the shim's */
    struct pollfd p[LATE_MAX + 1];
    for (;;) {
        pthread_mutex_lock(&late_lock);
        int n = n_entries;
        int64_t next = INT64_MAX;
        for (int i = 0; i < n; i++) {
            p[i] = (struct pollfd){ .fd = entries[i].fd, .events = POLLIN };
            if (entries[i].deadline_ms < next)
                next = entries[i].deadline_ms;
        }
        pthread_mutex_unlock(&late_lock);
        p[n] = (struct pollfd){ .fd = wake_pipe[0], .events = POLLIN };
        int64_t wait = next == INT64_MAX ? 1000 : next - clock_ms(CLOCK_MONOTONIC);
        int r = real.poll(p, (nfds_t)n + 1, wait < 0 ? 0 : wait > 1000 ? 1000 : (int)wait);
        if (r < 0)
            for (int i = 0; i <= n; i++)
                p[i].revents = 0;
        if (p[n].revents)
            drain_wake_pipe();
        if (serve_ready(p, n) == 0)
            return NULL;
    }
}

/* The pipe that wakes the thread, numbered high like the private fds: the
 * low numbers pipe2() picks are the application's to reuse. */
static int open_wake_pipe(void)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0)
        return -1;
    wake_pipe[0] = late_private_fd(p[0]);
    wake_pipe[1] = late_private_fd(p[1]);
    real.close(p[0]);
    real.close(p[1]);
    if (wake_pipe[0] >= 0 && wake_pipe[1] >= 0)
        return 0;
    if (wake_pipe[0] >= 0)
        real.close(wake_pipe[0]);
    if (wake_pipe[1] >= 0)
        real.close(wake_pipe[1]);
    wake_pipe[0] = wake_pipe[1] = -1;
    return -1;
}

/* Under late_lock. */
static int start_thread(void)
{
    if (thread_running)
        return real.write(wake_pipe[1], "", 1) < 0 && errno != EAGAIN ? -1 : 0;
    if (wake_pipe[0] < 0 && open_wake_pipe() != 0)
        return -1;
    if (shim_start_thread(late_thread, NULL) != 0)
        return -1;
    thread_running = 1;
    return 0;
}

int late_watch(struct conn *c, int priv, const struct late_source *src)
{
    const struct config *cfg = shim_config();
    struct stat st;
    conn_hold(c);
    struct late_entry e = {
        .c = c, .fd = priv,
        .deadline_ms = clock_ms(CLOCK_MONOTONIC) + (int64_t)(cfg ? cfg->late_wait_ms : 0),
        .src = src ? *src : (struct late_source){ 0 },
    };
    int rc = -1;
    pthread_mutex_lock(&late_lock);
    if (priv >= 0 && fstat(priv, &st) == 0 && n_entries < LATE_MAX) {
        e.dev = st.st_dev;
        e.ino = st.st_ino;
        entries[n_entries++] = e;
        rc = start_thread();
        if (rc != 0)
            n_entries--;
    }
    pthread_mutex_unlock(&late_lock);
    if (rc != 0) {
        log_msg(CONFIG_LOG_WARN, "guard: cannot wait for a late answer; its outcome "
                "stays unknown");
        flight_abandon(c);
        let_go(&e);
    }
    return rc;
}

int late_adopt_socket(struct conn *c, int fd)
{
    const struct config *cfg = shim_config();
    if (!cfg || cfg->mode != CONFIG_MODE_GUARD || cfg->late_wait_ms == 0 ||
        !flight_guarded_waiting(c))
        return 0;
    if (!late_may_outlive(c, fd))
        return 0;
    late_watch(c, late_private_fd(fd), NULL);
    return 1;
}

int late_may_outlive(struct conn *c, int fd)
{
    if (conn_epoll_drop_fd(c, fd) != 0) {
        log_msg(CONFIG_LOG_INFO, "guard: a late answer is not awaited on a socket "
                "registered in an epoll set we do not know");
        return 0;
    }
    __atomic_store_n(&c->late_dup, 1, __ATOMIC_RELEASE);
    return 1;
}

/* The child has no thread, and must not keep its parent's sockets open:
 * the private fds are closed; the connections stay the parent's. */
void late_fork(enum fork_phase phase)
{
    fork_lock(&late_lock, phase);
    if (phase != FORK_CHILD)
        return;
    for (int i = 0; i < n_entries; i++)
        if (entries[i].fd >= 0)
            real.close(entries[i].fd);
    n_entries = 0;
    thread_running = 0;
    if (wake_pipe[0] >= 0) {
        real.close(wake_pipe[0]);
        real.close(wake_pipe[1]);
        wake_pipe[0] = wake_pipe[1] = -1;
    }
}

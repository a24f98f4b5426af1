/* conn.c - fd numbers to tracked connections, and their lifetime. */
#include "conn.h"
#include "real.h"
#include "flight.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <unistd.h>

/* fds past this are never tracked (they pass through untouched). */
#define CONN_MAX_FDS (1 << 20)
#define CONN_STRIPES 64

struct conn **conn_table;
int conn_table_size;
int conn_answers_pending;
int conn_holding_count;
pid_t conn_owner_pid;

/* Taking a reference and clearing a slot happen under the slot's stripe
 * lock, so a reference is never taken on a connection being freed. */
static pthread_mutex_t stripes[CONN_STRIPES];
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct conn *live;

/* How many stripe locks this thread holds (a count, so that a signal
 * handler's own lock and unlock leave the interrupted section's mark as
 * it was). A handler that interrupts it there and writes to a tracked fd
 * of the same stripe would wait for ever for a lock its own thread holds:
 * it finds the fd untracked instead, and its bytes pass through
 * unchanged. */
static __thread volatile int in_stripe __attribute__((tls_model("initial-exec")));

static pthread_mutex_t *stripe(int fd)
{
    return &stripes[(unsigned)fd % CONN_STRIPES];
}

static void stripe_lock(int fd)
{
    in_stripe++;
    pthread_mutex_lock(stripe(fd));
}

static void stripe_unlock(int fd)
{
    pthread_mutex_unlock(stripe(fd));
    in_stripe--;
}

int conn_thread_holds_stripe(void)
{
    return in_stripe != 0;
}

int conn_table_init(void)
{
    struct rlimit rl;
    rlim_t size = CONN_MAX_FDS;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY &&
        rl.rlim_max < size)
        size = rl.rlim_max < 1024 ? 1024 : rl.rlim_max;
    for (int i = 0; i < CONN_STRIPES; i++)
        pthread_mutex_init(&stripes[i], NULL);
    /* Reserved, not committed: pages appear only where fds are tracked. */
    void *table = mmap(NULL, (size_t)size * sizeof(struct conn *),
                       PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (table == MAP_FAILED)
        return -1;
    conn_table_size = (int)size;
    conn_owner_pid = getpid();
    __atomic_store_n(&conn_table, (struct conn **)table, __ATOMIC_RELEASE);
    return 0;
}

static void peer_string(const struct sockaddr *sa, char *out, size_t size)
{
    char ip[INET6_ADDRSTRLEN] = "";
    out[0] = '\0';
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        snprintf(out, size, "%s:%u", ip, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        snprintf(out, size, "[%s]:%u", ip, ntohs(in6->sin6_port));
    }
}

static void live_add(struct conn *c)
{
    pthread_mutex_lock(&live_lock);
    c->next_live = live;
    if (live)
        live->prev_live = c;
    live = c;
    pthread_mutex_unlock(&live_lock);
}

static void live_remove(struct conn *c)
{
    pthread_mutex_lock(&live_lock);
    if (c->prev_live)
        c->prev_live->next_live = c->next_live;
    else
        live = c->next_live;
    if (c->next_live)
        c->next_live->prev_live = c->prev_live;
    pthread_mutex_unlock(&live_lock);
}

/* Under the fd's stripe lock. */
static void fd_list_set(struct conn *c, int from, int to)
{
    pthread_mutex_lock(&c->in_lock);
    for (int i = 0; i < 4; i++)
        if (c->fd_list[i] == from) {
            c->fd_list[i] = to;
            break;
        }
    pthread_mutex_unlock(&c->in_lock);
}

static int first_fd_locked(const struct conn *c)
{
    int fd = -1;
    for (int i = 0; i < 4 && fd < 0; i++)
        fd = c->fd_list[i];
    return fd;
}

int conn_some_fd(struct conn *c)
{
    pthread_mutex_lock(&c->in_lock);
    int fd = first_fd_locked(c);
    pthread_mutex_unlock(&c->in_lock);
    return fd;
}

int conn_some_fd_now(struct conn *c)
{
    if (pthread_mutex_trylock(&c->in_lock) != 0)
        return -1;
    int fd = first_fd_locked(c);
    pthread_mutex_unlock(&c->in_lock);
    return fd;
}

/* Puts c (or NULL) in fd's slot when it holds expect (any when
 * any_old); returns what was there, or NULL when it was left. The
 * caller's reference on c passes to the table. */
static struct conn *slot_swap_if(int fd, struct conn *c, int any_old,
                                 const struct conn *expect)
{
    stripe_lock(fd);
    struct conn *old = conn_table[fd];
    if (!any_old && old != expect) {
        stripe_unlock(fd);
        return NULL;
    }
    __atomic_store_n(&conn_table[fd], c, __ATOMIC_RELEASE);
    if (c) {
        __atomic_add_fetch(&c->fds, 1, __ATOMIC_ACQ_REL);
        fd_list_set(c, -1, fd);
    }
    if (old) {
        __atomic_sub_fetch(&old->fds, 1, __ATOMIC_ACQ_REL);
        fd_list_set(old, fd, -1);
    }
    stripe_unlock(fd);
    return old;
}

static struct conn *slot_swap(int fd, struct conn *c)
{
    return slot_swap_if(fd, c, 1, NULL);
}

struct conn *conn_new(const char *peer, const struct outbound_env *env, int tls)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->refs = 1;
    pthread_mutex_init(&c->out_lock, NULL);
    pthread_mutex_init(&c->in_lock, NULL);
    for (int i = 0; i < CONN_EPOLL_SLOTS; i++)
        c->epoll[i].epfd = -1;
    for (int i = 0; i < 4; i++)
        c->fd_list[i] = -1;
    c->sock_fd = -1;
    outbound_init(&c->out, env, tls, peer);
    live_add(c);
    return c;
}

struct conn *conn_track(int fd, const struct sockaddr *peer, socklen_t peer_len,
                        const struct outbound_env *env)
{
    (void)peer_len;
    if (!conn_table || fd < 0 || fd >= conn_table_size)
        return NULL;
    struct stat st;
    if (fstat(fd, &st) != 0)
        return NULL;
    char peer_text[64];
    peer_string(peer, peer_text, sizeof(peer_text));
    struct conn *c = conn_new(peer_text, env, 0);
    if (!c)
        return NULL;
    c->refs = 2; /* the table's and the caller's */
    c->dev = st.st_dev;
    c->ino = st.st_ino;
    struct conn *old = slot_swap(fd, c);
    if (old)
        conn_release(old);
    return c;
}

struct conn *conn_acquire(int fd)
{
    if (!conn_maybe_tracked(fd) || in_stripe)
        return NULL;
    stripe_lock(fd);
    struct conn *c = conn_table[fd];
    if (c)
        __atomic_add_fetch(&c->refs, 1, __ATOMIC_ACQ_REL);
    stripe_unlock(fd);
    return c;
}

void conn_hold(struct conn *c)
{
    __atomic_add_fetch(&c->refs, 1, __ATOMIC_ACQ_REL);
}

/* A reference on c, unless its last one is gone (it is being freed and
 * waits for the live-list lock to leave the list). */
static int hold_if_alive(struct conn *c)
{
    int refs = __atomic_load_n(&c->refs, __ATOMIC_ACQUIRE);
    while (refs > 0)
        if (__atomic_compare_exchange_n(&c->refs, &refs, refs + 1, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            return 1;
    return 0;
}

/* Called as the process ends, maybe from a signal handler that interrupted
 * a thread holding the list's lock: the lock is only tried. */
int conn_holding_list(struct conn **conns, int max)
{
    int n = 0;
    if (!__atomic_load_n(&conn_holding_count, __ATOMIC_ACQUIRE) ||
        pthread_mutex_trylock(&live_lock) != 0)
        return 0;
    for (struct conn *c = live; c && n < max; c = c->next_live)
        if (__atomic_load_n(&c->holding, __ATOMIC_ACQUIRE) && hold_if_alive(c))
            conns[n++] = c;
    pthread_mutex_unlock(&live_lock);
    return n;
}

void conn_release(struct conn *c)
{
    if (!c || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    flight_abandon(c);
    live_remove(c);
    if (c->has_answer)
        __atomic_sub_fetch(&conn_answers_pending, 1, __ATOMIC_ACQ_REL);
    if (c->holding)
        __atomic_sub_fetch(&conn_holding_count, 1, __ATOMIC_ACQ_REL);
    outbound_free(&c->out);
    buf_free(&c->answer);
    buf_free(&c->retry_copy);
    http_res_free(&c->res);
    buf_free(&c->capture);
    free(c->flights);
    pthread_mutex_destroy(&c->out_lock);
    pthread_mutex_destroy(&c->in_lock);
    free(c);
}

int conn_same_socket(const struct conn *c, int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && st.st_dev == c->dev && st.st_ino == c->ino;
}

int conn_forget(int fd)
{
    if (!conn_maybe_tracked(fd))
        return 0;
    struct conn *old = slot_swap(fd, NULL);
    int last = old && __atomic_load_n(&old->fds, __ATOMIC_ACQUIRE) == 0;
    conn_release(old);
    return last;
}

int conn_forget_stale(int fd, struct conn *c)
{
    struct conn *old = conn_maybe_tracked(fd) ? slot_swap_if(fd, NULL, 0, c) : NULL;
    conn_release(old);
    return old != NULL;
}

void conn_note_holding(struct conn *c)
{
    int now = outbound_holding(&c->out);
    if (now == c->holding)
        return;
    __atomic_store_n(&c->holding, now, __ATOMIC_RELEASE);
    if (now)
        __atomic_add_fetch(&conn_holding_count, 1, __ATOMIC_ACQ_REL);
    else
        __atomic_sub_fetch(&conn_holding_count, 1, __ATOMIC_ACQ_REL);
}

void conn_dup(int oldfd, int newfd)
{
    if (!conn_table || newfd < 0 || newfd >= conn_table_size)
        return;
    struct conn *c = conn_acquire(oldfd);
    /* Our reference on c (or NULL, for an untracked oldfd) goes to newfd's
     * slot; whatever newfd named before was closed by the dup. */
    conn_release(slot_swap(newfd, c));
}

/* ---- synthetic answers ------------------------------------------------ */

int conn_add_answer(struct conn *c, const char *bytes, size_t len)
{
    pthread_mutex_lock(&c->in_lock);
    if (c->answer_off == c->answer.len) {
        c->answer.len = 0;
        c->answer_off = 0;
    }
    int rc = buf_append(&c->answer, bytes, len);
    if (rc == 0 && !c->has_answer) {
        __atomic_store_n(&c->has_answer, 1, __ATOMIC_RELEASE);
        __atomic_add_fetch(&conn_answers_pending, 1, __ATOMIC_ACQ_REL);
    }
    pthread_mutex_unlock(&c->in_lock);
    return rc;
}

size_t conn_take_answer(struct conn *c, const struct iovec *iov, int iovcnt, int peek)
{
    size_t copied = 0;
    pthread_mutex_lock(&c->in_lock);
    size_t off = c->answer_off;
    for (int i = 0; i < iovcnt && off < c->answer.len; i++) {
        size_t n = c->answer.len - off;
        if (n > iov[i].iov_len)
            n = iov[i].iov_len;
        memcpy(iov[i].iov_base, c->answer.data + off, n);
        off += n;
        copied += n;
    }
    if (!peek) {
        c->answer_off = off;
        if (off == c->answer.len && c->has_answer) {
            buf_reset(&c->answer, 4096);
            c->answer_off = 0;
            __atomic_store_n(&c->has_answer, 0, __ATOMIC_RELEASE);
            __atomic_sub_fetch(&conn_answers_pending, 1, __ATOMIC_ACQ_REL);
        }
    }
    pthread_mutex_unlock(&c->in_lock);
    return copied;
}

int conn_has_answer(int fd)
{
    struct conn *c = conn_acquire(fd);
    if (!c)
        return 0;
    int has = __atomic_load_n(&c->has_answer, __ATOMIC_ACQUIRE);
    conn_release(c);
    return has;
}

/* ---- epoll registrations, so epoll_wait can report answers ------------- */

/* epoll fds we recorded registrations for: when one is closed its number
 * may come back as another epoll set, which must not inherit them. */
#define CONN_KNOWN_EPFDS 64
static int known_epfds[CONN_KNOWN_EPFDS];
static int n_known_epfds;
static pthread_mutex_t epfd_lock = PTHREAD_MUTEX_INITIALIZER;

/* Returns 0, or -1 when no more epoll fds can be remembered: then its
 * registrations are not recorded either (a stale one could outlive it). */
static int remember_epfd(int epfd)
{
    pthread_mutex_lock(&epfd_lock);
    int i = 0;
    while (i < n_known_epfds && known_epfds[i] != epfd)
        i++;
    if (i == n_known_epfds && i < CONN_KNOWN_EPFDS) {
        known_epfds[i] = epfd;
        __atomic_store_n(&n_known_epfds, i + 1, __ATOMIC_RELEASE);
    }
    int rc = i < n_known_epfds ? 0 : -1;
    pthread_mutex_unlock(&epfd_lock);
    return rc;
}

void conn_epoll_closed(int fd)
{
    if (!__atomic_load_n(&n_known_epfds, __ATOMIC_ACQUIRE))
        return;
    pthread_mutex_lock(&epfd_lock);
    int i = 0;
    while (i < n_known_epfds && known_epfds[i] != fd)
        i++;
    if (i == n_known_epfds) {
        pthread_mutex_unlock(&epfd_lock);
        return;
    }
    known_epfds[i] = known_epfds[n_known_epfds - 1];
    __atomic_store_n(&n_known_epfds, n_known_epfds - 1, __ATOMIC_RELEASE);
    pthread_mutex_lock(&live_lock);
    for (struct conn *c = live; c; c = c->next_live) {
        pthread_mutex_lock(&c->in_lock);
        for (int k = 0; k < CONN_EPOLL_SLOTS; k++)
            if (c->epoll[k].epfd == fd)
                c->epoll[k].epfd = -1;
        pthread_mutex_unlock(&c->in_lock);
    }
    pthread_mutex_unlock(&live_lock);
    pthread_mutex_unlock(&epfd_lock);
}

void conn_epoll_ctl(int epfd, int op, int fd, const struct epoll_event *event)
{
    struct conn *c = conn_acquire(fd);
    if (!c)
        return;
    if (op != EPOLL_CTL_DEL && remember_epfd(epfd) != 0) {
        __atomic_store_n(&c->epoll_unrecorded, 1, __ATOMIC_RELEASE);
        conn_release(c);
        return;
    }
    pthread_mutex_lock(&c->in_lock);
    struct conn_epoll *slot = NULL, *free_slot = NULL;
    for (int i = 0; i < CONN_EPOLL_SLOTS; i++) {
        if (c->epoll[i].epfd == epfd)
            slot = &c->epoll[i];
        else if (c->epoll[i].epfd < 0 && !free_slot)
            free_slot = &c->epoll[i];
    }
    if (op == EPOLL_CTL_DEL) {
        if (slot)
            slot->epfd = -1;
    } else if (event) {
        if (!slot)
            slot = free_slot;
        if (slot) {
            slot->epfd = epfd;
            slot->fd = fd;
            slot->event = *event;
        } else {
            c->epoll_unrecorded = 1;
        }
    }
    pthread_mutex_unlock(&c->in_lock);
    conn_release(c);
}

int conn_epoll_drop_fd(struct conn *c, int fd)
{
    pthread_mutex_lock(&c->in_lock);
    int rc = c->epoll_unrecorded ? -1 : 0;
    for (int i = 0; i < CONN_EPOLL_SLOTS; i++) {
        struct conn_epoll *slot = &c->epoll[i];
        if (slot->epfd >= 0 && slot->fd == fd) {
            real.epoll_ctl(slot->epfd, EPOLL_CTL_DEL, fd, NULL);
            slot->epfd = -1;
        }
    }
    pthread_mutex_unlock(&c->in_lock);
    return rc;
}

int conn_epoll_answers(int epfd, struct epoll_event *events, int max)
{
    int n = 0;
    pthread_mutex_lock(&live_lock);
    for (struct conn *c = live; c && n < max; c = c->next_live) {
        if (!__atomic_load_n(&c->has_answer, __ATOMIC_ACQUIRE))
            continue;
        pthread_mutex_lock(&c->in_lock);
        for (int i = 0; i < CONN_EPOLL_SLOTS && n < max; i++) {
            const struct conn_epoll *slot = &c->epoll[i];
            if (slot->epfd == epfd && (slot->event.events & EPOLLIN)) {
                events[n].events = EPOLLIN;
                events[n].data = slot->event.data;
                n++;
            }
        }
        pthread_mutex_unlock(&c->in_lock);
    }
    pthread_mutex_unlock(&live_lock);
    return n;
}

/* A reference on a connection found through the live list, unless its
 * last reference is already gone and it is on its way out. */
static int acquire_live(struct conn *c)
{
    int refs = __atomic_load_n(&c->refs, __ATOMIC_ACQUIRE);
    while (refs > 0)
        if (__atomic_compare_exchange_n(&c->refs, &refs, refs + 1, 0,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            return 1;
    return 0;
}

int conn_epoll_waiting(int epfd, struct conn **conns, int *fds, int max)
{
    int n = 0;
    pthread_mutex_lock(&live_lock);
    for (struct conn *c = live; c && n < max; c = c->next_live) {
        /* An answer of ours is what it waits for: nothing to let go. */
        if (!__atomic_load_n(&c->holding, __ATOMIC_ACQUIRE) ||
            __atomic_load_n(&c->has_answer, __ATOMIC_ACQUIRE))
            continue;
        pthread_mutex_lock(&c->in_lock);
        for (int i = 0; i < CONN_EPOLL_SLOTS; i++) {
            const struct conn_epoll *slot = &c->epoll[i];
            uint32_t ev = slot->event.events;
            if (slot->epfd == epfd && (ev & EPOLLIN) && !(ev & EPOLLOUT)) {
                if (acquire_live(c)) {
                    conns[n] = c;
                    fds[n++] = slot->fd;
                }
                break;
            }
        }
        pthread_mutex_unlock(&c->in_lock);
    }
    pthread_mutex_unlock(&live_lock);
    return n;
}

/* ---- fork --------------------------------------------------------------- */

void conn_fork_prepare(void)
{
    pthread_mutex_lock(&live_lock);
    for (int i = 0; i < CONN_STRIPES; i++)
        pthread_mutex_lock(&stripes[i]);
}

void conn_fork_parent(void)
{
    for (int i = CONN_STRIPES - 1; i >= 0; i--)
        pthread_mutex_unlock(&stripes[i]);
    pthread_mutex_unlock(&live_lock);
}

/* Other threads did not come along; a connection lock one of them held
 * would stay held for ever. The child starts every lock afresh. */
void conn_fork_child(void)
{
    conn_owner_pid = getpid();
    for (int i = 0; i < CONN_STRIPES; i++)
        pthread_mutex_init(&stripes[i], NULL);
    pthread_mutex_init(&epfd_lock, NULL);
    for (struct conn *c = live; c; c = c->next_live) {
        pthread_mutex_init(&c->out_lock, NULL);
        pthread_mutex_init(&c->in_lock, NULL);
        /* Bytes the parent holds are the parent's to send: were the child
         * to send them too (say, closing its inherited copy), the server
         * would get them twice. */
        outbound_disown(&c->out);
        conn_note_holding(c);
        /* Its flights are the parent's journal rows: the parent finishes
         * them, the child must not (closing its copy would mark them). */
        c->n_flights = 0;
        http_res_free(&c->res);
        memset(&c->res, 0, sizeof(c->res));
        if (c->awaiting) {
            c->awaiting = 0;
            __atomic_sub_fetch(&flight_awaiting_count, 1, __ATOMIC_ACQ_REL);
        }
    }
    pthread_mutex_init(&live_lock, NULL);
}

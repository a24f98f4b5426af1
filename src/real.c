/* real.c - finding the functions our hooks stand in front of. */
#include "real.h"

#include <dlfcn.h>

struct real_calls real;

static void *next(const char *name)
{
    return dlsym(RTLD_NEXT, name);
}

/* Casting dlsym's void * to a function pointer is what POSIX intends;
 * the union keeps -Wpedantic quiet about it. */
#define RESOLVE(field, name) do { \
        union { void *p; __typeof__(real.field) f; } u = { next(name) }; \
        real.field = u.f; \
    } while (0)

void real_init(void)
{
    RESOLVE(connect, "connect");
    RESOLVE(send, "send");
    RESOLVE(sendto, "sendto");
    RESOLVE(sendmsg, "sendmsg");
    RESOLVE(sendmmsg, "sendmmsg");
    RESOLVE(sendfile, "sendfile");
    RESOLVE(sendfile64, "sendfile64");
    RESOLVE(write, "write");
    RESOLVE(writev, "writev");
    RESOLVE(recv, "recv");
    RESOLVE(recvfrom, "recvfrom");
    RESOLVE(recvmsg, "recvmsg");
    RESOLVE(read, "read");
    RESOLVE(readv, "readv");
    RESOLVE(read_chk, "__read_chk");
    RESOLVE(recv_chk, "__recv_chk");
    RESOLVE(recvfrom_chk, "__recvfrom_chk");
    RESOLVE(close, "close");
    RESOLVE(shutdown, "shutdown");
    RESOLVE(close_range, "close_range");
    RESOLVE(dup, "dup");
    RESOLVE(dup2, "dup2");
    RESOLVE(dup3, "dup3");
    RESOLVE(fcntl, "fcntl");
    RESOLVE(fcntl64, "fcntl64");
    RESOLVE(fork, "fork");
    RESOLVE(exit_now, "_exit");
    RESOLVE(exit_now_c99, "_Exit");
    RESOLVE(poll, "poll");
    RESOLVE(poll_chk, "__poll_chk");
    RESOLVE(ppoll_chk, "__ppoll_chk");
    RESOLVE(ppoll, "ppoll");
    RESOLVE(select, "select");
    RESOLVE(pselect, "pselect");
    RESOLVE(epoll_ctl, "epoll_ctl");
    RESOLVE(epoll_wait, "epoll_wait");
    RESOLVE(epoll_pwait, "epoll_pwait");
    __atomic_store_n(&real.ready, 1, __ATOMIC_RELEASE);
}

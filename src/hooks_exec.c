/* hooks_exec.c - exec: the process image, and the journal queue with it,
 * is about to be replaced.
 *
 * Rows still queued would be lost, and guard mode's claims with them: a
 * claimed slot is given back only once its row is written, and the new
 * image keeps the pid, so to a twin the slot would look held by a live
 * process for as long as the new program runs. So the queue is written
 * first, as for _exit(); what could not be written leaves its slots held
 * by no one (an unknown outcome), and exec goes on.
 *
 * Each public member of the family is hooked: libc's own calls between
 * them (execvp calling execve) do not go through the hooks. The l-forms
 * collect their arguments and go on as the v-forms.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <unistd.h>

#include "hooks.h"
#include "journal_queue.h"

static void before_exec(void)
{
    if (!hooks_table_is_ours() || hooks_in_shim)
        return;
    int e = errno;
    journal_queue_flush(HOOKS_RELEASE_ON_CLOSE_MS);
    journal_queue_abandon_claims();
    errno = e;
}

/* The next definition of name (libc's), looked up once. */
static void *next(void **cache, const char *name)
{
    void *fn = __atomic_load_n(cache, __ATOMIC_ACQUIRE);
    if (!fn) {
        fn = dlsym(RTLD_NEXT, name);
        __atomic_store_n(cache, fn, __ATOMIC_RELEASE);
    }
    return fn;
}

#define NEXT(type, name) \
    static void *cache_##name; \
    type real_##name = (type)next(&cache_##name, #name); \
    if (!real_##name) { \
        errno = ENOSYS; \
        return -1; \
    }

typedef int (*execve_fn)(const char *, char *const[], char *const[]);
typedef int (*execv_fn)(const char *, char *const[]);
typedef int (*fexecve_fn)(int, char *const[], char *const[]);

EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
    NEXT(execve_fn, execve);
    before_exec();
    return real_execve(path, argv, envp);
}

EXPORT int execv(const char *path, char *const argv[])
{
    NEXT(execv_fn, execv);
    before_exec();
    return real_execv(path, argv);
}

EXPORT int execvp(const char *file, char *const argv[])
{
    NEXT(execv_fn, execvp);
    before_exec();
    return real_execvp(file, argv);
}

EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
    NEXT(execve_fn, execvpe);
    before_exec();
    return real_execvpe(file, argv, envp);
}

EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
    NEXT(fexecve_fn, fexecve);
    before_exec();
    return real_fexecve(fd, argv, envp);
}

/* How many arguments an l-form passes after arg0, up to its NULL. */
static size_t count_args(const char *arg0, va_list ap)
{
    size_t n = 0;
    va_list copy;
    va_copy(copy, ap);
    while (arg0 && va_arg(copy, char *) != NULL)
        n++;
    va_end(copy);
    return n;
}

/* Fills argv (room for count_args() + 2) with arg0, the rest and the NULL;
 * *envp, if asked for, gets what follows the NULL (execle). */
static void collect(const char *arg0, va_list ap, char **argv, char ***envp)
{
    size_t n = 0;
    argv[n++] = (char *)arg0;
    while (arg0 && (argv[n] = va_arg(ap, char *)) != NULL)
        n++;
    if (!arg0)
        argv[0] = NULL;
    if (envp)
        *envp = va_arg(ap, char **);
}

/* An l-form without an environment, as the v-form fn. The array is as
 * long as the arguments: on the caller's stack, which may be small (a
 * signal handler's). */
static int exec_list(int (*fn)(const char *, char *const[]), const char *path,
                     const char *arg0, va_list ap)
{
    char *argv[count_args(arg0, ap) + 2];
    collect(arg0, ap, argv, NULL);
    return fn(path, argv);
}

EXPORT int execl(const char *path, const char *arg0, ...)
{
    va_list ap;
    va_start(ap, arg0);
    int rc = exec_list(execv, path, arg0, ap);
    va_end(ap);
    return rc;
}

EXPORT int execlp(const char *file, const char *arg0, ...)
{
    va_list ap;
    va_start(ap, arg0);
    int rc = exec_list(execvp, file, arg0, ap);
    va_end(ap);
    return rc;
}

EXPORT int execle(const char *path, const char *arg0, ...)
{
    va_list ap;
    va_start(ap, arg0);
    char *argv[count_args(arg0, ap) + 2];
    char **envp = NULL;
    collect(arg0, ap, argv, &envp);
    va_end(ap);
    return execve(path, argv, envp);
}

/* cmd_run.c - `retrysafe run`: preload the shim into a command. */
#include <errno.h>
#include <limits.h>
#if defined(__SANITIZE_ADDRESS__)
#include <link.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tool.h"

#ifndef RETRYSAFE_LIBDIR
#define RETRYSAFE_LIBDIR "/usr/local/lib/retrysafe"
#endif

/* dir + suffix into out, if it fits and names a readable file. */
static int candidate(char *out, size_t size, const char *dir, const char *suffix)
{
    int n = snprintf(out, size, "%s%s", dir, suffix);
    return n > 0 && (size_t)n < size && access(out, R_OK) == 0;
}

/* The library beside this executable (the build tree), in ../lib/retrysafe
 * (an installed tree, wherever PREFIX was), or where make install put it. */
static int find_library(char *out, size_t size)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            if (candidate(out, size, exe, "/libretrysafe.so"))
                return 0;
            if (candidate(out, size, exe, "/../lib/retrysafe/libretrysafe.so") &&
                realpath(out, exe) && candidate(out, size, exe, ""))
                return 0;
        }
    }
    return candidate(out, size, RETRYSAFE_LIBDIR, "/libretrysafe.so") ? 0 : -1;
}

#if defined(__SANITIZE_ADDRESS__)
/* dl_iterate_phdr callback: the loaded ASan runtime's path into out. */
static int asan_runtime(struct dl_phdr_info *info, size_t size, void *out)
{
    (void)size;
    const char *slash = strrchr(info->dlpi_name, '/');
    if (!slash || strncmp(slash + 1, "libasan.so", strlen("libasan.so")) != 0)
        return 0;
    snprintf(out, PATH_MAX, "%s", info->dlpi_name);
    return 1;
}
#endif

/* What LD_PRELOAD must begin with: the library; in a build made with
 * make SANITIZE=address, after the ASan runtime, which must be loaded first
 * of all. This tool was linked with the one the library needs: its own. */
static int preload_of(const char *library, char *out, size_t size)
{
    char first[PATH_MAX] = "";
#if defined(__SANITIZE_ADDRESS__)
    dl_iterate_phdr(asan_runtime, first);
#endif
    int n = snprintf(out, size, "%s%s%s", first, *first ? " " : "", library);
    if (n > 0 && (size_t)n < size)
        return 0;
    errno = ENAMETOOLONG;
    return -1;
}

/* Ours first, then whatever the caller already preloads (once). */
static int set_preload(const char *library)
{
    const char *old = getenv("LD_PRELOAD");
    if (!old || !*old)
        return setenv("LD_PRELOAD", library, 1);
    if (strstr(old, library))
        return 0;
    size_t len = strlen(library) + 1 + strlen(old) + 1;
    char *both = malloc(len);
    if (!both)
        return -1;
    snprintf(both, len, "%s %s", library, old);
    int rc = setenv("LD_PRELOAD", both, 1);
    free(both);
    return rc;
}

static const struct {
    const char *option;
    const char *variable;
} run_options[] = {
    { "--hosts", "RETRYSAFE_HOSTS" },
    { "--mode", "RETRYSAFE_MODE" },
    { "--journal", "RETRYSAFE_JOURNAL" },
    { "--scope", "RETRYSAFE_SCOPE" },
};

/* Takes "--opt value" or "--opt=value"; returns how many args it used. */
static int take_option(int argc, char **argv, int i)
{
    for (size_t k = 0; k < sizeof(run_options) / sizeof(run_options[0]); k++) {
        const char *opt = run_options[k].option;
        size_t len = strlen(opt);
        if (strncmp(argv[i], opt, len) != 0)
            continue;
        if (argv[i][len] == '=')
            return setenv(run_options[k].variable, argv[i] + len + 1, 1) == 0 ? 1 : -1;
        if (argv[i][len] == '\0' && i + 1 < argc)
            return setenv(run_options[k].variable, argv[i + 1], 1) == 0 ? 2 : -1;
    }
    return 0;
}

int cmd_run(int argc, char **argv)
{
    int i = 1;
    while (i < argc && strcmp(argv[i], "--") != 0 && argv[i][0] == '-') {
        int used = take_option(argc, argv, i);
        if (used <= 0)
            return tool_error("run: unknown or incomplete option '%s'", argv[i]);
        i += used;
    }
    if (i < argc && strcmp(argv[i], "--") == 0)
        i++;
    if (i >= argc)
        return tool_error("run: no command given (retrysafe run --hosts H -- CMD ARGS...)");

    char library[PATH_MAX], preload[2 * PATH_MAX];
    if (find_library(library, sizeof(library)) != 0)
        return tool_error("run: cannot find libretrysafe.so next to this program or in %s",
                          RETRYSAFE_LIBDIR);
    if (preload_of(library, preload, sizeof(preload)) != 0 || set_preload(preload) != 0)
        return tool_error("run: cannot set LD_PRELOAD: %s", strerror(errno));
    const char *hosts = getenv("RETRYSAFE_HOSTS");
    if (!hosts || !*hosts)
        fputs("retrysafe: warning: no hosts enabled (--hosts or RETRYSAFE_HOSTS); "
              "nothing will be tagged\n", stderr);

    execvp(argv[i], argv + i);
    int e = errno;
    tool_error("run: cannot run '%s': %s", argv[i], strerror(e));
    return e == ENOENT ? 127 : 126;
}

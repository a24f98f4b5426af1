/* retrysafe.c - the command: dispatches to one file per subcommand. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tool.h"

static const char usage[] =
    "usage: retrysafe COMMAND [ARGS]\n"
    "\n"
    "Adds idempotency keys to an unmodified program's HTTP POSTs, so a retry\n"
    "carries the same key as the first attempt.\n"
    "\n"
    "commands:\n"
    "  run [--hosts H] [--mode M] [--journal P] [--scope S] -- CMD [ARGS...]\n"
    "        run CMD with the shim preloaded; H is a comma-separated list of\n"
    "        host, host:port, *.suffix or *, each optionally =Header-Name\n"
    "  key [--journal P] [--scope S] [--content-type T] METHOD URL [BODY-FILE|-]\n"
    "        print the key the shim would send for that request now\n"
    "  dump [--json] [--journal P] [--host H] [--since DUR] [--limit N]\n"
    "        every journaled attempt, newest last\n"
    "  stats [--json] [--journal P]\n"
    "        per host: requests, retried keys, outcomes, status classes\n"
    "  prune [--journal P] --older-than DUR\n"
    "        delete attempts (and recorded answers) older than DUR (30s, 15m,\n"
    "        24h, 7d)\n"
    "  forget [--journal P] KEY\n"
    "        guard mode: let the request with KEY go out once more (its earlier\n"
    "        attempts, and any recorded answer, no longer count)\n"
    "  doctor PROGRAM\n"
    "        can the shim tag PROGRAM's plain HTTP and HTTPS requests, and if\n"
    "        not, why not; exit 0 both covered, 1 not fully, 2 error\n"
    "  --help     this text\n"
    "  --version  the version\n"
    "\n"
    "Settings come from RETRYSAFE_* environment variables; see README.md.\n";

int tool_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("retrysafe: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("retrysafe %s\n", RETRYSAFE_VERSION);
        return 0;
    }
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 1, argv + 1);
    if (strcmp(cmd, "key") == 0)
        return cmd_key(argc - 1, argv + 1);
    if (strcmp(cmd, "dump") == 0)
        return cmd_dump(argc - 1, argv + 1);
    if (strcmp(cmd, "stats") == 0)
        return cmd_stats(argc - 1, argv + 1);
    if (strcmp(cmd, "prune") == 0)
        return cmd_prune(argc - 1, argv + 1);
    if (strcmp(cmd, "forget") == 0)
        return cmd_forget(argc - 1, argv + 1);
    if (strcmp(cmd, "doctor") == 0)
        return cmd_doctor(argc - 1, argv + 1);
    tool_error("unknown command '%s'", cmd);
    fputs(usage, stderr);
    return 2;
}

/* cmd_prune.c - `retrysafe prune --older-than DUR`: forget old attempts. */
#include <getopt.h>
#include <stdio.h>

#include "config.h"
#include "tool.h"
#include "tool_journal.h"

int cmd_prune(int argc, char **argv)
{
    static const struct option options[] = {
        { "older-than", required_argument, NULL, 'o' },
        { "journal", required_argument, NULL, 'J' },
        { NULL, 0, NULL, 0 },
    };
    const char *journal_path = NULL, *older = NULL;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        if (opt == 'o')
            older = optarg;
        else if (opt == 'J')
            journal_path = optarg;
        else
            return tool_error("prune: usage: retrysafe prune [--journal P] --older-than DUR");
    }
    uint64_t ms;
    if (!older || optind != argc)
        return tool_error("prune: usage: retrysafe prune [--journal P] --older-than DUR");
    if (config_parse_duration(older, &ms) != 0)
        return tool_error("prune: '%s' is not a duration (30s, 15m, 24h, 7d)", older);
    struct journal *j = tool_open_journal(journal_path);
    if (!j)
        return 2;
    int64_t deleted = 0;
    int rc = journal_prune(j, tool_now_ms() - (int64_t)ms, &deleted);
    if (rc != 0)
        tool_error("prune: %s", journal_error(j));
    else
        printf("pruned %lld attempt(s) older than %s\n", (long long)deleted, older);
    journal_close(j);
    return rc == 0 ? 0 : 2;
}

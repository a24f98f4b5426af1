/* cmd_forget.c - `retrysafe forget KEY`: guard mode refuses a retry whose
 * first attempt's outcome is unknown; once a person (or an agent) has
 * checked that the operation did not happen, this lets it go out once more. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "claim_table.h"
#include "tool.h"
#include "tool_journal.h"

static const char forget_usage[] = "forget: usage: retrysafe forget [--journal P] KEY";

/* A guard-mode process that died after sending a request, before its row
 * was written, left the key's slot held (claim_table.h): the next retry
 * would journal that attempt as unknown and be refused. Forgetting the key
 * frees the slot too. Returns 1 when there was such a slot. */
static int forget_dead_claim(const char *journal_path, const char *key)
{
    char path[PATH_MAX + 16];
    struct stat st;
    snprintf(path, sizeof(path), "%s-claims", journal_path);
    if (stat(path, &st) != 0)
        return 0;   /* no process ever claimed there */
    struct claim_table *t = claim_table_open(path);
    if (!t)
        return 0;
    struct claim_holder h;
    struct claim_ref ref;
    enum claim_take r = claim_table_take(t, key, (int)getpid(), 0, &h, &ref);
    if (r == CLAIM_TAKEN || r == CLAIM_TAKEN_FROM_DEAD)
        claim_table_release(&ref);
    claim_table_close(t);
    return r == CLAIM_TAKEN_FROM_DEAD;
}

int cmd_forget(int argc, char **argv)
{
    static const struct option options[] = {
        { "journal", required_argument, NULL, 'J' },
        { NULL, 0, NULL, 0 },
    };
    const char *journal_path = NULL;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        if (opt != 'J')
            return tool_error("%s", forget_usage);
        journal_path = optarg;
    }
    if (optind != argc - 1 || !argv[optind][0])
        return tool_error("%s", forget_usage);
    const char *key = argv[optind];
    char path[PATH_MAX];
    struct journal *j = tool_open_journal_at(journal_path, path, sizeof(path));
    if (!j)
        return 2;
    int attempts = 0, answers = 0;
    int rc = journal_forget(j, key, &attempts, &answers);
    int unjournaled = rc == 0 && forget_dead_claim(path, key);
    int known = attempts > 0 || answers > 0 || unjournaled;
    if (rc != 0)
        tool_error("forget: %s", journal_error(j));
    else if (!known)
        tool_error("forget: the journal has no attempt with key %s", key);
    else
        printf("forgot %d attempt(s)%s%s of %s: its next attempt will be sent\n", attempts,
               unjournaled ? " and one that died unjournaled" : "",
               answers ? " and the recorded answer" : "", key);
    journal_close(j);
    return rc != 0 ? 2 : known ? 0 : 1;
}

/* cmd_forget.c - `retrysafe forget KEY`: guard mode refuses a retry whose
 * first attempt's outcome is unknown; once a person (or an agent) has
 * checked that the operation did not happen, this lets it go out once more. */
#include <limits.h>
#include <stdio.h>
#include <string.h>
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
    struct claim_table *t = claim_table_open(path, NULL);
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

/* Keys are base64url and may begin with '-': anything that is not
 * --journal is the key, so no getopt here (`--` is accepted too). */
int cmd_forget(int argc, char **argv)
{
    const char *journal_path = NULL, *key = NULL;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--journal") == 0) {
            if (i + 1 == argc)
                return tool_error("%s", forget_usage);
            journal_path = argv[++i];
        }
        else if (strncmp(arg, "--journal=", 10) == 0)
            journal_path = arg + 10;
        else if (strcmp(arg, "--") == 0 && !key && i + 1 < argc)
            key = argv[++i];
        else if (!key && arg[0])
            key = arg;
        else
            return tool_error("%s", forget_usage);
    }
    if (!key)
        return tool_error("%s", forget_usage);
    char path[PATH_MAX];
    struct journal *j = tool_open_journal_at(journal_path, path, sizeof(path));
    if (!j)
        return 2;
    int attempts = 0, answers = 0;
    /* The slot first: a retry in between would journal the dead claim as
     * unknown after the barrier the journal is about to set. */
    /* A journal in a server has no claim table beside it. */
    int unjournaled = journal_scheme_len(path) == 0 && forget_dead_claim(path, key);
    int rc = journal_forget(j, key, &attempts, &answers);
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

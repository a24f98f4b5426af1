/* cmd_forget.c - `retrysafe forget KEY`: guard mode refuses a retry whose
 * first attempt's outcome is unknown; once a person (or an agent) has
 * checked that the operation did not happen, this lets it go out once more. */
#include <getopt.h>
#include <stdio.h>

#include "tool.h"
#include "tool_journal.h"

static const char forget_usage[] = "forget: usage: retrysafe forget [--journal P] KEY";

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
    struct journal *j = tool_open_journal(journal_path);
    if (!j)
        return 2;
    int attempts = 0, answers = 0;
    int rc = journal_forget(j, key, &attempts, &answers);
    int known = attempts > 0 || answers > 0;
    if (rc != 0)
        tool_error("forget: %s", journal_error(j));
    else if (!known)
        tool_error("forget: the journal has no attempt with key %s", key);
    else
        printf("forgot %d attempt(s)%s of %s: its next attempt will be sent\n", attempts,
               answers ? " and the recorded answer" : "", key);
    journal_close(j);
    return rc != 0 ? 2 : known ? 0 : 1;
}

/* cmd_stats.c - `retrysafe stats`: per host, what happened. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool.h"
#include "tool_journal.h"

/* Pending attempts whose process is gone, per host: they are unknown. */
struct orphans {
    char **hosts;
    int64_t *counts;
    size_t n;
};

struct stats_out {
    FILE *out;
    int json;
    struct orphans orphans;
};

static int count_orphan(void *ctx, const struct journal_row *r)
{
    struct orphans *o = ctx;
    if (r->outcome != JOURNAL_PENDING || tool_outcome(r) != JOURNAL_UNKNOWN)
        return 0;
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->hosts[i], r->host) == 0) {
            o->counts[i]++;
            return 0;
        }
    char **hosts = realloc(o->hosts, (o->n + 1) * sizeof(*hosts));
    if (hosts)
        o->hosts = hosts;
    int64_t *counts = realloc(o->counts, (o->n + 1) * sizeof(*counts));
    if (counts)
        o->counts = counts;
    if (!hosts || !counts || !(o->hosts[o->n] = strdup(r->host)))
        return 1;
    o->counts[o->n++] = 1;
    return 0;
}

static int64_t orphans_of(const struct orphans *o, const char *host)
{
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->hosts[i], host) == 0)
            return o->counts[i];
    return 0;
}

static void orphans_free(struct orphans *o)
{
    for (size_t i = 0; i < o->n; i++)
        free(o->hosts[i]);
    free(o->hosts);
    free(o->counts);
}

static int print_host(void *ctx, const struct journal_host_stats *s)
{
    struct stats_out *o = ctx;
    const int64_t *sc = s->status_classes;
    int64_t oc[JOURNAL_OUTCOMES];
    memcpy(oc, s->outcomes, sizeof(oc));
    int64_t gone = orphans_of(&o->orphans, s->host);
    oc[JOURNAL_PENDING] -= gone;
    oc[JOURNAL_UNKNOWN] += gone;
    if (o->json) {
        fputs("{\"host\":", o->out);
        tool_json_string(o->out, s->host);
        fprintf(o->out, ",\"requests\":%lld,\"keys\":%lld,\"retried_keys\":%lld,"
                "\"outcomes\":{\"pending\":%lld,\"completed\":%lld,\"unknown\":%lld,"
                "\"failed\":%lld,\"skipped\":%lld,\"replayed\":%lld,\"refused\":%lld},"
                "\"status\":{\"none\":%lld,\"1xx\":%lld,\"2xx\":%lld,\"3xx\":%lld,"
                "\"4xx\":%lld,\"5xx\":%lld}}\n",
                (long long)s->requests, (long long)s->keys, (long long)s->retried_keys,
                (long long)oc[JOURNAL_PENDING], (long long)oc[JOURNAL_COMPLETED],
                (long long)oc[JOURNAL_UNKNOWN], (long long)oc[JOURNAL_FAILED],
                (long long)oc[JOURNAL_SKIPPED], (long long)oc[JOURNAL_REPLAYED],
                (long long)oc[JOURNAL_REFUSED], (long long)sc[0], (long long)sc[1],
                (long long)sc[2], (long long)sc[3], (long long)sc[4], (long long)sc[5]);
        return 0;
    }
    tool_table_field(o->out, s->host, 28);
    fprintf(o->out, " %8lld %6lld %7lld %9lld %7lld %6lld %7lld %8lld %7lld %7lld %5lld %5lld"
            " %5lld\n",
            (long long)s->requests, (long long)s->keys, (long long)s->retried_keys,
            (long long)oc[JOURNAL_COMPLETED], (long long)oc[JOURNAL_UNKNOWN],
            (long long)oc[JOURNAL_FAILED], (long long)oc[JOURNAL_SKIPPED],
            (long long)oc[JOURNAL_REPLAYED], (long long)oc[JOURNAL_REFUSED],
            (long long)oc[JOURNAL_PENDING], (long long)sc[2], (long long)sc[4],
            (long long)sc[5]);
    return 0;
}

int cmd_stats(int argc, char **argv)
{
    static const struct option options[] = {
        { "json", no_argument, NULL, 'j' }, { "journal", required_argument, NULL, 'J' },
        { NULL, 0, NULL, 0 },
    };
    const char *journal_path = NULL;
    struct stats_out o = { stdout, 0, { NULL, NULL, 0 } };
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        if (opt == 'j')
            o.json = 1;
        else if (opt == 'J')
            journal_path = optarg;
        else
            return tool_error("stats: usage: retrysafe stats [--json] [--journal P]");
    }
    if (optind != argc)
        return tool_error("stats: unexpected argument '%s'", argv[optind]);
    struct journal *j = tool_open_journal_to_read(journal_path);
    if (!j)
        return 2;
    if (!o.json)
        printf("%-28s %8s %6s %7s %9s %7s %6s %7s %8s %7s %7s %5s %5s %5s\n", "host",
               "requests", "keys", "retried", "completed", "unknown", "failed", "skipped",
               "replayed", "refused", "pending",
               "2xx", "4xx", "5xx");
    struct journal_filter all = { 0 };
    int rc = journal_each(j, &all, count_orphan, &o.orphans);
    if (rc == 0)
        rc = journal_stats(j, print_host, &o);
    orphans_free(&o.orphans);
    if (rc != 0)
        tool_error("stats: cannot read the journal: %s", journal_error(j));
    journal_close(j);
    return rc == 0 ? 0 : 2;
}

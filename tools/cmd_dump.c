/* cmd_dump.c - `retrysafe dump`: every intercepted call, newest last. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "tool.h"
#include "tool_journal.h"

static int print_json(void *ctx, const struct journal_row *r)
{
    FILE *out = ctx;
    char time[40];
    tool_iso_time(r->time_ms, time, sizeof(time));
    fprintf(out, "{\"time\":\"%s\",\"pid\":%d,\"exe\":", time, r->pid);
    tool_json_string(out, r->exe);
    fputs(",\"method\":", out);
    tool_json_string(out, r->method);
    fputs(",\"host\":", out);
    tool_json_string(out, r->host);
    fputs(",\"path\":", out);
    tool_json_string(out, r->path);
    fputs(",\"key\":", out);
    tool_json_string(out, r->key);
    fputs(",\"fingerprint\":", out);
    tool_json_string(out, r->fingerprint);
    fprintf(out, ",\"attempt\":%d,\"generation\":%d,\"tls\":%s,\"body_len\":%lld,\"status\":",
            r->attempt, r->generation, r->tls ? "true" : "false", (long long)r->body_len);
    if (r->status)
        fprintf(out, "%d", r->status);
    else
        fputs("null", out);
    fprintf(out, ",\"outcome\":\"%s\",\"duration_ms\":", journal_outcome_name(tool_outcome(r)));
    if (r->duration_ms >= 0)
        fprintf(out, "%lld}\n", (long long)r->duration_ms);
    else
        fputs("null}\n", out);
    return 0;
}

static int print_row(void *ctx, const struct journal_row *r)
{
    FILE *out = ctx;
    char time[40], status[8] = "-", duration[24] = "-";
    tool_iso_time(r->time_ms, time, sizeof(time));
    if (r->status)
        snprintf(status, sizeof(status), "%d", r->status);
    if (r->duration_ms >= 0)
        snprintf(duration, sizeof(duration), "%lldms", (long long)r->duration_ms);
    fprintf(out, "%-24s %7d ", time, r->pid);
    tool_table_field(out, r->exe, 12);
    fputc(' ', out);
    tool_table_field(out, r->method, 6);
    fputc(' ', out);
    tool_table_field(out, r->host, 22);
    fputc(' ', out);
    tool_table_field(out, r->path, 20);
    fputc(' ', out);
    tool_table_field(out, *r->key ? r->key : "-", 32);
    fprintf(out, " %3d %-3s %-6s %-9s %s\n", r->attempt, r->tls ? "yes" : "no", status,
            journal_outcome_name(tool_outcome(r)), duration);
    return 0;
}

int cmd_dump(int argc, char **argv)
{
    static const struct option options[] = {
        { "json", no_argument, NULL, 'j' },    { "journal", required_argument, NULL, 'J' },
        { "host", required_argument, NULL, 'H' }, { "since", required_argument, NULL, 's' },
        { "limit", required_argument, NULL, 'n' }, { NULL, 0, NULL, 0 },
    };
    struct journal_filter filter = { 0 };
    const char *journal_path = NULL;
    int json = 0, opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        uint64_t ms;
        char *end;
        switch (opt) {
        case 'j': json = 1; break;
        case 'J': journal_path = optarg; break;
        case 'H': filter.host = optarg; break;
        case 's':
            if (config_parse_duration(optarg, &ms) != 0)
                return tool_error("dump: --since '%s' is not a duration (30s, 15m, 24h, 7d)", optarg);
            filter.since_ms = tool_now_ms() - (int64_t)ms;
            break;
        case 'n':
            filter.limit = strtoll(optarg, &end, 10);
            if (*end || filter.limit <= 0)
                return tool_error("dump: --limit '%s' is not a positive number", optarg);
            break;
        default:
            return tool_error("dump: usage: retrysafe dump [--json] [--journal P] [--host H] "
                              "[--since DUR] [--limit N]");
        }
    }
    if (optind != argc)
        return tool_error("dump: unexpected argument '%s'", argv[optind]);
    struct journal *j = tool_open_journal_to_read(journal_path);
    if (!j)
        return 2;
    if (!json)
        printf("%-24s %7s %-12s %-6s %-22s %-20s %-32s %3s %-3s %-6s %-9s %s\n", "time", "pid",
               "exe", "method", "host", "path", "key", "try", "tls", "status", "outcome",
               "duration");
    int rc = journal_each(j, &filter, json ? print_json : print_row, stdout);
    if (rc != 0)
        tool_error("dump: cannot read the journal: %s", journal_error(j));
    journal_close(j);
    return rc == 0 ? 0 : 2;
}

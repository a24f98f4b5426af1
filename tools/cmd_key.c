/* cmd_key.c - `retrysafe key`: the key the shim would send for a request
 * now, with the same secret, scope and journal (the window). */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "canon.h"
#include "config.h"
#include "http.h"
#include "journal.h"
#include "key.h"
#include "keysource.h"
#include "location.h"
#include "tool.h"
#include "tool_journal.h"

static const char *lookup_env(void *ctx, const char *name)
{
    (void)ctx;
    return getenv(name);
}

static void print_warning(void *ctx, const char *message)
{
    (void)ctx;
    fprintf(stderr, "retrysafe: warning: %s\n", message);
}

static int read_body(const char *path, struct buf *body)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f)
        return -1;
    char chunk[65536];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        if (buf_append(body, chunk, n) != 0) {
            rc = -1;
            break;
        }
    if (ferror(f))
        rc = -1;
    if (f != stdin)
        fclose(f);
    return rc;
}

struct window {
    struct journal *journal;
    int64_t window_ms;
};

/* The shim's rule: the journal decides which operation this is now. No
 * journal yet (or off) means nothing was sent: the first operation. */
static int generation_now(void *arg, const char *fingerprint, int *generation)
{
    struct window *w = arg;
    *generation = 0;
    if (!w->journal)
        return 0;
    return journal_generation(w->journal, fingerprint, tool_now_ms(), w->window_ms, generation);
}

static struct journal *open_if_present(const char *option, const char *configured)
{
    char path[PATH_MAX], err[512];
    struct stat st;
    if (location_journal(option ? option : configured, path, sizeof(path)) != LOCATION_FOUND ||
        (journal_scheme_len(path) == 0 && stat(path, &st) != 0))
        return NULL;
    /* A journal the shim refuses is one it does not use: its requests are
     * first attempts, and so is this one. */
    struct journal *j = NULL;
    if (location_journal_private(path, err, sizeof(err)) == 0)
        j = journal_open(path, 0, err, sizeof(err));
    char shown[PATH_MAX];
    location_describe(path, shown, sizeof(shown));
    if (!j)
        fprintf(stderr, "retrysafe: warning: journal %s not used (%s); "
                "assuming a first attempt\n", shown, err);
    return j;
}

int cmd_key(int argc, char **argv)
{
    static const struct option options[] = {
        { "scope", required_argument, NULL, 's' }, { "journal", required_argument, NULL, 'J' },
        { "content-type", required_argument, NULL, 'c' },
        { NULL, 0, NULL, 0 },
    };
    static const char usage[] =
        "key: usage: retrysafe key [--journal P] [--scope S] [--content-type T] METHOD URL "
        "[BODY-FILE|-]";
    const char *scope = NULL, *journal_path = NULL, *content_type = NULL;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "+", options, NULL)) != -1) {
        if (opt == 's')
            scope = optarg;
        else if (opt == 'J')
            journal_path = optarg;
        else if (opt == 'c')
            content_type = optarg;
        else
            return tool_error("%s", usage);
    }
    if (argc - optind < 2 || argc - optind > 3)
        return tool_error("%s", usage);
    const char *method = argv[optind], *url = argv[optind + 1];
    const char *body_path = argc - optind == 3 ? argv[optind + 2] : NULL;

    const char *authority, *path;
    size_t authority_len, path_len;
    int tls;
    if (http_split_target(url, strlen(url), &authority, &authority_len, &path,
                          &path_len, &tls) != 0 || !authority)
        return tool_error("key: '%s' is not an http:// or https:// URL", url);

    struct buf body = { 0 };
    if (body_path && read_body(body_path, &body) != 0) {
        buf_free(&body);
        return tool_error("key: cannot read body from '%s'", body_path);
    }
    struct config cfg;
    if (config_load(&cfg, lookup_env, NULL, print_warning, NULL) != 0) {
        buf_free(&body);
        return tool_error("key: out of memory");
    }
    int status = 2;
    char err[768];
    struct window w = { open_if_present(journal_path, cfg.journal), (int64_t)cfg.window_ms };
    struct key_ctx *keys = keysource_open(&cfg, journal_path, err, sizeof(err));
    if (!keys) {
        tool_error("key: %s", err);
        goto out;
    }
    if (err[0])
        fprintf(stderr, "retrysafe: warning: %s\n", err);
    if (!scope)
        scope = cfg.scope;
    struct key_request req = {
        .method = method, .method_len = strlen(method),
        .authority = authority, .authority_len = authority_len, .tls = tls,
        .path = path, .path_len = path_len,
        .scope = scope, .scope_len = strlen(scope),
        .body = body.data, .body_len = body.len,
    };
    /* The shim's rule: a JSON or form body counts in canonical form. */
    struct buf canonical = { 0 };
    enum canon_kind kind = content_type ? canon_kind_of(content_type, strlen(content_type))
                                        : CANON_RAW;
    if (kind != CANON_RAW &&
        canon_body(kind, body.data ? body.data : "", body.len,
                   (const char *const *)cfg.ignore_fields, cfg.n_ignore_fields,
                   &canonical) == 0) {
        req.body = canonical.data ? canonical.data : "";
        req.body_len = canonical.len;
    }
    char key[KEY_CHARS + 1], fingerprint[KEY_FINGERPRINT_CHARS + 1];
    int derived = key_for_request(keys, &req, generation_now, &w, key, fingerprint, NULL);
    buf_free(&canonical);
    if (derived != 0) {
        tool_error("key: '%.*s' is not a valid authority", (int)authority_len, authority);
        goto out;
    }
    printf("%s\n", key);
    status = 0;
out:
    if (w.journal)
        journal_close(w.journal);
    key_ctx_free(keys);
    config_free(&cfg);
    buf_free(&body);
    return status;
}

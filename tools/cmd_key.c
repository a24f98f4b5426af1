/* cmd_key.c - `retrysafe key`: the key the shim would send for a request. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "http.h"
#include "key.h"
#include "keysource.h"
#include "tool.h"

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

int cmd_key(int argc, char **argv)
{
    const char *scope = NULL;
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i++) {
        if (strcmp(argv[i], "--scope") == 0 && i + 1 < argc)
            scope = argv[++i];
        else if (strncmp(argv[i], "--scope=", 8) == 0)
            scope = argv[i] + 8;
        else
            return tool_error("key: unknown option '%s'", argv[i]);
    }
    if (argc - i < 2 || argc - i > 3)
        return tool_error("key: usage: retrysafe key [--scope S] METHOD URL [BODY-FILE|-]");
    const char *method = argv[i], *url = argv[i + 1];

    const char *authority, *path;
    size_t authority_len, path_len;
    int tls;
    if (http_split_target(url, strlen(url), &authority, &authority_len, &path,
                          &path_len, &tls) != 0 || !authority)
        return tool_error("key: '%s' is not an http:// or https:// URL", url);

    struct buf body = { 0 };
    if (i + 2 < argc && read_body(argv[i + 2], &body) != 0) {
        buf_free(&body);
        return tool_error("key: cannot read body from '%s'", argv[i + 2]);
    }

    struct config cfg;
    int status = 2;
    if (config_load(&cfg, lookup_env, NULL, print_warning, NULL) != 0) {
        buf_free(&body);
        return tool_error("key: out of memory");
    }
    char err[512];
    struct key_ctx *keys = keysource_open(&cfg, err, sizeof(err));
    if (!keys) {
        tool_error("key: %s", err);
        goto out;
    }
    if (!scope)
        scope = cfg.scope;
    struct key_request req = {
        .method = method, .method_len = strlen(method),
        .authority = authority, .authority_len = authority_len, .tls = tls,
        .path = path, .path_len = path_len,
        .scope = scope, .scope_len = strlen(scope),
        .body = body.data, .body_len = body.len,
    };
    char key[KEY_CHARS + 1];
    if (key_derive(keys, &req, key) != 0) {
        tool_error("key: '%.*s' is not a valid authority", (int)authority_len, authority);
        goto out;
    }
    printf("%s\n", key);
    status = 0;
out:
    key_ctx_free(keys);
    config_free(&cfg);
    buf_free(&body);
    return status;
}

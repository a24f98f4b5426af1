/* curl_post.c - a libcurl POST client for the integration tests.
 *
 * usage: curl_post URL BODY [HEADER...]
 *
 * POSTs BODY (given as an argument, or "@FILE" to read it from a file) to
 * URL with the extra header lines given, then prints "status: N" and the
 * response body on its own line. Exits 0 when the transfer completed (any
 * status), 1 otherwise. The environment variable CURL_POST_REPEAT=N sends
 * the same request N times on one easy handle (one kept-alive connection).
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct buf {
    char *data;
    size_t len;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct buf *b = ud;
    size_t n = size * nmemb;
    char *p = realloc(b->data, b->len + n + 1);
    if (p == NULL)
        return 0;
    memcpy(p + b->len, ptr, n);
    b->data = p;
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static int read_file(const char *path, struct buf *out)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (on_data(chunk, 1, n, out) != n) {
            fclose(f);
            return -1;
        }
    }
    fclose(f);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: curl_post URL BODY|@FILE [HEADER...]\n");
        return 2;
    }
    struct buf body = {NULL, 0};
    if (argv[2][0] == '@') {
        if (read_file(argv[2] + 1, &body) != 0) {
            perror(argv[2] + 1);
            return 2;
        }
    } else {
        on_data(argv[2], 1, strlen(argv[2]), &body);
    }
    const char *rep = getenv("CURL_POST_REPEAT");
    int repeat = rep ? atoi(rep) : 1;
    if (repeat < 1)
        repeat = 1;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *c = curl_easy_init();
    if (c == NULL)
        return 1;
    struct curl_slist *headers = NULL;
    for (int i = 3; i < argc; i++)
        headers = curl_slist_append(headers, argv[i]);

    struct buf resp = {NULL, 0};
    curl_easy_setopt(c, CURLOPT_URL, argv[1]);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data ? body.data : "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body.len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");

    int rc = 0;
    for (int i = 0; i < repeat && rc == 0; i++) {
        resp.len = 0;
        CURLcode res = curl_easy_perform(c);
        if (res != CURLE_OK) {
            fprintf(stderr, "curl_post: %s\n", curl_easy_strerror(res));
            rc = 1;
            break;
        }
        long status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        printf("status: %ld\n%.*s\n", status, (int)resp.len,
               resp.data ? resp.data : "");
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    curl_global_cleanup();
    free(body.data);
    free(resp.data);
    return rc;
}

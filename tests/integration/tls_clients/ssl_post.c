/* ssl_post.c - sends a file's bytes over TLS with OpenSSL called directly.
 *
 * usage: ssl_post [options] HOST PORT SNI CAFILE REQUEST_FILE
 *
 *   -w write|write_ex  SSL_write (default) or SSL_write_ex
 *   -r read|read_ex    SSL_read (default) or SSL_read_ex
 *   -s N               write in pieces of at most N bytes (default: all)
 *   -n                 non-blocking socket (handshake, writes and reads in
 *                      a poll() loop; WANT_WRITE / WANT_READ retried with
 *                      the same buffer and length, as OpenSSL requires)
 *   -p                 SSL_MODE_ENABLE_PARTIAL_WRITE (short writes advance
 *                      by the count returned)
 *   -b N               SO_SNDBUF of N bytes
 *   -a LIST            offer ALPN LIST (comma-separated, e.g. h2,http/1.1)
 *   -A ctx|ssl         set ALPN with SSL_CTX_set_alpn_protos or (default)
 *                      SSL_set_alpn_protos
 *   -k N               send the file N times on the one connection, reading
 *                      one answer after each (default 1)
 *
 * Verifies the server against CAFILE for the name SNI. Prints every answer
 * (head and Content-Length body) to stdout, and to stderr one line
 * "alpn=X writes=N want_write=N want_read=N partial=N". Exits 0 when every
 * answer arrived.
 *
 * Built by the HTTPS tests (test_https.py) with -lssl -lcrypto; it is not
 * in clients/ because those are linked with libcurl only.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define TIMEOUT_MS 15000

static int opt_write_ex, opt_read_ex, opt_nonblock, opt_partial;
static size_t opt_piece;
static int opt_sndbuf;
static const char *opt_alpn;
static int opt_alpn_ctx;
static int opt_times = 1;
static long n_writes, n_want_write, n_want_read, n_partial;

static void die(const char *what)
{
    fprintf(stderr, "ssl_post: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(2);
}

static void wait_for(int fd, short events)
{
    struct pollfd p = {.fd = fd, .events = events};
    int n;
    do {
        n = poll(&p, 1, TIMEOUT_MS);
    } while (n < 0 && errno == EINTR);
    if (n == 0)
        die("timed out waiting for the socket");
    if (n < 0)
        die("poll failed");
}

/* Waits as SSL_get_error says; dies on anything but WANT_READ/WRITE. */
static void wait_ssl(SSL *ssl, int fd, int ret, const char *what)
{
    int err = SSL_get_error(ssl, ret);
    if (err == SSL_ERROR_WANT_WRITE) {
        n_want_write++;
        wait_for(fd, POLLOUT);
    } else if (err == SSL_ERROR_WANT_READ) {
        n_want_read++;
        wait_for(fd, POLLIN);
    } else {
        fprintf(stderr, "ssl_post: %s: SSL error %d\n", what, err);
        die(what);
    }
}

static int connect_to(const char *host, const char *port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai;
    if (getaddrinfo(host, port, &hints, &ai) != 0)
        die("getaddrinfo");
    int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0)
        die("socket");
    if (opt_sndbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &opt_sndbuf, sizeof opt_sndbuf);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0)
        die("connect");
    freeaddrinfo(ai);
    if (opt_nonblock)
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

/* "h2,http/1.1" -> "\x02h2\x08http/1.1" */
static unsigned char *alpn_wire(const char *list, unsigned *len)
{
    size_t n = strlen(list);
    unsigned char *out = malloc(n + 2);
    unsigned o = 0;
    const char *p = list;
    if (out == NULL)
        die("malloc");
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t l = comma ? (size_t)(comma - p) : strlen(p);
        out[o++] = (unsigned char)l;
        memcpy(out + o, p, l);
        o += (unsigned)l;
        p += l + (comma != NULL);
    }
    *len = o;
    return out;
}

static void write_all(SSL *ssl, int fd, const unsigned char *buf, size_t len)
{
    size_t off = 0;
    while (off < len) {
        size_t n = len - off;
        if (opt_piece && n > opt_piece)
            n = opt_piece;
        size_t written = 0;
        int ret;
        if (opt_write_ex) {
            ret = SSL_write_ex(ssl, buf + off, n, &written);
        } else {
            ret = SSL_write(ssl, buf + off, (int)n);
            written = ret > 0 ? (size_t)ret : 0;
        }
        if (ret <= 0) {
            wait_ssl(ssl, fd, ret, "write");
            continue;   /* the same buf + off and n */
        }
        n_writes++;
        if (written > n) {
            fprintf(stderr, "ssl_post: write at offset %zu reported %zu "
                    "bytes, more than the %zu given\n", off, written, n);
            exit(2);
        }
        if (written < n) {
            if (!opt_partial) {
                fprintf(stderr, "ssl_post: write at offset %zu reported %zu "
                        "of %zu bytes without SSL_MODE_ENABLE_PARTIAL_WRITE"
                        "\n", off, written, n);
                exit(2);
            }
            n_partial++;
        }
        off += written;
    }
}

static size_t read_some(SSL *ssl, int fd, unsigned char *buf, size_t cap)
{
    for (;;) {
        size_t got = 0;
        int ret;
        if (opt_read_ex) {
            ret = SSL_read_ex(ssl, buf, cap, &got);
        } else {
            ret = SSL_read(ssl, buf, (int)cap);
            got = ret > 0 ? (size_t)ret : 0;
        }
        if (ret > 0)
            return got;
        int err = SSL_get_error(ssl, ret);
        if (err == SSL_ERROR_ZERO_RETURN)
            return 0;
        if (!opt_nonblock && err != SSL_ERROR_WANT_READ &&
            err != SSL_ERROR_WANT_WRITE) {
            fprintf(stderr, "ssl_post: read: SSL error %d\n", err);
            return 0;
        }
        wait_ssl(ssl, fd, ret, "read");
    }
}

/* Reads one answer (head, then Content-Length bytes) and prints it. */
static void read_answer(SSL *ssl, int fd)
{
    static unsigned char buf[65536];
    size_t have = 0, need = 0;
    for (;;) {
        if (have == sizeof buf)
            die("answer too large");
        size_t got = read_some(ssl, fd, buf + have, sizeof buf - have);
        if (got == 0)
            die("connection closed before the whole answer");
        have += got;
        unsigned char *end = memmem(buf, have, "\r\n\r\n", 4);
        if (end == NULL)
            continue;
        size_t head = (size_t)(end - buf) + 4;
        if (have >= 12 && memcmp(buf + 9, "100", 3) == 0) {
            /* an interim 100 Continue: print it, drop it, go on */
            fwrite(buf, 1, head, stdout);
            memmove(buf, buf + head, have - head);
            have -= head;
            continue;
        }
        size_t length = 0;
        for (unsigned char *p = buf; p < end; p++) {
            if (strncasecmp((char *)p, "\r\nContent-Length:", 17) == 0) {
                length = strtoul((char *)p + 17, NULL, 10);
                break;
            }
        }
        need = head + length;
        if (have >= need)
            break;
    }
    if (have != need)
        die("more bytes than one answer");
    fwrite(buf, 1, need, stdout);
}

static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        die("cannot open the request file");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n)
        die("cannot read the request file");
    fclose(f);
    *len = (size_t)n;
    return buf;
}

int main(int argc, char **argv)
{
    int c;
    while ((c = getopt(argc, argv, "w:r:s:npb:a:A:k:")) != -1) {
        switch (c) {
        case 'w': opt_write_ex = strcmp(optarg, "write_ex") == 0; break;
        case 'r': opt_read_ex = strcmp(optarg, "read_ex") == 0; break;
        case 's': opt_piece = strtoul(optarg, NULL, 10); break;
        case 'n': opt_nonblock = 1; break;
        case 'p': opt_partial = 1; break;
        case 'b': opt_sndbuf = atoi(optarg); break;
        case 'a': opt_alpn = optarg; break;
        case 'A': opt_alpn_ctx = strcmp(optarg, "ctx") == 0; break;
        case 'k': opt_times = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: ssl_post [options] HOST PORT SNI CAFILE "
                            "REQUEST_FILE\n");
            return 2;
        }
    }
    if (argc - optind != 5) {
        fprintf(stderr, "usage: ssl_post [options] HOST PORT SNI CAFILE "
                        "REQUEST_FILE\n");
        return 2;
    }
    const char *host = argv[optind], *port = argv[optind + 1];
    const char *sni = argv[optind + 2], *cafile = argv[optind + 3];
    size_t len;
    unsigned char *req = read_file(argv[optind + 4], &len);

    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        die("SSL_CTX_new");
    if (SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1)
        die("load CA");
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    unsigned alen = 0;
    unsigned char *alpn = opt_alpn ? alpn_wire(opt_alpn, &alen) : NULL;
    if (alpn && opt_alpn_ctx && SSL_CTX_set_alpn_protos(ctx, alpn, alen) != 0)
        die("SSL_CTX_set_alpn_protos");

    int fd = connect_to(host, port);
    SSL *ssl = SSL_new(ctx);
    if (ssl == NULL)
        die("SSL_new");
    if (opt_partial)
        SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE);
    SSL_set_tlsext_host_name(ssl, sni);
    SSL_set1_host(ssl, sni);
    if (alpn && !opt_alpn_ctx && SSL_set_alpn_protos(ssl, alpn, alen) != 0)
        die("SSL_set_alpn_protos");
    SSL_set_fd(ssl, fd);
    int ret;
    while ((ret = SSL_connect(ssl)) != 1) {
        if (!opt_nonblock)
            die("handshake");
        wait_ssl(ssl, fd, ret, "handshake");
    }
    const unsigned char *sel = NULL;
    unsigned sel_len = 0;
    SSL_get0_alpn_selected(ssl, &sel, &sel_len);

    for (int i = 0; i < opt_times; i++) {
        write_all(ssl, fd, req, len);
        read_answer(ssl, fd);
    }
    fflush(stdout);
    fprintf(stderr, "alpn=%.*s writes=%ld want_write=%ld want_read=%ld "
                    "partial=%ld\n", (int)sel_len, sel ? (const char *)sel : "",
            n_writes, n_want_write, n_want_read, n_partial);
    SSL_shutdown(ssl);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    free(alpn);
    free(req);
    return 0;
}

/* seen_filter.c - a Bloom filter of fingerprints, shared through a mapped
 * file. See seen_filter.h.
 *
 * 2 MiB of bits and 4 probes: one request in about 400 pays a needless
 * journal read once a million distinct fingerprints were seen, one in
 * 10^6 after 100 000. The fingerprint is already a keyed hash (64 bits of
 * HMAC-SHA256), so its two halves give the probes directly (double
 * hashing); nothing here is secret.
 */
#include "seen_filter.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILTER_BYTES (2u << 20)
#define FILTER_BITS ((uint64_t)FILTER_BYTES * 8)
#define FILTER_PROBES 4
/* A page of header before the bits: a filter is trusted only once it is
 * complete (it learnt the journal's fingerprints before it was put in
 * place) and while no process declared it invalid. */
#define HEADER_BYTES 4096u
#define FILE_BYTES (HEADER_BYTES + FILTER_BYTES)
static const char MAGIC[8] = "RSSEEN1";

struct header {
    char magic[8];
    uint32_t complete;
    uint32_t invalid;          /* a process could not keep it up to date */
};

struct seen_filter {
    unsigned char *map;        /* FILE_BYTES, mapped shared */
    struct header *header;
    unsigned char *bits;
    struct file_id file;
};

/* The file must be ours in the way the journal is (journal_sqlite.c): a
 * regular file of this user that no one else may write, of our size. */
static int ours(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
           !(st.st_mode & 022) && st.st_size == FILE_BYTES;
}

static struct seen_filter *map_file(int fd)
{
    /* The mapping outlives the fd: no descriptor is kept. Only this code
     * sizes the file, never smaller: a mapping past its end would fault. */
    void *p = mmap(NULL, FILE_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return NULL;
    struct seen_filter *f = malloc(sizeof(*f));
    if (!f) {
        munmap(p, FILE_BYTES);
        return NULL;
    }
    struct stat st;
    f->file = fstat(fd, &st) == 0 ? (struct file_id){ st.st_dev, st.st_ino }
                                  : (struct file_id){ 0, 0 };
    f->map = p;
    f->header = p;
    f->bits = (unsigned char *)p + HEADER_BYTES;
    return f;
}

/* Returns 0, or -1 when it could not be marked: the others keep trusting
 * it, and nothing more can be done. */
static int mark_invalid(int fd)
{
    static const uint32_t one = 1;
    return pwrite(fd, &one, sizeof(one), offsetof(struct header, invalid)) ==
           (ssize_t)sizeof(one) ? 0 : -1;
}

int seen_filter_declare_invalid(const char *path)
{
    int e = errno;
    int fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
    int marked = fd < 0 ? errno == ENOENT : ours(fd) && mark_invalid(fd) == 0;
    if (fd >= 0)
        close(fd);
    errno = e;
    return marked;
}

struct file_id seen_filter_file_id(const struct seen_filter *f)
{
    return f->file;
}

/* An existing filter; one that cannot be kept up to date by this process
 * is declared invalid for all, since its bits would miss our rows. */
static struct seen_filter *open_existing(const char *path)
{
    int fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return NULL;
    struct seen_filter *f = ours(fd) ? map_file(fd) : NULL;
    if (!f && ours(fd))
        (void)mark_invalid(fd);
    close(fd);
    if (f && (memcmp(f->header->magic, MAGIC, sizeof(MAGIC)) != 0 ||
              !__atomic_load_n(&f->header->complete, __ATOMIC_ACQUIRE))) {
        seen_filter_close(f);
        f = NULL;
    }
    if (!f)
        errno = EEXIST;   /* there is a file, just not one to trust */
    return f;
}

/* A new filter, filled before it is put in place with link(): no process
 * ever sees it half made. Another process may win the race: then its
 * filter is the one. */
static struct seen_filter *create(const char *path, seen_filter_fill_fn fill, void *ctx)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
    unlink(tmp);   /* left by a process that had our pid and died */
    int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd < 0)
        return NULL;
    struct seen_filter *f = fchmod(fd, 0600) == 0 && shared_file_size(fd, FILE_BYTES) == 0
                            ? map_file(fd) : NULL;
    close(fd);
    if (f) {
        memcpy(f->header->magic, MAGIC, sizeof(MAGIC));
        if (fill(ctx, f) == 0) {
            __atomic_store_n(&f->header->complete, 1, __ATOMIC_RELEASE);
            if (link(tmp, path) != 0) {
                seen_filter_close(f);
                f = errno == EEXIST ? open_existing(path) : NULL;
            }
        } else {
            seen_filter_close(f);
            f = NULL;
        }
    }
    unlink(tmp);
    return f;
}

struct seen_filter *seen_filter_open(const char *path, seen_filter_fill_fn fill, void *ctx)
{
    int e = errno;
    struct seen_filter *f = open_existing(path);
    if (!f && errno == ENOENT)
        f = create(path, fill, ctx);
    errno = e;
    return f;
}

void seen_filter_close(struct seen_filter *f)
{
    if (!f)
        return;
    munmap(f->map, FILE_BYTES);
    free(f);
}

/* The fingerprint's 64 bits (its first 16 hex digits); 0 if it is not hex,
 * which still works, as one more fingerprint. */
static uint64_t bits_of(const char *fingerprint)
{
    uint64_t v = 0;
    for (int i = 0; i < 16 && fingerprint[i]; i++) {
        char c = fingerprint[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : 0;
        v = v << 4 | (uint64_t)d;
    }
    return v;
}

static uint64_t probe(uint64_t h, int i)
{
    uint64_t h1 = h & 0xffffffffu, h2 = (h >> 32) | 1;
    return (h1 + (uint64_t)i * h2) % FILTER_BITS;
}

void seen_filter_add(struct seen_filter *f, const char *fingerprint)
{
    if (!f || !fingerprint || !*fingerprint)
        return;
    uint64_t h = bits_of(fingerprint);
    for (int i = 0; i < FILTER_PROBES; i++) {
        uint64_t b = probe(h, i);
        __atomic_fetch_or(&f->bits[b / 8], (unsigned char)(1u << (b % 8)),
                          __ATOMIC_RELEASE);
    }
}

int seen_filter_maybe(const struct seen_filter *f, const char *fingerprint)
{
    if (!f || !fingerprint || !*fingerprint ||
        __atomic_load_n(&f->header->invalid, __ATOMIC_ACQUIRE))
        return 1;
    uint64_t h = bits_of(fingerprint);
    for (int i = 0; i < FILTER_PROBES; i++) {
        uint64_t b = probe(h, i);
        if (!(__atomic_load_n(&f->bits[b / 8], __ATOMIC_ACQUIRE) & (1u << (b % 8))))
            return 0;
    }
    return 1;
}

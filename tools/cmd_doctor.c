/* cmd_doctor.c - `retrysafe doctor PROGRAM`: can the shim tag this
 * program's requests over plain HTTP and over HTTPS, and if not, why not?
 *
 * The shim sees only what a program hands to a dynamically linked libc,
 * OpenSSL or GnuTLS. So the answer is in the program's ELF file and in the
 * libraries it links, which are found here the way the dynamic linker
 * would find them (without /etc/ld.so.cache, whose format is glibc's own).
 * Exit status: 0 both covered, 1 not fully covered, 2 error. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "elf_inspect.h"
#include "tool.h"

enum {
    MAX_OBJECTS = 4096, /* a dependency tree larger than this is cut off */
    MAX_SCRIPTS = 4,    /* nested #! interpreters, as Linux allows */
    CONF_DEPTH = 8,     /* nested ld.so.conf include lines */
};

static const char next_step_proxy[] =
    "Next step: send HTTPS through a local TLS-terminating proxy, or use plain HTTP to a sidecar.";
static const char next_step_forward[] =
    "Next step: point it at a local forwarding proxy that runs under retrysafe.";

/* -- small helpers ------------------------------------------------------ */

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void dir_of(const char *path, char *out, size_t size)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(out, size, ".");
    else if (slash == path)
        snprintf(out, size, "/");
    else
        snprintf(out, size, "%.*s", (int)(slash - path), path);
}

/* dir "/" name into out; 0 when it fits. */
static int join(char *out, size_t size, const char *dir, const char *name)
{
    int n = snprintf(out, size, "%s/%s", dir, name);
    return n > 0 && (size_t)n < size ? 0 : -1;
}

struct strlist {
    char **v;
    size_t n, cap;
};

/* Appends a copy of s unless it is already there. */
static int strlist_add(struct strlist *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], s) == 0)
            return 0;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 8;
        char **v = realloc(l->v, cap * sizeof(*v));
        if (!v)
            return -1;
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(s)))
        return -1;
    l->n++;
    return 0;
}

static void strlist_free(struct strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

/* -- finding the program ------------------------------------------------ */

/* name resolved as execvp would: taken as a path when it has a '/', else
 * the first regular executable file of that name in PATH. */
static int find_program(const char *name, char *out, size_t size)
{
    if (strchr(name, '/'))
        return snprintf(out, size, "%s", name) < (int)size ? 0 : -1;
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/local/bin:/bin:/usr/bin";
    for (const char *p = path;; p += strcspn(p, ":") + 1) {
        size_t len = strcspn(p, ":");
        char dir[PATH_MAX];
        struct stat st;
        if (len)
            snprintf(dir, sizeof(dir), "%.*s", (int)len, p);
        else
            snprintf(dir, sizeof(dir), "."); /* an empty entry: the current directory */
        if (join(out, size, dir, name) == 0 && stat(out, &st) == 0 && S_ISREG(st.st_mode) &&
            access(out, X_OK) == 0)
            return 0;
        if (p[len] == '\0')
            return -1;
    }
}

/* Interpreters that run shell scripts: what such a script starts is
 * decided at run time, so it cannot be read from the file. */
static int is_shell(const char *path)
{
    static const char *const shells[] = { "sh", "bash", "dash", "zsh", "ksh", "mksh",
                                           "ash", "busybox", "fish", "csh", "tcsh", "yash" };
    for (size_t i = 0; i < sizeof(shells) / sizeof(shells[0]); i++)
        if (strcmp(base_name(path), shells[i]) == 0)
            return 1;
    return 0;
}

/* The program that runs a "#!" script, in interp: 1 script, 0 not a
 * script, -1 error (reported). "#!/usr/bin/env NAME" means NAME in PATH;
 * env's options and VAR=value words come before NAME. */
static int script_interpreter(const char *path, char *line, size_t line_size, char *interp,
                              size_t size)
{
    char head[512];
    struct stat st;
    ssize_t n = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block */
    if (fd < 0)
        return 0; /* elf_open reports why */
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
        n = pread(fd, head, sizeof(head) - 1, 0);
    close(fd);
    if (n < 2 || head[0] != '#' || head[1] != '!')
        return 0;
    head[n] = '\0';
    head[strcspn(head, "\r\n")] = '\0';
    snprintf(line, line_size, "%s", head);
    char *word = head + 2 + strspn(head + 2, " \t");
    char *rest = word + strcspn(word, " \t");
    if (*rest)
        *rest++ = '\0';
    if (strcmp(base_name(word), "env") == 0) {
        do {
            rest += strspn(rest, " \t");
            word = rest;
            rest = word + strcspn(word, " \t");
            if (*rest)
                *rest++ = '\0';
        } while (*word && (word[0] == '-' || strchr(word, '=')));
    }
    if (!*word) {
        tool_error("doctor: %s: '%s' names no interpreter", path, line);
        return -1;
    }
    if (find_program(word, interp, size) != 0) {
        tool_error("doctor: %s: interpreter '%s' not found", path, word);
        return -1;
    }
    return 1;
}

/* -- the dependency tree ------------------------------------------------ */

struct object {          /* the root (program or module) or a library */
    char *name;          /* as DT_NEEDED spells it; the root: its path */
    char *path;          /* the file found; NULL when none was */
    char *origin;        /* what $ORIGIN stands for in its search paths */
    char *rpath;         /* DT_RPATH, kept only without DT_RUNPATH: ld.so ignores it then */
    char *runpath;       /* DT_RUNPATH */
    struct strlist needed;
    size_t parent;       /* the object that needed it first; the root: 0 */
    int builtin;         /* provided by musl's loader itself */
    dev_t dev;
    ino_t ino;
};

struct tree {
    struct object *obj;
    size_t n, cap;
    int bits;              /* a library must match the root's class and machine */
    unsigned machine;
    int musl;              /* musl's search rules rather than glibc's */
    const char *interp;
    struct strlist sysdirs; /* the configured and default directories */
    int truncated;
};

struct found {
    char path[PATH_MAX];
    struct elf_file ef;
};

static void tree_free(struct tree *t)
{
    for (size_t i = 0; i < t->n; i++) {
        struct object *o = &t->obj[i];
        free(o->name);
        free(o->path);
        free(o->origin);
        free(o->rpath);
        free(o->runpath);
        strlist_free(&o->needed);
    }
    free(t->obj);
    strlist_free(&t->sysdirs);
    memset(t, 0, sizeof(*t));
}

/* Opens path if it is an ELF file for the root's class and machine: like
 * ld.so, a search skips a library built for another one and looks on. */
static int try_candidate(const struct tree *t, const char *path, struct found *f)
{
    char why[256];
    if (strlen(path) >= sizeof(f->path) || elf_open(&f->ef, path, why, sizeof(why)) != ELF_OK)
        return 0;
    if (f->ef.bits != t->bits || f->ef.machine != t->machine) {
        elf_close(&f->ef);
        return 0;
    }
    snprintf(f->path, sizeof(f->path), "%s", path);
    return 1;
}

/* One search-path entry with $ORIGIN or ${ORIGIN} replaced; 0 when it
 * uses a token we cannot know ($LIB, $PLATFORM) or does not fit. */
static int expand_entry(const char *entry, size_t len, const char *origin, char *out, size_t size)
{
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t tok = 0;
        if (entry[i] == '$' && len - i >= 7 && strncmp(entry + i, "$ORIGIN", 7) == 0)
            tok = 7;
        else if (entry[i] == '$' && len - i >= 9 && strncmp(entry + i, "${ORIGIN}", 9) == 0)
            tok = 9;
        else if (entry[i] == '$')
            return 0;
        if (tok && (!origin || o + strlen(origin) >= size))
            return 0;
        if (tok) {
            memcpy(out + o, origin, strlen(origin));
            o += strlen(origin);
            i += tok;
            continue;
        }
        if (o + 1 >= size)
            return 0;
        out[o++] = entry[i++];
    }
    if (o == 0)
        out[o++] = '.'; /* an empty entry is the current directory */
    out[o] = '\0';
    return 1;
}

static int search_list(const struct tree *t, const char *list, const char *origin, const char *name,
                       struct found *f)
{
    if (!list)
        return 0;
    for (const char *p = list;; p += strcspn(p, ":;") + 1) {
        size_t len = strcspn(p, ":;");
        char dir[PATH_MAX], file[PATH_MAX];
        if (expand_entry(p, len, origin, dir, sizeof(dir)) &&
            join(file, sizeof(file), dir, name) == 0 && try_candidate(t, file, f))
            return 1;
        if (p[len] == '\0')
            return 0;
    }
}

/* Names musl's loader answers with itself (the "reserved" names of its
 * ldso/dynlink.c): libc, libpthread, librt, libm, libdl, libutil, libxnet. */
static int musl_builtin(const char *name)
{
    static const char *const reserved[] = { "c", "pthread", "rt", "m", "dl", "util", "xnet" };
    if (!starts_with(name, "lib"))
        return 0;
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
        size_t n = strlen(reserved[i]);
        if (strncmp(name + 3, reserved[i], n) == 0 && name[3 + n] == '.')
            return 1;
    }
    return 0;
}

/* The DT_RPATH (glibc) or search path (musl) of `from` and of each object
 * above it, up to the root: both loaders walk that chain. */
static int search_chain(const struct tree *t, size_t from, const char *name, struct found *f)
{
    for (size_t i = from;; i = t->obj[i].parent) {
        const struct object *o = &t->obj[i];
        const char *list = t->musl && o->runpath ? o->runpath : o->rpath;
        if (search_list(t, list, o->origin, name, f))
            return 1;
        if (i == 0)
            return 0;
    }
}

/* Where the loader would find name, needed by object `from`: 1 found (f
 * is open), 2 musl's loader itself, 0 not found. glibc: DT_RPATH chain
 * (unless `from` has DT_RUNPATH), LD_LIBRARY_PATH, DT_RUNPATH, system
 * directories. musl: LD_LIBRARY_PATH, the chain, system directories. */
static int search(const struct tree *t, size_t from, const char *name, struct found *f)
{
    const char *llp = getenv("LD_LIBRARY_PATH");
    const struct object *o = &t->obj[from];
    if (strchr(name, '/'))
        return try_candidate(t, name, f);
    if (t->musl && musl_builtin(name))
        return 2;
    if (!t->musl && !o->runpath && search_chain(t, from, name, f))
        return 1;
    if (search_list(t, llp, t->obj[0].origin, name, f))
        return 1;
    if (t->musl ? search_chain(t, from, name, f) : search_list(t, o->runpath, o->origin, name, f))
        return 1;
    for (size_t i = 0; i < t->sysdirs.n; i++) {
        char file[PATH_MAX];
        if (join(file, sizeof(file), t->sysdirs.v[i], name) == 0 && try_candidate(t, file, f))
            return 1;
    }
    return 0;
}

/* Copies what the search needs from an object's dynamic section. */
static int object_fill(struct object *o, const struct elf_file *ef, const char *path)
{
    char origin[PATH_MAX];
    const char *rpath = NULL, *runpath = NULL;
    int64_t tag;
    uint64_t val;
    struct stat st;
    dir_of(path, origin, sizeof(origin));
    if (!(o->path = strdup(path)) || !(o->origin = strdup(origin)))
        return -1;
    if (stat(path, &st) == 0) {
        o->dev = st.st_dev;
        o->ino = st.st_ino;
    }
    for (size_t i = 0; elf_dynamic(ef, i, &tag, &val) == 0; i++) {
        const char *s = elf_dynstr(ef, val); /* elf_open checked these tags' strings */
        if (tag == DT_NEEDED && strlist_add(&o->needed, s) != 0)
            return -1;
        if (tag == DT_RPATH && !rpath)
            rpath = s;
        if (tag == DT_RUNPATH && !runpath)
            runpath = s;
    }
    if (runpath && !(o->runpath = strdup(runpath)))
        return -1;
    if (rpath && !runpath && !(o->rpath = strdup(rpath)))
        return -1;
    return 0;
}

/* The object already loaded from the same file (ld.so compares device and
 * inode, so a library reached under two names is loaded once). */
static int same_file(const struct tree *t, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return 0;
    for (size_t i = 0; i < t->n; i++)
        if (t->obj[i].path && t->obj[i].dev == st.st_dev && t->obj[i].ino == st.st_ino)
            return 1;
    return 0;
}

/* Appends an object; f (may be NULL) is the file it was found in. */
static int tree_add(struct tree *t, const char *name, const struct found *f, size_t parent,
                    int builtin)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 32;
        struct object *v = realloc(t->obj, cap * sizeof(*v));
        if (!v)
            return -1;
        t->obj = v;
        t->cap = cap;
    }
    int duplicate = f && same_file(t, f->path);
    struct object *o = &t->obj[t->n++];
    memset(o, 0, sizeof(*o));
    o->parent = parent;
    o->builtin = builtin;
    if (!(o->name = strdup(name)))
        return -1;
    if (duplicate)
        return (o->path = strdup(f->path)) ? 0 : -1;
    return f ? object_fill(o, &f->ef, f->path) : 0;
}

static int tree_has(const struct tree *t, const char *name)
{
    for (size_t i = 1; i < t->n; i++)
        if (strcmp(t->obj[i].name, name) == 0)
            return 1;
    return 0;
}

/* Breadth-first over DT_NEEDED, each name once, as the loader does. */
static int tree_grow(struct tree *t)
{
    for (size_t i = 0; i < t->n; i++) {
        for (size_t k = 0; k < t->obj[i].needed.n; k++) {
            const char *name = t->obj[i].needed.v[k];
            struct found f;
            if (tree_has(t, name))
                continue;
            if (t->n >= MAX_OBJECTS) {
                t->truncated = 1;
                return 0;
            }
            int where = search(t, i, name, &f);
            int rc = tree_add(t, name, where == 1 ? &f : NULL, i, where == 2);
            if (where == 1)
                elf_close(&f.ef);
            if (rc != 0)
                return -1;
        }
    }
    return 0;
}

/* -- where the loader looks by default ------------------------------------ */

/* ld.so.conf syntax: a directory per line, "include GLOB..." (relative to
 * the including file's directory), "hwcap" lines, '#' comments. */
static int read_ld_so_conf(struct strlist *dirs, const char *file, int depth)
{
    FILE *f = depth < CONF_DEPTH ? fopen(file, "r") : NULL;
    char line[PATH_MAX], here[PATH_MAX];
    int rc = 0;
    if (!f)
        return 0;
    dir_of(file, here, sizeof(here));
    while (rc == 0 && fgets(line, sizeof(line), f)) {
        line[strcspn(line, "#\r\n")] = '\0';
        char *s = line + strspn(line, " \t");
        char *end = s + strlen(s);
        while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
            *--end = '\0';
        if (!*s || starts_with(s, "hwcap ") || starts_with(s, "hwcap\t"))
            continue;
        if (!starts_with(s, "include ") && !starts_with(s, "include\t")) {
            s[strcspn(s, "=")] = '\0'; /* old "dir=TYPE" lines */
            rc = strlist_add(dirs, s);
            continue;
        }
        char *save;
        for (char *pat = strtok_r(s + 8, " \t", &save); pat && rc == 0;
             pat = strtok_r(NULL, " \t", &save)) {
            char full[PATH_MAX];
            glob_t g;
            if (pat[0] != '/' && join(full, sizeof(full), here, pat) != 0)
                continue;
            if (glob(pat[0] == '/' ? pat : full, 0, NULL, &g) != 0)
                continue;
            for (size_t i = 0; i < g.gl_pathc && rc == 0; i++)
                rc = read_ld_so_conf(dirs, g.gl_pathv[i], depth + 1);
            globfree(&g);
        }
    }
    fclose(f);
    return rc;
}

/* Debian's multiarch directory name for a class and machine. */
static const char *multiarch(int bits, unsigned machine)
{
    switch (machine) {
    case EM_X86_64: return bits == 64 ? "x86_64-linux-gnu" : "x86_64-linux-gnux32";
    case EM_386: return "i386-linux-gnu";
    case EM_AARCH64: return "aarch64-linux-gnu";
    case EM_ARM: return "arm-linux-gnueabihf";
    case EM_RISCV: return bits == 64 ? "riscv64-linux-gnu" : NULL;
    case EM_PPC64: return "powerpc64le-linux-gnu";
    default: return NULL;
    }
}

static int glibc_dirs(struct tree *t)
{
    static const char *const defaults[] = { "/lib", "/usr/lib", "/lib64", "/usr/lib64",
                                             "/lib32", "/usr/lib32" };
    const char *triplet = multiarch(t->bits, t->machine);
    char dir[PATH_MAX];
    int rc = read_ld_so_conf(&t->sysdirs, "/etc/ld.so.conf", 0);
    for (size_t i = 0; rc == 0 && i < sizeof(defaults) / sizeof(defaults[0]); i++)
        rc = strlist_add(&t->sysdirs, defaults[i]);
    if (rc == 0 && triplet && snprintf(dir, sizeof(dir), "/lib/%s", triplet) > 0)
        rc = strlist_add(&t->sysdirs, dir);
    if (rc == 0 && triplet && snprintf(dir, sizeof(dir), "/usr/lib/%s", triplet) > 0)
        rc = strlist_add(&t->sysdirs, dir);
    return rc;
}

/* musl reads PREFIX/etc/ld-musl-ARCH.path (PREFIX: the loader's path
 * above its directory), entries split by ':' or newlines; without it,
 * /lib:/usr/local/lib:/usr/lib. */
static int musl_dirs(struct tree *t)
{
    const char *name = base_name(t->interp), *arch = name + strlen("ld-musl-");
    const char *z = t->interp;
    for (const char *s = t->interp, *last = t->interp; *s; s++)
        if (*s == '/') {
            z = last;
            last = s;
        }
    char file[PATH_MAX], text[4096];
    snprintf(file, sizeof(file), "%.*s/etc/ld-musl-%.*s.path", (int)(z - t->interp), t->interp,
             (int)strcspn(arch, "."), arch);
    FILE *f = fopen(file, "r");
    size_t n = f ? fread(text, 1, sizeof(text) - 1, f) : 0;
    if (f)
        fclose(f);
    text[n] = '\0';
    if (!f)
        snprintf(text, sizeof(text), "/lib:/usr/local/lib:/usr/lib");
    char *save;
    for (char *d = strtok_r(text, ":\n", &save); d; d = strtok_r(NULL, ":\n", &save))
        if (strlist_add(&t->sysdirs, d) != 0)
            return -1;
    return 0;
}

/* A tree rooted at the file ef (the program, or a module it loads). */
static int tree_build(struct tree *t, const struct elf_file *ef, const char *path,
                      const char *interp)
{
    struct found root;
    memset(t, 0, sizeof(*t));
    t->bits = ef->bits;
    t->machine = ef->machine;
    t->interp = interp;
    t->musl = interp && starts_with(base_name(interp), "ld-musl-");
    if ((t->musl ? musl_dirs(t) : glibc_dirs(t)) != 0)
        return -1;
    snprintf(root.path, sizeof(root.path), "%s", path);
    root.ef = *ef;
    if (tree_add(t, path, &root, 0, 0) != 0)
        return -1;
    return tree_grow(t);
}

/* -- what the tree holds ------------------------------------------------ */

enum libc { LIBC_UNKNOWN, LIBC_GLIBC, LIBC_MUSL };
enum tls_kind { TLS_NONE, TLS_BUILTIN, TLS_DYNAMIC, TLS_NSS };

struct tls {
    enum tls_kind kind;
    const char *library;       /* "OpenSSL", "GnuTLS", "NSS", "BoringSSL" */
    const char *symbol;        /* TLS_BUILTIN: the function it defines */
    const struct object *lib;  /* TLS_DYNAMIC, TLS_NSS: the library */
    const struct object *also; /* TLS_DYNAMIC: a second covered library */
    const struct object *nss;  /* TLS_DYNAMIC: NSS linked beside it */
};

static const char *tls_family(const char *soname)
{
    if (starts_with(soname, "libssl.so"))
        return "OpenSSL";
    if (starts_with(soname, "libgnutls.so"))
        return "GnuTLS";
    if (starts_with(soname, "libnss3.so") || starts_with(soname, "libssl3.so"))
        return "NSS";
    return NULL;
}

/* The first object (breadth-first, so the nearest) whose name starts
 * with prefix. */
static const struct object *tree_find(const struct tree *t, const char *prefix)
{
    for (size_t i = 1; i < t->n; i++)
        if (starts_with(base_name(t->obj[i].name), prefix))
            return &t->obj[i];
    return NULL;
}

/* A TLS library compiled into the file itself: the program's calls go
 * straight to its own copy, which no preloaded library can replace. */
static void builtin_tls(const struct elf_file *ef, struct tls *v)
{
    static const struct {
        const char *symbol, *library;
    } marks[] = {
        { "SSL_write", "OpenSSL" }, { "SSL_read", "OpenSSL" },
        { "SSL_write_ex", "OpenSSL" }, { "gnutls_record_send", "GnuTLS" },
    };
    for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++) {
        if (!elf_defines(ef, marks[i].symbol))
            continue;
        v->kind = TLS_BUILTIN;
        v->symbol = marks[i].symbol;
        v->library = marks[i].library;
        if (strcmp(v->library, "OpenSSL") == 0 && elf_defines(ef, "CRYPTO_BUFFER_new"))
            v->library = "BoringSSL"; /* a BoringSSL-only type */
        return;
    }
}

static void classify_tls(const struct elf_file *ef, const struct tree *t, struct tls *v)
{
    memset(v, 0, sizeof(*v));
    builtin_tls(ef, v);
    if (v->kind == TLS_BUILTIN)
        return;
    for (size_t i = 1; i < t->n; i++) {
        const struct object *o = &t->obj[i];
        const char *family = tls_family(base_name(o->name));
        if (!family)
            continue;
        if (strcmp(family, "NSS") == 0) {
            if (!v->nss)
                v->nss = o;
        } else if (!v->lib) {
            v->lib = o;
            v->library = family;
        } else if (!v->also && strcmp(family, v->library) != 0) {
            v->also = o;
        }
        v->kind = v->lib ? TLS_DYNAMIC : TLS_NSS;
    }
    if (v->kind == TLS_NSS) {
        v->lib = v->nss;
        v->library = "NSS";
        v->nss = NULL;
    }
}

static enum libc libc_of(const char *interp, const struct tree *t)
{
    const char *b = interp ? base_name(interp) : "";
    if (starts_with(b, "ld-musl-") || tree_find(t, "libc.musl-"))
        return LIBC_MUSL;
    if (starts_with(b, "ld-linux") || tree_find(t, "libc.so.6"))
        return LIBC_GLIBC;
    return LIBC_UNKNOWN;
}

/* Why the file is a Go program, or NULL. Go's runtime makes system calls
 * itself, so nothing it sends passes through libc. */
static const char *go_marker(const struct elf_file *ef)
{
    static const char magic[] = "\xff Go buildinf:";
    if (elf_has_section(ef, ".note.go.buildid"))
        return "a .note.go.buildid section";
    if (elf_has_section(ef, ".go.buildinfo"))
        return "a .go.buildinfo section";
    if (elf_has_note(ef, "Go", 4)) /* NT_GO_BUILDID */
        return "a Go build ID note";
    if (ef->shnum > 0)
        return NULL; /* with sections, a Go binary always has one of the above */
    /* Stripped of its section headers: the build information block, which
     * Go aligns to 16 bytes and follows with the pointer size. */
    size_t len = sizeof(magic) - 1;
    for (const unsigned char *p = ef->data, *end = ef->data + ef->size;
         (p = memmem(p, (size_t)(end - p), magic, len)) != NULL; p++)
        if ((size_t)(p - ef->data) % 16 == 0 && (size_t)(end - p) > len &&
            (p[len] == 4 || p[len] == 8))
            return "Go build information";
    return NULL;
}

/* -- Python --------------------------------------------------------------- */

/* "3.11" from "python3.11" or "libpython3.11.so.1.0"; "" when absent. */
static void python_version(const char *s, char *out, size_t size)
{
    const char *v = strstr(s, "python");
    size_t n = v ? strspn(v + 6, "0123456789.") : 0;
    while (n > 0 && v[6 + n - 1] == '.')
        n--;
    if (n == 0 || !memchr(v + 6, '.', n) || n >= size)
        n = 0;
    snprintf(out, size, "%.*s", (int)n, v ? v + 6 : "");
}

/* Python's _ssl extension module: lib-dynload beside the interpreter's
 * prefix (Debian's /usr, pyenv's version directory), beside libpython,
 * then the usual system places. */
static int find_ssl_module(const struct tree *t, const char *real, char *out, size_t size)
{
    char ver[32], exedir[PATH_MAX], libdir[PATH_MAX] = "", pattern[PATH_MAX * 2];
    const struct object *libpython = tree_find(t, "libpython");
    python_version(base_name(real), ver, sizeof(ver));
    if (!*ver && libpython)
        python_version(libpython->name, ver, sizeof(ver));
    if (!*ver)
        snprintf(ver, sizeof(ver), "3*");
    dir_of(real, exedir, sizeof(exedir));
    if (libpython && libpython->path)
        dir_of(libpython->path, libdir, sizeof(libdir));
    const char *roots[] = { exedir, libdir, "/usr/lib", "/usr/lib64", "/usr/local/lib" };
    for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++) {
        glob_t g;
        if (!*roots[i])
            continue;
        snprintf(pattern, sizeof(pattern), "%s%s/python%s/lib-dynload/_ssl*.so", roots[i],
                 i == 0 ? "/../lib" : "", ver);
        if (glob(pattern, 0, NULL, &g) != 0)
            continue;
        for (size_t k = 0; k < g.gl_pathc; k++) {
            struct found f;
            if (!try_candidate(t, g.gl_pathv[k], &f))
                continue;
            char real_module[PATH_MAX];
            elf_close(&f.ef);
            snprintf(out, size, "%s", realpath(g.gl_pathv[k], real_module) ? real_module
                                                                           : g.gl_pathv[k]);
            globfree(&g);
            return 0;
        }
        globfree(&g);
    }
    return -1;
}

/* Where o was found, for the reader: an absolute path with "." and
 * "dir/.." taken out lexically ($ORIGIN/../lib), as ldd shows it. */
static const char *found_at(const struct object *o, char *out, size_t size)
{
    size_t n = 0;
    if (!o->path)
        return "not found on this system";
    if (o->path[0] != '/' || size < 2)
        return o->path;
    out[0] = '\0';
    for (const char *p = o->path;;) {
        p += strspn(p, "/");
        if (!*p)
            break;
        size_t len = strcspn(p, "/");
        if (len == 2 && p[0] == '.' && p[1] == '.') {
            char *slash = strrchr(out, '/');
            n = slash ? (size_t)(slash - out) : 0;
            out[n] = '\0';
        } else if (!(len == 1 && p[0] == '.') && n + 1 + len < size) {
            out[n++] = '/';
            memcpy(out + n, p, len);
            out[n += len] = '\0';
        }
        p += len;
    }
    return n ? out : "/";
}

static void print_lib(const char *library, const struct object *o, const char *how)
{
    char buf[PATH_MAX];
    printf("%s %s, %s", library, base_name(o->name), how);
    printf(o->path ? ": %s" : "; %s", found_at(o, buf, sizeof(buf)));
}

/* What python's _ssl module (module, open as ef) links, as the HTTPS
 * line: 1 covered, 0 not, -1 error. */
static int print_ssl_module(const struct elf_file *ef, const char *module, const char *interp)
{
    char buf[PATH_MAX];
    struct tree mt;
    struct tls v;
    int covered = 0;
    if (tree_build(&mt, ef, module, interp) != 0) {
        tree_free(&mt);
        tool_error("doctor: out of memory");
        return -1;
    }
    classify_tls(ef, &mt, &v);
    if (v.kind == TLS_BUILTIN) {
        printf("HTTPS: not covered: %s is built into python's _ssl module %s (it defines %s); "
               "retrysafe cannot see the plaintext. %s\n", v.library, module, v.symbol,
               next_step_proxy);
    } else if (v.kind == TLS_DYNAMIC) {
        printf("HTTPS: covered (%s %s via python's _ssl module, loaded at run time with dlopen "
               "RTLD_LOCAL: %s, needed by %s)\n", v.library, base_name(v.lib->name),
               found_at(v.lib, buf, sizeof(buf)), module);
        covered = 1;
    } else {
        printf("HTTPS: not covered: python's _ssl module %s links no OpenSSL or GnuTLS\n", module);
    }
    tree_free(&mt);
    return covered;
}

/* A Python interpreter links no TLS library: its _ssl module does, and
 * Python loads that module with dlopen. 1 covered, 0 not, -1 error. */
static int python_https(const struct tree *t, const char *real)
{
    char module[PATH_MAX], why[256];
    struct elf_file ef;
    if (find_ssl_module(t, real, module, sizeof(module)) != 0) {
        printf("HTTPS: not covered: a Python interpreter, but its _ssl module was not found, "
               "so it cannot make HTTPS requests with the ssl module\n");
        return 0;
    }
    if (elf_open(&ef, module, why, sizeof(why)) != ELF_OK) {
        printf("HTTPS: not covered: python's _ssl module %s: %s\n", module, why);
        return 0;
    }
    int covered = print_ssl_module(&ef, module, t->interp);
    elf_close(&ef);
    return covered;
}

/* -- the report ----------------------------------------------------------- */

struct doctor {
    const char *shown;        /* the path as given or found in PATH */
    char real[PATH_MAX];      /* symlinks followed */
    struct elf_file ef;
    const char *go;           /* why it is Go, or NULL */
    int is_static;
    enum libc libc;
    struct tree tree;
};

static const char *machine_name(unsigned machine)
{
    switch (machine) {
    case EM_X86_64: return "x86-64";
    case EM_386: return "i386";
    case EM_AARCH64: return "AArch64";
    case EM_ARM: return "ARM";
    case EM_RISCV: return "RISC-V";
    case EM_PPC64: return "PowerPC64";
    default: return "another machine";
    }
}

static void print_program(const struct doctor *d)
{
    static const char *const libc_names[] = { "unknown C library", "glibc", "musl" };
    struct stat st;
    /* The name the user knows, and the file it leads to when that differs
     * (python3 -> python3.11); a plain relative path is just made absolute. */
    if (lstat(d->shown, &st) == 0 && S_ISLNK(st.st_mode))
        printf("program: %s -> %s", d->shown, d->real);
    else
        printf("program: %s", d->real);
    printf(" (ELF %d-bit, %s", d->ef.bits,
           d->is_static ? "statically linked" : "dynamically linked");
    if (!d->is_static)
        printf(", %s, interpreter %s", libc_names[d->libc], d->ef.interp);
    printf("%s)\n", d->go ? ", Go" : "");
}

/* 1 when the shim can be loaded and see libc's socket calls. */
static int print_plain(const struct doctor *d)
{
    if (d->go) {
        printf("plain HTTP: not covered: a Go program (%s); Go makes raw system calls, "
               "not libc calls. %s\n", d->go, next_step_forward);
        return 0;
    }
    if (d->is_static) {
        printf("plain HTTP: not covered: statically linked, so there are no libc calls to hook. "
               "Next step: use a dynamically linked build, or point it at a local forwarding "
               "proxy that runs under retrysafe.\n");
        return 0;
    }
    if (d->libc == LIBC_UNKNOWN) {
        printf("plain HTTP: not covered: unknown C library (interpreter %s); the shim hooks "
               "glibc and musl\n", d->ef.interp);
        return 0;
    }
    printf("plain HTTP: covered (send/write through libc)\n");
    return 1;
}

/* 1 covered, 0 not, -1 error (reported). */
static int print_https(const struct doctor *d, int plain)
{
    char buf[PATH_MAX];
    struct tls v;
    if (d->go) {
        printf("HTTPS: not covered: a Go program; its TLS is Go's own crypto/tls. "
               "Next step: as for plain HTTP.\n");
        return 0;
    }
    if (d->is_static) {
        printf("HTTPS: not covered: statically linked; any TLS library is inside the "
               "executable. Next step: as for plain HTTP.\n");
        return 0;
    }
    if (!plain) {
        printf("HTTPS: not covered: the shim cannot be loaded into it (as above)\n");
        return 0;
    }
    classify_tls(&d->ef, &d->tree, &v);
    switch (v.kind) {
    case TLS_BUILTIN:
        printf("HTTPS: not covered: %s is built into the executable (it defines %s); retrysafe "
               "cannot see the plaintext. %s\n", v.library, v.symbol, next_step_proxy);
        return 0;
    case TLS_NSS:
        printf("HTTPS: not covered: ");
        print_lib("NSS", v.lib, "linked dynamically");
        printf("; NSS is not interposed, so retrysafe cannot see the plaintext. Next step: use "
               "a build linked with OpenSSL or GnuTLS, or send HTTPS through a local "
               "TLS-terminating proxy.\n");
        return 0;
    case TLS_DYNAMIC:
        if (v.nss) {
            printf("HTTPS: partly covered: connections through %s %s (%s) are covered, "
                   "connections through NSS %s are not (NSS is not interposed)\n", v.library,
                   base_name(v.lib->name), found_at(v.lib, buf, sizeof(buf)),
                   base_name(v.nss->name));
            return 0;
        }
        printf("HTTPS: covered (");
        print_lib(v.library, v.lib, "linked dynamically");
        if (v.also)
            printf("; also %s %s", strcmp(v.library, "OpenSSL") == 0 ? "GnuTLS" : "OpenSSL",
                   base_name(v.also->name));
        printf(")\n");
        return 1;
    case TLS_NONE:
        break;
    }
    if (starts_with(base_name(d->real), "python") || starts_with(base_name(d->shown), "python") ||
        tree_find(&d->tree, "libpython"))
        return python_https(&d->tree, d->real);
    printf("HTTPS: not covered: no TLS library linked (covered only if it loads OpenSSL or "
           "GnuTLS at run time with dlopen)\n");
    return 0;
}

/* Facts that do not change the verdict but change what to do. */
static void print_notes(const struct doctor *d)
{
    struct elf_file self;
    char why[256], missing[1024] = "";
    const struct object *uring = tree_find(&d->tree, "liburing.so");
    if (!d->is_static && !d->go && d->libc == LIBC_MUSL)
        printf("note: a musl program: preload the shim's musl build "
               "(build/musl/libretrysafe.so)\n");
    if (elf_open(&self, "/proc/self/exe", why, sizeof(why)) == ELF_OK) {
        if (self.bits != d->ef.bits || self.machine != d->ef.machine)
            printf("note: a %d-bit %s program, and this retrysafe is %d-bit %s: preload a shim "
                   "built for %d-bit %s\n", d->ef.bits, machine_name(d->ef.machine), self.bits,
                   machine_name(self.machine), d->ef.bits, machine_name(d->ef.machine));
        elf_close(&self);
    }
    if (uring && !d->go)
        printf("note: it links %s: writes it submits through io_uring bypass the shim\n",
               base_name(uring->name));
    for (size_t i = 1; i < d->tree.n; i++) {
        const struct object *o = &d->tree.obj[i];
        size_t len = strlen(missing);
        if (!o->path && !o->builtin)
            snprintf(missing + len, sizeof(missing) - len, "%s%s", len ? ", " : "", o->name);
    }
    if (*missing)
        printf("note: not found where the loader looks (LD_LIBRARY_PATH, run paths, "
               "ld.so.conf, system directories): %s\n", missing);
    if (d->tree.truncated)
        printf("note: more than %d libraries; only the first were read\n", MAX_OBJECTS);
}

/* -- the command ---------------------------------------------------------- */

/* The next step for a shell script: pyenv puts shell scripts named like
 * the interpreters on PATH, and says which program one would run. */
static void script_hint(const char *script, char *out, size_t size)
{
    if (strstr(script, "/shims/"))
        snprintf(out, size, " (for a pyenv shim: retrysafe doctor \"$(pyenv which %s)\")",
                 base_name(script));
    else
        out[0] = '\0';
}

/* The program's ELF file, following "#!" interpreters: 0, or 2 reported. */
static int open_program(struct doctor *d, const char *name, char *shown, size_t size)
{
    char why[256], line[512], hint[PATH_MAX + 64];
    if (find_program(name, shown, size) != 0)
        return tool_error("doctor: %s: %s", name,
                          strchr(name, '/') ? "path too long" : "not found in PATH");
    for (int depth = 0;; depth++) {
        int script = script_interpreter(shown, line, sizeof(line), d->real, sizeof(d->real));
        if (script < 0)
            return 2;
        if (!script)
            break;
        if (is_shell(d->real)) {
            script_hint(shown, hint, sizeof(hint));
            return tool_error("doctor: %s is a shell script (%s); which program it starts is "
                              "decided when it runs. Next step: run doctor on that program%s",
                              shown, line, hint);
        }
        if (depth + 1 >= MAX_SCRIPTS)
            return tool_error("doctor: %s: too many nested #! interpreters", shown);
        printf("script: %s (%s)\n", shown, line);
        snprintf(shown, size, "%s", d->real);
    }
    if (!realpath(shown, d->real))
        return tool_error("doctor: %s: %s", shown, strerror(errno));
    enum elf_status rc = elf_open(&d->ef, d->real, why, sizeof(why));
    if (rc != ELF_OK)
        return tool_error("doctor: %s: %s", shown, why);
    return 0;
}

/* A shared library rather than a program: no interpreter, not marked as a
 * PIE, and a soname or libraries of its own. (A static PIE has PT_DYNAMIC
 * too, and DF_1_PIE, or at least neither a soname nor dependencies.) */
static int is_library(const struct elf_file *ef)
{
    int named = 0, pie = 0;
    int64_t tag;
    uint64_t val;
    if (ef->type != ET_DYN || ef->interp)
        return 0;
    for (size_t i = 0; elf_dynamic(ef, i, &tag, &val) == 0; i++) {
        named |= tag == DT_SONAME || tag == DT_NEEDED;
        pie |= tag == DT_FLAGS_1 && (val & DF_1_PIE);
    }
    return named && !pie;
}

/* Whether the ELF file is a program doctor can judge: 0, or 2 reported. */
static int check_kind(struct doctor *d)
{
    if (d->ef.type == ET_REL)
        return tool_error("doctor: %s: an ELF object file, not a program", d->shown);
    if (d->ef.type == ET_CORE)
        return tool_error("doctor: %s: an ELF core dump, not a program", d->shown);
    if (d->ef.type != ET_EXEC && d->ef.type != ET_DYN)
        return tool_error("doctor: %s: an ELF file of type %u, not a program", d->shown,
                          d->ef.type);
    if (is_library(&d->ef))
        return tool_error("doctor: %s: a shared library, not a program. Next step: run doctor "
                          "on the program that loads it", d->shown);
    d->is_static = !d->ef.interp;
    return 0;
}

int cmd_doctor(int argc, char **argv)
{
    static const char usage[] = "usage: retrysafe doctor PROGRAM";
    struct doctor d;
    char shown[PATH_MAX];
    int argi = 1, rc;
    memset(&d, 0, sizeof(d));
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        puts(usage);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "--") == 0)
        argi++;
    if (argc - argi != 1)
        return tool_error("doctor: %s", usage);
    d.shown = shown;
    if ((rc = open_program(&d, argv[argi], shown, sizeof(shown))) != 0)
        return rc;
    if ((rc = check_kind(&d)) == 0) {
        d.go = go_marker(&d.ef);
        if (!d.is_static && tree_build(&d.tree, &d.ef, d.real, d.ef.interp) != 0)
            rc = tool_error("doctor: out of memory");
    }
    if (rc == 0) {
        d.libc = libc_of(d.ef.interp, &d.tree);
        print_program(&d);
        int plain = print_plain(&d);
        int https = print_https(&d, plain);
        if (https >= 0)
            print_notes(&d);
        rc = https < 0 ? 2 : plain && https ? 0 : 1;
    }
    tree_free(&d.tree);
    elf_close(&d.ef);
    return rc;
}

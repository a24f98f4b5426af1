/* elf_inspect.c - read-only ELF inspection for `retrysafe doctor`.
 *
 * The file is mapped read-only and every table is validated once, in
 * elf_open, against the file's length; the accessors then only index into
 * ranges already known to be inside the mapping. Fields are assembled byte
 * by byte: the mapping promises no alignment, and the file's byte order is
 * not necessarily the host's. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "elf_inspect.h"

/* The parts of each header we use, whatever the class. */
struct phdr {
    uint32_t type;
    uint64_t offset, vaddr, filesz, align;
};

struct shdr {
    uint32_t name, type, link, info;
    uint64_t offset, size, entsize, align;
};

struct sym {
    uint32_t name;
    unsigned char info;
    uint16_t shndx;
};

static uint16_t rd16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (unsigned)p[1] << 8);
}

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const unsigned char *p)
{
    return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static enum elf_status fail(char *why, size_t whylen, enum elf_status rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static enum elf_status fail(char *why, size_t whylen, enum elf_status rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    return rc;
}

/* 1 when [off, off + len) lies inside the file, without overflow. */
static int in_file(const struct elf_file *ef, uint64_t off, uint64_t len)
{
    return off <= ef->size && len <= ef->size - off;
}

static uint64_t round_up(uint64_t n, uint64_t align)
{
    return align > 1 ? (n + align - 1) / align * align : n;
}

static size_t phdr_size(const struct elf_file *ef)
{
    return ef->bits == 64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);
}

static size_t shdr_size(const struct elf_file *ef)
{
    return ef->bits == 64 ? sizeof(Elf64_Shdr) : sizeof(Elf32_Shdr);
}

static size_t sym_size(const struct elf_file *ef)
{
    return ef->bits == 64 ? sizeof(Elf64_Sym) : sizeof(Elf32_Sym);
}

static size_t dyn_size(const struct elf_file *ef)
{
    return ef->bits == 64 ? sizeof(Elf64_Dyn) : sizeof(Elf32_Dyn);
}

static void get_phdr(const struct elf_file *ef, size_t i, struct phdr *ph)
{
    const unsigned char *p = ef->data + ef->phoff + i * phdr_size(ef);
    if (ef->bits == 64) {
        ph->type = rd32(p + offsetof(Elf64_Phdr, p_type));
        ph->offset = rd64(p + offsetof(Elf64_Phdr, p_offset));
        ph->vaddr = rd64(p + offsetof(Elf64_Phdr, p_vaddr));
        ph->filesz = rd64(p + offsetof(Elf64_Phdr, p_filesz));
        ph->align = rd64(p + offsetof(Elf64_Phdr, p_align));
    } else {
        ph->type = rd32(p + offsetof(Elf32_Phdr, p_type));
        ph->offset = rd32(p + offsetof(Elf32_Phdr, p_offset));
        ph->vaddr = rd32(p + offsetof(Elf32_Phdr, p_vaddr));
        ph->filesz = rd32(p + offsetof(Elf32_Phdr, p_filesz));
        ph->align = rd32(p + offsetof(Elf32_Phdr, p_align));
    }
}

/* Section i of a table at shoff; elf_open reads section 0 before the
 * table is fully known (extended numbering), hence the explicit offset. */
static void read_shdr(const struct elf_file *ef, uint64_t shoff, size_t i, struct shdr *sh)
{
    const unsigned char *p = ef->data + shoff + i * shdr_size(ef);
    if (ef->bits == 64) {
        sh->name = rd32(p + offsetof(Elf64_Shdr, sh_name));
        sh->type = rd32(p + offsetof(Elf64_Shdr, sh_type));
        sh->offset = rd64(p + offsetof(Elf64_Shdr, sh_offset));
        sh->size = rd64(p + offsetof(Elf64_Shdr, sh_size));
        sh->link = rd32(p + offsetof(Elf64_Shdr, sh_link));
        sh->info = rd32(p + offsetof(Elf64_Shdr, sh_info));
        sh->align = rd64(p + offsetof(Elf64_Shdr, sh_addralign));
        sh->entsize = rd64(p + offsetof(Elf64_Shdr, sh_entsize));
    } else {
        sh->name = rd32(p + offsetof(Elf32_Shdr, sh_name));
        sh->type = rd32(p + offsetof(Elf32_Shdr, sh_type));
        sh->offset = rd32(p + offsetof(Elf32_Shdr, sh_offset));
        sh->size = rd32(p + offsetof(Elf32_Shdr, sh_size));
        sh->link = rd32(p + offsetof(Elf32_Shdr, sh_link));
        sh->info = rd32(p + offsetof(Elf32_Shdr, sh_info));
        sh->align = rd32(p + offsetof(Elf32_Shdr, sh_addralign));
        sh->entsize = rd32(p + offsetof(Elf32_Shdr, sh_entsize));
    }
}

static void get_shdr(const struct elf_file *ef, size_t i, struct shdr *sh)
{
    read_shdr(ef, ef->shoff, i, sh);
}

static void get_sym(const struct elf_file *ef, uint64_t off, struct sym *s)
{
    const unsigned char *p = ef->data + off;
    if (ef->bits == 64) {
        s->name = rd32(p + offsetof(Elf64_Sym, st_name));
        s->info = p[offsetof(Elf64_Sym, st_info)];
        s->shndx = rd16(p + offsetof(Elf64_Sym, st_shndx));
    } else {
        s->name = rd32(p + offsetof(Elf32_Sym, st_name));
        s->info = p[offsetof(Elf32_Sym, st_info)];
        s->shndx = rd16(p + offsetof(Elf32_Sym, st_shndx));
    }
}

/* The string at off in a string table already known to be in the file,
 * or NULL when it starts or runs outside the table. */
static const char *str_at(const struct elf_file *ef, uint64_t tab_off, uint64_t tab_size,
                          uint64_t off)
{
    if (off >= tab_size)
        return NULL;
    const char *s = (const char *)ef->data + tab_off + off;
    return memchr(s, '\0', tab_size - off) ? s : NULL;
}

/* Where the bytes at virtual address vaddr are in the file, and how many
 * of them the PT_LOAD segment holding them has: dynamic entries give
 * addresses, not offsets. */
static int vaddr_span(const struct elf_file *ef, uint64_t vaddr, uint64_t *off, uint64_t *avail)
{
    for (size_t i = 0; i < ef->phnum; i++) {
        struct phdr ph;
        get_phdr(ef, i, &ph);
        if (ph.type != PT_LOAD || vaddr < ph.vaddr || vaddr - ph.vaddr >= ph.filesz)
            continue;
        *off = ph.offset + (vaddr - ph.vaddr);
        *avail = ph.filesz - (vaddr - ph.vaddr);
        return 0;
    }
    return -1;
}

static int vaddr_to_off(const struct elf_file *ef, uint64_t vaddr, uint64_t len, uint64_t *off)
{
    uint64_t avail;
    return vaddr_span(ef, vaddr, off, &avail) == 0 && len <= avail ? 0 : -1;
}

static enum elf_status parse_ident(struct elf_file *ef, char *why, size_t whylen)
{
    const unsigned char *id = ef->data;
    if (ef->size < EI_NIDENT || memcmp(id, ELFMAG, SELFMAG) != 0)
        return fail(why, whylen, ELF_ERR_NOT_ELF, "not an ELF file");
    if (id[EI_CLASS] == ELFCLASS64)
        ef->bits = 64;
    else if (id[EI_CLASS] == ELFCLASS32)
        ef->bits = 32;
    else
        return fail(why, whylen, ELF_ERR_UNSUPPORTED, "unknown ELF class %u", id[EI_CLASS]);
    if (id[EI_DATA] == ELFDATA2MSB)
        return fail(why, whylen, ELF_ERR_UNSUPPORTED,
                    "big-endian ELF file; only little-endian ELF is supported");
    if (id[EI_DATA] != ELFDATA2LSB)
        return fail(why, whylen, ELF_ERR_UNSUPPORTED, "unknown ELF byte order %u", id[EI_DATA]);
    if (id[EI_VERSION] != EV_CURRENT)
        return fail(why, whylen, ELF_ERR_UNSUPPORTED, "unknown ELF version %u", id[EI_VERSION]);
    return ELF_OK;
}

/* e_phnum, e_shnum and e_shstrndx overflow into section 0 when they do
 * not fit in 16 bits (extended numbering). */
static enum elf_status read_extended(struct elf_file *ef, unsigned shentsize, uint64_t *shnum,
                                     uint64_t *phnum, unsigned *shstrndx, char *why, size_t whylen)
{
    if (ef->shoff == 0 || (*shnum != 0 && *phnum != PN_XNUM && *shstrndx != SHN_XINDEX))
        return ELF_OK;
    if (shentsize != shdr_size(ef) || !in_file(ef, ef->shoff, shentsize))
        return fail(why, whylen, ELF_ERR_CORRUPT,
                    "truncated or corrupt ELF file: section header 0 is outside the file");
    struct shdr sh0;
    read_shdr(ef, ef->shoff, 0, &sh0);
    if (*shnum == 0)
        *shnum = sh0.size;
    if (*phnum == PN_XNUM)
        *phnum = sh0.info;
    if (*shstrndx == SHN_XINDEX)
        *shstrndx = sh0.link;
    return ELF_OK;
}

static enum elf_status parse_header(struct elf_file *ef, unsigned *shstrndx, char *why,
                                    size_t whylen)
{
    const unsigned char *h = ef->data;
    size_t ehsize = ef->bits == 64 ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr);
    if (ef->size < ehsize)
        return fail(why, whylen, ELF_ERR_CORRUPT,
                    "truncated ELF file: %zu bytes, shorter than its %zu-byte header",
                    ef->size, ehsize);
    unsigned phentsize, shentsize;
    uint64_t phnum, shnum;
    ef->type = rd16(h + offsetof(Elf64_Ehdr, e_type));       /* same place in both classes */
    ef->machine = rd16(h + offsetof(Elf64_Ehdr, e_machine));
    if (ef->bits == 64) {
        ef->phoff = rd64(h + offsetof(Elf64_Ehdr, e_phoff));
        ef->shoff = rd64(h + offsetof(Elf64_Ehdr, e_shoff));
        phentsize = rd16(h + offsetof(Elf64_Ehdr, e_phentsize));
        phnum = rd16(h + offsetof(Elf64_Ehdr, e_phnum));
        shentsize = rd16(h + offsetof(Elf64_Ehdr, e_shentsize));
        shnum = rd16(h + offsetof(Elf64_Ehdr, e_shnum));
        *shstrndx = rd16(h + offsetof(Elf64_Ehdr, e_shstrndx));
    } else {
        ef->phoff = rd32(h + offsetof(Elf32_Ehdr, e_phoff));
        ef->shoff = rd32(h + offsetof(Elf32_Ehdr, e_shoff));
        phentsize = rd16(h + offsetof(Elf32_Ehdr, e_phentsize));
        phnum = rd16(h + offsetof(Elf32_Ehdr, e_phnum));
        shentsize = rd16(h + offsetof(Elf32_Ehdr, e_shentsize));
        shnum = rd16(h + offsetof(Elf32_Ehdr, e_shnum));
        *shstrndx = rd16(h + offsetof(Elf32_Ehdr, e_shstrndx));
    }
    enum elf_status rc = read_extended(ef, shentsize, &shnum, &phnum, shstrndx, why, whylen);
    if (rc != ELF_OK)
        return rc;
    if (phnum > 0 && (phentsize != phdr_size(ef) || phnum > ef->size / phdr_size(ef) ||
                      !in_file(ef, ef->phoff, phnum * phdr_size(ef))))
        return fail(why, whylen, ELF_ERR_CORRUPT,
                    "truncated or corrupt ELF file: the program header table (offset %llu, %llu "
                    "entries) runs past the end of the file (%zu bytes)",
                    (unsigned long long)ef->phoff, (unsigned long long)phnum, ef->size);
    if (ef->shoff == 0)
        shnum = 0;
    if (shnum > 0 && (shentsize != shdr_size(ef) || shnum > ef->size / shdr_size(ef) ||
                      !in_file(ef, ef->shoff, shnum * shdr_size(ef))))
        return fail(why, whylen, ELF_ERR_CORRUPT,
                    "truncated or corrupt ELF file: the section header table (offset %llu, %llu "
                    "entries) runs past the end of the file (%zu bytes)",
                    (unsigned long long)ef->shoff, (unsigned long long)shnum, ef->size);
    ef->phnum = (size_t)phnum;
    ef->shnum = (size_t)shnum;
    return ELF_OK;
}

static enum elf_status parse_segments(struct elf_file *ef, char *why, size_t whylen)
{
    for (size_t i = 0; i < ef->phnum; i++) {
        struct phdr ph;
        get_phdr(ef, i, &ph);
        if (ph.filesz > 0 && !in_file(ef, ph.offset, ph.filesz))
            return fail(why, whylen, ELF_ERR_CORRUPT,
                        "truncated or corrupt ELF file: segment %zu (offset %llu, %llu bytes) "
                        "runs past the end of the file (%zu bytes)",
                        i, (unsigned long long)ph.offset, (unsigned long long)ph.filesz, ef->size);
        if (ph.type == PT_INTERP && !ef->interp) {
            const char *s = (const char *)ef->data + ph.offset;
            if (ph.filesz < 2 || !memchr(s, '\0', ph.filesz) || !*s)
                return fail(why, whylen, ELF_ERR_CORRUPT,
                            "corrupt ELF file: PT_INTERP is not a path");
            ef->interp = s;
        } else if (ph.type == PT_DYNAMIC && !ef->has_dynamic) {
            ef->has_dynamic = 1;
            ef->dyn_off = ph.offset;
            ef->dyn_count = (size_t)(ph.filesz / dyn_size(ef));
        }
    }
    return ELF_OK;
}

static enum elf_status parse_sections(struct elf_file *ef, unsigned shstrndx, char *why,
                                      size_t whylen)
{
    for (size_t i = 0; i < ef->shnum; i++) {
        struct shdr sh;
        get_shdr(ef, i, &sh);
        if (sh.type == SHT_NULL || sh.type == SHT_NOBITS || sh.size == 0)
            continue;
        if (!in_file(ef, sh.offset, sh.size))
            return fail(why, whylen, ELF_ERR_CORRUPT,
                        "truncated or corrupt ELF file: section %zu (offset %llu, %llu bytes) "
                        "runs past the end of the file (%zu bytes)",
                        i, (unsigned long long)sh.offset, (unsigned long long)sh.size, ef->size);
    }
    if (shstrndx != SHN_UNDEF && shstrndx < ef->shnum) {
        struct shdr sh;
        get_shdr(ef, shstrndx, &sh);
        if (sh.type == SHT_STRTAB) {
            ef->shstr_off = sh.offset;
            ef->shstr_size = sh.size;
        }
    }
    return ELF_OK;
}

/* The dynamic string table as the loader finds it (DT_STRTAB, DT_STRSZ),
 * else the one the SHT_DYNAMIC section links to. */
static void find_dynstr(struct elf_file *ef)
{
    uint64_t vaddr = 0, size = 0, off;
    int have_addr = 0;
    int64_t tag;
    uint64_t val;
    for (size_t i = 0; elf_dynamic(ef, i, &tag, &val) == 0; i++) {
        if (tag == DT_STRTAB) {
            vaddr = val;
            have_addr = 1;
        } else if (tag == DT_STRSZ) {
            size = val;
        }
    }
    if (have_addr && size > 0 && vaddr_to_off(ef, vaddr, size, &off) == 0) {
        ef->dynstr_off = off;
        ef->dynstr_size = size;
        return;
    }
    for (size_t i = 0; i < ef->shnum; i++) {
        struct shdr sh, str;
        get_shdr(ef, i, &sh);
        if (sh.type != SHT_DYNAMIC || sh.link >= ef->shnum)
            continue;
        get_shdr(ef, sh.link, &str);
        if (str.type == SHT_STRTAB) {
            ef->dynstr_off = str.offset;
            ef->dynstr_size = str.size;
        }
        return;
    }
}

/* Every dynamic entry that names a string must name one inside the table,
 * so callers can trust elf_dynstr on them. */
static enum elf_status parse_dynamic(struct elf_file *ef, char *why, size_t whylen)
{
    if (!ef->has_dynamic)
        return ELF_OK;
    find_dynstr(ef);
    int64_t tag;
    uint64_t val;
    for (size_t i = 0; elf_dynamic(ef, i, &tag, &val) == 0; i++) {
        if (tag != DT_NEEDED && tag != DT_SONAME && tag != DT_RPATH && tag != DT_RUNPATH)
            continue;
        if (!elf_dynstr(ef, val))
            return fail(why, whylen, ELF_ERR_CORRUPT,
                        "corrupt ELF file: dynamic entry %zu names a string outside the "
                        "dynamic string table", i);
    }
    return ELF_OK;
}

static enum elf_status parse(struct elf_file *ef, char *why, size_t whylen)
{
    unsigned shstrndx = 0;
    enum elf_status rc = parse_ident(ef, why, whylen);
    if (rc == ELF_OK)
        rc = parse_header(ef, &shstrndx, why, whylen);
    if (rc == ELF_OK)
        rc = parse_segments(ef, why, whylen);
    if (rc == ELF_OK)
        rc = parse_sections(ef, shstrndx, why, whylen);
    if (rc == ELF_OK)
        rc = parse_dynamic(ef, why, whylen);
    return rc;
}

enum elf_status elf_open(struct elf_file *ef, const char *path, char *why, size_t whylen)
{
    memset(ef, 0, sizeof(*ef));
    /* O_NONBLOCK: opening a FIFO must not wait for a writer. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return fail(why, whylen, ELF_ERR_IO, "%s", strerror(errno));
    struct stat st;
    enum elf_status rc = ELF_OK;
    void *map = MAP_FAILED;
    if (fstat(fd, &st) != 0)
        rc = fail(why, whylen, ELF_ERR_IO, "%s", strerror(errno));
    else if (S_ISDIR(st.st_mode))
        rc = fail(why, whylen, ELF_ERR_IO, "is a directory");
    else if (!S_ISREG(st.st_mode))
        rc = fail(why, whylen, ELF_ERR_IO, "not a regular file");
    else if (st.st_size < EI_NIDENT)
        rc = fail(why, whylen, ELF_ERR_NOT_ELF, "not an ELF file (%lld bytes)",
                  (long long)st.st_size);
    else if ((unsigned long long)st.st_size > SIZE_MAX)
        rc = fail(why, whylen, ELF_ERR_UNSUPPORTED, "too large to map");
    else if ((map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0)) == MAP_FAILED)
        rc = fail(why, whylen, ELF_ERR_IO, "%s", strerror(errno));
    close(fd);
    if (rc != ELF_OK)
        return rc;
    ef->data = map;
    ef->size = (size_t)st.st_size;
    rc = parse(ef, why, whylen);
    if (rc != ELF_OK)
        elf_close(ef);
    return rc;
}

void elf_close(struct elf_file *ef)
{
    if (ef->data)
        munmap((void *)ef->data, ef->size);
    memset(ef, 0, sizeof(*ef));
}

int elf_dynamic(const struct elf_file *ef, size_t i, int64_t *tag, uint64_t *val)
{
    if (i >= ef->dyn_count)
        return -1;
    const unsigned char *p = ef->data + ef->dyn_off + i * dyn_size(ef);
    if (ef->bits == 64) {
        *tag = (int64_t)rd64(p);
        *val = rd64(p + 8);
    } else {
        *tag = (int32_t)rd32(p);
        *val = rd32(p + 4);
    }
    return *tag == DT_NULL ? -1 : 0;
}

const char *elf_dynstr(const struct elf_file *ef, uint64_t off)
{
    return str_at(ef, ef->dynstr_off, ef->dynstr_size, off);
}

int elf_has_section(const struct elf_file *ef, const char *name)
{
    if (ef->shstr_size == 0)
        return 0;
    for (size_t i = 0; i < ef->shnum; i++) {
        struct shdr sh;
        get_shdr(ef, i, &sh);
        const char *s = str_at(ef, ef->shstr_off, ef->shstr_size, sh.name);
        if (s && strcmp(s, name) == 0)
            return 1;
    }
    return 0;
}

/* A note's owner name: the owner and then only NULs, since some writers
 * pad the name inside namesz (Go writes "Go\0\0" with namesz 4). */
static int name_is(const unsigned char *name, uint64_t namesz, const char *owner)
{
    size_t len = strlen(owner);
    if (namesz <= len || memcmp(name, owner, len) != 0)
        return 0;
    for (uint64_t i = len; i < namesz; i++)
        if (name[i] != '\0')
            return 0;
    return 1;
}

/* Notes are (namesz, descsz, type, name, desc), name and desc each padded
 * to the note alignment (4, or 8 for some 64-bit notes). */
static int notes_have(const struct elf_file *ef, uint64_t off, uint64_t size, uint64_t align,
                      const char *owner, uint32_t type)
{
    uint64_t pos = 0;
    align = align == 8 ? 8 : 4;
    while (size - pos >= 12) {
        const unsigned char *p = ef->data + off + pos;
        uint64_t namesz = rd32(p), descsz = rd32(p + 4);
        uint64_t desc_at = round_up(12 + namesz, align);
        uint64_t next = round_up(desc_at + descsz, align);
        if (12 + namesz > size - pos)
            return 0;
        if (rd32(p + 8) == type && name_is(p + 12, namesz, owner))
            return 1;
        if (next > size - pos)
            return 0;
        pos += next;
    }
    return 0;
}

int elf_has_note(const struct elf_file *ef, const char *owner, uint32_t type)
{
    for (size_t i = 0; i < ef->phnum; i++) {
        struct phdr ph;
        get_phdr(ef, i, &ph);
        if (ph.type == PT_NOTE && notes_have(ef, ph.offset, ph.filesz, ph.align, owner, type))
            return 1;
    }
    for (size_t i = 0; i < ef->shnum; i++) {
        struct shdr sh;
        get_shdr(ef, i, &sh);
        if (sh.type == SHT_NOTE && notes_have(ef, sh.offset, sh.size, sh.align, owner, type))
            return 1;
    }
    return 0;
}

/* 1 when one of count symbols at sym_off (in the file) defines name. */
static int scan_symbols(const struct elf_file *ef, uint64_t sym_off, uint64_t count,
                        uint64_t str_off, uint64_t str_size, const char *name)
{
    for (uint64_t i = 0; i < count; i++) {
        struct sym s;
        get_sym(ef, sym_off + i * sym_size(ef), &s);
        unsigned type = s.info & 0xf;
        if (s.shndx == SHN_UNDEF || type == STT_SECTION || type == STT_FILE)
            continue;
        const char *n = str_at(ef, str_off, str_size, s.name);
        if (n && strcmp(n, name) == 0)
            return 1;
    }
    return 0;
}

/* Searches SHT_SYMTAB and SHT_DYNSYM sections; *saw_dynsym says whether
 * the dynamic symbols were among them. */
static int sections_define(const struct elf_file *ef, const char *name, int *saw_dynsym)
{
    for (size_t i = 0; i < ef->shnum; i++) {
        struct shdr sh, str;
        get_shdr(ef, i, &sh);
        if (sh.type != SHT_SYMTAB && sh.type != SHT_DYNSYM)
            continue;
        if ((sh.entsize != 0 && sh.entsize != sym_size(ef)) || sh.link >= ef->shnum)
            continue;
        get_shdr(ef, sh.link, &str);
        if (str.type != SHT_STRTAB)
            continue;
        if (sh.type == SHT_DYNSYM)
            *saw_dynsym = 1;
        if (scan_symbols(ef, sh.offset, sh.size / sym_size(ef), str.offset, str.size, name))
            return 1;
    }
    return 0;
}

/* The number of dynamic symbols from a DT_GNU_HASH table: one past the
 * highest symbol index any hash chain reaches. */
static uint64_t gnu_hash_count(const struct elf_file *ef, uint64_t vaddr)
{
    uint64_t off, avail;
    if (vaddr_span(ef, vaddr, &off, &avail) != 0 || avail < 16)
        return 0;
    const unsigned char *h = ef->data + off;
    uint64_t nbuckets = rd32(h), symoffset = rd32(h + 4), bloom = rd32(h + 8);
    uint64_t buckets_at = 16 + bloom * (uint64_t)(ef->bits / 8);
    uint64_t chains_at = buckets_at + nbuckets * 4;
    if (chains_at > avail)
        return 0;
    uint64_t last = 0;
    for (uint64_t b = 0; b < nbuckets; b++) {
        uint64_t start = rd32(h + buckets_at + b * 4);
        if (start > last)
            last = start;
    }
    if (last < symoffset)
        return symoffset;
    /* Walk the last chain to its end (low bit set). */
    for (;;) {
        uint64_t at = chains_at + (last - symoffset) * 4;
        if (at + 4 > avail)
            return 0;
        if (rd32(h + at) & 1)
            return last + 1;
        last++;
    }
}

/* Without section headers: the dynamic symbol table PT_DYNAMIC points at,
 * sized by DT_HASH or DT_GNU_HASH (the only places its length is kept). */
static int dynamic_defines(const struct elf_file *ef, const char *name)
{
    uint64_t symtab = 0, hash = 0, gnu_hash = 0, syment = sym_size(ef), val, off, count = 0;
    int64_t tag;
    for (size_t i = 0; elf_dynamic(ef, i, &tag, &val) == 0; i++) {
        if (tag == DT_SYMTAB)
            symtab = val;
        else if (tag == DT_HASH)
            hash = val;
        else if (tag == DT_GNU_HASH)
            gnu_hash = val;
        else if (tag == DT_SYMENT)
            syment = val;
    }
    if (symtab == 0 || syment != sym_size(ef))
        return 0;
    if (hash != 0 && vaddr_to_off(ef, hash, 8, &off) == 0)
        count = rd32(ef->data + off + 4);
    else if (gnu_hash != 0)
        count = gnu_hash_count(ef, gnu_hash);
    if (count == 0 || count > ef->size / syment ||
        vaddr_to_off(ef, symtab, count * syment, &off) != 0)
        return 0;
    return scan_symbols(ef, off, count, ef->dynstr_off, ef->dynstr_size, name);
}

int elf_defines(const struct elf_file *ef, const char *symbol)
{
    int saw_dynsym = 0;
    if (sections_define(ef, symbol, &saw_dynsym))
        return 1;
    return !saw_dynsym && ef->has_dynamic && dynamic_defines(ef, symbol);
}

/* elf_inspect.h - read-only inspection of ELF files for `retrysafe doctor`.
 * Tool-only: the shim never reads ELF files. Every offset and size taken
 * from a file is checked against the file's length before it is used, so a
 * truncated or hostile file yields an error, never a crash. */
#ifndef RETRYSAFE_ELF_INSPECT_H
#define RETRYSAFE_ELF_INSPECT_H

#include <stddef.h>
#include <stdint.h>

enum elf_status {
    ELF_OK = 0,
    ELF_ERR_IO,          /* cannot open, stat or map (errno kept in why) */
    ELF_ERR_NOT_ELF,     /* no ELF magic: a script, text, another format */
    ELF_ERR_UNSUPPORTED, /* ELF, but a class or byte order we do not read */
    ELF_ERR_CORRUPT,     /* truncated, or offsets that point outside it */
};

/* An open file. The fields are read-only for callers; interp and the
 * strings elf_dynstr returns point into the mapping and live until
 * elf_close. */
struct elf_file {
    const unsigned char *data; /* the whole file, mapped read-only */
    size_t size;
    int bits;                  /* 32 or 64 */
    unsigned type;             /* e_type: ET_EXEC, ET_DYN, ... */
    unsigned machine;          /* e_machine: EM_X86_64, ... */
    const char *interp;        /* PT_INTERP, or NULL */
    int has_dynamic;           /* a PT_DYNAMIC segment */

    /* internal: validated tables, as file offsets and counts */
    uint64_t phoff, shoff;
    size_t phnum, shnum;
    uint64_t shstr_off, shstr_size;
    uint64_t dyn_off;
    size_t dyn_count;
    uint64_t dynstr_off, dynstr_size;
};

/* Maps path and validates its headers, segments, sections and dynamic
 * string table. On failure returns the status, writes a one-line reason
 * (without the path) to why, and leaves nothing to close. */
enum elf_status elf_open(struct elf_file *ef, const char *path, char *why, size_t whylen);
void elf_close(struct elf_file *ef);

/* The i-th entry of the dynamic section, up to DT_NULL: 0, or -1 past the
 * end. */
int elf_dynamic(const struct elf_file *ef, size_t i, int64_t *tag, uint64_t *val);

/* The NUL-terminated string at offset off of the dynamic string table, or
 * NULL when off or the string runs outside it. */
const char *elf_dynstr(const struct elf_file *ef, uint64_t off);

/* 1 when a section of that name exists. */
int elf_has_section(const struct elf_file *ef, const char *name);

/* 1 when a note of that owner and type is in a PT_NOTE segment or a
 * SHT_NOTE section. */
int elf_has_note(const struct elf_file *ef, const char *owner, uint32_t type);

/* 1 when the file itself defines symbol (not merely uses it), in its
 * dynamic symbol table (from the section headers, else from PT_DYNAMIC)
 * or in its full symbol table. */
int elf_defines(const struct elf_file *ef, const char *symbol);

#endif

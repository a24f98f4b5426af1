/* asan_glue.c - what the shim needs, built with make SANITIZE=address, to
 * be preloaded (after the ASan runtime) into programs that are not
 * instrumented. Empty in any other build. */
#if defined(__SANITIZE_ADDRESS__)
#include <stddef.h>
#include <stdint.h>

/* A preloaded ASan runtime starts at the process's first malloc(). In a
 * program that links p11-kit (curl, wget: through GnuTLS) that is inside
 * p11-kit's constructor, in newlocale(), which holds glibc's locale lock.
 * Starting, ASan looks up dlsym(RTLD_DEFAULT, "swift_demangle") and clears
 * the failure with dlerror(), whose gettext() read-locks the same lock,
 * fails to, and unlocks it anyway: the program's next setlocale() waits
 * forever. Found, the symbol leaves no failure to clear. ASan calls it to
 * demangle a symbol name; NULL means "not a Swift name" and it tries C++.
 * The name is ASan's, not ours: hence no module prefix. */
char *swift_demangle(const char *mangled, size_t length, char *out,
                     size_t *out_length, uint32_t flags);

__attribute__((visibility("default")))
char *swift_demangle(const char *mangled, size_t length, char *out,
                     size_t *out_length, uint32_t flags)
{
    (void)mangled;
    (void)length;
    (void)out;
    (void)out_length;
    (void)flags;
    return NULL;
}
#else
typedef int asan_glue_is_empty;   /* ISO C wants something in a file */
#endif

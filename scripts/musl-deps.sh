#!/bin/sh
# musl-deps.sh CACHE - SQLite, OpenSSL's libcrypto and hiredis for `make musl`.
#
# Debian ships none of them built for musl, so each is built here with
# musl-gcc from Debian's own source packages (apt-get source; needs deb-src
# lines in APT's sources, which .ci/run adds), as static position-independent
# archives for linking into libretrysafe.so with their symbols hidden.
# Everything lives under CACHE, outside the source tree. Each library is
# built once: its archive, installed after its headers, says it is complete,
# so a later run builds only what is missing (a cache made before a library
# was added here gets just that one). Nothing third-party is committed.
#
# Writes CACHE/prefix/{include,lib}: sqlite3.h, openssl/*.h, hiredis/*.h,
# libsqlite3.a, libcrypto.a, libhiredis.a.
set -eu

# Run from make, this inherits its command-line variables through MAKEFLAGS
# (make musl CFLAGS=-Werror): OpenSSL's and SQLite's own makes must not
# see them, or their CFLAGS (with the kernel headers below) are replaced.
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES CFLAGS CPPFLAGS LDFLAGS

cache=${1:?usage: musl-deps.sh CACHE}
prefix=$cache/prefix
src=$cache/src
jobs=$(nproc 2>/dev/null || echo 2)

say() { printf 'musl-deps: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

built() { [ -f "$prefix/lib/$1" ]; }

built libsqlite3.a && built libcrypto.a && built libhiredis.a && exit 0
command -v musl-gcc >/dev/null || die "musl-gcc not found (apt-get install musl-tools)"
command -v apt-get >/dev/null || die "apt-get not found: on Alpine, build with plain make"
command -v dpkg-source >/dev/null || die "dpkg-source not found (apt-get install dpkg-dev)"

# Unpacks Debian's source package $1 into $src/$1: the newest version the
# mirror serves in full (a security update's files may not be mirrored yet).
fetch() {
    pkg=$1
    [ -d "$src/$pkg" ] && return 0
    versions=$(apt-cache showsrc "$pkg" 2>/dev/null | awk '/^Version:/ { print $2 }' | sort -urV)
    [ -n "$versions" ] || die "no source package $pkg: add deb-src lines to APT's sources and apt-get update"
    mkdir -p "$src/dl-$pkg"
    for v in $versions; do
        if (cd "$src/dl-$pkg" && apt-get source -qq --download-only "$pkg=$v") >/dev/null 2>&1; then
            dsc=$(ls "$src/dl-$pkg"/"${pkg}"_*.dsc | head -n 1)
            # APT checked the files against the signed Sources index; the
            # .dsc's own signature needs a Debian keyring, not installed.
            dpkg-source --no-check -x "$dsc" "$src/$pkg" >/dev/null
            say "$pkg $v unpacked"
            return 0
        fi
        say "$pkg $v not fully on the mirror; trying an older version"
        rm -f "$src/dl-$pkg"/*
    done
    die "could not download any version of $pkg's source"
}

# install_archive NAME OBJECT... - $prefix/lib/NAME from the objects, in one
# rename: the archive's presence is what says the library is complete.
install_archive() {
    name=$1; shift
    mkdir -p "$prefix/lib"
    rm -f "$prefix/lib/$name.tmp"
    ar rcs "$prefix/lib/$name.tmp" "$@"
    mv "$prefix/lib/$name.tmp" "$prefix/lib/$name"
    say "$name built"
}

build_sqlite() {
    command -v tclsh >/dev/null || die "tclsh not found: SQLite's amalgamation needs it (apt-get install tcl)"
    cd "$src/sqlite3"
    # The amalgamation is generated (tclsh) by the host's compiler; only
    # the library itself is compiled with musl-gcc.
    [ -f sqlite3.c ] || { ./configure --disable-tcl >/dev/null && make -j"$jobs" sqlite3.c >/dev/null; }
    musl-gcc -O2 -fPIC -DSQLITE_THREADSAFE=1 -DSQLITE_OMIT_LOAD_EXTENSION \
        -c sqlite3.c -o sqlite3-musl.o
    mkdir -p "$prefix/lib" "$prefix/include"
    cp sqlite3.h "$prefix/include/"
    install_archive libsqlite3.a sqlite3-musl.o
}

# musl-gcc sees musl's headers only; OpenSSL also wants the kernel's
# (linux/mman.h), which Debian's linux-libc-dev carries for glibc. Only those
# directories are lent, never glibc's own headers (as Alpine's
# linux-headers package does).
kernel_headers() {
    kh=$cache/kernel-headers
    multiarch=$(gcc -dumpmachine 2>/dev/null || echo "$(uname -m)-linux-gnu")
    mkdir -p "$kh"
    ln -sfn /usr/include/linux "$kh/linux"
    ln -sfn /usr/include/asm-generic "$kh/asm-generic"
    ln -sfn "/usr/include/$multiarch/asm" "$kh/asm"
    [ -f "$kh/linux/mman.h" ] || die "no kernel headers in /usr/include/linux (apt-get install linux-libc-dev)"
    echo "$kh"
}

build_libcrypto() {
    kh=$(kernel_headers)
    cd "$src/openssl"
    # Only libcrypto, and in it only what HMAC-SHA256 and the default
    # provider's start need: no protocols, no engines or modules loaded at
    # run time, no AF_ALG; old ciphers and the rest left out to keep the
    # build short (it runs on every fresh CI machine).
    [ -f Makefile ] || ./Configure "linux-$(uname -m)" CC=musl-gcc \
        no-shared no-tests no-afalgeng no-engine no-dso no-async \
        no-ui-console no-legacy no-ssl no-tls no-dtls no-srp no-srtp \
        no-aria no-bf no-camellia no-cast no-des no-idea no-md4 no-mdc2 \
        no-rc2 no-rc4 no-rmd160 no-seed no-sm2 no-sm3 no-sm4 no-whirlpool \
        no-ct no-ocsp no-ts no-cms no-cmp no-gost no-siphash \
        -idirafter "$kh" -fPIC -O2 \
        --prefix="$prefix" --libdir=lib >/dev/null
    make -j"$jobs" build_generated >/dev/null
    make -j"$jobs" libcrypto.a >/dev/null
    mkdir -p "$prefix/lib" "$prefix/include"
    rm -rf "$prefix/include/openssl"
    cp -r include/openssl "$prefix/include/"
    cp libcrypto.a "$prefix/lib/libcrypto.a.tmp"
    mv "$prefix/lib/libcrypto.a.tmp" "$prefix/lib/libcrypto.a"
    say "libcrypto.a built"
}

# Only the synchronous client, which is all src/journal_redis.c uses: no
# async.c and its event-loop adapters, no SSL. The headers go where Debian's
# libhiredis-dev puts them (<hiredis/hiredis.h>), less async.h.
# Debian's CVE-2021-32765 patch gives createArrayObject a size_t where
# read.h's callback type still says int; newer gcc makes that an error by
# default, so it stays a warning (Debian's own libhiredis builds the same).
build_hiredis() {
    cd "$src/hiredis"
    objs=""
    for f in hiredis net read sds alloc sockcompat; do
        case $f in alloc|sockcompat) [ -f "$f.c" ] || continue ;; esac
        musl-gcc -O2 -fPIC -Wno-error=incompatible-pointer-types \
            -c "$f.c" -o "$f-musl.o"
        objs="$objs $f-musl.o"
    done
    mkdir -p "$prefix/include/hiredis"
    for h in hiredis.h read.h sds.h alloc.h sockcompat.h; do
        if [ -f "$h" ]; then cp "$h" "$prefix/include/hiredis/"; fi
    done
    # shellcheck disable=SC2086 # $objs is a list of plain file names
    install_archive libhiredis.a $objs
}

mkdir -p "$src"
if ! built libsqlite3.a; then fetch sqlite3; (build_sqlite); fi
if ! built libcrypto.a; then fetch openssl; (build_libcrypto); fi
if ! built libhiredis.a; then fetch hiredis; (build_hiredis); fi

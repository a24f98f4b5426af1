# retrysafe - see README.md. `make` builds the shim and the tool,
# `make test` runs every test, `make demo` shows the problem and the fix.

CC      ?= cc
PREFIX  ?= /usr/local
VERSION := 0.1.0
BUILD   := build

# make SANITIZE=address,undefined [test]: everything (shim, tool, unit tests,
# test clients) built with -fsanitize=$(SANITIZE) into build/san-<list>, so
# build/ stays as it is. Made for gcc, which links the sanitizer runtimes
# dynamically, shim included: a preloaded library must not carry its own
# copy of ASan (with clang, add -shared-libasan). tests/run-all --build
# preloads the ASan runtime ahead of the shim into the programs it runs.
SANITIZE ?=
comma   := ,
ifneq ($(SANITIZE),)
BUILD   := build/san-$(subst $(comma),-,$(SANITIZE))
SAN_FLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer
endif

WARN    := -Wall -Wextra -Wshadow -Wpointer-arith -Wstrict-prototypes
CFLAGS  ?= -O2 -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE -fPIC -fvisibility=hidden $(WARN) \
              -DRETRYSAFE_VERSION='"$(VERSION)"' \
              -DRETRYSAFE_LIBDIR='"$(PREFIX)/lib/retrysafe"' $(CFLAGS) $(DEPS_CFLAGS) \
              $(SAN_FLAGS)
LIBS    := -lsqlite3 -lcrypto -lhiredis -lpthread -ldl
# Set by `make musl` (see there); empty for the system's own build.
DEPS_CFLAGS :=
TOOL_LDFLAGS :=
CLIENT_LIBS := -lcurl -lpthread
# The shim loads SQLite and libcrypto at its start, not at the process's
# (src/lazy_deps.c): it links neither. hiredis it carries inside, a static
# copy with its symbols hidden: a dlopen()ed libhiredis would bind its own
# internal calls to whatever hiredis the host already has (redis-cli's
# 1.x, say), and crash. The musl build links all three in.
LAZY_CFLAGS := -DRETRYSAFE_LAZY_DEPS
SHIM_LIBS   := $(shell $(CC) -print-file-name=libhiredis.a) -lpthread -ldl

# The core: every module the shim and the tool share. Hooks, the fd table
# and the real-symbol lookup exist only in the preloaded library.
SHIM_ONLY := $(wildcard src/hooks*.c) $(wildcard src/tls_*.c) src/asan_glue.c src/conn.c src/flight.c \
             src/flight_guard.c src/late.c src/journal_queue.c src/lazy_deps.c \
             src/real.c src/shim.c
CORE_SRC  := $(filter-out $(SHIM_ONLY),$(wildcard src/*.c))
CORE_OBJ  := $(CORE_SRC:src/%.c=$(BUILD)/obj/%.o)
SHIM_OBJ  := $(SHIM_ONLY:src/%.c=$(BUILD)/obj/%.o)

CHECK_FLAGS := $(shell pkg-config --cflags --libs check 2>/dev/null || echo -lcheck)
UNIT_SRC    := $(wildcard tests/unit/*.c)

BENCH_SRC   := $(wildcard tests/bench/*.c)
BENCH_BIN   := $(BENCH_SRC:tests/bench/%.c=$(BUILD)/bench/%)
CLIENT_SRC  := $(wildcard tests/integration/clients/*.c)
CLIENT_BIN  := $(CLIENT_SRC:tests/integration/clients/%.c=$(BUILD)/clients/%)

.PHONY: all test unit integration demo bench install clean musl fuzz
all: $(BUILD)/libretrysafe.so $(BUILD)/retrysafe

$(BUILD)/obj/%.o: src/%.c $(wildcard src/*.h) | $(BUILD)/obj
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/obj $(BUILD)/clients $(BUILD)/tests $(BUILD)/bench:
	mkdir -p $@

$(BUILD)/obj/lazy_deps.o: ALL_CFLAGS += $(LAZY_CFLAGS)

$(BUILD)/libretrysafe-core.a: $(CORE_OBJ)
	rm -f $@ && ar rcs $@ $^

# Only the hook symbols are exported (src/exports.map); the core stays
# hidden so the host's own symbols are never replaced by ours.
$(BUILD)/libretrysafe.so: $(SHIM_OBJ) $(BUILD)/libretrysafe-core.a src/exports.map
	$(CC) $(SAN_FLAGS) -shared -o $@ $(SHIM_OBJ) $(BUILD)/libretrysafe-core.a \
	    -Wl,--version-script=src/exports.map -Wl,--exclude-libs,ALL \
	    -Wl,-z,nodelete -Wl,-z,defs $(SHIM_LIBS)

$(BUILD)/retrysafe: $(wildcard tools/*.c tools/*.h) $(BUILD)/libretrysafe-core.a $(wildcard src/*.h)
	$(CC) $(ALL_CFLAGS) -Isrc -o $@ $(wildcard tools/*.c) $(BUILD)/libretrysafe-core.a \
	    $(TOOL_LDFLAGS) $(LIBS)

$(BUILD)/tests/unit: $(UNIT_SRC) $(BUILD)/libretrysafe-core.a | $(BUILD)/tests
	$(CC) $(ALL_CFLAGS) -Isrc -o $@ $(UNIT_SRC) $(BUILD)/libretrysafe-core.a \
	    $(CHECK_FLAGS) $(LIBS)

$(BUILD)/clients/%: tests/integration/clients/%.c | $(BUILD)/clients
	$(CC) $(ALL_CFLAGS) -o $@ $< $(CLIENT_LIBS)

$(BUILD)/bench/%: tests/bench/%.c | $(BUILD)/bench
	$(CC) $(ALL_CFLAGS) -o $@ $< -lpthread

# The parser bench drives src/http.c directly: it links the core.
$(BUILD)/bench/parse_loop: tests/bench/parse_loop.c $(BUILD)/libretrysafe-core.a | $(BUILD)/bench
	$(CC) $(ALL_CFLAGS) -Isrc -o $@ $< $(BUILD)/libretrysafe-core.a $(LIBS)

unit: $(BUILD)/tests/unit
	$(BUILD)/tests/unit

integration: all $(CLIENT_BIN)
	python3 tests/integration/run.py --build $(BUILD)

# Runs the unit suites and the integration suite (and, where musl-gcc is
# installed, the musl build's part of it) and ends with one summary line.
# musl has no sanitizer runtimes: under SANITIZE its part is left out.
HAVE_MUSL := $(if $(SANITIZE),,$(shell command -v musl-gcc 2>/dev/null))
test: all $(BUILD)/tests/unit $(CLIENT_BIN) $(if $(HAVE_MUSL),musl)
	tests/run-all --build $(BUILD)

# make musl: build/musl/libretrysafe.so and build/musl/retrysafe for
# musl-linked programs (Alpine), with Debian's musl-gcc. Debian has no musl
# builds of SQLite, OpenSSL or hiredis: scripts/musl-deps.sh builds them from
# Debian's source packages into MUSL_CACHE, outside the tree, once; they are
# linked in statically and their symbols stay hidden (the version script and
# --exclude-libs). The tool is a static binary. On Alpine itself, plain
# `make` builds against Alpine's own packages.
MUSL_CACHE ?= $(if $(XDG_CACHE_HOME),$(XDG_CACHE_HOME),$(HOME)/.cache)/retrysafe/musl
MUSL_DEPS  := $(MUSL_CACHE)/prefix
MUSL_ARCHIVES := $(addprefix $(MUSL_DEPS)/lib/,libsqlite3.a libcrypto.a libhiredis.a)
MUSL_CLIENTS := $(filter-out build/musl/clients/curl_post,\
                  $(CLIENT_SRC:tests/integration/clients/%.c=build/musl/clients/%))
musl:
	scripts/musl-deps.sh "$(MUSL_CACHE)"
	$(MAKE) BUILD=build/musl CC=musl-gcc SANITIZE= DEPS_CFLAGS="-I$(MUSL_DEPS)/include" \
	    LIBS="$(MUSL_ARCHIVES) -lpthread" \
	    TOOL_LDFLAGS=-static CLIENT_LIBS=-lpthread LAZY_CFLAGS= \
	    SHIM_LIBS="$(MUSL_ARCHIVES) -lpthread" \
	    build/musl/libretrysafe.so build/musl/retrysafe $(MUSL_CLIENTS)

# make fuzz: the libFuzzer harnesses of tests/fuzz (see its README.md),
# each run for FUZZ_SECONDS on a scratch copy of its seed corpus. They and
# the core under them are built with clang's fuzzer and sanitizers in
# build/fuzz, apart from the normal build. Fails if any harness finds a bug.
FUZZ_SECONDS ?= 30
FUZZ_CC      ?= clang
FUZZ_BUILD   := build/fuzz
FUZZ_CFLAGS  := $(ALL_CFLAGS) \
                -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_SRC     := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN     := $(FUZZ_SRC:tests/fuzz/%.c=$(FUZZ_BUILD)/%)
FUZZ_OBJ     := $(CORE_SRC:src/%.c=$(FUZZ_BUILD)/obj/%.o)

$(FUZZ_BUILD)/obj:
	mkdir -p $@

$(FUZZ_BUILD)/obj/%.o: src/%.c $(wildcard src/*.h) | $(FUZZ_BUILD)/obj
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ_BUILD)/libretrysafe-core.a: $(FUZZ_OBJ)
	rm -f $@ && ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(wildcard tests/fuzz/*.h) $(wildcard src/*.h) \
                      $(FUZZ_BUILD)/libretrysafe-core.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Isrc -o $@ $< $(FUZZ_BUILD)/libretrysafe-core.a $(LIBS)

fuzz: $(FUZZ_BIN)
	tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_BIN)

demo: all
	python3 tests/demo/demo.py

bench: all $(BENCH_BIN)
	python3 tests/bench/bench.py

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/retrysafe
	install -m 0755 $(BUILD)/retrysafe $(DESTDIR)$(PREFIX)/bin/retrysafe
	install -m 0755 $(BUILD)/libretrysafe.so $(DESTDIR)$(PREFIX)/lib/retrysafe/libretrysafe.so

clean:
	rm -rf $(BUILD)

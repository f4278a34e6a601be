# lasync: build, test, bench. `make demo` and `make test` do all set-up.
#
#   make            build build/lasync and build/liblasync.a (libraries found with
#                   pkg-config; it names any that is missing and installs nothing)
#   make test       install missing Debian packages, build, run every suite; ends
#                   with "N passed, N failed"
#   make SANITIZE=address test   the same under AddressSanitizer + UBSan (in build-asan/);
#                   `make asan test` is the shorthand
#   make SANITIZE=thread test    the same under ThreadSanitizer (in build-tsan/);
#                   `make tsan test` is the shorthand
#   make DEBUG=1    unoptimized, with lasync_assert on (in build-debug/; the
#                   sanitizer builds have the asserts on too)
#   make WERROR=1   warnings are errors (CI and development; off for users whose
#                   newer compiler may warn about what ours does not)
#   make bench      run bench/ against the peers (make bench-deps first)
#   make deps       install missing Debian packages (does nothing if present)
#   make layers     print the references among the C files and check the layers
#   make install PREFIX=/usr/local   lasync, lasync.h, liblasync.{a,so}, lasync.pc

PKGS     = liblua5.4-dev libuv1-dev lua-unit pkg-config libedit-dev python3 curl \
           libcurl4-openssl-dev lua-cjson-dev libhttp-parser-dev libwslay-dev libssl-dev \
           libpq-dev libhiredis-dev
# The real peers the tests start on 127.0.0.1 (servers, clients, certificates).
PKGS    += postgresql redis-server nghttp2-server python3-aiohttp python3-websockets openssl
LUA_PC  ?= lua5.4
CC      ?= cc
WARN     = -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes $(if $(WERROR),-Werror)
OPT     ?= -O2 -g

# Sanitizer builds: SANITIZE=address|thread, each in a build directory of its own.
ifneq ($(filter asan,$(MAKECMDGOALS)),)
SANITIZE ?= address
endif
ifneq ($(filter tsan,$(MAKECMDGOALS)),)
SANITIZE ?= thread
endif
# lasync_assert (host/module.h) is on in the sanitizer builds and with DEBUG=1.
ifneq ($(DEBUG)$(SANITIZE),)
DEFS     = -DLASYNC_DEBUG
endif
ifeq ($(SANITIZE),address)
BUILD   ?= build-asan
OPT      = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDSAN    = -fsanitize=address,undefined
else ifeq ($(SANITIZE),thread)
BUILD   ?= build-tsan
OPT      = -O1 -g -fsanitize=thread -fno-omit-frame-pointer
LDSAN    = -fsanitize=thread
else ifneq ($(SANITIZE),)
$(error SANITIZE=$(SANITIZE): use address or thread)
else ifneq ($(DEBUG),)
BUILD   ?= build-debug
OPT      = -O0 -g
endif
BUILD   ?= build

# Recursive (=) so pkg-config runs after `deps` has installed it. libedit: headers
# only; the REPL loads it when it starts (host/repl/repl_edit.c).
NET_PC     = libcurl openssl libpq hiredis $(LUA_PC)-cjson
ALL_PC     = $(LUA_PC) libuv libedit $(NET_PC)
# The libraries without a pkg-config file: a header each.
NOPC_HDRS  = http_parser.h wslay/wslay.h
PKG_CFLAGS = $(shell pkg-config --cflags $(LUA_PC) libuv libedit $(NET_PC))
PKG_LIBS   = $(shell pkg-config --libs $(LUA_PC) libuv $(NET_PC)) -lhttp_parser -lwslay -lm
CFLAGS_ALL = -std=c99 -D_GNU_SOURCE $(DEFS) -fPIC $(OPT) $(WARN) $(PKG_CFLAGS) -Ihost $(CFLAGS)

# host/<layer>/*.c is library code, but the CLI: a new native module needs no edit
# here (docs/internals.md has the layers). host/tools and host/example are not library.
LAYERS    = core embed sync io thread repl data net db
CORE_SRCS = $(foreach d,$(LAYERS),$(wildcard host/$(d)/*.c))
CORE_OBJS = $(CORE_SRCS:host/%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/modules.o $(BUILD)/obj/apidoc.o
LUA_SRCS  = $(shell find lua -name '*.lua' | sort)

# Embedding (docs/embedding.md): shared library, pkg-config file, install,
# the example application and the C tests.
VERSION   = $(shell sed -n 's/.*LASYNC_VERSION "\(.*\)".*/\1/p' host/lasync.h)
SONAME    = liblasync.so.0
PREFIX   ?= /usr/local
LIBDIR   ?= $(PREFIX)/lib
INCDIR   ?= $(PREFIX)/include
PC_SED    = -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCDIR@|$(INCDIR)|' \
            -e 's|@VERSION@|$(VERSION)|' -e 's|@LUA_PC@|$(LUA_PC)|' -e 's|@LIBS@|$(PKG_LIBS)|'
EXAMPLE   = $(BUILD)/example/app
CTESTS    = $(patsubst tests/c/%.c,$(BUILD)/tests/c/%,$(wildcard tests/c/*.c))

.PHONY: all deps libs layers demo test asan tsan bench bench-deps clean install uninstall fuzz
all: $(BUILD)/lasync $(BUILD)/liblasync.a $(BUILD)/liblasync.so $(BUILD)/lasync.pc $(EXAMPLE)
asan: all
tsan: all

# Only the set-up commands (`make deps`, and the README's `make demo` and
# `make test`) install packages; any other goal checks the libraries with
# pkg-config and names the missing ones. Without dpkg/apt, deps only checks.
ifneq ($(filter deps demo test,$(MAKECMDGOALS)),)
libs: deps
endif

deps:
	@if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then \
	  echo "make deps: no dpkg-query/apt-get here; install the libraries yourself (see PKGS in the Makefile)"; \
	  exit 0; \
	fi; \
	missing=""; for p in $(PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

libs:
	@command -v pkg-config >/dev/null 2>&1 || { echo "lasync: pkg-config is missing (Debian: make deps)" >&2; exit 1; }; \
	missing=""; for p in $(ALL_PC); do pkg-config --exists $$p || missing="$$missing $$p"; done; \
	for h in $(NOPC_HDRS); do \
	  echo "#include <$$h>" | $(CC) -E $(CPPFLAGS) $(CFLAGS) - >/dev/null 2>&1 || missing="$$missing <$$h>"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "lasync: missing libraries:$$missing (pkg-config names and headers; Debian: make deps)" >&2; exit 1; \
	fi

$(BUILD)/.dir: | libs
	@mkdir -p $(BUILD)/obj && touch $@

$(BUILD)/luaembed: host/tools/luaembed.c | $(BUILD)/.dir
	$(CC) -O1 -g $(PKG_CFLAGS) -o $@ $< $(PKG_LIBS)

$(BUILD)/modules.c: $(BUILD)/luaembed $(LUA_SRCS)
	$(BUILD)/luaembed $@ lua $(LUA_SRCS)

$(BUILD)/obj/modules.o: $(BUILD)/modules.c
	$(CC) -fPIC $(OPT) -c -o $@ $<

# docs/API.md as a C string, for `help` at the REPL (host/repl/repl.c).
$(BUILD)/apidoc.c: docs/API.md $(BUILD)/luaembed
	$(BUILD)/luaembed -t $@ lasync__apidoc $<

$(BUILD)/obj/apidoc.o: $(BUILD)/apidoc.c
	$(CC) -fPIC $(OPT) -c -o $@ $<

# -MMD -MP: each object depends on the headers it includes, no more.
$(BUILD)/obj/%.o: host/%.c | $(BUILD)/.dir
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c -o $@ $<
-include $(CORE_OBJS:.o=.d) $(BUILD)/obj/cli/main.d

$(BUILD)/liblasync.a: $(CORE_OBJS)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/lasync: $(BUILD)/obj/cli/main.o $(BUILD)/liblasync.a
	$(CC) $(LDSAN) -o $@ $^ $(PKG_LIBS) $(LDFLAGS)

# Only lasync_* (one underscore) is exported: lasync__* stay internal.
$(BUILD)/liblasync.so.$(VERSION): $(CORE_OBJS) host/lasync.map
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--version-script,host/lasync.map -Wl,--no-undefined \
	  $(LDSAN) -o $@ $(CORE_OBJS) $(PKG_LIBS) $(LDFLAGS)

$(BUILD)/liblasync.so: $(BUILD)/liblasync.so.$(VERSION)
	ln -sf liblasync.so.$(VERSION) $(BUILD)/$(SONAME) && ln -sf $(SONAME) $@

$(BUILD)/lasync.pc: host/lasync.pc.in host/lasync.h Makefile | $(BUILD)/.dir
	sed $(PC_SED) $< >$@

$(EXAMPLE): host/example/app.c host/lasync.h $(BUILD)/liblasync.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(BUILD)/liblasync.a $(PKG_LIBS) $(LDSAN) $(LDFLAGS)

$(BUILD)/tests/c/%: tests/c/%.c tests/c/tap.h tests/c/common.h host/lasync.h $(BUILD)/liblasync.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(BUILD)/liblasync.a $(PKG_LIBS) $(LDSAN) $(LDFLAGS)

# DESTDIR stages a package; the .pc file is written for PREFIX.
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(INCDIR) $(DESTDIR)$(LIBDIR)/pkgconfig
	install -m 755 $(BUILD)/lasync $(DESTDIR)$(PREFIX)/bin/lasync
	install -m 644 host/lasync.h $(DESTDIR)$(INCDIR)/lasync.h
	install -m 644 $(BUILD)/liblasync.a $(DESTDIR)$(LIBDIR)/liblasync.a
	install -m 755 $(BUILD)/liblasync.so.$(VERSION) $(DESTDIR)$(LIBDIR)/
	ln -sf liblasync.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/liblasync.so
	sed $(PC_SED) host/lasync.pc.in >$(DESTDIR)$(LIBDIR)/pkgconfig/lasync.pc

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/lasync $(DESTDIR)$(INCDIR)/lasync.h \
	  $(DESTDIR)$(LIBDIR)/liblasync.a $(DESTDIR)$(LIBDIR)/liblasync.so* \
	  $(DESTDIR)$(LIBDIR)/pkgconfig/lasync.pc

demo: all
	$(BUILD)/lasync scripts/demo.lua

# The references among the C files against the layers (docs/internals.md);
# make test runs it too (tests/c/layers.sh).
layers: $(CORE_OBJS)
	python3 host/tools/layers.py $(BUILD) -v

test: all $(CTESTS)
	@LASYNC=$(BUILD)/lasync BUILD=$(BUILD) CC_ALL='$(CC) $(CFLAGS_ALL)' \
	  LINK_ALL='$(BUILD)/liblasync.a $(PKG_LIBS) $(LDSAN) $(LDFLAGS)' sh tests/run.sh

bench-deps:
	sh bench/deps.sh

bench: all
	LASYNC=$(CURDIR)/$(BUILD)/lasync bench/run $(W)

clean:
	rm -rf build build-asan build-tsan build-debug build-fuzz

# The fuzz target of the request and WebSocket frame paths (tests/fuzz/),
# libFuzzer with ASan and UBSan, run for FUZZ_SECS seconds from the seeds
# (the corpus it grows stays in build-fuzz/).
FUZZ_SECS ?= 30
FUZZ_CC    = clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
build-fuzz/fuzz_http: tests/fuzz/fuzz_http.c host/net/http_parser.c host/net/ws.c host/module.h | deps
	@mkdir -p build-fuzz
	$(FUZZ_CC) -std=c99 -D_GNU_SOURCE $(WARN) $(PKG_CFLAGS) -Ihost -o $@ $(filter %.c,$^) -llua5.4 -lhttp_parser -lwslay -lcrypto

fuzz: build-fuzz/fuzz_http
	@mkdir -p build-fuzz/corpus && cp tests/fuzz/seeds/*/* build-fuzz/corpus/
	@# the fuzzer's own status decides (a pipe into tail would hide a crash)
	@build-fuzz/fuzz_http -max_total_time=$(FUZZ_SECS) -rss_limit_mb=1024 -artifact_prefix=build-fuzz/ \
	  -print_final_stats=1 build-fuzz/corpus >build-fuzz/log 2>&1; s=$$?; \
	  grep -m1 '^fuzz:' build-fuzz/log; tail -25 build-fuzz/log; \
	  [ $$s -eq 0 ] && echo "make fuzz: no crash in $(FUZZ_SECS) s" || echo "make fuzz: FAILED (status $$s, input in build-fuzz/)"; exit $$s

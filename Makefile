# lasync: build, test, bench. `make demo` and `make test` do all set-up.
#
#   make            build build/lasync and build/liblasync.a
#   make test       build and run every suite; ends with "N passed, N failed"
#   make asan test  the same under AddressSanitizer + UBSan (in build-asan/)
#   make bench      run bench/ against the peers (make bench-deps first)
#   make deps       install missing Debian packages (does nothing if present)

PKGS     = liblua5.4-dev libuv1-dev lua-unit pkg-config
LUA_PC  ?= lua5.4
CC      ?= cc
WARN     = -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes -Werror
OPT     ?= -O2 -g

ifneq ($(filter asan,$(MAKECMDGOALS)),)
BUILD   ?= build-asan
OPT      = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDSAN    = -fsanitize=address,undefined
endif
BUILD   ?= build

# Recursive (=) so pkg-config runs after `deps` has installed it.
PKG_CFLAGS = $(shell pkg-config --cflags $(LUA_PC) libuv)
PKG_LIBS   = $(shell pkg-config --libs $(LUA_PC) libuv) -lm
CFLAGS_ALL = -std=c99 -D_GNU_SOURCE $(OPT) $(WARN) $(PKG_CFLAGS) -Ihost $(CFLAGS)

# Every host/*.c but the CLI is library code: a new native module needs no edit here.
CORE_SRCS = $(filter-out host/main.c,$(wildcard host/*.c))
CORE_OBJS = $(CORE_SRCS:host/%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/modules.o
LUA_SRCS  = $(shell find lua -name '*.lua' | sort)

.PHONY: all deps demo test asan bench bench-deps clean
all: $(BUILD)/lasync $(BUILD)/liblasync.a
asan: all

deps:
	@missing=""; for p in $(PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

$(BUILD)/.dir: | deps
	@mkdir -p $(BUILD)/obj && touch $@

$(BUILD)/luaembed: host/tools/luaembed.c | $(BUILD)/.dir
	$(CC) -O1 -g $(PKG_CFLAGS) -o $@ $< $(PKG_LIBS)

$(BUILD)/modules.c: $(BUILD)/luaembed $(LUA_SRCS)
	$(BUILD)/luaembed $@ lua $(LUA_SRCS)

$(BUILD)/obj/modules.o: $(BUILD)/modules.c
	$(CC) $(OPT) -c -o $@ $<

$(BUILD)/obj/%.o: host/%.c host/core.h host/lasync.h | $(BUILD)/.dir
	$(CC) $(CFLAGS_ALL) -c -o $@ $<

$(BUILD)/liblasync.a: $(CORE_OBJS)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/lasync: $(BUILD)/obj/main.o $(BUILD)/liblasync.a
	$(CC) $(LDSAN) -o $@ $^ $(PKG_LIBS) $(LDFLAGS)

demo: all
	$(BUILD)/lasync scripts/demo.lua

test: all
	@LASYNC=$(BUILD)/lasync BUILD=$(BUILD) sh tests/run.sh

bench-deps:
	sh bench/deps.sh

bench: all
	LASYNC=$(CURDIR)/$(BUILD)/lasync bench/run $(W)

clean:
	rm -rf build build-asan

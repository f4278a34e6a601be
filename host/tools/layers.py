#!/usr/bin/env python3
"""layers.py: the references among the host's C files, from the symbols of
their objects (nm), checked against the layers of docs/internals.md.

Usage: host/tools/layers.py [BUILD] [-v]     (make layers; run by make test)

A file refers to another when its object uses a symbol the other defines.
Three checks, printed as TAP:
  1. the only cycle of references is the core's own (sched, task, timer,
     watch, watchdog, interrupt call each other, as Lua's ldo.c and lvm.c do), but
     for cycles inside one module split into files (SPLIT: the stream,
     the REPL), which are listed;
  2. every reference goes down the layers (or stays in a folder): no core
     file calls a module, no module calls one beside it or above it;
  3. no file outside host/core and host/embed includes core/core.h;
  4. docs/internals.md has a line for every C file and header of the layers.
-v also prints every reference, file to file, with the symbols.
"""
import collections
import glob
import os
import re
import subprocess
import sys

# Lowest first. A file may refer to files of its own folder and of folders
# with a lower rank; folders of equal rank are siblings that ignore each
# other. host/embed/host.c, the composition root that preloads every
# module, is above them all.
RANK = {"core": 0, "embed": 1, "sync": 2, "io": 2, "data": 2, "thread": 3,
        "net": 4, "db": 5, "repl": 6}
ROOT = "embed/host"
CORE_CYCLE = {"core/sched", "core/task", "core/timer", "core/watch", "core/watchdog",
              "core/interrupt"}
# One module in several files (split for length), whose files call each
# other: a cycle inside one of these is one module's business.
SPLIT = [{"io/stream", "io/stream_info", "io/stream_write"},
         {"db/pg", "db/pg_query", "db/pg_copy", "db/pg_types"},
         {"repl/repl", "repl/repl_edit"},
         {"net/curl", "net/http_client", "net/http_session"}]  # the HTTP client
PRIVILEGED = ("core", "embed")   # may include core/core.h


def rank(f):
    return 99 if f == ROOT else RANK[f.split("/")[0]]


def read_objects(build):
    """defs: symbol -> file; uses: file -> symbols it needs."""
    defs, uses = {}, collections.defaultdict(set)
    for src in sorted(glob.glob("host/*/*.c")):
        f = src[len("host/"):-2]
        if f.split("/")[0] not in RANK:
            continue                          # cli, tools, example: not library
        obj = os.path.join(build, "obj", f + ".o")
        if not os.path.exists(obj):
            sys.exit("layers.py: %s is missing (run make first)" % obj)
        out = subprocess.run(["nm", "-P", obj], capture_output=True, text=True,
                             check=True).stdout
        uses[f]                               # every file is a node
        for line in out.splitlines():
            p = line.split()
            if len(p) >= 2 and p[1] == "U":
                uses[f].add(p[0])
            elif len(p) >= 2 and p[1] in "TDBRCWV":
                defs[p[0]] = f
    return defs, uses


def graph(defs, uses):
    edges = collections.defaultdict(lambda: collections.defaultdict(list))
    for f, syms in uses.items():
        for s in syms:
            g = defs.get(s)
            if g and g != f:
                edges[f][g].append(s)
    return edges


def cycles(nodes, edges):
    """Tarjan's strongly connected components with more than one file."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def upward(edges):
    bad = []
    for f in sorted(edges):
        for g in sorted(edges[f]):
            same = f.split("/")[0] == g.split("/")[0] and ROOT not in (f, g)
            if not same and rank(f) <= rank(g):
                bad.append("%s -> %s (%s)" % (f, g, " ".join(sorted(edges[f][g]))))
    return bad


def core_includes():
    bad = []
    for src in sorted(glob.glob("host/*/*.[ch]")):
        if src.split("/")[1] in PRIVILEGED:
            continue
        with open(src) as fh:
            if re.search(r'#include\s+"core/core\.h"', fh.read()):
                bad.append(src)
    return bad


def undocumented():
    with open("docs/internals.md") as fh:
        doc = fh.read()
    return [src for src in sorted(glob.glob("host/*/*.[ch]"))
            if src.split("/")[1] in RANK and "`%s`" % src[len("host/"):] not in doc]


def main():
    args = [a for a in sys.argv[1:] if a != "-v"]
    build = args[0] if args else "build"
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    defs, uses = read_objects(build)
    edges = graph(defs, uses)
    if "-v" in sys.argv:
        for f in sorted(edges):
            for g in sorted(edges[f]):
                print("# %s -> %s: %s" % (f, g, " ".join(sorted(edges[f][g]))))
    failed = 0

    def check(n, ok, name, details):
        nonlocal failed
        print("%sok %d %s" % ("" if ok else "not ", n, name))
        for d in details:
            print("#   " + d)
        failed += not ok

    cyc = cycles(uses.keys(), edges)
    allowed = [CORE_CYCLE] + SPLIT
    check(1, all(any(set(c) <= a for a in allowed) for c in cyc),
          "the only cycle of references among the C files is the core's "
          "(and inside a module split into files)",
          [("cycle: " if set(c) <= CORE_CYCLE else
            "cycle inside one module: " if any(set(c) <= a for a in SPLIT) else
            "cycle NOT ALLOWED: ") + " ".join(c) for c in cyc])
    bad = upward(edges)
    check(2, not bad, "every reference goes down the layers (%d files)" % len(uses),
          ["upward or sideways: " + b for b in bad])
    bad = core_includes()
    check(3, not bad, "only host/core and host/embed include core/core.h",
          ["includes core/core.h: " + b for b in bad])
    bad = undocumented()
    check(4, not bad, "docs/internals.md has a line for every file of the layers",
          ["add a line for %s to docs/internals.md's file table" % b for b in bad])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

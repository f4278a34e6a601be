#!/bin/sh
# tests/c/layers.sh: the layers of host/ hold (docs/internals.md): the only
# cycle of references among the C files is the core's, every reference goes
# down the layers, modules do not include core/core.h, and docs/internals.md
# names every file. Measured on the objects of $BUILD by
# host/tools/layers.py, which prints TAP.
BUILD=${BUILD:-build}
exec python3 host/tools/layers.py "$BUILD"

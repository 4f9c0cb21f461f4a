#!/bin/sh
# Writes OUTDIR/fcgi-capi.pc from fcgi-capi.pc.in, for `pkg-config --cflags --libs fcgi-capi`.
#
#   fcgi-capi/make-pc.sh PREFIX OUTDIR
#
# The library is looked for in $LIBDIR (default PREFIX/lib) and fcgi.h in $INCLUDEDIR (default
# PREFIX/include). For the uninstalled tree after `cargo build --release -p fcgi-capi`:
#
#   LIBDIR=$PWD/target/release INCLUDEDIR=$PWD/include fcgi-capi/make-pc.sh $PWD target/pkgconfig
#   PKG_CONFIG_PATH=target/pkgconfig cc app.c $(pkg-config --cflags --libs fcgi-capi)
set -eu

if [ $# -ne 2 ]; then
    echo "usage: $0 PREFIX OUTDIR" >&2
    exit 2
fi
prefix=$1
outdir=$2
here=$(cd "$(dirname "$0")" && pwd)
libdir=${LIBDIR:-$prefix/lib}
includedir=${INCLUDEDIR:-$prefix/include}
# The workspace version ([workspace.package] in the root Cargo.toml).
version=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' "$here/../Cargo.toml" | head -n 1)
if [ -z "$version" ]; then
    echo "$0: no version in $here/../Cargo.toml" >&2
    exit 1
fi
# What a static link needs besides libfcgi_capi.a (rustc --print native-static-libs on Linux).
libs_private="-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc"

mkdir -p "$outdir"
sed -e "s|@PREFIX@|$prefix|g" \
    -e "s|@LIBDIR@|$libdir|g" \
    -e "s|@INCLUDEDIR@|$includedir|g" \
    -e "s|@VERSION@|$version|g" \
    -e "s|@LIBS_PRIVATE@|$libs_private|g" \
    "$here/fcgi-capi.pc.in" > "$outdir/fcgi-capi.pc"
echo "$outdir/fcgi-capi.pc"

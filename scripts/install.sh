#!/usr/bin/env bash
# Installs sandboxer from a build directory, or uninstalls it (what `make install` and
# `make uninstall` run; tests/python/test_install.py runs it on the debug build).
#
#   scripts/install.sh install BUILD_DIR     BUILD_DIR holds sandboxer, sandboxer-agent and qjs.wasm
#   scripts/install.sh uninstall
#
# Environment: PREFIX (default /usr/local), DESTDIR (staging root, default none), STRIP=0 to
# install the binaries as built. Layout under $DESTDIR$PREFIX:
#   libexec/sandboxer/{sandboxer,sandboxer-agent,qjs.wasm}    the programs (found beside each other)
#   libexec/sandboxer/{sandboxer,sandboxer-agent}.debug       their debug info (gdb reads it by
#                                                             the .gnu_debuglink of the binary)
#   bin/sandboxer -> ../libexec/sandboxer/sandboxer           on the PATH
#   lib/systemd/system/sandboxer.service                      the unit (systemd reads
#                                                             /usr/local/lib/systemd/system; for other
#                                                             prefixes `systemctl link` it)
#   share/doc/sandboxer/{README.md,config.example.yaml}
# Nothing is written to /etc: the configuration file (/etc/sandboxer/config.yaml) is the
# operator's, made from config.example.yaml. Uninstall removes exactly the files above and the
# directories of sandboxer's own it leaves empty.
set -euo pipefail
cd "$(dirname "$0")/.."

PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
STRIP=${STRIP:-1}
case "$PREFIX" in /*) ;; *) echo "install.sh: PREFIX must be an absolute path (got '$PREFIX')" >&2; exit 2 ;; esac
ROOT="$DESTDIR$PREFIX"
LIBEXEC="$ROOT/libexec/sandboxer"
UNITDIR="$ROOT/lib/systemd/system"
DOCDIR="$ROOT/share/doc/sandboxer"
FILES=(
    "$LIBEXEC/sandboxer" "$LIBEXEC/sandboxer.debug" "$LIBEXEC/sandboxer-agent" "$LIBEXEC/sandboxer-agent.debug"
    "$LIBEXEC/qjs.wasm" "$ROOT/bin/sandboxer" "$UNITDIR/sandboxer.service"
    "$DOCDIR/README.md" "$DOCDIR/config.example.yaml"
)
# Removed when empty, innermost first (never bin/, lib/ or the prefix itself).
OWN_DIRS=("$LIBEXEC" "$DOCDIR")

die() { echo "install.sh: $*" >&2; exit 1; }

# install_binary SRC NAME: copies SRC to $LIBEXEC/NAME; with STRIP=1 its debug info goes to
# NAME.debug beside it, linked from the stripped binary by .gnu_debuglink (symbols stay, so
# Swift's crash backtraces keep their names).
install_binary() {
    local src=$1 name=$2
    tmp=$(mktemp "$LIBEXEC/.$name.XXXXXX")
    trap 'rm -f "$tmp"' EXIT
    cp "$src" "$tmp"
    if [ "$STRIP" = 1 ]; then
        command -v objcopy >/dev/null || die "objcopy is missing (apt-get install binutils), or set STRIP=0"
        objcopy --only-keep-debug "$tmp" "$LIBEXEC/$name.debug"
        chmod 0644 "$LIBEXEC/$name.debug"
        # The debuglink names the file by its base name, so run where it lies.
        (cd "$LIBEXEC" && objcopy --strip-debug --add-gnu-debuglink="$name.debug" "$(basename "$tmp")")
    fi
    chmod 0755 "$tmp"
    mv -f "$tmp" "$LIBEXEC/$name"
    trap - EXIT
}

do_install() {
    local build=${1:-}
    [ -n "$build" ] || die "usage: scripts/install.sh install BUILD_DIR (e.g. .build/release)"
    for f in sandboxer sandboxer-agent; do
        [ -x "$build/$f" ] || die "$build/$f is missing: build it first (make build, or make build-debug for BUILD=debug)"
    done
    [ -f "$build/qjs.wasm" ] || die "$build/qjs.wasm is missing: run 'make wasm' (it copies qjs.wasm beside the built binaries)"
    install -d -m 0755 "$LIBEXEC" "$ROOT/bin" "$UNITDIR" "$DOCDIR"
    install_binary "$build/sandboxer" sandboxer
    install_binary "$build/sandboxer-agent" sandboxer-agent
    install -m 0644 "$build/qjs.wasm" "$LIBEXEC/qjs.wasm"
    ln -sfn ../libexec/sandboxer/sandboxer "$ROOT/bin/sandboxer"
    sed -e "s#@BINDIR@#$PREFIX/bin#g" -e "s#@DOCDIR@#$PREFIX/share/doc/sandboxer#g" \
        packaging/sandboxer.service.in > "$UNITDIR/sandboxer.service"
    chmod 0644 "$UNITDIR/sandboxer.service"
    install -m 0644 README.md "$DOCDIR/README.md"
    install -m 0644 packaging/config.example.yaml "$DOCDIR/config.example.yaml"
    echo "installed sandboxer $("$LIBEXEC/sandboxer" version | head -1 | cut -d' ' -f2) under $ROOT"
}

do_uninstall() {
    local f d link="$ROOT/bin/sandboxer"
    # bin/sandboxer only when it is ours (a link into libexec/sandboxer), not another install's.
    if [ -L "$link" ] && [ "$(readlink "$link")" != ../libexec/sandboxer/sandboxer ]; then
        echo "install.sh: leaving $link (it points to $(readlink "$link"), not to this installation)" >&2
        link=""
    fi
    for f in "${FILES[@]}"; do
        [ "$f" = "$ROOT/bin/sandboxer" ] && [ -z "$link" ] && continue
        rm -f "$f"
    done
    for d in "${OWN_DIRS[@]}"; do rmdir "$d" 2>/dev/null || true; done
    echo "removed sandboxer from $ROOT (the data in /var/lib/sandboxer and /etc/sandboxer stay)"
}

case "${1:-}" in
    install) shift; do_install "$@" ;;
    uninstall) do_uninstall ;;
    *) die "usage: scripts/install.sh install BUILD_DIR | uninstall" ;;
esac

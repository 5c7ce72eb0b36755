#!/usr/bin/env bash
# Builds QuickJS (quickjs-ng, from its PyPI sdist) plus driver.c into a WASI
# preview1 command module $SANDBOXER_WASM_OUT/qjs.wasm, and each wasm/testdata/NAME.c into
# $SANDBOXER_WASM_OUT/NAME.wasm (test programs).  Idempotent: installs only missing Debian
# packages, downloads the sdist once (sha256-checked every run), and skips a module that
# is newer than all of its inputs unless SANDBOXER_WASM_FORCE=1.
#
# Environment (namespaced, so a generic OUT or CLANG in the caller's shell changes nothing):
#   SANDBOXER_WASM_OUT     output dir (default .build-wasm; relative = to the repo root)
#   SANDBOXER_WASM_CACHE   download/extract cache (default ${SANDBOXER_WASM_OUT}/cache)
#   SANDBOXER_WASM_FORCE=1 rebuild even when outputs are up to date
#   SANDBOXER_WASM_CLANG   clang to use (default /opt/swift/usr/bin/clang)
#   SANDBOXER_WASM_PYTHON  python for `pip download` (default python3)
#   SANDBOXER_WASM_STACK_SIZE  shadow (C) stack in linear memory, bytes (default 2 MiB)
#   SANDBOXER_QJS_INSTALL_DIRS colon-separated directories that get a copy of qjs.wasm
#                (default: those of .build/debug and .build/release that exist).
#                The WASM lane looks for qjs.wasm only beside the running
#                executable (or in $SANDBOXER_QJS_WASM), never under the cwd.
set -euo pipefail

QJS_VERSION="0.17.0.2"
QJS_SHA256="43d2e48272208721a7aaea8e3f02d4b9318f12ef20cc4f5421b59d9a470706ef"
QJS_SDIST="quickjs_ng-${QJS_VERSION}.tar.gz"

APT_PACKAGES=(wasi-libc libclang-rt-19-dev-wasm32)
# Debian's wasm32 compiler-rt builtins live here (lib/wasi/libclang_rt.builtins-wasm32.a).
RT_RESOURCE_DIR="/usr/lib/llvm-19/lib/clang/19"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/../.." && pwd)"
SCRIPT_PATH="${SCRIPT_DIR}/$(basename "${BASH_SOURCE[0]}")"

OUT="${SANDBOXER_WASM_OUT:-.build-wasm}"
case "${OUT}" in /*) ;; *) OUT="${REPO_ROOT}/${OUT}" ;; esac
CACHE_DIR="${SANDBOXER_WASM_CACHE:-${OUT}/cache}"
case "${CACHE_DIR}" in /*) ;; *) CACHE_DIR="${REPO_ROOT}/${CACHE_DIR}" ;; esac
FORCE="${SANDBOXER_WASM_FORCE:-0}"
CLANG="${SANDBOXER_WASM_CLANG:-/opt/swift/usr/bin/clang}"
PYTHON="${SANDBOXER_WASM_PYTHON:-python3}"
WASM_STACK_SIZE="${SANDBOXER_WASM_STACK_SIZE:-2097152}"

DRIVER="${SCRIPT_DIR}/driver.c"
HELLO_SRC="${REPO_ROOT}/wasm/testdata/hello.c"
QJS_OUT="${OUT}/qjs.wasm"

log() { printf 'build.sh: %s\n' "$*" >&2; }
die() { printf 'build.sh: error: %s\n' "$*" >&2; exit 1; }

# ---- 1. Debian packages -----------------------------------------------------
pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

ensure_packages() {
    local missing=() p
    for p in "${APT_PACKAGES[@]}"; do
        pkg_installed "$p" || missing+=("$p")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get"
    local need_update=0
    for p in "${missing[@]}"; do
        apt-cache show "$p" >/dev/null 2>&1 || need_update=1
    done
    if [ "$need_update" -eq 1 ]; then
        log "apt-get update (package list lacks one of: ${missing[*]})"
        apt-get update -qq
    fi
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ---- 2. quickjs-ng sdist ------------------------------------------------------
sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

fetch_sdist() {
    local tarball="${CACHE_DIR}/${QJS_SDIST}"
    mkdir -p "${CACHE_DIR}"
    if [ ! -f "${tarball}" ]; then
        log "downloading quickjs-ng==${QJS_VERSION} sdist"
        local tmp
        tmp="$(mktemp -d "${CACHE_DIR}/dl.XXXXXX")"
        "${PYTHON}" -m pip download --quiet --disable-pip-version-check --no-deps \
            --no-binary :all: "quickjs-ng==${QJS_VERSION}" -d "${tmp}" >&2 \
            || { rm -rf "${tmp}"; die "pip download of quickjs-ng==${QJS_VERSION} failed"; }
        [ -f "${tmp}/${QJS_SDIST}" ] || { rm -rf "${tmp}"; die "pip did not produce ${QJS_SDIST}"; }
        mv "${tmp}/${QJS_SDIST}" "${tarball}"
        rm -rf "${tmp}"
    fi
    local got
    got="$(sha256_of "${tarball}")"
    if [ "${got}" != "${QJS_SHA256}" ]; then
        die "sha256 mismatch for ${tarball}
  expected ${QJS_SHA256}
  got      ${got}
Refusing to build from an unverified source. Delete the file to download it again,
or, if the new upstream artifact is intended, update QJS_VERSION/QJS_SHA256 in ${SCRIPT_PATH}."
    fi
    SDIST="${tarball}"
    SRC_DIR="${CACHE_DIR}/quickjs_ng-${QJS_VERSION}/upstream-quickjs"
    local stamp="${CACHE_DIR}/quickjs_ng-${QJS_VERSION}/.extracted-${QJS_SHA256}"
    if [ ! -f "${stamp}" ]; then
        rm -rf "${CACHE_DIR}/quickjs_ng-${QJS_VERSION}"
        tar -xzf "${tarball}" -C "${CACHE_DIR}"
        [ -f "${SRC_DIR}/quickjs.c" ] || die "unexpected sdist layout: no ${SRC_DIR}/quickjs.c"
        touch "${stamp}"
    fi
}

# ---- 3. compile ---------------------------------------------------------------
# up_to_date OUTPUT INPUT...: true when OUTPUT exists and is newer than every input.
up_to_date() {
    local out="$1" in
    shift
    [ "${FORCE}" = "1" ] && return 1
    [ -f "${out}" ] || return 1
    for in in "$@"; do
        [ "${out}" -nt "${in}" ] || return 1
    done
    return 0
}

# Pinned feature set (not clang's moving "generic" default): MVP plus the
# widely supported post-MVP features that WasmKit and wasmtime both accept.
WASM_FEATURES=(-mcpu=mvp -mmutable-globals -msign-ext -mnontrapping-fptoint -mbulk-memory)
CFLAGS=(--target=wasm32-wasi --sysroot=/usr "${WASM_FEATURES[@]}" -O2 -std=gnu11
        -D_GNU_SOURCE -DNDEBUG -Wno-unused-command-line-argument)
# Headers come from clang's own resource dir; only the link needs Debian's
# llvm-19 resource dir (its wasm32 builtins; it ships no include/ unless
# libclang-common-19-dev is installed).
LDFLAGS=(--target=wasm32-wasi --sysroot=/usr -resource-dir "${RT_RESOURCE_DIR}"
         -Wl,-z,stack-size="${WASM_STACK_SIZE}" -Wl,--stack-first
         # The only mutable global, exported so a host that reuses an instance (the WASM lane's
         # warm pool) can reset it together with linear memory between runs.
         -Wl,--export=__stack_pointer)

build_qjs() {
    local inputs=("${SDIST}" "${DRIVER}" "${SCRIPT_PATH}")
    if up_to_date "${QJS_OUT}" "${inputs[@]}"; then
        log "up to date: ${QJS_OUT}"
        return 0
    fi
    local obj="${OUT}/obj/quickjs"
    mkdir -p "${obj}"
    local srcs=("${SRC_DIR}/quickjs.c" "${SRC_DIR}/libregexp.c" "${SRC_DIR}/libunicode.c"
                "${SRC_DIR}/dtoa.c" "${DRIVER}")
    [ -f "${SRC_DIR}/cutils.c" ] && srcs+=("${SRC_DIR}/cutils.c")
    local start=${SECONDS} pids=() objs=() s o
    log "compiling qjs.wasm (quickjs-ng ${QJS_VERSION}; ~30 s)"
    # quickjs.c dominates; start it first and compile the rest beside it.
    for s in "${srcs[@]}"; do
        o="${obj}/$(basename "${s%.c}").o"
        objs+=("${o}")
        "${CLANG}" "${CFLAGS[@]}" -I"${SRC_DIR}" -DSBX_WASM_STACK_SIZE="${WASM_STACK_SIZE}" \
            -c "${s}" -o "${o}" &
        pids+=($!)
    done
    local failed=0 p
    for p in "${pids[@]}"; do wait "${p}" || failed=1; done
    [ "${failed}" -eq 0 ] || die "compilation failed"
    # Link inside obj/ and move into place, so a failed link never leaves a
    # half-written module that looks up to date.
    "${CLANG}" "${LDFLAGS[@]}" "${objs[@]}" -lm -o "${obj}/qjs.wasm"
    mv -f "${obj}/qjs.wasm" "${QJS_OUT}"
    log "built ${QJS_OUT} ($(stat -c %s "${QJS_OUT}") bytes, $((SECONDS - start)) s)"
}

# build_testdata: every wasm/testdata/NAME.c (hello.c, fsattack.c, ...) -> ${OUT}/NAME.wasm
build_testdata() {
    local src name out
    mkdir -p "${OUT}/obj"
    for src in "${REPO_ROOT}"/wasm/testdata/*.c; do
        name="$(basename "${src%.c}")"
        out="${OUT}/${name}.wasm"
        if up_to_date "${out}" "${src}" "${SCRIPT_PATH}"; then
            log "up to date: ${out}"
            continue
        fi
        "${CLANG}" "${CFLAGS[@]}" -c "${src}" -o "${OUT}/obj/${name}.o"
        "${CLANG}" "${LDFLAGS[@]}" "${OUT}/obj/${name}.o" -o "${OUT}/obj/${name}.wasm"
        mv -f "${OUT}/obj/${name}.wasm" "${out}"
        log "built ${out} ($(stat -c %s "${out}") bytes)"
    done
}

# install_beside_binaries: copies qjs.wasm next to the built sandboxer binaries
# (only when missing or different, atomically), where QuickJS.locate() finds it.
install_beside_binaries() {
    local dirs dir
    if [ -n "${SANDBOXER_QJS_INSTALL_DIRS:-}" ]; then
        IFS=: read -r -a dirs <<< "${SANDBOXER_QJS_INSTALL_DIRS}"
    else
        dirs=("${REPO_ROOT}/.build/debug" "${REPO_ROOT}/.build/release")
    fi
    for dir in "${dirs[@]}"; do
        [ -d "${dir}" ] || continue
        if cmp -s "${QJS_OUT}" "${dir}/qjs.wasm"; then continue; fi
        cp -f "${QJS_OUT}" "${dir}/.qjs.wasm.tmp" && chmod 0644 "${dir}/.qjs.wasm.tmp"
        mv -f "${dir}/.qjs.wasm.tmp" "${dir}/qjs.wasm"
        log "installed ${dir}/qjs.wasm"
    done
}

main() {
    [ -x "${CLANG}" ] || die "clang not found at ${CLANG} (set SANDBOXER_WASM_CLANG=...)"
    [ -f "${DRIVER}" ] || die "missing ${DRIVER}"
    [ -f "${HELLO_SRC}" ] || die "missing ${HELLO_SRC}"
    ensure_packages
    [ -f "${RT_RESOURCE_DIR}/lib/wasi/libclang_rt.builtins-wasm32.a" ] \
        || die "wasm32 builtins missing under ${RT_RESOURCE_DIR} (package libclang-rt-19-dev-wasm32)"
    [ -f /usr/lib/wasm32-wasi/libc.a ] || die "wasi-libc missing (/usr/lib/wasm32-wasi/libc.a)"
    mkdir -p "${OUT}"
    fetch_sdist
    build_testdata
    build_qjs
    install_beside_binaries
}

main "$@"

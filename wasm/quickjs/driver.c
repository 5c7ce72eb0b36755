/*
 * qjs driver for sandboxer: a WASI preview1 command that runs one JavaScript
 * program with QuickJS (quickjs-ng) and exposes a deliberately small set of
 * globals.  See README.md next to this file for the CLI, the host ABI and the
 * exit codes.
 *
 *   qjs [--mem-limit BYTES] [--stack-limit BYTES] (-e CODE | FILE) [args...]
 *
 * Globals: console.{log,info,warn,error}, print, scriptArgs, readStdin(),
 *          exit(n), tools.call(name, args).
 *
 * Exit codes: 0 ok, 1 uncaught exception / syntax error / unhandled promise
 *             rejection, 2 usage or I/O error (bad option, unreadable FILE),
 *             3 out of memory, n for exit(n).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "quickjs.h"

#define EXIT_OK 0
#define EXIT_EXCEPTION 1
#define EXIT_USAGE 2
#define EXIT_OOM 3

/* Size of the wasm shadow (C) stack in linear memory; build.sh passes the
 * same number to the linker as -z stack-size. */
#ifndef SBX_WASM_STACK_SIZE
#define SBX_WASM_STACK_SIZE (2 * 1024 * 1024)
#endif
/* Headroom kept between QuickJS's own stack check and the real end of the
 * shadow stack, for C frames that run below the last check. */
#define STACK_MARGIN (256 * 1024)
#define MAX_JS_STACK ((size_t)SBX_WASM_STACK_SIZE - STACK_MARGIN)
#define DEFAULT_JS_STACK ((size_t)1024 * 1024 < MAX_JS_STACK ? (size_t)1024 * 1024 : MAX_JS_STACK)

/* ---- host import ------------------------------------------------------- */

/*
 * Ask the host to run an approved tool.  The host MUST provide this import
 * (module "sandboxer", name "tool_call") for the module to instantiate, even
 * if it never approves any tool: a stub that writes {"error":"no tools"} and
 * returns its negated length is enough.  The driver only calls it when the
 * script calls tools.call().
 *
 * Return value r:
 *   r >= 0  success; r is the length of the JSON result.  If r <= out_cap the
 *           result is in out[0..r).  If r > out_cap nothing useful was
 *           written and the driver repeats the identical call once with
 *           out_cap == r (the host should hand back the result it kept rather
 *           than run the tool a second time).
 *   r <  0  error; -r is the length of an error JSON such as
 *           {"error":"message"} written to out (clipped to out_cap).
 */
__attribute__((import_module("sandboxer"), import_name("tool_call")))
int32_t sbx_tool_call(const char *name, int32_t name_len,
                      const char *args_json, int32_t args_len,
                      char *out, int32_t out_cap);

#define TOOL_BUF_INITIAL (64 * 1024)

/* ---- state ------------------------------------------------------------- */

static size_t g_mem_limit; /* 0 = none */
static JSValue g_format = JS_UNDEFINED; /* bootstrap's value formatter */

/* Set by preinit(): the runtime, the context with every intrinsic, and the
 * compiled bootstrap.  A host may call the exported sbx_preinit() once and
 * snapshot linear memory afterwards; every run then starts from that state
 * and main() skips the work (see "pre-initialisation" in README.md). */
static JSRuntime *g_rt;
static JSContext *g_ctx;
static JSValue g_bootstrap = JS_UNDEFINED;

/* Math.random's state: seeded from WASI random_get in every run, so runs
 * started from one snapshot never share a sequence. */
static uint64_t g_rng[2];

typedef struct {
    JSValue promise;
    JSValue reason;
} Rejection;

static Rejection *g_rejections;
static size_t g_rej_len, g_rej_cap;

/* ---- helpers ----------------------------------------------------------- */

static void flush_all(void)
{
    fflush(stdout);
    fflush(stderr);
}

static _Noreturn void die_oom(void)
{
    fputs("InternalError: out of memory\n", stderr);
    flush_all();
    exit(EXIT_OOM);
}

static int parse_size(const char *s, size_t *out)
{
    char *end;
    unsigned long long v;
    if (!s || !*s || *s == '-')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -1;
    switch (*end) {
    case 'k': case 'K': v <<= 10; end++; break;
    case 'm': case 'M': v <<= 20; end++; break;
    case 'g': case 'G': v <<= 30; end++; break;
    default: break;
    }
    if (*end == 'b' || *end == 'B')
        end++;
    if (*end)
        return -1;
    if (v > SIZE_MAX)
        v = SIZE_MAX;
    *out = (size_t)v;
    return 0;
}

/* Reads a whole stream; returns malloc'ed buffer (NUL-terminated) or NULL
 * with errno set.  ENOMEM means out of memory. */
static char *read_all(FILE *f, size_t *plen)
{
    size_t cap = 8192, len = 0;
    char *buf = malloc(cap), *nb;
    if (!buf) {
        errno = ENOMEM;
        return NULL;
    }
    for (;;) {
        size_t n;
        if (cap - len < 4096) {
            if (cap > SIZE_MAX / 2) {
                free(buf);
                errno = ENOMEM;
                return NULL;
            }
            nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                errno = ENOMEM;
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
        n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0) {
            if (ferror(f)) {
                int e = errno ? errno : EIO;
                free(buf);
                errno = e;
                return NULL;
            }
            break;
        }
    }
    buf[len] = '\0';
    *plen = len;
    return buf;
}

/* Prints a JS string value (or a fallback) to f. */
static void put_value(JSContext *ctx, FILE *f, JSValueConst v, const char *fallback)
{
    size_t len;
    const char *s = JS_ToCStringLen(ctx, &len, v);
    if (s) {
        fwrite(s, 1, len, f);
        JS_FreeCString(ctx, s);
    } else {
        JSValue e = JS_GetException(ctx);
        JS_FreeValue(ctx, e);
        fputs(fallback, f);
    }
}

static int str_prop_equals(JSContext *ctx, JSValueConst obj, const char *prop, const char *want)
{
    JSValue v = JS_GetPropertyStr(ctx, obj, prop);
    int eq = 0;
    if (JS_IsString(v)) {
        const char *s = JS_ToCString(ctx, v);
        if (s) {
            eq = strcmp(s, want) == 0;
            JS_FreeCString(ctx, s);
        }
    }
    if (JS_IsException(v)) {
        JSValue e = JS_GetException(ctx);
        JS_FreeValue(ctx, e);
    }
    JS_FreeValue(ctx, v);
    return eq;
}

static int is_oom(JSContext *ctx, JSValueConst exc)
{
    if (JS_IsError(exc))
        return str_prop_equals(ctx, exc, "name", "InternalError") &&
               str_prop_equals(ctx, exc, "message", "out of memory");
    /* QuickJS throws null when it cannot even allocate the InternalError. */
    return JS_IsNull(exc) && g_mem_limit != 0;
}

/* Prints an uncaught exception to stderr; returns the exit code to use. */
static int report_exception(JSContext *ctx, JSValueConst exc, const char *prefix)
{
    int oom = is_oom(ctx, exc);
    if (oom) {
        /* Lift the limit so that printing can allocate. */
        JS_SetMemoryLimit(JS_GetRuntime(ctx), 0);
        fprintf(stderr, "%sInternalError: out of memory\n", prefix);
        flush_all();
        return EXIT_OOM;
    }
    if (JS_IsError(exc)) {
        JSValue stack = JS_GetPropertyStr(ctx, exc, "stack");
        size_t mlen = 0, slen = 0;
        const char *msg = JS_ToCStringLen(ctx, &mlen, exc);
        const char *st = NULL;
        if (JS_IsString(stack))
            st = JS_ToCStringLen(ctx, &slen, stack);
        fputs(prefix, stderr);
        /* quickjs-ng's stack may already start with "Name: message". */
        if (msg && !(st && slen >= mlen && memcmp(st, msg, mlen) == 0)) {
            fwrite(msg, 1, mlen, stderr);
            fputc('\n', stderr);
        } else if (!msg && !st) {
            fputs("Error (unprintable)\n", stderr);
        }
        if (st && slen) {
            fwrite(st, 1, slen, stderr);
            if (st[slen - 1] != '\n')
                fputc('\n', stderr);
        }
        if (msg)
            JS_FreeCString(ctx, msg);
        if (st)
            JS_FreeCString(ctx, st);
        JS_FreeValue(ctx, stack);
        if (JS_HasException(ctx)) {
            JSValue e = JS_GetException(ctx);
            JS_FreeValue(ctx, e);
        }
    } else {
        fputs(*prefix ? prefix : "Uncaught ", stderr);
        if (JS_IsFunction(ctx, g_format)) {
            JSValue s = JS_Call(ctx, g_format, JS_UNDEFINED, 1, &exc);
            if (JS_IsException(s)) {
                JSValue e = JS_GetException(ctx);
                JS_FreeValue(ctx, e);
                put_value(ctx, stderr, exc, "(unprintable value)");
            } else {
                put_value(ctx, stderr, s, "(unprintable value)");
            }
            JS_FreeValue(ctx, s);
        } else {
            put_value(ctx, stderr, exc, "(unprintable value)");
        }
        fputc('\n', stderr);
    }
    flush_all();
    return EXIT_EXCEPTION;
}

static int report_pending_exception(JSContext *ctx)
{
    JSValue exc = JS_GetException(ctx);
    int code = report_exception(ctx, exc, "");
    JS_FreeValue(ctx, exc);
    return code;
}

/* ---- unhandled promise rejections -------------------------------------- */

static void rejection_tracker(JSContext *ctx, JSValueConst promise,
                              JSValueConst reason, bool is_handled, void *opaque)
{
    size_t i;
    (void)opaque;
    if (is_handled) {
        for (i = 0; i < g_rej_len; i++) {
            if (JS_VALUE_GET_PTR(g_rejections[i].promise) == JS_VALUE_GET_PTR(promise)) {
                JS_FreeValue(ctx, g_rejections[i].promise);
                JS_FreeValue(ctx, g_rejections[i].reason);
                g_rejections[i] = g_rejections[--g_rej_len];
                return;
            }
        }
        return;
    }
    if (g_rej_len == g_rej_cap) {
        size_t nc = g_rej_cap ? g_rej_cap * 2 : 8;
        Rejection *nr = realloc(g_rejections, nc * sizeof(*nr));
        if (!nr)
            die_oom();
        g_rejections = nr;
        g_rej_cap = nc;
    }
    g_rejections[g_rej_len].promise = JS_DupValue(ctx, promise);
    g_rejections[g_rej_len].reason = JS_DupValue(ctx, reason);
    g_rej_len++;
}

/* ---- native functions handed to the bootstrap -------------------------- */

/* __write(fd, string): fd 1 = stdout, anything else = stderr; adds "\n". */
static JSValue js_write(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    int32_t fd = 1;
    size_t len;
    const char *s;
    FILE *f;
    (void)this_val;
    if (argc < 2)
        return JS_UNDEFINED;
    if (JS_ToInt32(ctx, &fd, argv[0]))
        return JS_EXCEPTION;
    s = JS_ToCStringLen(ctx, &len, argv[1]);
    if (!s)
        return JS_EXCEPTION;
    f = fd == 1 ? stdout : stderr;
    fwrite(s, 1, len, f);
    fputc('\n', f);
    fflush(f);
    JS_FreeCString(ctx, s);
    return JS_UNDEFINED;
}

/* __readStdin(): all of stdin as a string ("" when stdin is absent). */
static JSValue js_read_stdin(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    size_t len = 0;
    char *buf;
    JSValue ret;
    (void)this_val; (void)argc; (void)argv;
    buf = read_all(stdin, &len);
    if (!buf) {
        if (errno == ENOMEM)
            return JS_ThrowOutOfMemory(ctx);
        /* no stdin at all (EBADF etc.): behave like an empty stream */
        clearerr(stdin);
        return JS_NewStringLen(ctx, "", 0);
    }
    ret = JS_NewStringLen(ctx, buf, len);
    free(buf);
    return ret;
}

/* __exit(code) */
static JSValue js_exit(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    int32_t code = 0;
    (void)this_val;
    if (argc > 0 && !JS_IsUndefined(argv[0]) && JS_ToInt32(ctx, &code, argv[0]))
        return JS_EXCEPTION;
    flush_all();
    exit(code & 0xff);
}

/* __toolCall(name, argsJson) -> [status, resultJson] */
static JSValue js_tool_call(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    size_t nlen, alen;
    const char *name, *args;
    int32_t cap = TOOL_BUF_INITIAL, r, len;
    char *buf;
    JSValue arr;
    (void)this_val;
    if (argc < 2)
        return JS_ThrowTypeError(ctx, "__toolCall: 2 arguments expected");
    name = JS_ToCStringLen(ctx, &nlen, argv[0]);
    if (!name)
        return JS_EXCEPTION;
    args = JS_ToCStringLen(ctx, &alen, argv[1]);
    if (!args) {
        JS_FreeCString(ctx, name);
        return JS_EXCEPTION;
    }
    if (nlen > INT32_MAX || alen > INT32_MAX) {
        JS_FreeCString(ctx, name);
        JS_FreeCString(ctx, args);
        return JS_ThrowRangeError(ctx, "tools.call: arguments too large");
    }
    buf = malloc((size_t)cap);
    if (!buf)
        goto oom;
    r = sbx_tool_call(name, (int32_t)nlen, args, (int32_t)alen, buf, cap);
    if (r > cap) {
        /* Result did not fit: repeat the identical call with a buffer that
         * large. */
        char *nb = realloc(buf, (size_t)r);
        if (!nb)
            goto oom;
        buf = nb;
        cap = r;
        r = sbx_tool_call(name, (int32_t)nlen, args, (int32_t)alen, buf, cap);
        if (r > cap) {
            free(buf);
            JS_FreeCString(ctx, name);
            JS_FreeCString(ctx, args);
            return JS_ThrowInternalError(ctx, "tools.call: host result grew between retries");
        }
    }
    if (r >= 0)
        len = r;
    else if (r == INT32_MIN)
        len = cap;
    else
        len = -r < cap ? -r : cap;
    JS_FreeCString(ctx, name);
    JS_FreeCString(ctx, args);
    arr = JS_NewArray(ctx);
    if (JS_IsException(arr)) {
        free(buf);
        return arr;
    }
    JS_SetPropertyUint32(ctx, arr, 0, JS_NewInt32(ctx, r));
    JS_SetPropertyUint32(ctx, arr, 1, JS_NewStringLen(ctx, buf, (size_t)len));
    free(buf);
    return arr;
oom:
    free(buf);
    JS_FreeCString(ctx, name);
    JS_FreeCString(ctx, args);
    return JS_ThrowOutOfMemory(ctx);
}

/* ---- bootstrap ---------------------------------------------------------
 * Installs the globals.  The native helpers are passed in as arguments so
 * that they are not reachable from user code except through the wrappers.
 * Returns the value formatter used for reporting non-Error exceptions.
 */
static const char bootstrap_src[] =
    "(function (write, toolCall, readStdin, exit, args) {\n"
    "  'use strict';\n"
    "  const stringify = JSON.stringify, parse = JSON.parse;\n"
    "  const objToString = Object.prototype.toString;\n"
    "  const ErrorCtor = Error, TypeErrorCtor = TypeError, StringCtor = String;\n"
    "  const define = Object.defineProperty, freeze = Object.freeze;\n"
    "  function fmt(v) {\n"
    "    switch (typeof v) {\n"
    "    case 'string': return v;\n"
    "    case 'function': return '[Function: ' + (v.name || '(anonymous)') + ']';\n"
    "    case 'symbol': return v.toString();\n"
    "    case 'object':\n"
    "      if (v === null) return 'null';\n"
    "      if (v instanceof ErrorCtor) {\n"
    "        let s;\n"
    "        try { s = StringCtor(v); } catch (e) { s = 'Error'; }\n"
    "        const st = v.stack;\n"
    "        if (typeof st === 'string' && st.length) {\n"
    "          if (st.startsWith(s)) return st.endsWith('\\n') ? st.slice(0, -1) : st;\n"
    "          return s + '\\n' + (st.endsWith('\\n') ? st.slice(0, -1) : st);\n"
    "        }\n"
    "        return s;\n"
    "      }\n"
    "      try { const j = stringify(v); if (j !== undefined) return j; } catch (e) {}\n"
    "      try { return objToString.call(v); } catch (e) { return '[object]'; }\n"
    "    default: return StringCtor(v);\n"
    "    }\n"
    "  }\n"
    "  function joinArgs(a) {\n"
    "    let s = '';\n"
    "    for (let i = 0; i < a.length; i++) s += (i ? ' ' : '') + fmt(a[i]);\n"
    "    return s;\n"
    "  }\n"
    "  const out = function (...a) { write(1, joinArgs(a)); };\n"
    "  const err = function (...a) { write(2, joinArgs(a)); };\n"
    "  const console = { log: out, info: out, warn: err, error: err };\n"
    "  const tools = {\n"
    "    call(name, callArgs) {\n"
    "      if (typeof name !== 'string' || name === '')\n"
    "        throw new TypeErrorCtor('tools.call: name must be a non-empty string');\n"
    "      const json = callArgs === undefined ? '{}' : stringify(callArgs);\n"
    "      if (typeof json !== 'string')\n"
    "        throw new TypeErrorCtor('tools.call: args must be JSON-serialisable');\n"
    "      const r = toolCall(name, json);\n"
    "      const status = r[0], text = r[1];\n"
    "      let result, parsed = false;\n"
    "      if (text.length) { try { result = parse(text); parsed = true; } catch (e) {} }\n"
    "      if (status < 0) {\n"
    "        const msg = parsed && result !== null && typeof result === 'object' &&\n"
    "                    typeof result.error === 'string' ? result.error\n"
    "                    : 'tools.call(' + name + ') failed with status ' + status;\n"
    "        const e = new ErrorCtor(msg);\n"
    "        e.status = status;\n"
    "        if (parsed) e.result = result;\n"
    "        throw e;\n"
    "      }\n"
    "      if (text.length && !parsed)\n"
    "        throw new ErrorCtor('tools.call(' + name + '): host returned invalid JSON');\n"
    "      return result;\n"
    "    }\n"
    "  };\n"
    "  const g = globalThis;\n"
    "  const ro = (k, v) => define(g, k, { value: v, writable: true, configurable: true, enumerable: false });\n"
    "  ro('console', freeze(console));\n"
    "  ro('print', out);\n"
    "  ro('tools', freeze(tools));\n"
    "  ro('scriptArgs', args);\n"
    "  ro('readStdin', function readStdin_() { return readStdin(); });\n"
    "  ro('exit', function exit_(code) { exit(code === undefined ? 0 : code); });\n"
    "  return fmt;\n"
    "})\n";

/* xorshift128+, 53 random bits per number like QuickJS's own Math.random. */
static JSValue js_math_random(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    uint64_t s1 = g_rng[0];
    const uint64_t s0 = g_rng[1];
    (void)this_val; (void)argc; (void)argv;
    g_rng[0] = s0;
    s1 ^= s1 << 23;
    g_rng[1] = s1 ^ s0 ^ (s1 >> 18) ^ (s0 >> 5);
    return JS_NewFloat64(ctx, (double)((g_rng[1] + s0) >> 11) * 0x1.0p-53);
}

/* Per-run state that a snapshot must not fix: the random seed and
 * performance.now()'s origin. */
static int reseed(JSContext *ctx, int from_snapshot)
{
    JSValue global, math;
    int r;
    if (getentropy(g_rng, sizeof(g_rng)) != 0 || (g_rng[0] | g_rng[1]) == 0) {
        g_rng[0] = 0x9E3779B97F4A7C15ull ^ (uint64_t)time(NULL);
        g_rng[1] = 0xD1B54A32D192ED03ull;
    }
    global = JS_GetGlobalObject(ctx);
    math = JS_GetPropertyStr(ctx, global, "Math");
    JS_FreeValue(ctx, global);
    if (JS_IsException(math))
        return -1;
    r = JS_DefinePropertyValueStr(ctx, math, "random", JS_NewCFunction(ctx, js_math_random, "random", 0),
                                  JS_PROP_WRITABLE | JS_PROP_CONFIGURABLE);
    JS_FreeValue(ctx, math);
    if (r < 0)
        return -1;
    return from_snapshot ? JS_AddPerformance(ctx) : 0;
}

/* The argument-independent start-up: runtime, context, compiled bootstrap. */
static int preinit(void)
{
    if (g_rt)
        return 0;
    g_rt = JS_NewRuntime();
    if (!g_rt)
        return -1;
    JS_SetHostPromiseRejectionTracker(g_rt, rejection_tracker, NULL);
    g_ctx = JS_NewContext(g_rt);
    if (!g_ctx)
        return -1;
    g_bootstrap = JS_Eval(g_ctx, bootstrap_src, sizeof(bootstrap_src) - 1, "<bootstrap>", JS_EVAL_TYPE_GLOBAL);
    return JS_IsException(g_bootstrap) ? -1 : 0;
}

/* Exported for hosts that snapshot linear memory after start-up (a Wizer-
 * style pre-initialisation): returns 0 on success.  Nothing here may depend
 * on arguments, environment, stdin, the clock or randomness of a run. */
__attribute__((export_name("sbx_preinit")))
int32_t sbx_preinit(void)
{
    return preinit() == 0 ? 0 : 1;
}

static int install_globals(JSContext *ctx, int argc, char **argv)
{
    JSValue fn = g_bootstrap, ret, args, params[5];
    int i;
    g_bootstrap = JS_UNDEFINED;
    if (!JS_IsFunction(ctx, fn))
        return -1;
    args = JS_NewArray(ctx);
    if (JS_IsException(args)) {
        JS_FreeValue(ctx, fn);
        return -1;
    }
    for (i = 0; i < argc; i++)
        JS_SetPropertyUint32(ctx, args, (uint32_t)i, JS_NewString(ctx, argv[i]));
    params[0] = JS_NewCFunction(ctx, js_write, "write", 2);
    params[1] = JS_NewCFunction(ctx, js_tool_call, "toolCall", 2);
    params[2] = JS_NewCFunction(ctx, js_read_stdin, "readStdin", 0);
    params[3] = JS_NewCFunction(ctx, js_exit, "exit", 1);
    params[4] = args;
    ret = JS_Call(ctx, fn, JS_UNDEFINED, 5, (JSValueConst *)params);
    for (i = 0; i < 5; i++)
        JS_FreeValue(ctx, params[i]);
    JS_FreeValue(ctx, fn);
    if (JS_IsException(ret))
        return -1;
    g_format = ret;
    return 0;
}

/* ---- main -------------------------------------------------------------- */

static _Noreturn void usage(const char *msg)
{
    if (msg)
        fprintf(stderr, "qjs: %s\n", msg);
    fputs("usage: qjs [--mem-limit BYTES] [--stack-limit BYTES] (-e CODE | FILE) [args...]\n", stderr);
    flush_all();
    exit(EXIT_USAGE);
}

/* Runs queued jobs (promise reactions) until none is left. */
static int run_jobs(JSRuntime *rt)
{
    for (;;) {
        JSContext *jctx;
        int r = JS_ExecutePendingJob(rt, &jctx);
        if (r == 0)
            return EXIT_OK;
        if (r < 0)
            return report_pending_exception(jctx);
    }
}

int main(int argc, char **argv)
{
    size_t mem_limit = 0, stack_limit = DEFAULT_JS_STACK;
    const char *code_arg = NULL, *file = NULL;
    char *code = NULL;
    size_t code_len = 0;
    int i = 1, eval_flags, rc, from_snapshot;
    JSRuntime *rt;
    JSContext *ctx;
    JSValue val;

    while (i < argc) {
        const char *a = argv[i];
        const char *v = NULL;
        size_t n;
        if (!strcmp(a, "--mem-limit") || !strcmp(a, "--stack-limit")) {
            if (i + 1 >= argc)
                usage("missing value for option");
            v = argv[i + 1];
            if (parse_size(v, &n))
                usage("invalid size");
            if (a[2] == 'm')
                mem_limit = n;
            else
                stack_limit = n;
            i += 2;
        } else if (!strncmp(a, "--mem-limit=", 12)) {
            if (parse_size(a + 12, &mem_limit))
                usage("invalid size");
            i++;
        } else if (!strncmp(a, "--stack-limit=", 14)) {
            if (parse_size(a + 14, &stack_limit))
                usage("invalid size");
            i++;
        } else if (!strcmp(a, "-e")) {
            if (i + 1 >= argc)
                usage("missing CODE after -e");
            code_arg = argv[i + 1];
            i += 2;
            break;
        } else if (!strcmp(a, "--")) {
            i++;
            if (i >= argc)
                usage("missing FILE");
            file = argv[i++];
            break;
        } else if (a[0] == '-' && a[1] != '\0') {
            usage("unknown option");
        } else {
            file = a;
            i++;
            break;
        }
    }
    if (!code_arg && !file)
        usage(NULL);
    /* 0 or anything beyond the shadow stack means "as large as is safe". */
    if (stack_limit == 0 || stack_limit > MAX_JS_STACK)
        stack_limit = MAX_JS_STACK;

    if (file) {
        FILE *f = fopen(file, "rb");
        if (!f) {
            fprintf(stderr, "qjs: cannot open %s: %s\n", file, strerror(errno));
            flush_all();
            return EXIT_USAGE;
        }
        code = read_all(f, &code_len);
        if (!code) {
            int e = errno;
            fclose(f);
            if (e == ENOMEM)
                die_oom();
            fprintf(stderr, "qjs: cannot read %s: %s\n", file, strerror(e));
            flush_all();
            return EXIT_USAGE;
        }
        fclose(f);
    } else {
        code_len = strlen(code_arg);
        code = malloc(code_len + 1);
        if (!code)
            die_oom();
        memcpy(code, code_arg, code_len + 1);
    }

    from_snapshot = g_rt != NULL;
    if (preinit())
        die_oom();
    rt = g_rt;
    ctx = g_ctx;
    g_mem_limit = mem_limit;
    if (mem_limit)
        JS_SetMemoryLimit(rt, mem_limit);
    JS_UpdateStackTop(rt);
    JS_SetMaxStackSize(rt, stack_limit);
    if (reseed(ctx, from_snapshot))
        die_oom();
    {
        /* scriptArgs = [script name, args...] like qjs. */
        int nargs = argc - i + 1;
        char **sargs = malloc(sizeof(char *) * (size_t)nargs);
        if (!sargs)
            die_oom();
        sargs[0] = (char *)(file ? file : "<eval>");
        memcpy(sargs + 1, argv + i, sizeof(char *) * (size_t)(nargs - 1));
        if (install_globals(ctx, nargs, sargs)) {
            free(sargs);
            return report_pending_exception(ctx) == EXIT_OOM ? EXIT_OOM : EXIT_USAGE;
        }
        free(sargs);
    }

    eval_flags = JS_EVAL_TYPE_GLOBAL;
    if (file) {
        size_t fl = strlen(file);
        if ((fl > 4 && !strcmp(file + fl - 4, ".mjs")) || JS_DetectModule(code, code_len))
            eval_flags = JS_EVAL_TYPE_MODULE;
    } else if (JS_DetectModule(code, code_len)) {
        eval_flags = JS_EVAL_TYPE_MODULE;
    }

    val = JS_Eval(ctx, code, code_len, file ? file : "<eval>", eval_flags);
    free(code);
    if (JS_IsException(val)) {
        rc = report_pending_exception(ctx);
        flush_all();
        return rc;
    }
    rc = run_jobs(rt);
    if (rc != EXIT_OK) {
        JS_FreeValue(ctx, val);
        return rc;
    }
    /* A module evaluates to a promise: report its rejection. */
    if (JS_IsPromise(val) && JS_PromiseState(ctx, val) == JS_PROMISE_REJECTED) {
        JSValue reason = JS_PromiseResult(ctx, val);
        rc = report_exception(ctx, reason, "");
        JS_FreeValue(ctx, reason);
        JS_FreeValue(ctx, val);
        return rc;
    }
    JS_FreeValue(ctx, val);
    if (g_rej_len) {
        rc = report_exception(ctx, g_rejections[0].reason, "Uncaught (in promise) ");
        return rc == EXIT_OOM ? EXIT_OOM : EXIT_EXCEPTION;
    }
    flush_all();
    /* The runtime is not freed: the process ends here and freeing a large
     * heap would only cost time. */
    return EXIT_OK;
}

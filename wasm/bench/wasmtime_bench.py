#!/usr/bin/env python3
"""Runs the WASM lane's benchmark workloads (see Sources/BackendWasm/WasmBench.swift) on the same
qjs.wasm under wasmtime (PyPI), for comparison. Prints medians in ms.

    python3 wasm/bench/wasmtime_bench.py [--iterations 20] [--qjs .build-wasm/qjs.wasm]
"""
import argparse, os, statistics, subprocess, sys, tempfile, time

try:
    import wasmtime
except ImportError:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", "wasmtime"])
    import wasmtime

WORKLOADS = [
    ("hello", 'console.log("hello")'),
    ("fib25", "function fib(n) { return n < 2 ? n : fib(n - 1) + fib(n - 2) } console.log(fib(25))"),
    ("sort100k", "const a = []; let x = 1; for (let i = 0; i < 100000; i++) { x = (x * 1103515245 + 12345) % 2147483648; a.push(x) } a.sort((p, q) => p - q); console.log(a[0], a[99999])"),
]


def run_once(engine, module, code, out_path):
    store = wasmtime.Store(engine)
    wasi = wasmtime.WasiConfig()
    wasi.argv = ["qjs", "-e", code]
    wasi.stdout_file = out_path
    store.set_wasi(wasi)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    def tool_call(*args):
        return -1
    ty = wasmtime.FuncType([wasmtime.ValType.i32()] * 6, [wasmtime.ValType.i32()])
    linker.define_func("sandboxer", "tool_call", ty, tool_call)
    inst = linker.instantiate(store, module)
    try:
        inst.exports(store)["_start"](store)
    except wasmtime.ExitTrap as e:
        if e.code != 0:
            raise


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--qjs", default=os.path.join(os.path.dirname(__file__), "..", "..", ".build-wasm", "qjs.wasm"))
    a = ap.parse_args()
    engine = wasmtime.Engine()
    t = time.perf_counter()
    module = wasmtime.Module.from_file(engine, a.qjs)
    compile_ms = (time.perf_counter() - t) * 1000
    out = tempfile.NamedTemporaryFile(delete=False).name
    print(f"wasmtime {wasmtime.__version__ if hasattr(wasmtime, '__version__') else ''}: module compile {compile_ms:.1f} ms (once)")
    print("| workload | wasmtime p50 ms (compiled module, new store+instance per run) |")
    print("|---|---:|")
    for name, code in WORKLOADS:
        run_once(engine, module, code, out)
        samples = []
        for _ in range(a.iterations):
            t = time.perf_counter()
            run_once(engine, module, code, out)
            samples.append((time.perf_counter() - t) * 1000)
        print(f"| {name} | {statistics.median(samples):.2f} |")
    with open(out) as f:
        last = f.read().strip()
    os.unlink(out)
    print(f"(last output: {last})")


if __name__ == "__main__":
    main()

import Foundation
import SandboxCore

/// The WASM backend's benchmark (`sandboxer bench` calls it): QuickJS hello-world, fib(25) and sorting
/// 100k numbers, each in-process cold (module parsed and instance built per run), in-process
/// cached (parsed module, fresh instance), in-process warm (reused reset instance, the default)
/// and in a worker process. Prints a Markdown table of medians.
public enum WasmBench {
    /// The JavaScript workloads, by name (also used by `wasm/bench/wasmtime_bench.py`).
    public static let workloads: [(name: String, code: String)] = [
        ("hello", #"console.log("hello")"#),
        ("fib25", "function fib(n) { return n < 2 ? n : fib(n - 1) + fib(n - 2) } console.log(fib(25))"),
        ("sort100k", "const a = []; let x = 1; for (let i = 0; i < 100000; i++) { x = (x * 1103515245 + 12345) % 2147483648; a.push(x) } a.sort((p, q) => p - q); console.log(a[0], a[99999])"),
    ]

    /// Runs every workload `iterations` times per mode.
    /// - Parameters:
    ///   - quickJSModule: `qjs.wasm`; nil = ``QuickJS/locate()``.
    ///   - workerExecutable: a `sandboxer` binary for the worker-process mode; nil skips that mode.
    public static func run(iterations: Int = 20, quickJSModule: String? = nil, workerExecutable: String? = nil) async -> String {
        let spec = SandboxSpec(profile: Profile(name: "bench", isolation: .wasm, limits: Limits(timeout: .seconds(120))))
        var modes: [(String, WasmBackend.Configuration, Bool)] = [
            ("in-process cold (parse + instantiate each run)", .init(quickJSModule: quickJSModule, reuseInstances: false), true),
            ("in-process cached module, fresh instance", .init(quickJSModule: quickJSModule, reuseInstances: false), false),
            ("in-process warm (cached module, reused instance)", .init(quickJSModule: quickJSModule, reuseInstances: true), false),
        ]
        if let workerExecutable {
            modes.append(("worker process", .init(quickJSModule: quickJSModule, mode: .worker(executable: workerExecutable)), false))
        }
        var lines = ["| mode | " + workloads.map { "\($0.name) p50 ms" }.joined(separator: " | ") + " |",
                     "|---|" + workloads.map { _ in "---:" }.joined(separator: "|") + "|"]
        for (label, config, flush) in modes {
            let backend = WasmBackend(configuration: config)
            var cells: [String] = []
            for w in workloads {
                let request = ExecRequest(argv: [], code: Array(w.code.utf8), codeFileName: "bench.js")
                _ = try? await backend.run(spec, request, output: nil)  // warm-up
                var samples: [Double] = []
                let n = flush ? max(3, iterations / 4) : iterations
                for _ in 0..<n {
                    if flush { WasmRuntime.shared.flush() }
                    let t = ContinuousClock.now
                    let r = try? await backend.run(spec, request, output: nil)
                    let ms = (ContinuousClock.now - t).milliseconds
                    if r?.outcome == .ok { samples.append(ms) }
                }
                cells.append(samples.isEmpty ? "failed" : String(format: "%.2f", median(samples)))
            }
            lines.append("| \(label) | " + cells.joined(separator: " | ") + " |")
        }
        return lines.joined(separator: "\n")
    }

    static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}

import BackendWasm
import Foundation
import SandboxCore
import Synchronization
import Testing

@Suite("WASM backend: JavaScript under QuickJS", .serialized, .wasmModules())
struct JavaScriptTests {
    @Test func sortsAndPrints() async throws {
        let r = try await Fixtures.backend().run(Fixtures.spec(), Fixtures.js(#"console.log([3,1,2].sort().join(","))"#), output: nil)
        #expect(r.outcome == .ok)
        #expect(r.exitCode == 0)
        #expect(r.stdout == "1,2,3\n")
    }

    @Test func scriptArgsStdinAndExitCode() async throws {
        let code = #"console.log(scriptArgs.slice(1).join("+"), readStdin().trim()); exit(5)"#
        let r = try await Fixtures.backend().run(
            Fixtures.spec(), Fixtures.js(code, args: ["a", "b"], stdin: .bytes(Array("{\"x\":1}".utf8))), output: nil)
        #expect(r.stdout == "a+b {\"x\":1}\n")
        #expect(r.outcome == .exitNonzero)
        #expect(r.exitCode == 5)
    }

    @Test func reusedInstancesDoNotShareState() async throws {
        let backend = Fixtures.backend()
        let code = #"console.log(typeof globalThis.leak); globalThis.leak = 1"#
        for _ in 0..<3 {
            let r = try await backend.run(Fixtures.spec(), Fixtures.js(code), output: nil)
            #expect(r.stdout == "undefined\n")
        }
    }

    /// Runs start from a snapshot taken after QuickJS's start-up (`sbx_preinit`); what must differ
    /// per run still does: Math.random's sequence and performance.now()'s origin. The clock check
    /// is relative, not timed: performance.now() cannot exceed the run's own wall time unless it
    /// counts from the snapshot (taken before the earlier runs of this reused instance).
    @Test func preinitialisedRunsDoNotShareRandomnessOrClock() async throws {
        let backend = Fixtures.backend()
        let code = #"console.log(JSON.stringify([Math.random(), Math.random()]) + " " + performance.now())"#
        var seen = Set<String>()
        for _ in 0..<3 {
            let r = try await backend.run(Fixtures.spec(), Fixtures.js(code), output: nil)
            #expect(r.outcome == .ok, "\(r.stderr)")
            let parts = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: " ")
            let now = parts.count == 2 ? Double(parts[1]) : nil
            #expect(now != nil && now! >= 0 && now! <= r.usage.wallMs,
                    "performance.now() counts from this run's start: \(r.stdout) (run took \(r.usage.wallMs) ms)")
            seen.insert(parts.first.map(String.init) ?? "")
        }
        #expect(seen.count == 3, "every run draws its own random numbers: \(seen)")
    }

    /// A leaderboard breaks ties on CPU time, so a WASM run reports its guest's: the CPU time of the
    /// thread that ran it, in process and through a worker process alike (never more than its wall time).
    @Test("a run's usage has the guest's CPU time, in process and in a worker", arguments: [false, true])
    func cpuTimeIsReported(worker: Bool) async throws {
        let mode: WasmBackend.ExecutionMode = worker
            ? .worker(executable: try #require(Fixtures.sandboxerExecutable, "the sandboxer executable is not built")) : .inProcess
        let code = "let s = 0; for (let i = 0; i < 2e4; i++) s += i % 7; console.log(s > 0)"
        let r = try await Fixtures.backend(mode: mode).run(Fixtures.spec(), Fixtures.js(code), output: nil)
        #expect(r.outcome == .ok, "\(r.stderr)")
        #expect(r.usage.cpuMs > 0, "a loop of 20,000 steps uses CPU: \(r.usage)")
        #expect(r.usage.cpuMs <= r.usage.wallMs + 1, "one thread's CPU time fits in the run's wall time: \(r.usage)")
    }

    @Test func infiniteLoopStopsAtTheTimeout() async throws {
        let r = try await Fixtures.backend().run(Fixtures.spec(timeout: .milliseconds(500)), Fixtures.js("for(;;){}"), output: nil)
        #expect(r.outcome == .timeout)
        // The loop never ends, so returning at all proves it was stopped (a hang would be reported
        // by the test watchdog, scripts/test-with-watchdog.sh; no timed assertion here).
        // The engine is still usable afterwards.
        let ok = try await Fixtures.backend().run(Fixtures.spec(), Fixtures.js("console.log(1)"), output: nil)
        #expect(ok.stdout == "1\n")
    }

    @Test func memoryGrowthBeyondTheCapIsOOM() async throws {
        let code = "const a = []; for (;;) a.push(new ArrayBuffer(4 << 20));"
        let r = try await Fixtures.backend().run(Fixtures.spec(memory: 32 << 20), Fixtures.js(code), output: nil)
        #expect(r.outcome == .oom)
        #expect(r.usage.peakMemoryBytes <= 32 << 20)
    }

    @Test func outputIsCapped() async throws {
        let code = "const s = 'x'.repeat(1 << 20); for (let i = 0; i < 10; i++) console.log(s)"
        let streamed = StreamedBytes()
        let r = try await Fixtures.backend().run(Fixtures.spec(output: 1 << 20), Fixtures.js(code), output: streamed.handler)
        #expect(r.outcome == .outputTruncated)
        #expect(r.stdoutTruncated)
        #expect(r.stdout.utf8.count == 1 << 20)
        #expect(streamed.count == 1 << 20)
    }

    @Test func noFileSystemOrProcessAPIs() async throws {
        let code = #"console.log(typeof std, typeof os, typeof require, typeof process, typeof fetch)"#
        let r = try await Fixtures.backend().run(Fixtures.spec(), Fixtures.js(code), output: nil)
        #expect(r.stdout == "undefined undefined undefined undefined undefined\n")
        let imp = try await Fixtures.backend().run(Fixtures.spec(), Fixtures.js(#"import * as std from "std"; std.loadFile("/etc/passwd")"#), output: nil)
        #expect(imp.outcome == .exitNonzero)
        #expect(!imp.stdout.contains("root:"))
    }

    @Test func deepRecursionIsAnErrorNotACrash() async throws {
        let backend = Fixtures.backend()
        let r = try await backend.run(Fixtures.spec(), Fixtures.js("function f(n){ return f(n+1) + 1 } f(0)"), output: nil)
        #expect(r.outcome == .exitNonzero)
        #expect(r.stderr.contains("RangeError"))
        // Nesting deep enough to exhaust the parser's stack. (Nested `[` would do too, but QuickJS
        // re-scans brackets for destructuring, which takes ~30 s in a debug build.)
        let nested = "eval('{'.repeat(20000) + '}'.repeat(20000))"
        let n = try await backend.run(Fixtures.spec(), Fixtures.js(nested), output: nil)
        #expect([.exitNonzero, .killed].contains(n.outcome))
        #expect(n.outcome != .killed || n.reason?.contains("stack") == true)
    }

    @Test func codeTooLargeIsRefusedBeforeRunning() async throws {
        await #expect(throws: SandboxError.self) {
            try await Fixtures.backend().run(Fixtures.spec(code: 16), Fixtures.js(String(repeating: "1;", count: 100)), output: nil)
        }
        do {
            _ = try await Fixtures.backend().run(Fixtures.spec(code: 16), Fixtures.js(String(repeating: "1;", count: 100)), output: nil)
        } catch let e as SandboxError {
            #expect(e.code == .limitExceeded)
            #expect(e.limit?.name == "code_bytes")
        }
    }

    @Test func leavesNothingBehind() async throws {
        let work = Fixtures.workDirectory()
        let backend = Fixtures.backend(work: work)
        _ = try await backend.run(Fixtures.spec(), Fixtures.js("console.log(1)"), output: nil)
        _ = try await backend.run(Fixtures.spec(timeout: .milliseconds(200)), Fixtures.js("for(;;){}"), output: nil)
        #expect(try FileManager.default.contentsOfDirectory(atPath: work).isEmpty)
        try FileManager.default.removeItem(atPath: work)
    }
}

/// Counts bytes delivered to an ``OutputHandler``.
final class StreamedBytes: Sendable {
    let total = Synchronization.Mutex(0)
    var handler: OutputHandler { { _, b in self.total.withLock { $0 += b.count } } }
    var count: Int { total.withLock { $0 } }
}

import BackendWasm
import Foundation
import SandboxCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Inline WAT fixtures.
enum WAT {
    static let imports = """
      (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
    """
    /// Prints "hi from wat\\n".
    static let hello = """
    (module \(imports)
      (memory (export "memory") 1)
      (data (i32.const 64) "hi from wat\\n")
      (func (export "_start")
        (i32.store (i32.const 0) (i32.const 64)) (i32.store (i32.const 4) (i32.const 12))
        (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
    """
    /// Prints its whole environment (NUL-separated).
    static let env = """
    (module \(imports)
      (import "wasi_snapshot_preview1" "environ_sizes_get" (func $sizes (param i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "environ_get" (func $get (param i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "_start")
        (drop (call $sizes (i32.const 0) (i32.const 4)))
        (drop (call $get (i32.const 1024) (i32.const 4096)))
        (i32.store (i32.const 16) (i32.const 4096)) (i32.store (i32.const 20) (i32.load (i32.const 4)))
        (drop (call $write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))))
    """
    /// Tries `path_open(3, path)` for "../etc/passwd" and "/etc/passwd"; exits with the number that opened.
    static let escape = """
    (module \(imports)
      (import "wasi_snapshot_preview1" "path_open"
        (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 100) "../etc/passwd")
      (data (i32.const 200) "/etc/passwd")
      (func (export "_start") (local $opened i32)
        (if (i32.eqz (call $open (i32.const 3) (i32.const 1) (i32.const 100) (i32.const 13) (i32.const 0)
              (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 0)))
          (then (local.set $opened (i32.add (local.get $opened) (i32.const 1)))))
        (if (i32.eqz (call $open (i32.const 3) (i32.const 1) (i32.const 200) (i32.const 11) (i32.const 0)
              (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 0)))
          (then (local.set $opened (i32.add (local.get $opened) (i32.const 1)))))
        (call $exit (local.get $opened))))
    """
    static let spin = """
    (module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))
    """
    /// Grows memory one page at a time until refused, then traps.
    static let grow = """
    (module (memory (export "memory") 1)
      (func (export "_start")
        (loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
        unreachable))
    """
}

@Suite("WASM backend: WASI modules")
struct WASITests {
    let dir = Fixtures.fixtureDirectory

    @Test func watModuleRuns() async throws {
        let path = try Fixtures.wasmFile(WAT.hello, dir: dir)
        let r = try await Fixtures.backend().run(Fixtures.spec(), ExecRequest(argv: [path]), output: nil)
        #expect(r.outcome == .ok)
        #expect(r.stdout == "hi from wat\n")
    }

    @Test(.wasmModules())
    func helloWasmArgsStdinAndExit() async throws {
        let hello = Fixtures.modules!.hello
        let r = try await Fixtures.backend().run(Fixtures.spec(), ExecRequest(argv: [hello, "cat"], stdin: .bytes(Array("piped".utf8))), output: nil)
        #expect(r.stdout == "hello from wasi\nhello.wasm\ncat\npiped")
        let e = try await Fixtures.backend().run(Fixtures.spec(), ExecRequest(argv: [hello, "exit7"]), output: nil)
        #expect(e.outcome == .exitNonzero)
        #expect(e.exitCode == 7)
        let esc = try await Fixtures.backend().run(Fixtures.spec(), ExecRequest(argv: [hello, "escape"]), output: nil)
        #expect(esc.stdout.hasSuffix("blocked\n"))
    }

    @Test func onlyWorkspaceIsReachable() async throws {
        let path = try Fixtures.wasmFile(WAT.escape, dir: dir)
        let r = try await Fixtures.backend().run(Fixtures.spec(), ExecRequest(argv: [path]), output: nil)
        #expect(r.exitCode == 0, "opened \(r.exitCode ?? -1) paths outside /workspace")
    }

    @Test func environmentComesOnlyFromProfileAndRequest() async throws {
        setenv("SBX_HOST_SECRET", "leaked", 1)
        let path = try Fixtures.wasmFile(WAT.env, dir: dir)
        let r = try await Fixtures.backend().run(
            Fixtures.spec(env: ["FROM_PROFILE": "p"]), ExecRequest(argv: [path], env: ["FROM_REQUEST": "r"]), output: nil)
        let vars = Set(r.stdout.split(separator: "\0").map(String.init))
        #expect(vars == ["FROM_PROFILE=p", "FROM_REQUEST=r"])
        #expect(!r.stdout.contains("SBX_HOST_SECRET"))
    }

    @Test func spinningModuleTimesOut() async throws {
        let path = try Fixtures.wasmFile(WAT.spin, dir: dir)
        let r = try await Fixtures.backend().run(Fixtures.spec(timeout: .milliseconds(300)), ExecRequest(argv: [path]), output: nil)
        #expect(r.outcome == .timeout)
    }

    @Test func memoryGrowthIsCapped() async throws {
        let path = try Fixtures.wasmFile(WAT.grow, dir: dir)
        let r = try await Fixtures.backend().run(Fixtures.spec(memory: 16 << 20), ExecRequest(argv: [path]), output: nil)
        #expect(r.outcome == .oom)
        #expect(r.usage.peakMemoryBytes == 16 << 20)
    }

    @Test func badRequestsAreErrors() async throws {
        await #expect(throws: SandboxError.self) {
            try await Fixtures.backend().run(Fixtures.spec(), ExecRequest(argv: ["/bin/true"]), output: nil)
        }
        await #expect(throws: SandboxError.self) {
            try await Fixtures.backend().run(Fixtures.spec(), ExecRequest(argv: ["/nonexistent.wasm"]), output: nil)
        }
    }
}

@Suite("WASM backend: worker process", .serialized, .wasmModules(sandboxer: true))
struct WorkerTests {
    var backend: WasmBackend { Fixtures.backend(mode: .worker(executable: Fixtures.sandboxerExecutable!)) }

    @Test func runsJavaScript() async throws {
        let r = try await backend.run(Fixtures.spec(), Fixtures.js(#"console.log([3,1,2].sort().join(","), scriptArgs[1])"#, args: ["x"]), output: nil)
        #expect(r.outcome == .ok)
        #expect(r.stdout == "1,2,3 x\n")
    }

    @Test func killsAnInfiniteLoop() async throws {
        let r = try await backend.run(Fixtures.spec(timeout: .milliseconds(500)), Fixtures.js("for(;;){}"), output: nil)
        #expect(r.outcome == .timeout)
        // The loop never ends, so returning at all proves it was stopped (a hang would be reported
        // by the test watchdog, scripts/test-with-watchdog.sh; no timed assertion here).
    }

    @Test func toolsAndOOMAcrossTheProcessBoundary() async throws {
        let log = ToolCallLog()
        let b = Fixtures.backend(mode: .worker(executable: Fixtures.sandboxerExecutable!), onToolCall: log.handler)
        let r = try await b.run(Fixtures.spec(tools: ["kv.set"]), Fixtures.js(#"tools.call("kv.set", {key: "a", value: 1}); console.log("ok")"#), output: nil)
        #expect(r.stdout == "ok\n")
        #expect(log.all.map(\.tool) == ["kv.set"])
        let oom = try await b.run(Fixtures.spec(memory: 32 << 20), Fixtures.js("const a = []; for (;;) a.push(new ArrayBuffer(4 << 20))"), output: nil)
        #expect(oom.outcome == .oom)
    }
}

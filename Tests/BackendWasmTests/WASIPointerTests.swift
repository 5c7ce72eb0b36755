import BackendWasm
import Foundation
import SandboxCore
import Testing

/// Out-of-bounds pointers handed to WASI functions get `EFAULT` (21) instead of failing a
/// precondition in WasmKit, which would kill the host process running the guest in-process.
@Suite("WASM backend: WASI pointer checks", .serialized, .wasmModules())
struct WASIPointerTests {
    /// (function, its parameter types, set-up code, arguments): each passes a pointer past the
    /// single 64 KiB page of memory.
    static let cases: [(String, String, String, String)] = [
        ("fd_read", "i32 i32 i32 i32", "(i32.store (i32.const 0) (i32.const 65530)) (i32.store (i32.const 4) (i32.const 100))",
         "(i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)"),
        ("fd_write", "i32 i32 i32 i32", "", "(i32.const 1) (i32.const 65532) (i32.const 2) (i32.const 8)"),
        ("fd_write", "i32 i32 i32 i32", "(i32.store (i32.const 0) (i32.const 64)) (i32.store (i32.const 4) (i32.const 1))",
         "(i32.const 1) (i32.const 0) (i32.const 1) (i32.const 65535)"),
        ("clock_time_get", "i32 i64 i32", "", "(i32.const 1) (i64.const 0) (i32.const 65534)"),
        ("random_get", "i32 i32", "", "(i32.const 65000) (i32.const 1000)"),
        ("args_get", "i32 i32", "", "(i32.const 0) (i32.const 65535)"),
        ("fd_prestat_dir_name", "i32 i32 i32", "", "(i32.const 3) (i32.const 65530) (i32.const 100)"),
        ("poll_oneoff", "i32 i32 i32 i32", "", "(i32.const 0) (i32.const 65520) (i32.const 1) (i32.const 8)"),
        ("path_open", "i32 i32 i32 i32 i32 i64 i64 i32 i32", "",
         "(i32.const 3) (i32.const 0) (i32.const 65530) (i32.const 100) (i32.const 0) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 16)"),
    ]

    @Test(arguments: cases)
    func outOfBoundsPointerGetsEFAULT(_ function: String, _ params: String, _ setup: String, _ arguments: String) async throws {
        let wat = """
        (module
          (import "wasi_snapshot_preview1" "\(function)" (func $f (param \(params)) (result i32)))
          (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
          (memory (export "memory") 1)
          (func (export "_start") \(setup) (call $exit (call $f \(arguments)))))
        """
        let path = try Fixtures.wasmFile(wat, dir: Fixtures.fixtureDirectory)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let r = try await Fixtures.backend().run(
            Fixtures.spec(), ExecRequest(argv: [path], stdin: .bytes(Array(repeating: 65, count: 200))), output: nil)
        #expect(r.exitCode == 21, "\(function): \(r.outcome) \(r.reason ?? "") \(r.stdout)")
    }
}

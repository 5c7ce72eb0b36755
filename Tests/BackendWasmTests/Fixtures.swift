import BackendWasm
import Foundation
import SandboxCore
import Synchronization
import SandboxTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Shared set-up: the repo root, qjs.wasm/hello.wasm (built once if missing), specs and backends.
enum Fixtures {
    static let repoRoot: String = {
        QuickJS.repositoryRoot(from: (#filePath as NSString).deletingLastPathComponent) ?? FileManager.default.currentDirectoryPath
    }()

    /// Builds `.build-wasm/{qjs,hello}.wasm` with `wasm/quickjs/build.sh` (idempotent) once per process.
    static let modules: (qjs: String, hello: String)? = {
        let qjs = repoRoot + "/.build-wasm/qjs.wasm"
        let hello = repoRoot + "/.build-wasm/hello.wasm"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [repoRoot + "/wasm/quickjs/build.sh"]
        p.currentDirectoryURL = URL(fileURLWithPath: repoRoot)
        // Into this checkout's .build-wasm, whatever SANDBOXER_WASM_OUT the caller's shell has.
        p.environment = ProcessInfo.processInfo.environment.merging(["SANDBOXER_WASM_OUT": repoRoot + "/.build-wasm"]) { $1 }
        do {
            try p.run()
            p.waitUntilExit()
        } catch {
            print("BackendWasmTests: cannot run wasm/quickjs/build.sh: \(error)")
        }
        guard FileManager.default.fileExists(atPath: qjs), FileManager.default.fileExists(atPath: hello) else {
            return nil
        }
        return (qjs, hello)
    }()

    /// Why the wasm tests needing `modules` (`.build-wasm/` files, and with `sandboxer` the built
    /// executable) cannot run, or nil.
    static func missing(_ modules: [String], sandboxer: Bool = false) -> String? {
        guard Self.modules != nil else {
            return "wasm/quickjs/build.sh did not build .build-wasm/qjs.wasm and hello.wasm (its output is above; `make wasm`)"
        }
        for name in modules {
            if let missing = Requirement.file(repoRoot + "/.build-wasm/" + name, name, buildWith: "wasm/quickjs/build.sh builds it (make wasm)") {
                return missing
            }
        }
        if sandboxer && sandboxerExecutable == nil { return "the sandboxer executable is not built beside the test bundle (swift build --product sandboxer)" }
        return nil
    }

    /// `wasm/testdata/fsattack.c`, built by the same script.
    static var fsattack: String? {
        guard modules != nil else { return nil }
        let path = repoRoot + "/.build-wasm/fsattack.wasm"
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }

    /// `wasm/testdata/fsops.c` (file operations and symlinks a guest makes), built by the same script.
    static var fsops: String? {
        guard modules != nil else { return nil }
        let path = repoRoot + "/.build-wasm/fsops.wasm"
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }

    /// One stable directory for assembled WAT fixtures (reused across runs, so nothing piles up).
    static let fixtureDirectory: String = {
        let dir = NSTemporaryDirectory() + "sbx-wasm-test-fixtures"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }()

    /// A private work directory (the caller removes it), so "nothing left behind" can be checked.
    static func workDirectory() -> String {
        let dir = NSTemporaryDirectory() + "sbx-wasm-tests-\(UUID().uuidString.prefix(8))"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    static func backend(
        work: String = NSTemporaryDirectory(), mode: WasmBackend.ExecutionMode = .inProcess, reuse: Bool = true,
        onToolCall: ToolCallHandler? = nil
    ) -> WasmBackend {
        WasmBackend(configuration: .init(
            quickJSModule: modules?.qjs, workDirectory: work, mode: mode, reuseInstances: reuse, onToolCall: onToolCall))
    }

    static func spec(
        timeout: Duration = .seconds(120), memory: Int64 = 256 << 20, output: Int64 = 1 << 20, code: Int64 = 512 << 10,
        tools: [String] = [], allow: [String] = [], env: [String: String] = [:]
    ) -> SandboxSpec {
        SandboxSpec(profile: Profile(
            name: "wasm-test", isolation: .wasm,
            limits: Limits(timeout: timeout, memoryBytes: memory, outputBytes: output, codeBytes: code),
            network: NetworkPolicy(mode: .allowlist, allow: allow), tools: tools, env: env))
    }

    static func js(_ code: String, args: [String] = [], stdin: ExecRequest.StdinSource = .none) -> ExecRequest {
        ExecRequest(argv: args, code: Array(code.utf8), codeFileName: "main.js", stdin: stdin)
    }

    /// The sandboxer executable next to the test bundle (built by `swift test`), for worker mode.
    static var sandboxerExecutable: String? {
        var dir = (CommandLine.arguments.first.map { ($0 as NSString).deletingLastPathComponent }) ?? ""
        for _ in 0..<4 {
            let candidate = dir + "/sandboxer"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = (dir as NSString).deletingLastPathComponent
        }
        return nil
    }

    /// Assembles inline WAT into a temp `.wasm` file.
    static func wasmFile(_ wat: String, dir: String) throws -> String {
        let path = dir + "/m-\(UUID().uuidString.prefix(8)).wasm"
        try Data(try WATAssembler.assemble(wat)).write(to: URL(fileURLWithPath: path))
        return path
    }
}

/// A loopback-only HTTP server answering every GET with a fixed body; counts connections (at
/// `accept`, before anything is read) and keeps each request head it received.
final class LoopbackServer: @unchecked Sendable {
    let fd: Int32
    let port: UInt16
    let counter = Counter()
    /// Connections accepted so far.
    var hits: Int { counter.value.withLock { $0 } }
    /// Every request received, as text.
    var requests: [String] { counter.requests.withLock { $0 } }

    final class Counter: Sendable {
        let value = Mutex(0)
        let requests = Mutex<[String]>([])
    }

    /// - Parameter delay: wait this long after reading a request before answering.
    init(body: String, delay: Duration = .zero) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, len) } }
        listen(listener, 8)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &len) } }
        fd = listener
        port = UInt16(bigEndian: addr.sin_port)
        let counter = self.counter
        let response = Array("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n\(body)".utf8)
        // The thread accepts on its own descriptor: after stop() closes `fd`, a new server may get
        // the same number, and a late accept() on it would steal that server's connection.
        let own = dup(listener)
        Thread.detachNewThread {
            defer { close(own) }
            while true {
                let c = accept(own, nil, nil)
                if c < 0 { return }
                counter.value.withLock { $0 += 1 }
                var buf = [UInt8](repeating: 0, count: 4096)
                let n = buf.withUnsafeMutableBytes { recv(c, $0.baseAddress, 4096, 0) }
                counter.requests.withLock { $0.append(String(decoding: buf.prefix(max(0, n)), as: UTF8.self)) }
                if delay > .zero { Thread.sleep(forTimeInterval: Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18) }
                _ = response.withUnsafeBytes { send(c, $0.baseAddress, response.count, Int32(MSG_NOSIGNAL)) }
                close(c)
            }
        }
    }

    func stop() { shutdown(fd, Int32(SHUT_RDWR)); close(fd) }
}

/// Collects tool-call records delivered to the backend's handler.
final class ToolCallLog: Sendable {
    let records = Mutex<[ToolCallRecord]>([])
    var handler: ToolCallHandler { { _, r in self.records.withLock { $0.append(r) } } }
    var all: [ToolCallRecord] { records.withLock { $0 } }
}

extension Trait where Self == ConditionTrait {
    /// The `.build-wasm/` modules a test needs (qjs.wasm and hello.wasm always), and with
    /// `sandboxer` the built executable: skipped where missing, a failure under `make test`.
    static func wasmModules(_ names: String..., sandboxer: Bool = false) -> Self {
        .requires("requires \((["qjs.wasm", "hello.wasm"] + names).joined(separator: ", ")) from wasm/quickjs/build.sh") {
            Fixtures.missing(names, sandboxer: sandboxer)
        }
    }
}

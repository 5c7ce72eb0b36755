import BackendWasm
import Foundation
import Synchronization
import SandboxTestSupport
import Testing
@testable import SandboxCore

#if canImport(Glibc)
import Glibc
#endif

/// Attacks on the WASM backend's host interface: the `http.get` tool, the WASI file system and its
/// limits, blocking host calls, and where `qjs.wasm` comes from. Every packet goes to loopback.
@Suite("Attacks: the WASM backend's host calls", .serialized, .requires("requires the wasm modules wasm/quickjs/build.sh builds") {
    WasmAttackModules.built == nil ? "wasm/quickjs/build.sh did not build .build-wasm/qjs.wasm and fsattack.wasm (make wasm)" : nil
})
struct WasmAttackTests {
    static func backend(mode: WasmBackend.ExecutionMode = .inProcess) -> WasmBackend {
        WasmBackend(configuration: .init(quickJSModule: WasmAttackModules.built?.qjs, mode: mode))
    }

    static func profile(timeout: Duration = .seconds(60), tools: [String] = [], allow: [String] = [], _ edit: (inout Limits) -> Void = { _ in }) -> Profile {
        var limits = Limits(timeout: timeout, memoryBytes: 256 << 20)
        edit(&limits)
        return Profile(name: "wasm-attack", isolation: .wasm, limits: limits,
                       network: NetworkPolicy(mode: .allowlist, allow: allow), tools: tools)
    }

    static func js(_ code: String) -> ExecRequest { ExecRequest(argv: [], code: Array(code.utf8), codeFileName: "main.js") }

    // MARK: 8. http.get checks addresses, not just names

    @Test("an allowlisted name that resolves to loopback is refused; the host service sees no connection")
    func allowlistedNameResolvingToLoopback() async throws {
        let server = try AcceptCounter()
        defer { server.stop() }
        let code = """
            try { const r = tools.call("http.get", {url: "http://localhost:\(server.port)/admin"}); console.log("ESCAPED " + r.status) }
            catch (e) { console.log("BLOCKED " + e.message) }
            """
        let spec = SandboxSpec(profile: Self.profile(tools: ["http.get"], allow: ["localhost", "localhost:\(server.port)"]))
        let r = try await Self.backend().run(spec, Self.js(code), output: nil)
        #expect(r.stdout.hasPrefix("BLOCKED http.get: localhost:\(server.port) denied: 127.0.0.1 is in an always-blocked range"), "\(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("loopback"), "\(r.stdout)")
        #expect(server.connections == 0)
    }

    @Test("CR/LF in a URL is refused; nothing reaches the server (no injected header, no second request)")
    func crlfInjection() async throws {
        let server = try AcceptCounter()
        defer { server.stop() }
        let url = "http://localhost:\(server.port)/a\\r\\nX-Injected: 1\\r\\n\\r\\nGET /second HTTP/1.0\\r\\n\\r\\n"
        let code = """
            try { const r = tools.call("http.get", {url: "\(url)"}); console.log("ESCAPED " + r.status) }
            catch (e) { console.log("BLOCKED " + e.message) }
            """
        let spec = SandboxSpec(profile: Self.profile(tools: ["http.get"], allow: ["localhost"]))
        let r = try await Self.backend().run(spec, Self.js(code), output: nil)
        #expect(r.stdout.hasPrefix("BLOCKED http.get: the URL contains a control character or space"), "\(r.stdout) \(r.stderr)")
        #expect(server.connections == 0)
        #expect(server.received.isEmpty)
    }

    // MARK: 7. workspace and file-size limits hold for WASI writes

    /// Apparent bytes of every regular file under `dir`, and the largest one.
    static func hostUsage(_ dir: String) -> (total: Int64, largest: Int64) {
        var total: Int64 = 0, largest: Int64 = 0
        for name in FileManager.default.enumerator(atPath: dir)?.allObjects as? [String] ?? [] {
            var st = stat()
            guard lstat(dir + "/" + name, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { continue }
            total += Int64(st.st_size)
            largest = max(largest, Int64(st.st_size))
        }
        return (total, largest)
    }

    @Test("a guest with a 1 MiB workspace can neither write 100 MiB nor make a 1 TiB sparse file", arguments: ["in-process", "worker"])
    func workspaceFlood(mode: String) async throws {
        let fsattack = try #require(WasmAttackModules.built?.fsattack)
        let execution: WasmBackend.ExecutionMode
        if mode == "worker" {
            execution = .worker(executable: try #require(Self.sandboxer, "the sandboxer executable is not built"))
        } else {
            execution = .inProcess
        }
        let ws = NSTemporaryDirectory() + "sbx-wasm-flood-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: ws, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: ws) }
        let profile = Self.profile { $0.workspaceBytes = 1 << 20; $0.fileSizeBytes = 64 << 20 }
        let ops = ["write", "/workspace/flood", "\(100 << 20)", "seek", "/workspace/sparse", "\((1 << 40) - 1)",
                   "pwrite", "/workspace/sparse2", "\((1 << 40) - 1)", "truncate", "/workspace/sparse3", "\(1 << 40)",
                   "allocate", "/workspace/sparse4", "\(1 << 40)"]
        let r = try await Self.backend(mode: execution).run(
            SandboxSpec(profile: profile, workspaceDirectory: ws), ExecRequest(argv: [fsattack] + ops), output: nil)
        let usage = Self.hostUsage(ws)
        #expect(usage.total <= 1 << 20, "the host workspace holds \(usage.total) bytes")
        #expect(usage.largest <= 1 << 20, "a host file is \(usage.largest) bytes")
        #expect(r.stdout.contains("ERR write ENOSPC") && r.stdout.contains("ERR seek EFBIG") && r.stdout.contains("ERR pwrite EFBIG")
                && r.stdout.contains("ERR truncate EFBIG") && r.stdout.contains("ERR allocate EFBIG"), "\(r.stdout) \(r.stderr)")
        #expect(r.outcome == .workspaceLimit, "\(r.outcome) \(r.reason ?? "")")
        #expect(r.reason?.contains("workspace") == true)
    }

    // MARK: 9. a host call blocked past the deadline must not keep the run's thread

    /// Threads of this process named `name` (`/proc/self/task/*/comm`).
    static func threads(named name: String) -> Int {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.filter {
            (try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8))?.trimmingCharacters(in: .newlines) == name
        }.count
    }

    @Test("an hour-long poll_oneoff sleep or a FIFO read ends as timeout or error, and the run's thread is gone", arguments: ["sleep", "fifo"])
    func blockedHostCall(kind: String) async throws {
        let fsattack = try #require(WasmAttackModules.built?.fsattack)
        let ws = NSTemporaryDirectory() + "sbx-wasm-block-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: ws, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: ws) }
        #expect(mkfifo(ws + "/fifo", 0o600) == 0)
        // The run's thread is named "wasm-" + the last 10 characters of the sandbox id.
        let tag = String(UInt64.random(in: 1 << 40...1 << 44), radix: 16).suffix(10)
        // The sleep must end at the 1 s deadline; the FIFO read must fail at once, so it gets a
        // deadline a loaded machine cannot reach by just being slow (a blocked read still hits it).
        let timeout: Duration = kind == "sleep" ? .seconds(1) : .seconds(20)
        let spec = SandboxSpec(id: "sbx-\(tag)", profile: Self.profile(timeout: timeout), workspaceDirectory: ws)
        let ops = kind == "sleep" ? ["sleep", "3600"] : ["read", "/workspace/fifo"]
        let run = Task { try await Self.backend().run(spec, ExecRequest(argv: [fsattack] + ops), output: nil) }
        let r = try await run.value
        if kind == "sleep" {
            #expect(r.outcome == .timeout, "\(r.outcome) \(r.reason ?? "")")
        } else {
            #expect(r.outcome == .ok && r.stdout == "ERR read ENOTSUP\n", "\(r.outcome) \(r.stdout)")
        }
        var left = Self.threads(named: "wasm-\(tag)")
        for _ in 0..<300 where left > 0 {  // a generous bound, not a speed requirement
            try await Task.sleep(for: .milliseconds(100))
            left = Self.threads(named: "wasm-\(tag)")
        }
        #expect(left == 0, "the run's thread is still blocked in the host call")
    }

    // MARK: 12. qjs.wasm comes from the installation, not from the working directory

    /// The `sandboxer` executable built beside this test bundle.
    static var sandboxer: String? {
        var dir = (CommandLine.arguments[0] as NSString).deletingLastPathComponent
        for _ in 0..<3 {
            if FileManager.default.isExecutableFile(atPath: dir + "/sandboxer") { return dir + "/sandboxer" }
            dir = (dir as NSString).deletingLastPathComponent
        }
        return nil
    }

    @Test("a .build-wasm/qjs.wasm planted in the working directory is not used; the installed module is")
    func plantedQuickJSModule() throws {
        let exe = try #require(Self.sandboxer, "the sandboxer executable is not built")
        // Install the real module beside the executable, as `make wasm` does for .build/{debug,release}.
        try WasmAttackModules.runBuildScript(environment: ["SANDBOXER_QJS_INSTALL_DIRS": (exe as NSString).deletingLastPathComponent])
        let cwd = NSTemporaryDirectory() + "sbx-planted-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: cwd + "/.build-wasm", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: cwd) }
        FileManager.default.createFile(atPath: cwd + "/.build-wasm/qjs.wasm", contents: Data("planted: not a wasm module".utf8))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = ["run", "--isolation", "wasm", "--json", "--lang", "js", "-c", "console.log(6 * 7)"]
        p.currentDirectoryURL = URL(fileURLWithPath: cwd)
        p.environment = ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let r = try JSONDecoder().decode(ExecResult.self, from: data)
        #expect(r.outcome == .ok, "\(r.reason ?? "") \(r.stderr)")
        #expect(r.stdout == "42\n")
    }
}

/// `.build-wasm/` modules of the checkout, built once per process with `wasm/quickjs/build.sh`.
enum WasmAttackModules {
    static let repoRoot: String = {
        var dir = (#filePath as NSString).deletingLastPathComponent
        while !FileManager.default.fileExists(atPath: dir + "/wasm/quickjs/build.sh") && dir != "/" {
            dir = (dir as NSString).deletingLastPathComponent
        }
        return dir
    }()

    /// Runs `wasm/quickjs/build.sh` (idempotent) with extra environment.
    static func runBuildScript(environment: [String: String] = [:]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [repoRoot + "/wasm/quickjs/build.sh"]
        // Into this checkout's .build-wasm, whatever SANDBOXER_WASM_OUT the caller's shell has.
        p.environment = ProcessInfo.processInfo.environment.merging(["SANDBOXER_WASM_OUT": repoRoot + "/.build-wasm"]) { $1 }
            .merging(environment) { $1 }
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw SandboxError(.setupFailed, "wasm/quickjs/build.sh failed") }
    }

    static let built: (qjs: String, fsattack: String)? = {
        let out = repoRoot + "/.build-wasm"
        guard (try? runBuildScript()) != nil else { return nil }
        let modules = (out + "/qjs.wasm", out + "/fsattack.wasm")
        return FileManager.default.fileExists(atPath: modules.0) && FileManager.default.fileExists(atPath: modules.1) ? modules : nil
    }()
}

/// A loopback TCP listener that counts connections at `accept` and keeps whatever it receives.
final class AcceptCounter: Sendable {
    let fd: Int32
    let port: UInt16
    private final class State: Sendable { let value = Mutex<(connections: Int, received: [UInt8])>((0, [])) }
    private let state = State()
    var connections: Int { state.value.withLock { $0.connections } }
    var received: [UInt8] { state.value.withLock { $0.received } }

    init() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, len) } }
        guard bound == 0, listen(listener, 8) == 0 else { throw SandboxError(.setupFailed, "cannot listen on loopback") }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &len) } }
        fd = listener
        port = UInt16(bigEndian: addr.sin_port)
        let own = dup(listener)  // never reused while this thread may still call accept() on it
        Thread.detachNewThread { [state] in
            defer { close(own) }
            while true {
                let c = accept(own, nil, nil)
                if c < 0 { return }
                state.value.withLock { $0.connections += 1 }
                var buf = [UInt8](repeating: 0, count: 4096)
                let n = buf.withUnsafeMutableBytes { recv(c, $0.baseAddress, 4096, 0) }
                state.value.withLock { $0.received += buf.prefix(max(0, n)) }
                let reply = Array("HTTP/1.0 200 OK\r\n\r\nhost service".utf8)
                _ = reply.withUnsafeBytes { send(c, $0.baseAddress, reply.count, Int32(MSG_NOSIGNAL)) }
                close(c)
            }
        }
    }

    func stop() { shutdown(fd, Int32(SHUT_RDWR)); close(fd) }
}

import Foundation
import Logging
import SandboxCore

#if canImport(Glibc)
import Glibc
#endif

/// The body of the hidden `sandboxer wasm-worker` command: runs one WASI module (or JavaScript
/// under QuickJS) with the in-process engine and exits with the guest's status. Self-contained, so
/// the container backend can run it inside its jail (`wasm+container`).
///
/// ```
/// sandboxer wasm-worker [--module PATH] [--js FILE] [--workspace DIR] [--timeout-ms N]
///     [--memory-bytes N] [--output-bytes N] [--input-bytes N] [--tools a,b] [--allow host:port,…]
///     [--workspace-bytes N] [--file-size-bytes N] [--workspace-files N] [--kv-store FILE]
///     [--env K=V]… [--id SANDBOX_ID] [--report FILE] [-- ARGV0 ARGS…]
/// ```
/// - `--module`: the `.wasm` command (default with `--js`: the located `qjs.wasm`).
/// - `--js FILE`: JavaScript source; the guest argv becomes `qjs -e <source>` + the args after `--`.
/// - stdin of the worker is read fully (up to `--input-bytes`, default 1 MiB) and given to the guest;
///   guest stdout/stderr go to the worker's, each capped at `--output-bytes` (default 1 MiB).
/// - `/workspace` is `--workspace` (default: a fresh temp dir, removed at exit).
/// - `--workspace-bytes`, `--file-size-bytes`, `--workspace-files`: the workspace limits (default:
///   those of ``Limits/default``); the guest gets `ENOSPC`/`EFBIG` past them.
/// - `--kv-store FILE`: the kv tools' store of a long-lived sandbox (``KVStore``), loaded at the
///   start and saved atomically at the end when the run changed it; without it the store lives as
///   long as the run.
/// - `--report FILE` writes a JSON ``WorkerReport`` (outcome details, limits hit, tool calls).
///
/// Exit status: the guest's exit code, except **124** timeout, **123** out of memory (a growth of
/// linear memory was denied and the guest failed), **134** wasm trap (e.g. stack exhausted),
/// **121** the guest ran into the workspace limit, **122** into the file size limit (even if it
/// then exited 0; the report has its code), **125** usage or setup error.
public enum WasmWorker {
    public static let exitTimeout = ExitStatus.timeout
    public static let exitOutOfMemory = ExitStatus.outOfMemory
    public static let exitTrap = ExitStatus.trap
    public static let exitSetup = ExitStatus.setupFailed
    /// Exit status when the guest ran into the workspace size or file-count limit.
    public static let exitWorkspaceLimit = ExitStatus.workspaceLimit
    /// Exit status when the guest ran into the file size limit.
    public static let exitFileSizeLimit = ExitStatus.fileSizeLimit

    static func writeOut(_ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { write(1, $0.baseAddress, bytes.count) }
    }

    static func writeError(_ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, bytes.count) }
    }

    /// Runs the worker with the arguments after `wasm-worker`; returns the process exit status.
    public static func main(arguments: [String]) async -> Int32 {
        if arguments.first == "--bench" {
            // `sandboxer wasm-worker --bench [N]`: prints ``WasmBench`` results (worker mode uses this binary).
            let n = arguments.count > 1 ? Int(arguments[1]) ?? 20 : 20
            let exe = SelfExecutable.pathForRespawn
            let table = await WasmBench.run(iterations: n, workerExecutable: exe)
            writeOut(table + "\n")
            return 0
        }
        var options: WorkerOptions
        do { options = try WorkerOptions(parsing: arguments) } catch {
            writeError("sandboxer wasm-worker: \(error)\n")
            return exitSetup
        }
        var ownedWorkspace: Workspace?
        do {
            if options.workspace == nil {
                let ws = try Workspace.make(in: NSTemporaryDirectory(), id: options.invocation.sandboxId)
                ownedWorkspace = ws
                options.invocation.workspace = ws.path
            }
            options.invocation.stdin = try StdinLoader.load(.inherit(0), limit: options.inputBytes)
        } catch {
            writeError("sandboxer wasm-worker: \(error)\n")
            return exitSetup
        }
        defer { ownedWorkspace?.remove() }
        let report = await WasmRuntime.shared.run(
            options.invocation,
            output: { stream, bytes in
                let fd: Int32 = stream == .stdout ? 1 : 2
                var off = 0
                while off < bytes.count {
                    let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + off, bytes.count - off) }
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { break }
                    off += n
                }
            }, logger: Logger(label: "sandboxer.wasm-worker"), onToolCall: nil)
        let worker = WorkerReport(report)
        if let path = options.reportPath, let data = try? JSONEncoder().encode(worker) {
            // No report file means the launcher maps the exit status alone.
            _ = FileManager.default.createFile(atPath: path, contents: data)
        }
        return worker.exitStatus
    }
}

/// The worker's result file (`--report`).
struct WorkerReport: Codable, Sendable {
    var exit: String  // exited | trapped | timeout | setup_failed
    var code: Int32?
    var message: String?
    var memoryDenied: Bool
    var peakMemoryBytes: Int
    var stdoutTruncated: Bool
    var stderrTruncated: Bool
    var toolCalls: [ToolCallRecord]
    /// The workspace limits the guest ran into (absent from older workers).
    var workspace: WorkspaceQuota.Report?
    /// Why the `--kv-store` file could not be saved, if it could not.
    var kvStoreError: String?
    /// CPU time of the guest's thread (absent from older workers).
    var cpuMs: Double?

    enum CodingKeys: String, CodingKey {
        case exit, code, message, memoryDenied = "memory_denied", peakMemoryBytes = "peak_memory_bytes",
            stdoutTruncated = "stdout_truncated", stderrTruncated = "stderr_truncated", toolCalls = "tool_calls", workspace,
            kvStoreError = "kv_store_error", cpuMs = "cpu_ms"
    }

    init(_ r: WasmRunReport) {
        switch r.exit {
        case .exited(let c): (exit, code) = ("exited", c)
        case .trapped(let m): (exit, message) = ("trapped", m)
        case .timedOut: exit = "timeout"
        case .setupFailed(let m): (exit, message) = ("setup_failed", m)
        }
        memoryDenied = r.memoryDenied
        peakMemoryBytes = r.peakMemoryBytes
        stdoutTruncated = r.stdout.truncated
        stderrTruncated = r.stderr.truncated
        toolCalls = r.toolCalls
        workspace = r.workspace
        kvStoreError = r.kvStoreError
        cpuMs = r.cpuMs
    }

    var exitStatus: Int32 {
        switch exit {
        case "timeout": return WasmWorker.exitTimeout
        case "setup_failed": return WasmWorker.exitSetup
        case "trapped": return memoryDenied ? WasmWorker.exitOutOfMemory : WasmWorker.exitTrap
        default:
            let c = code ?? 0
            if memoryDenied && c != 0 { return WasmWorker.exitOutOfMemory }
            if workspace?.workspaceLimit != nil { return WasmWorker.exitWorkspaceLimit }
            if workspace?.fileSizeLimit != nil { return WasmWorker.exitFileSizeLimit }
            return c & 255
        }
    }

    var wasmExit: WasmExit {
        switch exit {
        case "timeout": return .timedOut
        case "setup_failed": return .setupFailed(message ?? "worker setup failed")
        case "trapped": return .trapped(message ?? "trap")
        default: return .exited(code ?? 0)
        }
    }
}

/// What a worker runs: JavaScript read from a file, or a WASI module, with the guest's arguments.
public enum WorkerProgram: Sendable, Equatable {
    /// JavaScript source in `file` (one argv string is limited to 128 KiB), `scriptArgs` = `arguments`.
    case javaScript(file: String, arguments: [String])
    /// The module itself; `arguments` are its argv (argv[0] included).
    case module(arguments: [String])
}

extension WasmWorker {
    /// `wasm-worker`'s arguments (after the subcommand) for a run with `limits` — written by the
    /// same code that parses them (``WorkerOptions``). `memoryBytes` caps linear memory;
    /// `report`, when given, is where the worker writes its JSON report; `kvStore`, when given, is
    /// the file of a long-lived sandbox's kv store (see ``KVStore``).
    public static func arguments(
        id: String, workspace: String, module: String, program: WorkerProgram, limits: Limits, memoryBytes: Int,
        tools: [String], networkAllow: [String], environment: [String: String], report: String?, kvStore: String? = nil
    ) -> [String] {
        var inv = WasmInvocation(
            sandboxId: id, modulePath: module, arguments: [], environment: environment, stdin: [], workspace: workspace,
            timeout: limits.timeout, maxMemoryBytes: memoryBytes, outputBytes: limits.outputBytes, tools: tools,
            networkAllow: networkAllow, reuseInstances: false)
        inv.workspaceLimits = .init(
            workspaceBytes: limits.workspaceBytes, fileSizeBytes: limits.fileSizeBytes, workspaceFiles: limits.workspaceFiles)
        inv.kvStorePath = kvStore
        return WorkerOptions.arguments(for: inv, inputBytes: limits.inputBytes, report: report, program: program)
    }
}

/// `wasm-worker`'s command line, written (``arguments(for:inputBytes:report:program:)``) and
/// parsed (``init(parsing:)``) in this one place with one list of flags.
struct WorkerOptions {
    /// Every flag the worker takes.
    enum Flag: String, CaseIterable {
        case id = "--id", workspace = "--workspace", timeoutMs = "--timeout-ms", memoryBytes = "--memory-bytes"
        case outputBytes = "--output-bytes", inputBytes = "--input-bytes", report = "--report"
        case workspaceBytes = "--workspace-bytes", fileSizeBytes = "--file-size-bytes", workspaceFiles = "--workspace-files"
        case tools = "--tools", allow = "--allow", env = "--env", module = "--module", js = "--js"
        case kvStore = "--kv-store"
    }

    /// The worker's arguments (after `wasm-worker`) for `inv` running `program` (its
    /// `arguments` and `stdin` are not read: the program says what runs, `inputBytes` bounds stdin).
    static func arguments(for inv: WasmInvocation, inputBytes: Int64, report: String?, program: WorkerProgram) -> [String] {
        var a: [String] = []
        func add(_ f: Flag, _ v: String) { a += [f.rawValue, v] }
        add(.id, inv.sandboxId)
        add(.workspace, inv.workspace)
        add(.timeoutMs, String(Int64(inv.timeout.milliseconds.rounded(.up))))
        add(.memoryBytes, String(inv.maxMemoryBytes))
        add(.outputBytes, String(inv.outputBytes))
        add(.inputBytes, String(inputBytes))
        if let report { add(.report, report) }
        add(.workspaceBytes, String(inv.workspaceLimits.workspaceBytes))
        add(.fileSizeBytes, String(inv.workspaceLimits.fileSizeBytes))
        add(.workspaceFiles, String(inv.workspaceLimits.workspaceFiles))
        if let store = inv.kvStorePath { add(.kvStore, store) }
        if !inv.tools.isEmpty { add(.tools, inv.tools.joined(separator: ",")) }
        if !inv.networkAllow.isEmpty { add(.allow, inv.networkAllow.joined(separator: ",")) }
        for (k, v) in inv.environment.sorted(by: { $0.key < $1.key }) { add(.env, "\(k)=\(v)") }
        add(.module, inv.modulePath)
        switch program {
        case .javaScript(let file, let arguments):
            add(.js, file)
            // The parser drops the guest's argv[0] and puts `qjs -e SOURCE` in its place.
            return a + ["--", "qjs"] + arguments
        case .module(let arguments):
            return a + ["--"] + arguments
        }
    }

    var invocation = WasmInvocation(
        sandboxId: "sbx-worker", modulePath: "", arguments: [], environment: [:], stdin: [], workspace: "",
        timeout: .seconds(30), maxMemoryBytes: 512 << 20, outputBytes: 1 << 20, tools: [], networkAllow: [],
        reuseInstances: false)
    var workspace: String?
    var inputBytes: Int64 = 1 << 20
    var reportPath: String?

    struct UsageError: Error, CustomStringConvertible { var description: String }

    init(parsing args: [String]) throws {
        var i = 0
        var js: String?
        var module: String?
        var guest: [String] = []
        func value() throws -> String {
            guard i + 1 < args.count else { throw UsageError(description: "missing value for \(args[i])") }
            i += 1
            return args[i]
        }
        func number(_ s: String) throws -> Int64 {
            guard let n = Int64(s), n >= 0 else { throw UsageError(description: "not a number: \(s)") }
            return n
        }
        while i < args.count {
            if args[i] == "--" {
                guest = Array(args[(i + 1)...])
                break
            }
            guard let flag = Flag(rawValue: args[i]) else { throw UsageError(description: "unknown option \(args[i])") }
            switch flag {
            case .module: module = try value()
            case .js: js = try value()
            case .workspace: workspace = try value()
            case .timeoutMs: invocation.timeout = .milliseconds(try number(value()))
            case .memoryBytes: invocation.maxMemoryBytes = Int(try number(value()))
            case .outputBytes: invocation.outputBytes = try number(value())
            case .inputBytes: inputBytes = try number(value())
            case .tools: invocation.tools = try value().split(separator: ",").map(String.init)
            case .allow: invocation.networkAllow = try value().split(separator: ",").map(String.init)
            case .env:
                let kv = try value()
                guard let eq = kv.firstIndex(of: "=") else { throw UsageError(description: "--env wants K=V") }
                invocation.environment[String(kv[..<eq])] = String(kv[kv.index(after: eq)...])
            case .workspaceBytes: invocation.workspaceLimits.workspaceBytes = try number(value())
            case .fileSizeBytes: invocation.workspaceLimits.fileSizeBytes = try number(value())
            case .workspaceFiles: invocation.workspaceLimits.workspaceFiles = Int(try number(value()))
            case .id: invocation.sandboxId = try value()
            case .report: reportPath = try value()
            case .kvStore: invocation.kvStorePath = try value()
            }
            i += 1
        }
        if let js {
            guard let code = FileManager.default.contents(atPath: js) else { throw UsageError(description: "cannot read --js \(js)") }
            invocation.modulePath = try module ?? QuickJS.locate()
            invocation.arguments = ["qjs", "-e", String(decoding: code, as: UTF8.self)] + guest.dropFirst()
        } else {
            guard let module else { throw UsageError(description: "--module PATH or --js FILE is required") }
            invocation.modulePath = module
            invocation.arguments = guest.isEmpty ? [(module as NSString).lastPathComponent] : guest
        }
        invocation.workspace = workspace ?? ""
    }
}

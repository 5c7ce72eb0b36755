import Foundation
import Logging
import SandboxCore
import SandboxLinux
import Synchronization
@_spi(WASIPlatform) import WASI
@_spi(Fuzzing) import WasmKit
import WasmKitWASI

/// Everything one run of a WASI command needs, resolved from a spec and a request. The same
/// value drives the in-process engine and the `wasm-worker` process.
struct WasmInvocation: Sendable {
    var sandboxId: String
    /// Host path of the `.wasm` command module.
    var modulePath: String
    /// argv as the guest sees it (`argv[0]` is the program name).
    var arguments: [String]
    var environment: [String: String]
    var stdin: [UInt8]
    /// Host directory preopened as `/workspace` (the only directory the guest can reach).
    var workspace: String
    var timeout: Duration
    /// Cap on linear memory, bytes (rounded down to 64 KiB pages by the engine's growth checks).
    var maxMemoryBytes: Int
    /// Captured bytes per output stream.
    var outputBytes: Int64
    /// Approved tools and the `http.get` allowlist.
    var tools: [String]
    var networkAllow: [String]
    /// Reuse a pooled, reset instance when the module supports it (see ``LoadedInstance``).
    var reuseInstances: Bool
    /// File size, workspace size and file-count limits on `/workspace` (enforced by ``WASIGuard``).
    var workspaceLimits = WorkspaceQuota.Limits(
        workspaceBytes: SandboxCore.Limits.default.workspaceBytes, fileSizeBytes: SandboxCore.Limits.default.fileSizeBytes,
        workspaceFiles: SandboxCore.Limits.default.workspaceFiles)
    /// The kv tools' store file of a long-lived sandbox (loaded at the start, saved at the end
    /// when changed); nil: a store that lives as long as the run.
    var kvStorePath: String?
}

/// How the guest ended.
enum WasmExit: Sendable, Equatable {
    case exited(Int32)
    /// A wasm trap (e.g. `call stack exhausted`, `unreachable`).
    case trapped(String)
    case timedOut
    case setupFailed(String)
}

/// The result of one engine run, before it is mapped onto an ``ExecResult``.
struct WasmRunReport: Sendable {
    var exit: WasmExit
    var memoryDenied: Bool = false
    var stdout = CapturedOutput()
    var stderr = CapturedOutput()
    var peakMemoryBytes = 0
    var toolCalls: [ToolCallRecord] = []
    var wallMs = 0.0
    /// CPU time of the thread that ran the guest (0 when the run was abandoned).
    var cpuMs = 0.0
    var reusedInstance = false
    /// Which workspace limits the guest ran into (it got `EFBIG`/`ENOSPC`).
    var workspace = WorkspaceQuota.Report()
    /// Why the kv store could not be saved after the run (its changes are lost), if it could not.
    var kvStoreError: String?
}

/// The process-wide WasmKit engine: one `Engine` (fuel-metered, 64 MiB interpreter stack), a cache
/// of parsed modules keyed by path, size and mtime, and a small pool of reusable instances.
// @unchecked: WasmKit's `Engine` is not Sendable; it is only read after init (modules and instances sit in Mutexes).
final class WasmRuntime: @unchecked Sendable {
    static let shared = WasmRuntime()

    /// Interpreter stack and native thread stack (both lazily committed).
    static let stackBytes = 64 << 20
    /// After the deadline, how long a run stuck in a host call is waited for before it is abandoned.
    static let abandonGrace: Duration = .seconds(2)
    static let maxPooledPerModule = 2

    let engine = Engine(configuration: EngineConfiguration(stackSize: WasmRuntime.stackBytes, fuelMetering: true))
    private struct CachedModule { var size: Int; var mtime: Double; var module: Module }
    private let modules = Mutex<[String: UnsafeBox<CachedModule>]>([:])
    private let pool = Mutex<[String: [LoadedInstance]]>([:])

    /// @unchecked: carries WasmKit values (not Sendable) into a Mutex or across one thread hop; never shared unlocked.
    struct UnsafeBox<T>: @unchecked Sendable { var value: T }

    /// Parses (once) and returns the module at `path`.
    func module(at path: String) throws -> Module {
        let attrs = try FileManager.default.attributesOfItem(atPath: path)
        let size = (attrs[.size] as? NSNumber)?.intValue ?? -1
        let mtime = (attrs[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        if let hit = modules.withLock({ $0[path] }), hit.value.size == size, hit.value.mtime == mtime {
            return hit.value.module
        }
        let module = try parseWasm(filePath: path)
        modules.withLock { $0[path] = UnsafeBox(value: CachedModule(size: size, mtime: mtime, module: module)) }
        return module
    }

    /// The name of a run's thread (15 bytes at most): `wasm-` and the end of the sandbox id.
    static func threadName(for sandboxId: String) -> String { "wasm-" + sandboxId.suffix(10) }

    /// Drops cached modules and pooled instances (for cold-start measurements).
    func flush() {
        modules.withLock { $0.removeAll() }
        pool.withLock { $0.removeAll() }
    }

    private func checkout(_ path: String, reuse: Bool) throws -> (LoadedInstance, Bool) {
        if reuse {
            while let pooled = pool.withLock({ $0[path]?.popLast() }) {
                if pooled.reset() { return (pooled, true) }
            }
        }
        return (try LoadedInstance(modulePath: path, module: module(at: path), engine: engine, reusable: reuse), false)
    }

    private func checkin(_ instance: LoadedInstance) {
        guard instance.isReusable else { return }
        pool.withLock { p in
            if p[instance.modulePath, default: []].count < Self.maxPooledPerModule {
                p[instance.modulePath, default: []].append(instance)
            }
        }
    }

    /// Runs `invocation` on its own big-stack thread; a watchdog drains the store's fuel at the
    /// deadline, which stops any running wasm code within about a millisecond.
    func run(_ invocation: WasmInvocation, output: OutputHandler?, logger: Logger, onToolCall: ToolCallHandler?) async
        -> WasmRunReport
    {
        let started = ContinuousClock.now
        let deadline = started + invocation.timeout
        let stdout = OutputSink(cap: invocation.outputBytes, stream: .stdout, handler: output)
        let stderr = OutputSink(cap: invocation.outputBytes, stream: .stderr, handler: output)
        var store = KVStore()
        if let path = invocation.kvStorePath {
            // Up to 4 MiB of JSON: read and parsed off the cooperative pool.
            let loaded = await BlockingPool.shared.run { UnsafeBox(value: Result { () throws(SandboxError) in try KVStore.load(path: path) }) }
            switch loaded.value {
            case .success(let s): store = s
            case .failure(let error): return WasmRunReport(exit: .setupFailed(error.message))
            }
        }
        let tools = ToolBridge(
            sandboxId: invocation.sandboxId, approved: invocation.tools, allow: invocation.networkAllow,
            deadline: deadline, logger: logger, onCall: onToolCall, store: store)
        let control = RunControl()
        var report = await withCheckedContinuation { (cont: CheckedContinuation<WasmRunReport, Never>) in
            let once = Mutex<CheckedContinuation<WasmRunReport, Never>?>(cont)
            @Sendable func finish(_ r: WasmRunReport) { once.withLock { $0.take() }?.resume(returning: r) }
            do {
                try DedicatedThread.start(stackSize: Self.stackBytes, name: Self.threadName(for: invocation.sandboxId)) { [self] in
                    // The guest runs on this thread alone: its CPU time is the run's.
                    let cpu = HostClock.threadCPUMs()
                    var report = execute(invocation, stdout: stdout, stderr: stderr, tools: tools, control: control, deadline: deadline, logger: logger)
                    report.cpuMs = HostClock.threadCPUMs() - cpu
                    finish(report)
                }
            } catch {
                finish(WasmRunReport(exit: .setupFailed("cannot start the wasm thread: \(error)")))
                return
            }
            control.watchdog = Task.detached {
                try? await Task.sleep(until: deadline, clock: .continuous)
                while !Task.isCancelled, control.interrupt() {
                    if ContinuousClock.now > deadline + Self.abandonGrace {
                        logger.warning("wasm run stuck in a host call after its deadline; abandoned",
                                       metadata: ["sandbox": "\(invocation.sandboxId)"])
                        control.abandon()
                        finish(WasmRunReport(exit: .timedOut, stdout: stdout.snapshot, stderr: stderr.snapshot))
                        return
                    }
                    try? await Task.sleep(for: .milliseconds(1))
                }
            }
        }
        control.watchdog?.cancel()
        report.toolCalls = tools.calls
        if let path = invocation.kvStorePath, tools.store.changed {
            let store = UnsafeBox(value: tools.store)
            let saved = await BlockingPool.shared.run { Result { () throws(SandboxError) in try store.value.save(path: path) } }
            if case .failure(let error) = saved {
                logger.error("kv store not saved", metadata: ["sandbox": "\(invocation.sandboxId)", "error": "\(error)"])
                report.kvStoreError = error.message
            }
        }
        report.wallMs = (ContinuousClock.now - started).milliseconds
        return report
    }

    private func execute(
        _ inv: WasmInvocation, stdout: OutputSink, stderr: OutputSink, tools: ToolBridge, control: RunControl,
        deadline: ContinuousClock.Instant, logger: Logger
    ) -> WasmRunReport {
        var report = WasmRunReport(exit: .exited(0))
        let loaded: LoadedInstance
        do {
            (loaded, report.reusedInstance) = try checkout(inv.modulePath, reuse: inv.reuseInstances)
        } catch {
            report.exit = .setupFailed("cannot load \(inv.modulePath): \(error)")
            return report
        }
        let bridge: WASIBridgeToHost
        do {
            bridge = try WASIBridgeToHost(
                args: inv.arguments, environment: inv.environment,
                fileSystem: .host()
                    .withStdio(stdin: InputFile(bytes: inv.stdin), stdout: CaptureFile(sink: stdout), stderr: CaptureFile(sink: stderr))
                    .withPreopens([.init(guestPath: "/workspace", hostPath: inv.workspace)]))
        } catch {
            report.exit = .setupFailed("cannot set up WASI (workspace \(inv.workspace)): \(error)")
            return report
        }
        let quota = WorkspaceQuota(root: inv.workspace, limits: inv.workspaceLimits)
        let guardrail = WASIGuard(bridge: bridge, quota: quota, control: control, deadline: deadline, logger: logger)
        loaded.context.wasi = guardrail.functions(from: bridge)
        loaded.context.tools = tools
        loaded.limiter.begin(maxBytes: inv.maxMemoryBytes, currentBytes: loaded.memoryBytes)
        loaded.markUsed()
        var reusable = loaded.isReusable
        if loaded.memoryBytes > inv.maxMemoryBytes {
            report.memoryDenied = true
            report.exit = .exited(-1)
            reusable = false
        } else if control.attach(loaded.store, deadline: deadline) {
            do {
                var stack = ExecutionStack(engine: engine)
                try loaded.start.invoke([], on: &stack)
                report.exit = .exited(0)
            } catch let code as WASIExitCode {
                report.exit = .exited(Int32(truncatingIfNeeded: code.code))
            } catch {
                reusable = false
                report.exit = control.interrupted ? .timedOut : .trapped(Self.describe(error))
            }
            if !control.detach() { reusable = false; report.exit = .timedOut }
        } else {
            report.exit = .timedOut
        }
        try? bridge.close()
        loaded.context.wasi = [:]
        loaded.context.tools = nil
        let limits = loaded.limiter.state.withLock { $0 }
        report.memoryDenied = report.memoryDenied || limits.denied
        report.peakMemoryBytes = max(limits.peakBytes, loaded.memoryBytes)
        report.stdout = stdout.snapshot
        report.stderr = stderr.snapshot
        report.workspace = quota.report
        if reusable { checkin(loaded) }
        return report
    }

    static func describe(_ error: any Error) -> String {
        var text = "\(error)"
        if text.hasPrefix("Trap: ") { text.removeFirst(6) }
        return text.split(separator: "\n").first.map(String.init) ?? text
    }
}

/// Shared between a run's thread and its watchdog: which store to drain, and whether it was.
final class RunControl: Sendable {
    private struct State {
        var store: Store?
        var interrupted = false
        var finished = false
        var abandoned = false
    }
    private let state = Mutex(WasmRuntime.UnsafeBox(value: State()))
    var watchdog: Task<Void, Never>? {
        get { watchdogBox.withLock { $0 } }
        set { watchdogBox.withLock { $0 = newValue } }
    }
    private let watchdogBox = Mutex<Task<Void, Never>?>(nil)

    /// Gives the store a practically unlimited fuel budget and exposes it to the watchdog;
    /// false if the deadline already passed.
    func attach(_ store: Store, deadline: ContinuousClock.Instant) -> Bool {
        state.withLock { s in
            guard !s.value.interrupted, !s.value.abandoned, ContinuousClock.now < deadline else { return false }
            store.fuel = Fuel(remaining: 1 << 62)
            s.value.store = store
            return true
        }
    }

    /// Detaches the store; false if the run was abandoned meanwhile.
    func detach() -> Bool {
        state.withLock { s in
            s.value.store?.fuel = nil
            s.value.store = nil
            s.value.finished = true
            return !s.value.abandoned
        }
    }

    /// Drains the fuel of the running store; returns false once the run has finished.
    func interrupt() -> Bool {
        state.withLock { s in
            if s.value.finished { return false }
            s.value.interrupted = true
            s.value.store?.fuel = Fuel(remaining: 0)
            return true
        }
    }

    var interrupted: Bool { state.withLock { $0.value.interrupted } }

    func abandon() { state.withLock { $0.value.abandoned = true } }
}

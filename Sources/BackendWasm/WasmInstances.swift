import Foundation
import SandboxCore
import Synchronization
@_spi(WASIPlatform) import WASI
@_spi(Fuzzing) import WasmKit
import WasmKitWASI

/// Caps linear-memory growth of one store at a per-run number of bytes and remembers a denial
/// (the run's outcome becomes `oom`).
final class MemoryLimiter: ResourceLimiter, Sendable {
    struct State {
        var maxBytes = Int.max
        var denied = false
        var peakBytes = 0
    }
    let state = Mutex(State())

    func limitMemoryGrowth(to desired: Int) throws -> Bool {
        state.withLock { s in
            guard desired <= s.maxBytes else { s.denied = true; return false }
            s.peakBytes = max(s.peakBytes, desired)
            return true
        }
    }
    func limitTableGrowth(to desired: Int) throws -> Bool { desired <= 1 << 20 }

    /// Starts a run: sets its cap and forgets the previous run's denial.
    func begin(maxBytes: Int, currentBytes: Int) {
        state.withLock { $0 = State(maxBytes: maxBytes, denied: false, peakBytes: currentBytes) }
    }
}

/// What host functions of an instance dispatch to; swapped for every run of a reused instance.
// @unchecked: WasmKit host implementations are not Sendable; a context is used only on the run's thread.
final class HostContext: @unchecked Sendable {
    var wasi: [String: WASIHostImplementation] = [:]
    var tools: ToolBridge?
}

/// An instantiated module with its own store. When the module exports its only mutable global
/// (`__stack_pointer`, as `qjs.wasm` does) the instance keeps a copy of its pristine linear memory
/// and is *reused*: ``reset()`` puts memory and the stack pointer back, so the next run starts
/// from exactly the state a fresh instance has, without re-translating any function.
// @unchecked: WasmKit's Store, Instance and Memory are not Sendable; an instance is used by one run at a time (handed over through the pool's Mutex).
final class LoadedInstance: @unchecked Sendable {
    let modulePath: String
    let store: Store
    let instance: Instance
    let context: HostContext
    let limiter: MemoryLimiter
    let memory: Memory?
    let start: Function
    private let pristine: [UInt8]?
    private let stackPointer: (global: Global, value: Value)?
    /// Runs served, for logging and tests.
    private(set) var runs = 0
    /// Reuse is refused once memory has grown this far beyond the pristine size.
    static let maxReuseGrowth = 16 << 20

    init(modulePath: String, module: Module, engine: Engine, reusable: Bool) throws {
        self.modulePath = modulePath
        store = Store(engine: engine)
        limiter = MemoryLimiter()
        store.resourceLimiter = limiter
        let context = HostContext()
        self.context = context
        var imports = Imports()
        for (name, type) in WASIFunctionTypes.shared.types {
            imports.define(module: "wasi_snapshot_preview1", name: name, Function(store: store, type: type) { caller, args in
                guard let f = context.wasi[name] else { throw WASIAbi.Errno.ENOSYS }
                guard case .memory(let memory) = caller.instance?.export("memory") else {
                    throw SandboxError(.invalidRequest, "the module does not export its memory")
                }
                return try f(memory, args)
            })
        }
        imports.define(module: "sandboxer", name: "tool_call", Function(store: store, type: ToolImport.type) { caller, args in
            guard case .memory(let memory) = caller.instance?.export("memory") else {
                throw SandboxError(.invalidRequest, "the module does not export its memory")
            }
            return [.i32(UInt32(bitPattern: ToolImport.call(context.tools, memory: memory, args: args)))]
        })
        instance = try module.instantiate(store: store, imports: imports)
        guard let start = instance.exports[function: "_start"] else {
            throw SandboxError(.invalidRequest, "\(modulePath) is not a WASI command: it exports no _start function")
        }
        self.start = start
        memory = instance.exports[memory: "memory"]
        if reusable, let memory, let sp = instance.exports[global: "__stack_pointer"] {
            if let preinit = instance.exports[function: Self.preinitExport] {
                try Self.preinitialise(preinit, engine: engine, context: context)
            }
            pristine = memory.withUnsafeBufferPointer(offset: 0, count: memory.byteCount) { Array($0) }
            stackPointer = (sp, sp.value)
        } else {
            pristine = nil
            stackPointer = nil
        }
    }

    /// The export a module offers for pre-initialisation (`qjs.wasm`: runtime, context with every
    /// intrinsic, compiled bootstrap). It is called once, before the pristine copy is taken, so
    /// each run starts from the initialised state instead of rebuilding it.
    static let preinitExport = "sbx_preinit"

    /// Runs the pre-initialisation with the WASI layout of a run (only `/workspace` preopened,
    /// here an empty directory) and no arguments, environment or stdin.
    private static func preinitialise(_ preinit: Function, engine: Engine, context: HostContext) throws {
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("sandboxer-preinit-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: empty) }
        let discard = OutputSink(cap: 0, stream: .stderr, handler: nil)
        let bridge = try WASIBridgeToHost(
            args: ["preinit"], environment: [:],
            fileSystem: .host()
                .withStdio(stdin: InputFile(bytes: []), stdout: CaptureFile(sink: discard), stderr: CaptureFile(sink: discard))
                .withPreopens([.init(guestPath: "/workspace", hostPath: empty)]))
        let functions: [String: WASIHostFunction<Memory>] = bridge.hostFunctions(capabilities: WASICapability.all)
        context.wasi = functions.mapValues(\.implementation)
        defer {
            try? bridge.close()
            context.wasi = [:]
        }
        var stack = ExecutionStack(engine: engine)
        let result = try preinit.invoke([], on: &stack)
        guard result.first == .i32(0) else {
            throw SandboxError(.setupFailed, "\(preinitExport) of the module failed (\(result)); rebuild it with `make wasm`")
        }
    }

    var isReusable: Bool { pristine != nil }
    var memoryBytes: Int { memory?.byteCount ?? 0 }

    /// Prepares for the next run; false when this instance cannot serve another one.
    func reset() -> Bool {
        guard let pristine, let memory, let stackPointer else { return runs == 0 }
        if runs == 0 { return true }
        let size = memory.byteCount
        guard size - pristine.count <= Self.maxReuseGrowth else { return false }
        memory.withUnsafeMutableBufferPointer(offset: 0, count: size) { buf in
            pristine.withUnsafeBytes { buf.copyMemory(from: $0) }
            if size > pristine.count {
                memset(buf.baseAddress! + pristine.count, 0, size - pristine.count)
            }
        }
        do { try stackPointer.global.assign(stackPointer.value) } catch { return false }
        return true
    }

    func markUsed() { runs += 1 }
}

/// The types of all WASI preview1 functions, read once from a throwaway bridge.
final class WASIFunctionTypes: Sendable {
    static let shared = WASIFunctionTypes()
    let types: [(String, FunctionType)]
    private init() {
        var types: [(String, FunctionType)] = []
        if let bridge = try? WASIBridgeToHost(args: [], environment: [:], fileSystem: .memory(MemoryFileSystem())) {
            let fns: [String: WASIHostFunction<Memory>] = bridge.hostFunctions(capabilities: WASICapability.all)
            types = fns.map { ($0.key, $0.value.type) }.sorted { $0.0 < $1.0 }
            try? bridge.close()
        }
        self.types = types
    }
}

/// The `sandboxer.tool_call` import (ABI in `wasm/quickjs/README.md`).
enum ToolImport {
    static let type = FunctionType(parameters: [.i32, .i32, .i32, .i32, .i32, .i32], results: [.i32])

    static func call(_ bridge: ToolBridge?, memory: Memory, args: [Value]) -> Int32 {
        func u(_ i: Int) -> Int { if case .i32(let v) = args[i] { return Int(v) } else { return 0 } }
        let (namePtr, nameLen, argsPtr, argsLen, outPtr, outCap) = (u(0), u(1), u(2), u(3), u(4), u(5))
        let size = memory.byteCount
        func inBounds(_ p: Int, _ n: Int) -> Bool { p >= 0 && n >= 0 && p + n <= size }
        guard inBounds(namePtr, nameLen), inBounds(argsPtr, argsLen), inBounds(outPtr, outCap) else { return -1 }
        let name = memory.withUnsafeBufferPointer(offset: UInt(namePtr), count: nameLen) { String(decoding: $0, as: UTF8.self) }
        let arguments = memory.withUnsafeBufferPointer(offset: UInt(argsPtr), count: argsLen) { Array($0) }
        let (ok, json) = bridge?.call(name: name, arguments: arguments)
            ?? (false, ToolBridge.errorJSON("this sandbox has no tools"))
        if ok && json.count > outCap {
            bridge?.keepPending(name: name, arguments: arguments, result: json, ok: ok)
            return Int32(clamping: json.count)
        }
        let n = min(json.count, outCap)
        memory.withUnsafeMutableBufferPointer(offset: UInt(outPtr), count: n) { dst in
            json.withUnsafeBytes { dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
        return ok ? Int32(clamping: json.count) : -Int32(clamping: max(1, n))
    }
}

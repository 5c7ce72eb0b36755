import Foundation
import Testing
@testable import BackendWasm
@testable import SandboxCore

/// The worker's command line is written and read back by the same code.
@Suite("WASM worker command line")
struct WorkerOptionsTests {
    static func invocation(_ arguments: [String]) -> WasmInvocation {
        var inv = WasmInvocation(
            sandboxId: "sbx-0123456789ab", modulePath: "/opt/m.wasm", arguments: arguments, environment: ["B": "2", "A": "x=y"],
            stdin: Array("in".utf8), workspace: "/tmp/ws", timeout: .milliseconds(1500), maxMemoryBytes: 64 << 20,
            outputBytes: 4096, tools: ["kv.get", "http.get"], networkAllow: ["example.com"], reuseInstances: false)
        inv.workspaceLimits = .init(workspaceBytes: 1 << 20, fileSizeBytes: 1 << 19, workspaceFiles: 77)
        return inv
    }

    @Test("a WASI module's invocation survives the round trip")
    func moduleRoundTrip() throws {
        let inv = Self.invocation(["m.wasm", "--flag", "value"])
        let parsed = try WorkerOptions(parsing: WorkerOptions.arguments(for: inv, inputBytes: Int64(inv.stdin.count), report: "/tmp/r.json", program: .module(arguments: inv.arguments)))
        let back = parsed.invocation
        #expect(back.sandboxId == inv.sandboxId && back.modulePath == inv.modulePath && back.arguments == inv.arguments)
        #expect(back.environment == inv.environment && back.tools == inv.tools && back.networkAllow == inv.networkAllow)
        #expect(back.timeout == inv.timeout && back.maxMemoryBytes == inv.maxMemoryBytes && back.outputBytes == inv.outputBytes)
        #expect(back.workspaceLimits.workspaceBytes == 1 << 20 && back.workspaceLimits.fileSizeBytes == 1 << 19)
        #expect(back.workspaceLimits.workspaceFiles == 77)
        #expect(parsed.workspace == "/tmp/ws" && parsed.reportPath == "/tmp/r.json" && parsed.inputBytes == 2)
    }

    @Test("JavaScript goes through a file and comes back as qjs -e SOURCE with its arguments")
    func javaScriptRoundTrip() throws {
        let source = "console.log(scriptArgs)"
        let file = NSTemporaryDirectory() + "sbx-worker-js-\(UUID().uuidString).js"
        try source.write(toFile: file, atomically: false, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let inv = Self.invocation(["qjs", "-e", source, "a", "b"])
        let argv = WorkerOptions.arguments(
            for: inv, inputBytes: 1 << 20, report: "/tmp/r.json", program: .javaScript(file: file, arguments: Array(inv.arguments.dropFirst(3))))
        #expect(!argv.contains(source), "the source must not travel in argv")
        let back = try WorkerOptions(parsing: argv).invocation
        #expect(back.arguments == ["qjs", "-e", source, "a", "b"])
        #expect(back.modulePath == "/opt/m.wasm")
    }

    @Test("the layered isolation's command line (no report, the profile's input limit) parses back to the same limits")
    func layeredArguments() throws {
        var limits = Limits.default
        limits.workspaceFiles = 55
        let argv = WasmWorker.arguments(
            id: "layered", workspace: "/workspace", module: "/m/tool.wasm", program: .module(arguments: ["/m/tool.wasm", "x"]),
            limits: limits, memoryBytes: 32 << 20, tools: [], networkAllow: [], environment: ["K": "v"], report: nil)
        let parsed = try WorkerOptions(parsing: argv)
        #expect(parsed.reportPath == nil && parsed.inputBytes == limits.inputBytes && parsed.workspace == "/workspace")
        #expect(parsed.invocation.arguments == ["/m/tool.wasm", "x"] && parsed.invocation.maxMemoryBytes == 32 << 20)
        #expect(parsed.invocation.workspaceLimits.workspaceFiles == 55 && parsed.invocation.environment == ["K": "v"])
    }

    @Test("a long-lived sandbox's kv store file travels as --kv-store; without one, the flag is absent")
    func kvStoreRoundTrip() throws {
        var inv = Self.invocation(["m.wasm"])
        #expect(try WorkerOptions(parsing: WorkerOptions.arguments(for: inv, inputBytes: 1, report: nil, program: .module(arguments: inv.arguments))).invocation.kvStorePath == nil)
        inv.kvStorePath = "/var/lib/sandboxer/state/wasm/sbx-1/kv.json"
        let argv = WorkerOptions.arguments(for: inv, inputBytes: 1, report: nil, program: .module(arguments: inv.arguments))
        #expect(argv.contains(WorkerOptions.Flag.kvStore.rawValue))
        #expect(try WorkerOptions(parsing: argv).invocation.kvStorePath == inv.kvStorePath)
        let layered = WasmWorker.arguments(
            id: "x", workspace: "/workspace", module: "/m.wasm", program: .module(arguments: ["/m.wasm"]), limits: .default,
            memoryBytes: 1 << 24, tools: [], networkAllow: [], environment: [:], report: nil, kvStore: "/s/kv.json")
        #expect(try WorkerOptions(parsing: layered).invocation.kvStorePath == "/s/kv.json")
    }

    @Test("an unknown flag is a usage error naming it")
    func unknownFlag() {
        #expect(throws: WorkerOptions.UsageError.self) { try WorkerOptions(parsing: ["--bogus", "1"]) }
    }
}

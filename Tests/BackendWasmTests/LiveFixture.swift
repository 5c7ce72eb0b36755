import BackendWasm
import Foundation
import SandboxCore
import Testing

/// A ``WasmLiveBackend`` over a private root (`<tmp>/…/state/wasm`, created by the backend),
/// removed by ``cleanUp()``.
struct LiveFixture {
    /// Where execs run, for parameterised tests.
    enum Mode: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case inProcess = "in-process", worker
        var testDescription: String { rawValue }
    }

    let base: String
    let root: String
    let mode: WasmBackend.ExecutionMode
    let backend: WasmLiveBackend

    init(_ mode: Mode = .inProcess) throws {
        base = Fixtures.workDirectory()
        root = base + "/state/wasm"
        switch mode {
        case .inProcess: self.mode = .inProcess
        case .worker:
            self.mode = .worker(executable: try #require(Fixtures.sandboxerExecutable, "the sandboxer executable is not built"))
        }
        backend = Self.backend(root: root, mode: self.mode)
    }

    /// Another backend value over the same root: what a restarted server has.
    func restarted() -> WasmLiveBackend { Self.backend(root: root, mode: mode) }

    static func backend(root: String, mode: WasmBackend.ExecutionMode) -> WasmLiveBackend {
        WasmLiveBackend(configuration: .init(root: root, mode: mode, quickJSModule: Fixtures.modules?.qjs))
    }

    func cleanUp() { try? FileManager.default.removeItem(atPath: base) }

    /// A profile for long-lived sandboxes with the kv tools approved.
    static func spec(
        id: String = SandboxSpec.newID(), timeout: Duration = .seconds(60), workspace: Int64 = 8 << 20, files: Int = 1000,
        fileSize: Int64 = 4 << 20
    ) -> SandboxSpec {
        SandboxSpec(id: id, profile: Profile(
            name: "wasm-live-test", isolation: .wasm,
            limits: Limits(timeout: timeout, memoryBytes: 128 << 20, workspaceBytes: workspace, fileSizeBytes: fileSize, workspaceFiles: files),
            tools: ["kv.get", "kv.set"]))
    }

    /// Runs `fsops.wasm` with `ops` in the sandbox.
    func fsops(_ sandbox: SandboxHandle, _ ops: [String]) async throws -> ExecResult {
        let module = try #require(Fixtures.fsops, "fsops.wasm cannot be built")
        return try await backend.exec(sandbox, ExecRequest(argv: [module] + ops), output: nil)
    }

    /// The entries of a host directory (empty when it does not exist).
    static func entries(_ path: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
    }
}

/// Expects `body` to throw a ``SandboxError`` with `code`; returns it for further checks.
@discardableResult
func expectSandboxError<T>(
    _ code: SandboxError.Code, sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> T
) async -> SandboxError? {
    do {
        let value = try await body()
        Issue.record("expected \(code.rawValue), got \(value)", sourceLocation: sourceLocation)
    } catch let error as SandboxError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected a SandboxError \(code.rawValue), got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

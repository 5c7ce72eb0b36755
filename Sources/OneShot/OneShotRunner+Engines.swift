import BackendWasm
import SandboxCore

extension OneShotRunner {
    /// The engines a run of `profile` uses on this node, for its replay record: the OCI runtime
    /// and its version for the container lanes (read once per process), WasmKit and QuickJS for
    /// the WASM lanes. A lane this node cannot run gives nil for its part.
    public func engines(for profile: Profile) -> RunEngines {
        var engines = RunEngines()
        if profile.isolation != .wasm, let runtime = try? containerBackend().runtimeFor(profile) {
            engines.runtime = runtime.name
            engines.runtimeVersion = runtime.version
        }
        if profile.isolation == .wasm || profile.isolation == .wasmContainer {
            engines.wasmKit = WasmVersions.wasmKit
            engines.quickJS = WasmVersions.quickJS
        }
        return engines
    }
}

/// The engines one run uses (see ``OneShotRunner/engines(for:)``).
public struct RunEngines: Sendable, Equatable {
    public var runtime: String?
    public var runtimeVersion: String?
    public var wasmKit: String?
    public var quickJS: String?
    public init(runtime: String? = nil, runtimeVersion: String? = nil, wasmKit: String? = nil, quickJS: String? = nil) {
        self.runtime = runtime
        self.runtimeVersion = runtimeVersion
        self.wasmKit = wasmKit
        self.quickJS = quickJS
    }
}

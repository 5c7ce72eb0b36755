import BackendOCI
import BackendWasm
import Foundation
import Logging
import SandboxCore
import SandboxLinux
import Templates

/// One-shot runs: a fresh sandbox of the profile's isolation runs one request and is removed. Knows
/// which backend runs an isolation level and how layered isolations (`wasm+container`) are composed;
/// its backends are built once (cgroup detection, the seccomp profile) and shared by every run.
/// `sandboxer run` and the run queue's workers both go through it.
public final class OneShotRunner: Sendable {
    /// Host settings of the backends.
    public struct Options: Sendable {
        /// Container backend state (`/run/sandboxer`, or the server's `<data>/state`).
        public var stateDirectory: String
        /// Forces an OCI runtime (crun, runc, runsc).
        public var runtime: String?
        /// Reaper command for one-shot runs (see ``OCIBackend/Configuration/reaper``).
        public var reaper: [String]?
        /// How the WASM backend runs code: in this process, or in a supervised worker process.
        public var wasmMode: WasmBackend.ExecutionMode
        /// The egress proxy for profiles that reach the network (nil: they are refused).
        public var egress: (any EgressProvider)?
        /// Where a profile's `secrets` are looked up (nil: such profiles are refused).
        public var secrets: (any SecretResolver)?
        /// Where image templates come from (nil: only the built-in `host`).
        public var images: ImageStore?
        public init(stateDirectory: String = OCIBackend.defaultStateDirectory, runtime: String? = nil, reaper: [String]? = nil,
                    wasmMode: WasmBackend.ExecutionMode = .inProcess, egress: (any EgressProvider)? = nil) {
            self.stateDirectory = stateDirectory
            self.runtime = runtime
            self.reaper = reaper
            self.wasmMode = wasmMode
            self.egress = egress
        }
    }

    public let options: Options
    let logger: Logger
    /// The container backend, built once (or why it cannot be: no runtime, not root).
    private let container: Result<OCIBackend, SandboxError>
    private let wasm: WasmBackend

    public init(options: Options = Options(), logger: Logger = Logger(label: "sandboxer.oneshot")) {
        self.options = options
        self.logger = logger
        container = Result { () throws(SandboxError) in
            try OCIBackend(configuration: .init(stateDirectory: options.stateDirectory, runtime: options.runtime, reaper: options.reaper,
                                                egress: options.egress, images: options.images))
        }
        wasm = WasmBackend(configuration: .init(mode: options.wasmMode))
    }

    /// The container backend (crun/runc/runsc) with these options, the same for every run.
    public func containerBackend() throws(SandboxError) -> OCIBackend {
        try container.get()
    }

    /// The quick leftover check before a one-shot run (it may spawn the runtime and wait on
    /// cgroups): on a thread of its own, never on the cooperative pool that heartbeats share.
    static func collectLeftovers(_ backend: OCIBackend) async {
        let configuration = backend.configuration
        await BlockingPool.shared.run { GarbageCollector(configuration: configuration).collectQuietly() }
    }

    /// One-shot: a fresh sandbox of the profile's isolation runs `request` and is removed.
    /// Cancelling the calling task kills the run (outcome `cancelled`).
    /// `setup`: a command run first in the same sandbox under the profile's `setup` phase policy;
    /// the policy then switches to the `run` phase and `request` runs (container isolations only).
    /// The profile's `secrets` are looked up in ``Options/secrets`` (placeholders in the sandbox).
    /// `sandboxId`: the id the sandbox gets (a queued run records it before the sandbox starts).
    public func run(profile: Profile, request: ExecRequest, workspace: String?, sync: WorkspaceSync = .merge,
                    setup: ExecRequest? = nil, tenantId: String? = nil, sandboxId: String = SandboxSpec.newID(),
                    output: OutputHandler?) async throws -> ExecResult {
        var secrets: [EgressSecret] = []
        if !profile.secrets.isEmpty {
            guard let resolver = options.secrets else {
                throw SandboxError(.invalidRequest, "profile '\(profile.name)' asks for secrets (\(profile.secrets.joined(separator: ", "))), but no secret store is open here; set them with `sandboxer secret set NAME --hosts HOST`")
            }
            secrets = try await resolver.resolve(names: profile.secrets, tenantId: tenantId, placeholders: [:])
        }
        if setup != nil || !secrets.isEmpty {
            guard profile.isolation == .container || profile.isolation == .gvisor else {
                throw SandboxError(.invalidRequest, "a setup command and secrets need isolation container or gvisor; profile '\(profile.name)' uses \(profile.isolation.rawValue)")
            }
        }
        if let setup {
            var spec = SandboxSpec(id: sandboxId, profile: profile, workspaceDirectory: workspace, workspaceSync: sync)
            spec.secrets = secrets
            spec.phase = .setup
            let backend = try containerBackend()
            await Self.collectLeftovers(backend)
            return try await PhasedRun(backend: backend, egress: options.egress).run(spec, setup: setup, request: request, output: output)
        }
        switch profile.isolation {
        case .wasm:
            let spec = SandboxSpec(id: sandboxId, profile: profile, workspaceDirectory: workspace, workspaceSync: sync)
            return try await wasm.run(spec, request, output: output)
        case .wasmContainer:
            let backend = try containerBackend()
            await Self.collectLeftovers(backend)
            return try await LayeredWasm(backend: backend).run(profile: profile, request: request, workspace: workspace, id: sandboxId, output: output)
        case .microvm:
            throw SandboxError(.hostUnsupported, "isolation microvm is not built yet; use container, gvisor, wasm or wasm+container")
        case .container, .gvisor:
            var spec = SandboxSpec(id: sandboxId, profile: profile, workspaceDirectory: workspace, workspaceSync: sync)
            spec.secrets = secrets
            let backend = try containerBackend()
            await Self.collectLeftovers(backend)
            return try await backend.run(spec, request, output: output)
        }
    }
}

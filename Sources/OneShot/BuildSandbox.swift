import BackendOCI
import Foundation
import SandboxCore
import SandboxLinux
import Templates

/// The container backend as a template build's ``BuildStepRunner``: each `RUN` step runs in a
/// fresh sandbox (crun, its own user namespace — uid 0 inside is an unprivileged host id — seccomp,
/// a cgroup; a root step keeps the namespace's build-step capabilities, ``SandboxSpec/buildStep``) whose root is the build's image so far with a writable upper
/// directory; the network is the egress proxy's allowlist of the build's hosts. When the command
/// succeeds, the processes it left are ended and the upper directory is captured as the step's
/// layer before the sandbox is removed.
public struct BuildSandbox: BuildStepRunner {
    public let backend: OCIBackend
    /// The limits of one step's sandbox (time, memory, what it may write to its root).
    public var limits: Limits

    /// One step: an hour, 4 GiB of memory (what the step writes to its root counts too), 4 GiB of root changes.
    public static let stepLimits = Limits(
        timeout: .seconds(3600), memoryBytes: 4 << 30, pids: 4096, cpus: 2, outputBytes: 64 << 20, workspaceBytes: 4 << 30,
        tmpBytes: 1 << 30, openFiles: 4096, fileSizeBytes: 4 << 30, workspaceFiles: 1_000_000)

    public init(backend: OCIBackend, limits: Limits = BuildSandbox.stepLimits) {
        self.backend = backend
        self.limits = limits
    }

    public func run(_ request: BuildRunRequest, output: @escaping @Sendable ([UInt8]) -> Void,
                    capture: @escaping @Sendable (String, UInt32?) async throws(SandboxError) -> OCIDescriptor) async throws -> BuildRunResult {
        // Without an egress proxy (a server started without one) the steps stay offline.
        let online = !request.allow.isEmpty && backend.configuration.egress != nil
        let network = online ? NetworkPolicy(mode: .allowlist, allow: request.allow) : NetworkPolicy.deny
        let profile = Profile(name: "template-build", description: "a template build's RUN step", limits: limits, network: network,
                              uid: request.uid, gid: request.gid, template: request.template)
        var spec = SandboxSpec(profile: profile)
        spec.buildStep = true
        await OneShotRunner.collectLeftovers(backend)
        let handle = try await backend.create(spec)
        do {
            var env: [String: String] = [:]
            for pair in request.environment {
                let (k, v) = (pair.prefix { $0 != "=" }, pair.drop { $0 != "=" }.dropFirst())
                env[String(k)] = String(v)
            }
            let exec = ExecRequest(argv: request.argv, env: env, cwd: request.workingDirectory, timeout: limits.timeout)
            let result = try await backend.exec(handle, exec, output: { _, bytes in output(bytes) })
            guard result.outcome == .ok else {
                try await backend.destroy(handle)
                let why = result.outcome == .exitNonzero ? "exit \(result.exitCode.map(String.init) ?? "?")"
                    : result.outcome.rawValue + (result.reason.map { ": " + $0 } ?? "")
                return BuildRunResult(layer: nil, failure: why)
            }
            if let failure = await SetupProcesses.end(handle, backend: backend, profile: profile) {
                throw SandboxError(.setupFailed, failure)
            }
            let upper = ContainerLayout(stateDirectory: backend.configuration.stateDirectory, id: spec.id).upperDirectory
            let hostBase = IDMapping(spec: spec).hostBase
            let layer = try await capture(upper, hostBase)
            try await backend.destroy(handle)
            return BuildRunResult(layer: layer, failure: nil)
        } catch {
            try? await backend.destroy(handle)
            throw error
        }
    }
}

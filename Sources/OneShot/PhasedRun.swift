import BackendOCI
import Foundation
import SandboxCore

/// A one-shot run with a setup command: one sandbox, the setup command under the profile's
/// `setup` network policy (e.g. online to install packages), then the policy switches to the `run`
/// phase (e.g. offline) and the user's command runs in the same sandbox, on the same files.
struct PhasedRun: Sendable {
    let backend: OCIBackend
    let egress: (any EgressProvider)?

    func run(_ spec: SandboxSpec, setup: ExecRequest, request: ExecRequest, output: OutputHandler?) async throws -> ExecResult {
        let handle = try await backend.create(spec)
        do {
            let prepared = try await backend.exec(handle, setup, output: output)
            guard prepared.outcome == .ok else {
                var failed = prepared
                failed.reason = "the setup command failed (\(prepared.outcome.rawValue)\(prepared.exitCode.map { ", exit \($0)" } ?? "")); the run did not start"
                try await backend.destroy(handle)
                return failed
            }
            if let failure = await SetupProcesses.end(handle, backend: backend, profile: spec.profile) {
                throw SandboxError(.setupFailed, failure)  // destroyed below
            }
            await egress?.enterRunPhase(sandboxId: spec.id, profile: spec.profile)
            let result = try await backend.exec(handle, request, output: output)
            try await backend.destroy(handle)
            return result
        } catch {
            try? await backend.destroy(handle)
            throw error
        }
    }
}

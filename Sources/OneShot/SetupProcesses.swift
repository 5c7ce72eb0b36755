import Foundation
import SandboxCore

/// The end of a setup phase: every process the setup command left running (a server, a tunnel, a
/// `nohup … &`) is killed before the run phase starts — unless the profile keeps them
/// (`phases.setup.keep_processes: true`) — so nothing started under the setup policy carries its
/// connections, or new ones, into the run phase.
public enum SetupProcesses {
    /// Run inside the sandbox: `kill(-1, SIGKILL)` signals every process of the sandbox's pid
    /// namespace the caller may signal, except itself and its init (the sandbox's agent).
    /// It then waits (up to 5 s) until none is left to signal: SIGKILL is delivered asynchronously,
    /// and the run phase must not see a setup process still exiting.
    public static let endAll = ExecRequest(argv: ["/bin/sh", "-c", """
        kill -KILL -1 2>/dev/null
        i=0; while kill -0 -1 2>/dev/null && [ $i -lt 500 ]; do sleep 0.01; i=$((i+1)); done
        exit 0
        """], timeout: .seconds(10))

    /// Ends the setup's processes in `sandbox` (nothing when the profile keeps them). Returns the
    /// failure's reason when they could not be ended (the caller fails the sandbox: a run phase
    /// must not start beside them).
    public static func end(_ sandbox: SandboxHandle, backend: any IsolationBackend, profile: Profile) async -> String? {
        guard !profile.phases.keepSetupProcesses else { return nil }
        do {
            let r = try await backend.exec(sandbox, endAll, output: nil)
            return r.outcome == .ok ? nil : "ending the setup command's processes failed (\(r.outcome.rawValue)): \(r.stderr.suffix(500))"
        } catch {
            return "ending the setup command's processes failed: \(error)"
        }
    }
}

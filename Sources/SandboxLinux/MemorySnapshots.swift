import Foundation
import SandboxCore

/// Whether this host could checkpoint a sandbox's processes with their memory (CRIU), for
/// `"memory": true` snapshots and `sandboxer doctor`.
public enum MemorySnapshots {
    /// Where `criu` is looked for.
    static let candidates = ["/usr/sbin/criu", "/usr/bin/criu", "/usr/local/sbin/criu", "/usr/local/bin/criu"]

    /// Runs `criu check` when criu is installed: nil when it passes, else why memory snapshots are
    /// not available here.
    public static func unavailableReason() async -> String? {
        guard let criu = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            return "criu not installed (memory snapshots need CRIU: apt-get install criu)"
        }
        do {
            let (status, out, err) = try await ChildProcess.run([criu, "check"])
            if status == .exited(0) {
                return "criu check passes on this host, but memory checkpointing is not implemented in this version (it could not be tested: CRIU does not work on the kernel sandboxer is developed on)"
            }
            let said = (err.isEmpty ? out : err).split(separator: "\n").last.map(String.init) ?? "\(status)"
            return "criu check fails on this kernel: \(said)"
        } catch {
            return "criu check could not run: \(error.message)"
        }
    }
}

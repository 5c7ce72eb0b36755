import Foundation
import Synchronization

/// The one thing about a long-lived sandbox that cannot live on the host: the open, locked host
/// workspace directory and the manifest of what was copied in, which the copy back at `destroy`
/// needs. Kept only for sandboxes with a host workspace, by the process that created them; a
/// sandbox adopted by another process is destroyed without a copy back (its lock and manifest
/// died with its creator). Everything else derives from the sandbox id and the spec.
final class WorkspaceHolds: Sendable {
    private let held = Mutex<[String: SandboxResources]>([:])

    func add(_ r: SandboxResources) { held.withLock { $0[r.spec.id] = r } }
    func take(_ id: String) -> SandboxResources? { held.withLock { $0.removeValue(forKey: id) } }
}

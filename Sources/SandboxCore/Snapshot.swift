import Foundation

/// What a snapshot of a live sandbox recorded (`POST /v1/sandboxes/{id}/snapshots` answers it).
public struct SnapshotResult: Sendable, Equatable {
    /// The snapshot's id (`snap-…`), also its image's name in the data directory's store.
    public var id: String
    /// The snapshot image's manifest digest (`sha256:…`).
    public var digest: String
    /// The snapshot's own layer (what the sandbox had written: its root changes and workspace).
    public var sizeBytes: Int64
    /// How long the sandbox was frozen (freeze → thaw).
    public var pausedMs: Double

    public init(id: String, digest: String, sizeBytes: Int64, pausedMs: Double) {
        (self.id, self.digest, self.sizeBytes, self.pausedMs) = (id, digest, sizeBytes, pausedMs)
    }
}

/// A backend that can save a live sandbox's filesystem as an image (the container backend);
/// a sandbox made from the image (``SandboxSpec/snapshot``) starts with exactly that filesystem.
public protocol SnapshotBackend: Sendable {
    /// Freezes the sandbox, writes its filesystem state as a new layer, thaws it (always, also on
    /// failure) and stores image `id` for `tenantId`. Processes are not saved.
    func snapshot(_ sandbox: SandboxHandle, id: String, tenantId: String) async throws -> SnapshotResult
}

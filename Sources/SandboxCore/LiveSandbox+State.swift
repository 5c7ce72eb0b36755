import Foundation

/// Backends that cannot pause or hibernate their sandboxes (WASM: nothing runs between calls)
/// refuse with a message that says so.
extension LiveSandboxBackend {
    public func pause(_ sandbox: SandboxHandle) async throws { throw Self.noStateChanges(level, "paused") }
    public func unpause(_ sandbox: SandboxHandle) async throws { throw Self.noStateChanges(level, "resumed") }
    public func hibernate(_ sandbox: SandboxHandle) async throws { throw Self.noStateChanges(level, "hibernated") }
    public func wake(_ spec: SandboxSpec) async throws -> SandboxHandle { throw Self.noStateChanges(level, "resumed") }
    public func isHibernated(id: String) async -> Bool { false }
    public func keepFiles(id: String) async -> Bool { false }
    public func diskBytes(id: String) async -> Int64? { nil }

    static func noStateChanges(_ level: IsolationLevel, _ what: String) -> SandboxError {
        SandboxError(.invalidRequest, "isolation '\(level.rawValue)' sandboxes cannot be \(what) (they run nothing between calls); use isolation container")
    }
}

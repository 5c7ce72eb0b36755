/// How `/workspace` is copied back to a host directory after a run.
public enum WorkspaceSync: String, Sendable, Codable, CaseIterable {
    /// Copy back what the sandbox created or changed; report (but keep) what it deleted.
    case merge
    /// As `merge`, and also delete on the host what the sandbox deleted (unless the host changed it).
    case mirror
}

/// What the copy of `/workspace` back to its host directory did. Paths are relative to the
/// workspace; names that are not valid UTF-8 are shown with `\xNN` escapes.
public struct WorkspaceReport: Sendable, Equatable, Codable {
    /// Files, links and directories created or replaced on the host.
    public var copiedFiles: Int = 0
    /// Data bytes written to the host (holes of sparse files are not written and not counted).
    public var copiedBytes: Int64 = 0
    /// Files the sandbox left as they were copied in (not written again).
    public var unchangedFiles: Int = 0
    /// Paths changed both on the host during the run and in the sandbox: the host's version was kept.
    public var conflicts: [String] = []
    /// Paths copied in that the sandbox deleted.
    public var deleted: [String] = []
    /// Whether `deleted` was applied to the host (`--workspace-sync=mirror`).
    public var deletionsApplied: Bool = false
    /// Entries not copied back, each with the reason (device nodes, limits, depth, …).
    public var skipped: [Skipped] = []
    /// Set when the copy stopped early at a limit (bytes, files, depth or time): which, and why.
    public var limitReached: String?

    public init() {}

    /// One entry the copy left out.
    public struct Skipped: Sendable, Equatable, Codable {
        public var path: String
        public var reason: String
        public init(path: String, reason: String) {
            self.path = path
            self.reason = reason
        }
    }

    enum CodingKeys: String, CodingKey {
        case copiedFiles = "copied_files", copiedBytes = "copied_bytes", unchangedFiles = "unchanged_files",
            conflicts, deleted, deletionsApplied = "deletions_applied", skipped, limitReached = "limit_reached"
    }
}

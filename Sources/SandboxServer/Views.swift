import Foundation
import SandboxCore
import SandboxManager
import SandboxStore

/// A sandbox as the API shows it (`POST/GET /v1/sandboxes…`).
public struct SandboxView: Sendable, Equatable, Codable {
    public var id: String
    public var state: SandboxState
    public var profile: String
    public var isolation: IsolationLevel
    public var createdAt: Date
    public var updatedAt: Date
    public var expiresAt: Date?
    public var idleTimeout: Double?
    public var lastActivityAt: Date
    public var metadata: [String: String]
    public var reason: String?
    public var usage: SandboxUsage
    public var limits: LimitsView
    /// The template the root was made from, its manifest digest (nil for `host`) and whether the
    /// sandbox may write to its root.
    public var template: String
    public var templateDigest: String?
    public var root: RootMode
    /// Bytes the sandbox's filesystem holds: what it wrote to its root plus its workspace (in
    /// memory while it runs, on disk while it is hibernated); absent once it ended.
    public var diskBytes: Int64?

    /// What a sandbox used so far.
    public struct SandboxUsage: Sendable, Equatable, Codable {
        public var execCount: Int
        public var cpuMs: Double
        enum CodingKeys: String, CodingKey { case execCount = "exec_count", cpuMs = "cpu_ms" }
    }

    /// The limits a sandbox runs under, in plain numbers.
    public struct LimitsView: Sendable, Equatable, Codable {
        public var timeoutMs: Int64
        public var memoryBytes: Int64
        public var pids: Int
        public var cpus: Double
        public var outputBytes: Int64
        public var workspaceBytes: Int64
        public var fileSizeBytes: Int64
        public var diskBytes: Int64
        enum CodingKeys: String, CodingKey {
            case timeoutMs = "timeout_ms", memoryBytes = "memory_bytes", pids, cpus, outputBytes = "output_bytes",
                workspaceBytes = "workspace_bytes", fileSizeBytes = "file_size_bytes", diskBytes = "disk_bytes"
        }
    }

    public init(_ r: SandboxRecord) {
        id = r.id
        state = r.state
        profile = r.profile.name
        isolation = r.profile.isolation
        createdAt = r.createdAt
        updatedAt = r.updatedAt
        expiresAt = r.expiresAt
        idleTimeout = r.idleTimeoutSeconds
        lastActivityAt = r.lastActivityAt
        metadata = r.metadata
        reason = r.reason
        usage = SandboxUsage(execCount: r.execCount, cpuMs: r.cpuMs)
        let l = r.profile.limits
        limits = LimitsView(
            timeoutMs: DurationText.milliseconds(l.timeout), memoryBytes: l.memoryBytes, pids: l.pids, cpus: l.cpus,
            outputBytes: l.outputBytes, workspaceBytes: l.workspaceBytes, fileSizeBytes: l.fileSizeBytes, diskBytes: l.diskBytes)
        template = r.profile.template
        templateDigest = r.templateDigest
        root = r.profile.rootIsWritable ? .writable : .readonly
    }

    enum CodingKeys: String, CodingKey {
        case id, state, profile, isolation, createdAt = "created_at", updatedAt = "updated_at", expiresAt = "expires_at",
            idleTimeout = "idle_timeout", lastActivityAt = "last_activity_at", metadata, reason, usage, limits,
            diskBytes = "disk_bytes"
        case template, templateDigest = "template_digest", root
    }
}

/// One page of sandboxes.
public struct SandboxList: Sendable, Equatable, Codable {
    public var items: [SandboxView]
    public var nextCursor: String?
    public init(items: [SandboxView], nextCursor: String?) {
        self.items = items
        self.nextCursor = nextCursor
    }
    enum CodingKeys: String, CodingKey { case items, nextCursor = "next_cursor" }
}

/// `GET …/processes` and `GET …/files/list` bodies.
public struct ProcessList: Sendable, Equatable, Codable {
    public var items: [SandboxProcess]
    public init(items: [SandboxProcess]) { self.items = items }
}

/// `GET …/files/list` body.
public struct FileList: Sendable, Equatable, Codable {
    public var path: String
    public var items: [FileEntry]
    public init(path: String, items: [FileEntry]) {
        self.path = path
        self.items = items
    }
}

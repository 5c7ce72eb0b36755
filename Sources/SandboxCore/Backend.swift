import Foundation

/// Everything a backend needs to build one sandbox. Its Codable form is the wire form
/// (snake_case; the profile in the profile-file form, durations as strings).
public struct SandboxSpec: Sendable, Equatable, Codable {
    /// Unique id; every host resource of the sandbox carries it (`sbx-…`).
    public var id: String
    public var profile: Profile
    /// A host directory whose contents seed `/workspace` and receive its contents back after each run.
    public var workspaceDirectory: String?
    /// How `/workspace` goes back to `workspaceDirectory` (deletions reported, or also applied).
    public var workspaceSync: WorkspaceSync
    /// Extra read-only binds of host directories (for layering: the sandboxer binary and its WASM
    /// modules inside the container backend). Destinations must be mount points the template provides.
    public var readOnlyBinds: [BindMount]
    /// The phase the sandbox starts in (`setup` when a setup command runs before the user's code).
    public var phase: Phase = .run
    /// Secrets with their values, for the egress proxy; never encoded (the store keeps only
    /// ``secretPlaceholders``, and the values are looked up again after a restart).
    public var secrets: [EgressSecret] = []
    /// Secret name → the placeholder the sandbox's environment holds.
    public var secretPlaceholders: [String: String] = [:]
    /// When a long-lived sandbox ends itself unless its server renews it (its TTL plus a grace);
    /// nil: no end of its own. Not encoded: every server start renews it.
    public var expiresAt: Date?
    /// The snapshot (``SnapshotBackend``) this sandbox is restored from: its workspace seeds
    /// `/workspace` (the profile's template is the snapshot's image, or `host` for a snapshot of a
    /// `host` sandbox). Only used at create; not encoded.
    public var snapshot: String?
    /// A template build's `RUN` step: processes running as the sandbox's root keep the build step
    /// capabilities of its user namespace (chown, DAC override, setuid…; package managers need them).
    /// Only with a user namespace; never encoded (builds are not persisted).
    public var buildStep = false

    public init(
        id: String = SandboxSpec.newID(), profile: Profile, workspaceDirectory: String? = nil,
        workspaceSync: WorkspaceSync = .merge, readOnlyBinds: [BindMount] = []
    ) {
        self.id = id
        self.profile = profile
        self.workspaceDirectory = workspaceDirectory
        self.workspaceSync = workspaceSync
        self.readOnlyBinds = readOnlyBinds
    }

    enum CodingKeys: String, CodingKey {
        case id, profile, workspaceDirectory = "workspace_directory", workspaceSync = "workspace_sync",
            readOnlyBinds = "read_only_binds", phase, secretPlaceholders = "secret_placeholders"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(profile, forKey: .profile)
        try c.encodeIfPresent(workspaceDirectory, forKey: .workspaceDirectory)
        try c.encode(workspaceSync, forKey: .workspaceSync)
        try c.encode(readOnlyBinds, forKey: .readOnlyBinds)
        if phase != .run { try c.encode(phase, forKey: .phase) }
        if !secretPlaceholders.isEmpty { try c.encode(secretPlaceholders, forKey: .secretPlaceholders) }
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            id: try c.decode(String.self, forKey: .id), profile: try c.decode(Profile.self, forKey: .profile),
            workspaceDirectory: try c.decodeIfPresent(String.self, forKey: .workspaceDirectory),
            workspaceSync: try c.decodeIfPresent(WorkspaceSync.self, forKey: .workspaceSync) ?? .merge,
            readOnlyBinds: try c.decodeIfPresent([BindMount].self, forKey: .readOnlyBinds) ?? [])
        phase = try c.decodeIfPresent(Phase.self, forKey: .phase) ?? .run
        secretPlaceholders = try c.decodeIfPresent([String: String].self, forKey: .secretPlaceholders) ?? [:]
    }

    /// The prefix every host resource sandboxer creates carries (cgroups, bundle dirs, runtime state).
    public static let resourcePrefix = "sbx-"

    /// A fresh id: `sbx-` followed by 12 random hex digits.
    public static func newID() -> String { newID(prefix: resourcePrefix) }

    /// A fresh id of any kind (`exec-…`): `prefix` followed by 12 random hex digits.
    public static func newID(prefix: String) -> String {
        var rng = SystemRandomNumberGenerator()
        let n = rng.next() & 0xFFFF_FFFF_FFFF
        let hex = String(n, radix: 16)
        return prefix + String(repeating: "0", count: 12 - hex.count) + hex
    }
}


/// A live sandbox created by ``IsolationBackend/create(_:)``.
public struct SandboxHandle: Sendable, Equatable {
    public var id: String
    public var spec: SandboxSpec
    public init(id: String, spec: SandboxSpec) {
        self.id = id
        self.spec = spec
    }
}

/// One isolation (container, gvisor, wasm, …). A backend knows nothing of HTTP, queues or
/// stores: it turns a ``SandboxSpec`` and ``ExecRequest``s into ``ExecResult``s and leaves nothing behind.
///
/// Errors thrown are always ``SandboxError``; breaches of limits are outcomes, not errors.
public protocol IsolationBackend: Sendable {
    /// Which isolation this backend provides.
    var level: IsolationLevel { get }

    /// One-shot: create a sandbox, run `request` as its first process, tear everything down.
    func run(_ spec: SandboxSpec, _ request: ExecRequest, output: OutputHandler?) async throws -> ExecResult

    /// Creates a long-lived sandbox that stays up until ``destroy(_:)``.
    func create(_ spec: SandboxSpec) async throws -> SandboxHandle

    /// Runs one more process inside a live sandbox, with the profile's per-exec limits.
    func exec(_ sandbox: SandboxHandle, _ request: ExecRequest, output: OutputHandler?) async throws -> ExecResult

    /// Kills every process of the sandbox and removes all it created on the host.
    func destroy(_ sandbox: SandboxHandle) async throws
}

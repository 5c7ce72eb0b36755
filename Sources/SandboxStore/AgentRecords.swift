import Foundation
import SandboxCore

/// An agent of the registry (issue 21): a name unique within its tenant, and immutable versions
/// (``AgentVersionRecord``) addressed by the digest of their content.
public struct AgentRecord: Sendable, Equatable, Codable {
    /// `agt-` + 12 hex digits.
    public var id: String
    public var tenantId: String
    public var name: String
    public var createdAt: Date

    public init(id: String = SandboxSpec.newID(prefix: "agt-"), tenantId: String, name: String, createdAt: Date = Date()) {
        self.id = id
        self.tenantId = tenantId
        self.name = name
        self.createdAt = createdAt
    }

    enum CodingKeys: String, CodingKey { case id, tenantId = "tenant_id", name, createdAt = "created_at" }
}

/// What an agent version declares about itself (`manifest` in JSON, `sandboxer.yaml` in an archive).
public struct AgentManifest: Sendable, Equatable, Codable {
    /// `python`, `js` or `sh`.
    public var lang: String
    /// The file run, relative to the bundle's root (`main.py`).
    public var entrypoint: String
    /// `container`, `wasm` or `wasm+container` (``IsolationLevel`` raw values).
    public var isolation: String
    /// Tools the agent asks for: each must be allowed by the profile it runs under.
    public var tools: [String]
    /// Limits the agent asks for (profile limit names → values as a profile writes them, e.g.
    /// `"timeout": "10s"`, `"memory": "128M"`); none may exceed the profile's.
    public var limits: [String: String]

    public init(lang: String, entrypoint: String, isolation: String = "container", tools: [String] = [], limits: [String: String] = [:]) {
        self.lang = lang
        self.entrypoint = entrypoint
        self.isolation = isolation
        self.tools = tools
        self.limits = limits
    }
}

/// Why the upload scan blocked a version (or what it noted): `code` is stable and machine-readable.
public struct ScanFinding: Sendable, Equatable, Codable {
    /// e.g. `bundle_too_large`, `file_too_large`, `path_traversal`, `absolute_path`, `link`,
    /// `device_file`, `invalid_manifest`, `unknown_lang`, `entrypoint_missing`, `tool_not_allowed`,
    /// `limit_too_high`; every code is a case of the server's `AgentScanCode` (and in docs/API.md).
    public var code: String
    public var message: String
    /// The bundle path it is about, when it is about one.
    public var path: String?

    public init(code: String, message: String, path: String? = nil) {
        self.code = code
        self.message = message
        self.path = path
    }
}

/// Whether a version may be submitted.
public enum AgentVersionStatus: String, Sendable, Codable, CaseIterable {
    case accepted, blocked
}

/// One immutable version of an agent: its files, manifest and the scan's verdict. `digest` is
/// `sha256:` + the SHA-256 of the canonical content (files sorted by path, with the manifest), so
/// the same bytes uploaded again have the same digest.
public struct AgentVersionRecord: Sendable, Equatable, Codable {
    public var digest: String
    public var agentId: String
    public var tenantId: String
    public var manifest: AgentManifest
    /// Relative path → content.
    public var files: [String: [UInt8]]
    /// Total bytes of the files.
    public var sizeBytes: Int
    public var status: AgentVersionStatus
    public var findings: [ScanFinding]
    /// The profile the upload was scanned against (`bounty` unless the upload named another).
    public var profile: String
    public var createdAt: Date

    public init(digest: String, agentId: String, tenantId: String, manifest: AgentManifest, files: [String: [UInt8]], sizeBytes: Int,
                status: AgentVersionStatus, findings: [ScanFinding], profile: String = "bounty", createdAt: Date = Date()) {
        self.digest = digest
        self.agentId = agentId
        self.tenantId = tenantId
        self.manifest = manifest
        self.files = files
        self.sizeBytes = sizeBytes
        self.status = status
        self.findings = findings
        self.profile = profile
        self.createdAt = createdAt
    }

    enum CodingKeys: String, CodingKey {
        case digest, agentId = "agent_id", tenantId = "tenant_id", manifest, files, sizeBytes = "size_bytes", status, findings, profile
        case createdAt = "created_at"
    }

    // Files are base64 text in the stored form.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        digest = try c.decode(String.self, forKey: .digest)
        agentId = try c.decode(String.self, forKey: .agentId)
        tenantId = try c.decode(String.self, forKey: .tenantId)
        manifest = try c.decode(AgentManifest.self, forKey: .manifest)
        var files: [String: [UInt8]] = [:]
        for (path, text) in try c.decode([String: String].self, forKey: .files) {
            guard let data = Data(base64Encoded: text) else {
                throw DecodingError.dataCorruptedError(forKey: .files, in: c, debugDescription: "\(path): not base64")
            }
            files[path] = Array(data)
        }
        self.files = files
        sizeBytes = try c.decode(Int.self, forKey: .sizeBytes)
        status = try c.decode(AgentVersionStatus.self, forKey: .status)
        findings = try c.decode([ScanFinding].self, forKey: .findings)
        profile = try c.decodeIfPresent(String.self, forKey: .profile) ?? "bounty"
        createdAt = try c.decode(Date.self, forKey: .createdAt)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(digest, forKey: .digest)
        try c.encode(agentId, forKey: .agentId)
        try c.encode(tenantId, forKey: .tenantId)
        try c.encode(manifest, forKey: .manifest)
        try c.encode(files.mapValues { Data($0).base64EncodedString() }, forKey: .files)
        try c.encode(sizeBytes, forKey: .sizeBytes)
        try c.encode(status, forKey: .status)
        try c.encode(findings, forKey: .findings)
        try c.encode(profile, forKey: .profile)
        try c.encode(createdAt, forKey: .createdAt)
    }
}

/// What a listing shows of a version: no files, no findings (read without decoding the record's files).
public struct AgentVersionInfo: Sendable, Equatable, Codable {
    public var digest: String
    public var status: AgentVersionStatus
    public var sizeBytes: Int
    public var profile: String
    public var createdAt: Date

    public init(digest: String, status: AgentVersionStatus, sizeBytes: Int, profile: String, createdAt: Date) {
        (self.digest, self.status, self.sizeBytes, self.profile, self.createdAt) = (digest, status, sizeBytes, profile, createdAt)
    }

    public init(_ v: AgentVersionRecord) {
        self.init(digest: v.digest, status: v.status, sizeBytes: v.sizeBytes, profile: v.profile, createdAt: v.createdAt)
    }

    enum CodingKeys: String, CodingKey { case digest, status, sizeBytes = "size_bytes", profile, createdAt = "created_at" }
}

/// The agent registry's storage, kept by both engines (SQLite and PostgreSQL). A tenant only
/// ever reaches its own agents: every lookup takes the tenant.
public protocol AgentStore: Sendable {
    /// Stores a new agent; a name the tenant already uses is refused with `conflict`
    /// (``SandboxError`` code `.invalidState`, mapped to 409).
    func createAgent(_ agent: AgentRecord) async throws -> AgentRecord
    func agent(tenantId: String, id: String) async throws -> AgentRecord?
    /// A page of the tenant's agents, oldest first (by creation time, then id): at most `limit`
    /// (1–1000) after `cursor` (a `nextCursor` of an earlier page; nil: the first page).
    func agents(tenantId: String, cursor: String?, limit: Int) async throws -> Page<AgentRecord>
    /// Stores a version, or returns the one already stored under its digest for that agent
    /// (`created` false; nothing changes: versions are immutable).
    func putAgentVersion(_ version: AgentVersionRecord) async throws -> (version: AgentVersionRecord, created: Bool)
    /// A version of one of the tenant's agents by digest (the same content pushed to two of its
    /// agents: the one stored first).
    func agentVersion(tenantId: String, digest: String) async throws -> AgentVersionRecord?
    /// One version of one of the tenant's agents.
    func agentVersion(tenantId: String, agentId: String, digest: String) async throws -> AgentVersionRecord?
    /// An agent's versions, oldest first.
    func agentVersions(tenantId: String, agentId: String) async throws -> [AgentVersionRecord]
    /// An agent's versions without their content, oldest first.
    func agentVersionInfos(tenantId: String, agentId: String) async throws -> [AgentVersionInfo]
    /// How many versions each of the tenant's agents has (agents with none are absent).
    func agentVersionCounts(tenantId: String) async throws -> [String: Int]
}

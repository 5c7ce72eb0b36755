import Foundation
import SandboxStore

/// An agent as the API shows it: in a list with its number of versions, alone with its versions.
struct AgentView: Encodable {
    var id: String
    var name: String
    var createdAt: Date
    var versionCount: Int?
    var versions: [AgentVersionInfo]?

    init(_ agent: AgentRecord) {
        (id, name, createdAt) = (agent.id, agent.name, agent.createdAt)
    }

    enum CodingKeys: String, CodingKey { case id, name, createdAt = "created_at", versionCount = "version_count", versions }
}

/// `GET /v1/agents`: one page, and the cursor of the next (null on the last).
typealias AgentList = ListPage<AgentView>

/// The answer to an upload: the digest, the verdict and every finding.
struct AgentUploadView: Encodable {
    var digest: String
    var agentId: String
    var status: AgentVersionStatus
    var findings: [ScanFinding]
    var profile: String
    var sizeBytes: Int

    init(_ v: AgentVersionRecord) {
        (digest, agentId, status, findings, profile, sizeBytes) = (v.digest, v.agentId, v.status, v.findings, v.profile, v.sizeBytes)
    }

    enum CodingKeys: String, CodingKey { case digest, agentId = "agent_id", status, findings, profile, sizeBytes = "size_bytes" }
}

/// `GET /v1/agents/{id}/versions/{digest}`: everything but the files' contents.
struct AgentVersionView: Encodable {
    struct File: Encodable {
        var path: String
        var size: Int
    }

    var digest: String
    var agentId: String
    var status: AgentVersionStatus
    var manifest: AgentManifest
    var sizeBytes: Int
    var files: [File]
    var findings: [ScanFinding]
    var profile: String
    var createdAt: Date

    init(_ v: AgentVersionRecord) {
        (digest, agentId, status, manifest, sizeBytes) = (v.digest, v.agentId, v.status, v.manifest, v.sizeBytes)
        files = v.files.keys.sorted().map { File(path: $0, size: v.files[$0]!.count) }
        (findings, profile, createdAt) = (v.findings, v.profile, v.createdAt)
    }

    enum CodingKeys: String, CodingKey {
        case digest, agentId = "agent_id", status, manifest, sizeBytes = "size_bytes", files, findings, profile, createdAt = "created_at"
    }
}

import ArgumentParser
import Foundation
import SandboxCore
import Templates

/// `sandboxer agent push|ls`: the tenant's agent registry (`/v1/agents`).
struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent", abstract: "Push agent versions to the registry and list agents.",
        subcommands: [AgentPushCommand.self, AgentListCommand.self])
}

/// `sandboxer agent push DIR|FILE --name N [--profile P]`: uploads a version (a directory as a tar
/// made here, a .tar/.tgz/.zip file as it is, a .json file as JSON) to the agent named N, created
/// when the tenant has none. The digest goes to stdout, the verdict and findings to stderr; a
/// blocked version exits 1.
struct AgentPushCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "push", abstract: "Upload a version of an agent (a directory with sandboxer.yaml, or a .tar/.zip/.json bundle).",
        discussion: clientExitDiscussion + " A version the upload scan blocks prints its findings and exits with status 1.")

    @OptionGroup var client: ClientOptions

    @Argument(help: "A directory holding the agent's files and its sandboxer.yaml, or a .tar, .tar.gz, .zip or .json bundle.")
    var path: String

    @Option(name: .long, help: "The agent's name (created in the tenant when it has none by that name).")
    var name: String

    @Option(name: .long, help: "The profile to scan against (default: bounty).")
    var profile: String?

    func run() async throws {
        let (body, contentType) = try Self.bundle(path)
        let api = try client.client()
        let id = try await Self.agentId(named: name, api)
        let query = profile.map { "?profile=\(ClientText.query($0))" } ?? ""
        let reply = try await api.checked("POST", "/v1/agents/\(ClientText.query(id))/versions\(query)", body: body, contentType: contentType)
        let version = try JSONDecoder().decode(PushedVersion.self, from: Data(reply.body))
        if client.json { ClientConsole.current.out(reply.body + [10]) } else { ClientConsole.print(version.digest) }
        let fresh = reply.status == 201 ? "" : " (already pushed)"
        ClientConsole.printError("\(name) \(version.digest): \(version.status)\(fresh)")
        for f in version.findings {
            ClientConsole.printError("  \(f.code): \(f.message)" + (f.path.map { " [\($0)]" } ?? ""))
        }
        if version.status != "accepted" { throw ExitCode(1) }
    }

    /// The id of the tenant's agent named `name`, created when there is none.
    static func agentId(named name: String, _ api: APIClient) async throws -> String {
        if let found = try await AgentItems.all(api).first(where: { $0.name == name }) { return found.id }
        let reply = try await api.send("POST", "/v1/agents", body: Array(try JSONEncoder().encode(["name": name])))
        if reply.status == 409, let found = try await AgentItems.all(api).first(where: { $0.name == name }) {
            return found.id  // created meanwhile by another push
        }
        guard reply.status < 400 else { throw APIProblem(status: reply.status, body: reply.body) }
        return try JSONDecoder().decode(AgentItems.Item.self, from: Data(reply.body)).id
    }

    /// The upload's bytes and content type: a directory as a tar made in-process (never following
    /// its symlinks: they are sent as links, which the scan reports), a file by its extension.
    static func bundle(_ path: String) throws -> ([UInt8], String) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw SandboxError(.notFound, "\(path) does not exist; give a directory with sandboxer.yaml, or a .tar, .zip or .json bundle")
        }
        if isDirectory.boolValue {
            var bytes: [UInt8] = []
            try TarWriter(time: 0) { bytes += $0 }.write(directory: path)
            return (bytes, "application/x-tar")
        }
        let lower = path.lowercased()
        let type: String
        if lower.hasSuffix(".tar") || lower.hasSuffix(".tar.gz") || lower.hasSuffix(".tgz") {
            type = "application/x-tar"
        } else if lower.hasSuffix(".zip") {
            type = "application/zip"
        } else if lower.hasSuffix(".json") {
            type = "application/json"
        } else {
            throw SandboxError(.invalidRequest, "\(path): give a directory, or a file ending in .tar, .tar.gz, .tgz, .zip or .json")
        }
        guard let data = FileManager.default.contents(atPath: path) else { throw SandboxError(.notFound, "\(path) cannot be read") }
        return (Array(data), type)
    }
}

/// `sandboxer agent ls`: the tenant's agents with their number of versions.
struct AgentListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List the tenant's agents.", discussion: clientExitDiscussion)

    @OptionGroup var client: ClientOptions

    func run() async throws {
        let items = try await AgentItems.all(try client.client())
        if client.json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            ClientConsole.current.out(Array(try encoder.encode(AgentItems(items: items))) + [10])
            return
        }
        var rows = [["NAME", "ID", "VERSIONS"]]
        for a in items { rows.append([a.name, a.id, String(a.versionCount ?? 0)]) }
        ClientConsole.print(ClientText.table(rows))
    }
}

/// `GET /v1/agents` as the CLI reads it.
struct AgentItems: Codable {
    struct Item: Codable {
        var id: String
        var name: String
        var versionCount: Int?
        enum CodingKeys: String, CodingKey { case id, name, versionCount = "version_count" }
    }
    var items: [Item]
    var nextCursor: String?
    enum CodingKeys: String, CodingKey { case items, nextCursor = "next_cursor" }

    /// Every agent of the caller's tenant, page by page.
    static func all(_ api: APIClient) async throws -> [Item] {
        var items: [Item] = [], cursor: String?
        repeat {
            let page = try await api.json("GET", "/v1/agents?limit=1000" + (cursor.map { "&cursor=" + ClientText.query($0) } ?? ""), as: AgentItems.self)
            items += page.items
            cursor = page.nextCursor
        } while cursor != nil
        return items
    }
}

/// An upload's answer as the CLI reads it.
struct PushedVersion: Decodable {
    struct Finding: Decodable {
        var code: String
        var message: String
        var path: String?
    }
    var digest: String
    var status: String
    var findings: [Finding]
}

import ArgumentParser
import Foundation
import SandboxCore
import SandboxServer

/// `sandboxer ls` (the tenant's sandboxes) and `sandboxer ls SBX:/dir` (files in a sandbox).
struct ListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls", abstract: "List sandboxes, or the files of SBX:/dir.", discussion: clientExitDiscussion)

    @OptionGroup var client: ClientOptions

    @Argument(help: "SBX:/dir to list files (default: list sandboxes).")
    var target: String?

    @Option(name: .long, help: "Only sandboxes in this state (creating, running, paused, hibernated, stopping, destroyed, lost; comma-separated).")
    var state: String?

    @Flag(name: [.customShort("a"), .long], help: "Also ended sandboxes (destroyed, lost); by default only live ones, as docker ps.")
    var all = false

    @Option(name: .long, help: "Only sandboxes whose metadata has KEY=value (repeatable).")
    var filter: [String] = []

    func run() async throws {
        let api = try client.client()
        if let target {
            guard let remote = ClientText.remote(target) else { throw SandboxError(.invalidRequest, "ls takes SBX:/dir, e.g. sbx-…:/workspace") }
            let reply = try await api.checked("GET", "/v1/sandboxes/\(ClientText.query(remote.id))/files/list?path=\(ClientText.query(remote.path))")
            if client.json { ClientConsole.current.out(reply.body + [10]); return }
            let list = try JSONDecoder().decode(FileList.self, from: Data(reply.body))
            var rows = [["MODE", "SIZE", "MODIFIED", "NAME"]]
            for f in list.items {
                let kind = f.type == .directory ? "d" : f.type == .symlink ? "l" : "-"
                let name = f.type == .directory ? f.name + "/" : f.target.map { "\(f.name) -> \($0)" } ?? f.name
                rows.append([kind + String(f.mode & 0o7777, radix: 8), String(f.size),
                             ClientText.relative(Date(timeIntervalSince1970: f.mtime)), name])
            }
            ClientConsole.print(ClientText.table(rows))
            return
        }
        var query: [String] = []
        if let state {
            query.append("state=\(ClientText.query(state))")
        } else if !all {
            query.append("state=creating,running,paused,hibernated,stopping")
        }
        for (k, v) in try ClientText.pairs(filter, flag: "--filter").sorted(by: { $0.key < $1.key }) {
            query.append("metadata.\(ClientText.query(k))=\(ClientText.query(v))")
        }
        var items: [SandboxView] = []
        var cursor: String?
        repeat {
            var q = query
            if let cursor { q.append("cursor=\(ClientText.query(cursor))") }
            let page = try await api.json("GET", "/v1/sandboxes" + (q.isEmpty ? "" : "?" + q.joined(separator: "&")), as: SandboxList.self)
            items += page.items
            cursor = page.nextCursor
        } while cursor != nil
        if client.json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            encoder.dateEncodingStrategy = .iso8601
            ClientConsole.current.out(Array(try encoder.encode(SandboxList(items: items, nextCursor: nil))) + [10])
            return
        }
        var rows = [["ID", "STATE", "PROFILE", "ISOLATION", "CREATED", "EXPIRES"]]
        for s in items {
            let ended = s.state == .destroyed || s.state == .lost
            rows.append([s.id, s.state.rawValue, s.profile, s.isolation.rawValue, ClientText.relative(s.createdAt),
                         ended ? "-" : ClientText.relative(s.expiresAt)])
        }
        ClientConsole.print(ClientText.table(rows))
    }
}

import ArgumentParser
import Foundation
import SandboxCore

/// `sandboxer audit SBX [--follow] [--after N] [--json]`: a sandbox's audit trail, one line per entry.
struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Print a sandbox's audit trail (execs, file operations, egress, limits, its end).",
        discussion: """
            One line per entry: time, seq, kind, actor and the entry's key fields. --follow keeps printing new \
            entries until the sandbox has ended; --json prints the server's JSON lines unchanged. \
            \(clientExitDiscussion)
            """)

    @OptionGroup var client: ClientOptions

    @Flag(name: [.customShort("f"), .long], help: "Keep printing new entries until the sandbox has ended.")
    var follow = false

    @Option(name: .long, help: "Only entries after this seq (default 0: from the start).")
    var after: Int64 = 0

    @Argument(help: "Sandbox id.")
    var sandbox: String

    func run() async throws {
        let api = try client.client()
        var last = after
        while true {
            var path = "/v1/sandboxes/\(ClientText.query(sandbox))/audit?after=\(last)"
            if follow { path += "&follow=1" }
            var lines = LineSplitter()
            var errorBody: [UInt8] = []
            var status = 0
            status = try await api.stream("GET", path, accept: "application/x-ndjson", onHead: { code, _ in status = code }) { bytes in
                if status >= 400 { errorBody += bytes; return }
                for line in lines.feed(bytes) { last = Self.seq(line) ?? last; print(line) }
            }
            guard status < 400 else { throw APIProblem(status: status, body: errorBody) }
            if !lines.rest.isEmpty { print(lines.rest) }
            // The server ends a quiet follow after a while: go on while the sandbox lives.
            guard follow, try await isLive(api) else { return }
        }
    }

    func isLive(_ api: APIClient) async throws -> Bool {
        let reply = try await api.checked("GET", "/v1/sandboxes/\(ClientText.query(sandbox))")
        let state = ((try? JSONSerialization.jsonObject(with: Data(reply.body))) as? [String: Any])?["state"] as? String
        return state == "running" || state == "creating"
    }

    static func seq(_ line: [UInt8]) -> Int64? {
        ((try? JSONSerialization.jsonObject(with: Data(line))) as? [String: Any])?["seq"] as? Int64
            ?? (((try? JSONSerialization.jsonObject(with: Data(line))) as? [String: Any])?["seq"] as? Int).map(Int64.init)
    }

    func print(_ line: [UInt8]) {
        if client.json {
            ClientConsole.current.out(line + [10])
        } else {
            ClientConsole.print(Self.text(line))
        }
    }

    /// `2025-01-02T10:00:00.123Z  #3  exec.end  key_ab  exec-… outcome=ok exit_code=0 duration_ms=12`.
    static func text(_ line: [UInt8]) -> String {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
            return String(decoding: line, as: UTF8.self)
        }
        let detail = (object["detail"] as? [String: Any] ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        let parts = [
            object["at"] as? String ?? "-", "#\(object["seq"] ?? "-")", object["kind"] as? String ?? "-", object["actor"] as? String ?? "-",
            object["correlation"] as? String,
        ].compactMap { $0 }
        return (parts + detail).joined(separator: "  ")
    }
}

/// Splits bytes arriving in chunks into lines (without their `\n`).
struct LineSplitter {
    private(set) var rest: [UInt8] = []

    mutating func feed(_ bytes: [UInt8]) -> [[UInt8]] {
        rest += bytes
        var lines: [[UInt8]] = []
        while let nl = rest.firstIndex(of: 10) {
            let line = Array(rest[..<nl])
            rest.removeSubrange(...nl)
            if !line.isEmpty { lines.append(line) }
        }
        return lines
    }
}

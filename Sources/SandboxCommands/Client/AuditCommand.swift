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

    /// Entries asked for per request; a full page means there may be more.
    static let pageSize = 1000

    func run() async throws {
        let api = try client.client()
        var last = after
        while true {
            var path = "/v1/sandboxes/\(ClientText.query(sandbox))/audit?after=\(last)&limit=\(Self.pageSize)"
            if follow { path += "&follow=1" }
            var lines = LineSplitter()
            var errorBody: [UInt8] = []
            var status = 0
            var count = 0
            status = try await api.stream("GET", path, accept: "application/x-ndjson", onHead: { code, _ in status = code }) { bytes in
                if status >= 400 { errorBody += bytes; return }
                for line in lines.feed(bytes) { last = Self.seq(line) ?? last; count += 1; print(line) }
            }
            guard status < 400 else { throw APIProblem(status: status, body: errorBody) }
            if !lines.rest.isEmpty { count += 1; print(lines.rest) }
            // Without --follow a trail is read page by page to its end (a flood must not hide what follows).
            if !follow {
                guard count >= Self.pageSize else { return }
                continue
            }
            // The server ends a quiet follow after a while: go on while the sandbox lives.
            guard try await isLive(api) else { return }
        }
    }

    func isLive(_ api: APIClient) async throws -> Bool {
        let reply = try await api.checked("GET", "/v1/sandboxes/\(ClientText.query(sandbox))")
        let state = ((try? JSONSerialization.jsonObject(with: Data(reply.body))) as? [String: Any])?["state"] as? String
        return ["running", "creating", "paused", "hibernated"].contains(state ?? "")
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
            return escaped(String(decoding: line, as: UTF8.self))
        }
        let detail = (object["detail"] as? [String: Any] ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        let parts = [
            object["at"] as? String ?? "-", "#\(object["seq"] ?? "-")", object["kind"] as? String ?? "-", object["actor"] as? String ?? "-",
            object["correlation"] as? String,
        ].compactMap { $0 }
        return escaped((parts + detail).joined(separator: "  "))
    }

    /// `text` with every control character (C0, DEL, C1: newlines, escape sequences) written as
    /// `\n`, `\r`, `\t` or `\u{…}`, and backslashes doubled: a value sandbox code chose (a DNS
    /// name, a path) can neither forge a line nor reach the terminal.
    static func escaped(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value):
                out += "\\u{\(String(scalar.value, radix: 16))}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
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

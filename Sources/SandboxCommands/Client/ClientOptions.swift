import ArgumentParser
import Foundation
import SandboxCore

/// Options every client command shares: where the server is, the API key, JSON output.
struct ClientOptions: ParsableArguments {
    @Option(name: .long, help: "Server URL (default: $SANDBOXER_URL, else http://127.0.0.1:7070).")
    var server: String?

    @Option(name: .long, help: "API key (default: $SANDBOXER_API_KEY).")
    var apiKey: String?

    @Flag(name: .long, help: "Print the server's JSON instead of text.")
    var json = false

    func client() throws -> APIClient {
        let env = ProcessInfo.processInfo.environment
        let url = server ?? env["SANDBOXER_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? "http://127.0.0.1:7070"
        return try APIClient(url: url, apiKey: apiKey ?? env["SANDBOXER_API_KEY"])
    }
}

/// Where client commands write: the process's stdout/stderr, or a capture in tests.
public struct ClientConsole: Sendable {
    public var out: @Sendable ([UInt8]) -> Void
    public var err: @Sendable ([UInt8]) -> Void
    public init(out: @escaping @Sendable ([UInt8]) -> Void, err: @escaping @Sendable ([UInt8]) -> Void) {
        self.out = out
        self.err = err
    }

    public static let standard = ClientConsole(
        out: { FileHandle.standardOutput.write(Data($0)) }, err: { FileHandle.standardError.write(Data($0)) })

    /// The console of the current task (tests bind their own).
    @TaskLocal public static var current = ClientConsole.standard

    static func print(_ line: String) { current.out(Array((line + "\n").utf8)) }
    static func printError(_ line: String) { current.err(Array((line + "\n").utf8)) }
}

/// Common help text: how client commands end.
let clientExitDiscussion = """
    Talks to a running 'sandboxer serve' (--server, $SANDBOXER_URL; key from --api-key or $SANDBOXER_API_KEY). \
    An error from the server prints 'sandboxer: <code>: <detail>' and exits with status 2 \
    (not_found, unauthorized, invalid_request, … alike).
    """

enum ClientText {
    /// `K=V` options as a dictionary.
    static func pairs(_ items: [String], flag: String) throws -> [String: String] {
        var out: [String: String] = [:]
        for item in items {
            guard let eq = item.firstIndex(of: "="), eq != item.startIndex else {
                throw SandboxError(.invalidRequest, "\(flag) '\(item)' must look like NAME=value")
            }
            out[String(item[..<eq])] = String(item[item.index(after: eq)...])
        }
        return out
    }

    /// Percent-encodes a query value.
    static func query(_ s: String) -> String {
        var allowed = CharacterSet.urlQueryAllowed
        allowed.remove(charactersIn: "&=+?#")
        return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
    }

    /// Splits `SBX:/path` into sandbox id and path (nil when it is a local path).
    static func remote(_ s: String) -> (id: String, path: String)? {
        guard let colon = s.firstIndex(of: ":"), s.hasPrefix("sbx-") else { return nil }
        let path = String(s[s.index(after: colon)...])
        return (String(s[..<colon]), path.isEmpty ? "/workspace" : path)
    }

    /// Pads columns like `docker ps`.
    static func table(_ rows: [[String]]) -> String {
        guard let header = rows.first else { return "" }
        var widths = header.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) } }
        return rows.map { row in
            row.enumerated().map { i, cell in i == row.count - 1 ? cell : cell.padding(toLength: widths[i] + 3, withPad: " ", startingAt: 0) }.joined()
        }.joined(separator: "\n")
    }

    /// `2m ago`, `in 9m` for listings.
    static func relative(_ date: Date?, now: Date = Date()) -> String {
        guard let date else { return "-" }
        let s = Int(date.timeIntervalSince(now).rounded())
        let a = abs(s)
        if a == 0 { return "now" }
        let text = a < 60 ? "\(a)s" : a < 3600 ? "\(a / 60)m" : a < 86400 ? "\(a / 3600)h" : "\(a / 86400)d"
        return s < 0 ? "\(text) ago" : "in \(text)"
    }
}

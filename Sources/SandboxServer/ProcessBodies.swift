import Foundation
import SandboxCore

/// Bytes for a process's stdin: `data` (text) and/or `data_base64`, in that order.
struct StdinBytes {
    var data: [UInt8] = []

    init(_ body: inout BodyFields) throws {
        if let text = try body.string("data") { data = Array(text.utf8) }
        if let b64 = try body.string("data_base64") {
            guard let d = Data(base64Encoded: b64) else { throw Problem.invalid("data_base64", "data_base64: not valid base64") }
            data += Array(d)
        }
    }
}

/// `POST …/processes/{pid}/input`.
struct ProcessInputBody: Decodable {
    var data: [UInt8]

    init(from decoder: any Decoder) throws {
        var body = try BodyFields(decoder)
        data = try StdinBytes(&body).data
        try body.finish()
    }
}

/// A body with no fields (`POST …/close-stdin`): `{}` or nothing; any field is unknown.
struct EmptyBody: Decodable {
    init(from decoder: any Decoder) throws { try BodyFields(decoder).finish() }
}

/// `POST …/processes/{pid}/signal`: `signal`, a name (`"TERM"`, `"SIGKILL"`) or a number 1…64;
/// TERM when left out. `sandboxer kill` sends the same type (the name as given, or the number).
public struct SignalBody: Codable, Sendable {
    /// What is sent: a name (`KILL`) or a number.
    public enum Given: Sendable, Equatable { case name(String), number(Int32) }
    public var signal: Int32 = SIGTERM
    var given: Given?

    /// `text` as `sandboxer kill --signal` takes it: a number, or a name the server reads.
    public init(_ text: String) { given = Int32(text).map(Given.number) ?? .name(text) }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: BodyKey.self)
        switch given ?? .number(signal) {
        case .name(let name): try c.encode(name, forKey: BodyKey("signal"))
        case .number(let n): try c.encode(n, forKey: BodyKey("signal"))
        }
    }

    public init(from decoder: any Decoder) throws {
        var body = try BodyFields(decoder)
        if body.given("signal") {
            if let n = body.number("signal") {
                guard let v = Int32(exactly: n), (1...64).contains(v) else { throw Problem.invalid("signal", "signal: must be 1…64") }
                signal = v
            } else if let name = try? body.string("signal") {
                guard let v = Signals.number(name) else {
                    throw Problem.invalid("signal", "signal: unknown signal '\(name)'; one of: \(Signals.names.keys.sorted().joined(separator: ", ")) or a number")
                }
                signal = v
            } else {
                throw Problem.invalid("signal", "signal: a name such as \"TERM\" or a number")
            }
        }
        try body.finish()
    }
}

/// `POST …/processes/{pid}/resize`: `cols` and `rows`, both required (1…1000).
struct ResizeBody: Decodable {
    var size: TerminalSize

    init(from decoder: any Decoder) throws {
        var body = try BodyFields(decoder)
        guard let cols = try body.int("cols", min: 1, max: 1000), let rows = try body.int("rows", min: 1, max: 1000) else {
            throw Problem.invalid(body.has("cols") ? "rows" : "cols", "cols and rows are required")
        }
        try body.finish()
        size = TerminalSize(cols: UInt16(cols), rows: UInt16(rows))
    }
}

/// A control message of a WebSocket exec after the first: `{"type": "stdin", "data"|"data_base64": …}`,
/// `close_stdin`, `signal` (a name; TERM when left out) or `resize` (`cols`, `rows`; 80×24).
enum WebSocketControl: Decodable {
    case stdin([UInt8])
    case closeStdin
    case signal(Int32)
    case resize(TerminalSize)

    init(from decoder: any Decoder) throws {
        var body = try BodyFields(decoder)
        switch try body.string("type") ?? "" {
        case "stdin":
            self = .stdin(try StdinBytes(&body).data)
        case "close_stdin":
            self = .closeStdin
        case "signal":
            let name = try body.string("signal") ?? "TERM"
            try body.finish()
            guard let signal = Signals.number(name) else { throw Problem.invalid("signal", "signal: unknown signal '\(name)'") }
            self = .signal(signal)
        case "resize":
            let cols = try body.int("cols", min: 1, max: 1000) ?? 80
            let rows = try body.int("rows", min: 1, max: 1000) ?? 24
            self = .resize(TerminalSize(cols: UInt16(cols), rows: UInt16(rows)))
        default:
            throw Problem.invalid("type", "type: one of stdin, close_stdin, signal, resize")
        }
        try body.finish()
    }
}

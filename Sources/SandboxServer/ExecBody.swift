import Foundation
import SandboxCore
import SandboxStore

/// The exec fields of an exec, a process start and a run submit: `cmd` (argv) or `code` + `lang`
/// (+ `args`), `env`, `cwd`, `stdin` or `stdin_base64`, `timeout`. The request is made once the
/// isolation is known (a run has no sandbox yet). The CLI encodes the same type it sends.
public struct ExecFields: Sendable {
    public var cmd: [String]?
    public var code: String?
    public var lang: String?
    public var args: [String]
    public var env: [String: String]
    public var cwd: String
    public var timeout: Duration?
    public var stdin = ExecRequest.StdinSource.none

    public init(cmd: [String]? = nil, code: String? = nil, lang: String? = nil, args: [String] = [], env: [String: String] = [:],
                cwd: String = "/workspace", timeout: Duration? = nil, stdin: ExecRequest.StdinSource = .none) {
        (self.cmd, self.code, self.lang, self.args, self.env, self.cwd, self.timeout, self.stdin) = (cmd, code, lang, args, env, cwd, timeout, stdin)
    }

    /// Writes the fields that differ from the defaults, in the names ``init(_:)`` reads (stdin as
    /// `stdin_base64`; a file or descriptor source is not sent).
    func encode(into c: inout KeyedEncodingContainer<BodyKey>) throws {
        try c.encodeIfPresent(cmd, forKey: BodyKey("cmd"))
        try c.encodeIfPresent(code, forKey: BodyKey("code"))
        try c.encodeIfPresent(lang, forKey: BodyKey("lang"))
        if !args.isEmpty { try c.encode(args, forKey: BodyKey("args")) }
        if !env.isEmpty { try c.encode(env, forKey: BodyKey("env")) }
        if cwd != "/workspace" { try c.encode(cwd, forKey: BodyKey("cwd")) }
        try c.encodeIfPresent(timeout.map(DurationText.format), forKey: BodyKey("timeout"))
        if case .bytes(let b) = stdin { try c.encode(Data(b).base64EncodedString(), forKey: BodyKey("stdin_base64")) }
    }

    init(_ body: inout BodyFields) throws {
        cmd = try body.strings("cmd")
        code = try body.string("code")
        lang = try body.string("lang")
        args = try body.strings("args") ?? []
        env = try body.stringMap("env") ?? [:]
        cwd = try body.string("cwd") ?? "/workspace"
        timeout = try body.duration("timeout")
        if let text = try body.string("stdin") { stdin = .bytes(Array(text.utf8)) }
        if let b64 = try body.string("stdin_base64") {
            guard case .none = stdin else { throw Problem.invalid("stdin_base64", "give either stdin or stdin_base64, not both") }
            guard let data = Data(base64Encoded: b64) else { throw Problem.invalid("stdin_base64", "stdin_base64: not valid base64") }
            stdin = .bytes(Array(data))
        }
    }

    /// The request for a sandbox or run of `isolation` (`code` needs a language it can run).
    func request(isolation: IsolationLevel) throws -> ExecRequest {
        guard cwd.hasPrefix("/") else { throw Problem.invalid("cwd", "cwd: must be an absolute path") }
        var request: ExecRequest
        do { request = try ExecRequest.make(cmd: cmd, code: code.map { Array($0.utf8) }, lang: lang, args: args, isolation: isolation) } catch {
            throw Problem.invalid(error.field ?? "", error.message)
        }
        request.env = env
        request.cwd = cwd
        request.stdin = stdin
        request.timeout = timeout
        return request
    }
}

/// `POST /v1/sandboxes/{id}/exec`: the exec fields, nothing else (what `sandboxer exec` sends).
public struct ExecBody: Codable, Sendable {
    public var exec: ExecFields

    public init(_ exec: ExecFields) { self.exec = exec }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: BodyKey.self)
        try exec.encode(into: &c)
    }

    public init(from decoder: any Decoder) throws {
        var body = try BodyFields(decoder)
        exec = try ExecFields(&body)
        try body.finish()
    }

    func request(_ sandbox: SandboxRecord) throws -> ExecRequest { try exec.request(isolation: sandbox.profile.isolation) }
}

/// `POST /v1/sandboxes/{id}/processes` (and a WebSocket exec's first message): the exec fields,
/// `tag`, and `pty` (`cols`, `rows`; 80×24 when left out).
struct ProcessStartBody: Decodable {
    var exec: ExecFields
    var options = ProcessOptions()

    init(from decoder: any Decoder) throws {
        var body = try BodyFields(decoder)
        exec = try ExecFields(&body)
        options.background = true
        options.tag = try body.string("tag")
        if var pty = try body.object("pty") {
            let cols = try pty.int("cols", min: 1, max: 1000) ?? 80
            let rows = try pty.int("rows", min: 1, max: 1000) ?? 24
            try pty.finish()
            options.pty = TerminalSize(cols: UInt16(cols), rows: UInt16(rows))
        }
        try body.finish()
    }

    func request(_ sandbox: SandboxRecord) throws -> ExecRequest { try exec.request(isolation: sandbox.profile.isolation) }
}

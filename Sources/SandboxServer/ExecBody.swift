import Foundation
import SandboxCore
import SandboxStore

/// The exec fields of an exec, a process start and a run submit: `cmd` (argv) or `code` + `lang`
/// (+ `args`), `env`, `cwd`, `stdin` or `stdin_base64`, `timeout`. The request is made once the
/// isolation is known (a run has no sandbox yet).
struct ExecFields {
    var cmd: [String]?
    var code: String?
    var lang: String?
    var args: [String]
    var env: [String: String]
    var cwd: String
    var timeout: Duration?
    var stdin = ExecRequest.StdinSource.none

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

/// `POST /v1/sandboxes/{id}/exec`: the exec fields, nothing else.
struct ExecBody: Decodable {
    var exec: ExecFields

    init(from decoder: any Decoder) throws {
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

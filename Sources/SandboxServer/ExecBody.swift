import Foundation
import SandboxCore
import SandboxStore

/// Reads an exec or process-start request: `cmd` (argv) or `code` + `lang` (+ `args`), `env`, `cwd`,
/// `stdin` or `stdin_base64`, `timeout`; for processes also `pty` (`cols`, `rows`) and `tag`.
enum ExecBody {
    static func read(_ body: inout JSONFields, sandbox: SandboxRecord, process: Bool) throws -> (ExecRequest, ProcessOptions) {
        try read(&body, isolation: sandbox.profile.isolation, process: process)
    }

    /// The same for a lane (a run has no sandbox yet).
    static func read(_ body: inout JSONFields, isolation: IsolationLevel, process: Bool) throws -> (ExecRequest, ProcessOptions) {
        let cmd = try body.strings("cmd")
        let code = try body.string("code")
        let lang = try body.string("lang")
        let args = try body.strings("args") ?? []
        let env = try body.stringMap("env") ?? [:]
        let cwd = try body.string("cwd") ?? "/workspace"
        let timeout = try body.duration("timeout")
        var stdin = ExecRequest.StdinSource.none
        if let text = try body.string("stdin") { stdin = .bytes(Array(text.utf8)) }
        if let b64 = try body.string("stdin_base64") {
            guard case .none = stdin else { throw Problem.invalid("stdin_base64", "give either stdin or stdin_base64, not both") }
            guard let data = Data(base64Encoded: b64) else { throw Problem.invalid("stdin_base64", "stdin_base64: not valid base64") }
            stdin = .bytes(Array(data))
        }
        var options = ProcessOptions()
        if process {
            options.background = true
            options.tag = try body.string("tag")
            if var pty = try body.object("pty") {
                let cols = try pty.int("cols", min: 1, max: 1000) ?? 80
                let rows = try pty.int("rows", min: 1, max: 1000) ?? 24
                try pty.finish()
                options.pty = TerminalSize(cols: UInt16(cols), rows: UInt16(rows))
            }
        }
        try body.finish()
        guard cwd.hasPrefix("/") else { throw Problem.invalid("cwd", "cwd: must be an absolute path") }

        var request: ExecRequest
        do { request = try ExecRequest.make(cmd: cmd, code: code.map { Array($0.utf8) }, lang: lang, args: args, isolation: isolation) } catch {
            throw Problem.invalid(error.field ?? "", error.message)
        }
        request.env = env
        request.cwd = cwd
        request.stdin = stdin
        request.timeout = timeout
        return (request, options)
    }
}

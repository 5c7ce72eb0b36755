/// Languages `--lang` understands in the container backend, and how each is started.
public enum Language: String, Sendable, CaseIterable {
    case python, js, sh, bash

    /// Accepts common aliases (`python3`, `py`, `node`, `javascript`, `shell`).
    public init(name: String) throws(SandboxError) {
        switch name.lowercased() {
        case "python", "python3", "py": self = .python
        case "js", "node", "javascript", "nodejs": self = .js
        case "sh", "shell": self = .sh
        case "bash": self = .bash
        default:
            throw SandboxError(.invalidRequest, "unknown language '\(name)'; one of: \(Language.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    /// File name the code is written to under `/code`.
    public var fileName: String {
        switch self {
        case .python: return "main.py"
        case .js: return "main.js"
        case .sh, .bash: return "main.sh"
        }
    }

    /// argv that runs `/code/<fileName>` with extra arguments.
    public func argv(arguments: [String] = []) -> [String] {
        let path = "/code/" + fileName
        switch self {
        case .python: return ["python3", "-u", path] + arguments
        case .js: return ["node", path] + arguments
        case .sh: return ["sh", path] + arguments
        case .bash: return ["bash", path] + arguments
        }
    }
}

extension ExecRequest {
    /// The one factory of exec requests from what a user gave, shared by the CLI (`run`, `exec`) and
    /// the API (exec, processes, runs): a command (`cmd`, an argv) or `code` in `lang` with `args`.
    /// The WASM isolations take JavaScript only. Errors name the field (`cmd`, `lang`, `args`).
    public static func make(cmd: [String]?, code: [UInt8]?, lang: String?, args: [String] = [],
                            isolation: IsolationLevel) throws(SandboxError) -> ExecRequest {
        if let code {
            guard cmd == nil else { throw SandboxError(.invalidRequest, "give either cmd or code + lang, not both", field: "cmd") }
            guard let lang else { throw SandboxError(.invalidRequest, "code needs lang (python, js, sh, bash)", field: "lang") }
            let language: Language
            do { language = try Language(name: lang) } catch { throw SandboxError(.invalidRequest, "lang: \(error.message)", field: "lang") }
            if isolation == .wasm || isolation == .wasmContainer {
                guard language == .js else { throw SandboxError(.invalidRequest, "lang: isolation wasm and wasm+container run JavaScript only (lang js)", field: "lang") }
                return ExecRequest(argv: args, code: code, codeFileName: "main.js")
            }
            return ExecRequest(argv: language.argv(arguments: args), code: code, codeFileName: language.fileName)
        }
        guard lang == nil else { throw SandboxError(.invalidRequest, "lang needs code", field: "lang") }
        guard let cmd, !cmd.isEmpty else {
            throw SandboxError(.invalidRequest, "nothing to run: give cmd (an argv array) or code + lang", field: "cmd")
        }
        guard args.isEmpty else { throw SandboxError(.invalidRequest, "args go with code + lang; put them in cmd", field: "args") }
        return ExecRequest(argv: cmd)
    }
}

/// Languages `--lang` understands in the container lane, and how each is started.
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

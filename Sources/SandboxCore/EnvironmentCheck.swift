/// The one rule for environment variables a caller hands in (profile `env`, create and exec
/// `env`): names are non-empty, at most 255 bytes, without `=` or NUL; values without NUL (execve
/// cannot pass them). Checked before anything is stored or started.
public enum EnvironmentCheck {
    /// Why `name` cannot be a variable name, or nil when it can.
    public static func problem(name: String) -> String? {
        if name.isEmpty { return "an empty variable name" }
        if name.utf8.count > 255 { return "a variable name over 255 bytes" }
        if name.contains("=") { return "variable name '\(name)' contains '='" }
        if name.utf8.contains(0) { return "a variable name with a NUL byte" }
        return nil
    }

    /// Throws `invalid_request` naming `field` and the first bad entry.
    public static func validate(_ env: [String: String], field: String) throws(SandboxError) {
        for (k, v) in env.sorted(by: { $0.key < $1.key }) {
            if let p = problem(name: k) { throw SandboxError(.invalidRequest, "\(field): \(p); use names like PATH or MY_VAR") }
            if v.utf8.contains(0) { throw SandboxError(.invalidRequest, "\(field).\(k): the value contains a NUL byte") }
        }
    }
}

import Foundation
import SandboxCore

/// What a secret must look like before it is sealed and stored. Each error is `invalid_request`
/// naming the field (`name`, `hosts`, `header`, `value`) and what to use instead.
public enum SecretRules {
    /// The largest value accepted (it goes into an HTTP header).
    public static let maxValueBytes = 64 * 1024

    /// A variable name (``EnvironmentCheck``): it becomes the sandbox's environment variable.
    public static func checkName(_ name: String) throws(SandboxError) {
        if let problem = EnvironmentCheck.problem(name: name) {
            throw SandboxError(.invalidRequest, "secret name: \(problem); use an environment variable name like OPENAI_API_KEY")
        }
    }

    /// Host names or `*.` wildcards, as `network.allow` parses them (``AllowRule``), without ports
    /// or addresses; returns them normalized (lower case, no trailing dot, no duplicates).
    public static func normalizedHosts(_ hosts: [String]) throws(SandboxError) -> [String] {
        guard !hosts.isEmpty else {
            throw SandboxError(.invalidRequest, "secret hosts: none given; name the hosts the value may be sent to, e.g. --hosts api.openai.com")
        }
        var out: [String] = []
        for entry in hosts {
            let host = try SecretTarget(entry).description
            if !out.contains(host) { out.append(host) }
        }
        return out
    }

    /// `Name: template` where Name is an HTTP field name and the template contains `{value}`.
    public static func checkHeader(_ header: String) throws(SandboxError) {
        let example = "use e.g. 'Authorization: Bearer {value}' or 'X-Api-Key: {value}'"
        guard let colon = header.firstIndex(of: ":") else {
            throw SandboxError(.invalidRequest, "secret header '\(header)': no ':' between field name and template; \(example)")
        }
        let field = header[..<colon]
        let template = header[header.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        let tchar = CharacterSet(charactersIn: "!#$%&'*+-.^_`|~").union(CharacterSet(charactersIn: "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"))
        guard !field.isEmpty, field.unicodeScalars.allSatisfy(tchar.contains) else {
            throw SandboxError(.invalidRequest, "secret header '\(header)': '\(field)' is not an HTTP field name; \(example)")
        }
        guard template.contains("{value}") else {
            throw SandboxError(.invalidRequest, "secret header '\(header)': the template has no {value} where the secret goes; \(example)")
        }
        guard !header.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\0" }) else {
            throw SandboxError(.invalidRequest, "secret header: contains a CR, LF or NUL; \(example)")
        }
    }

    /// Non-empty UTF-8 text of at most 64 KiB without NUL, CR or LF: it travels in an HTTP header.
    public static func checkValue(_ value: [UInt8], name: String) throws(SandboxError) {
        guard !value.isEmpty else {
            throw SandboxError(.invalidRequest, "secret value of \(name): empty; pass the value on standard input")
        }
        guard value.count <= maxValueBytes else {
            throw SandboxError(
                .limitExceeded, "secret value of \(name): \(value.count) bytes, over the limit of \(maxValueBytes) bytes; secrets go into HTTP headers",
                limit: .init(name: "secret_value_bytes", limit: Int64(maxValueBytes), actual: Int64(value.count)))
        }
        guard !value.contains(0), !value.contains(0x0D), !value.contains(0x0A) else {
            throw SandboxError(.invalidRequest, "secret value of \(name): contains a NUL, CR or LF byte (one trailing newline is stripped); secrets go into HTTP headers, so give one line")
        }
        guard String(validating: value, as: UTF8.self) != nil else {
            throw SandboxError(.invalidRequest, "secret value of \(name): not UTF-8 text; HTTP headers carry text, so encode binary values (base64)")
        }
    }
}

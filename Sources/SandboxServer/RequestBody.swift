import Foundation
import Hummingbird
import SandboxCore

/// Reads request bodies: collected up to a cap (413 naming the cap and both sizes), and parsed as
/// JSON whatever the `Content-Type` says (plain `curl -d` sends form-urlencoded).
enum BodyReader {
    /// Collects the body, refusing more than `limit` bytes. `name` names the limit in the problem.
    static func collect(_ request: Request, limit: Int64, name: String) async throws -> [UInt8] {
        if let text = request.headers[.contentLength], let length = Int64(text), length > limit {
            throw Problem.tooLarge(name, limit: limit, actual: length)
        }
        var bytes: [UInt8] = []
        for try await buffer in request.body {
            if Int64(bytes.count + buffer.readableBytes) > limit {
                throw Problem.tooLarge(name, limit: limit, actual: Int64(bytes.count + buffer.readableBytes), atLeast: true)
            }
            bytes.append(contentsOf: buffer.readableBytesView)
        }
        return bytes
    }

    /// Collects and parses a JSON object body (an empty body is `{}`).
    static func json(_ request: Request, limit: Int64) async throws -> JSONFields {
        let bytes = try await collect(request, limit: limit, name: "max_json_body_bytes")
        return try JSONFields(body: bytes)
    }
}

/// A JSON object read field by field: each accessor checks the type and names the field when it is
/// wrong; ``finish()`` rejects every field nobody read (unknown fields are errors, not ignored).
struct JSONFields {
    private let object: [String: Any]
    private var used: Set<String> = []
    /// Dotted path of this object in the body (`""` at the top, `pty.` inside `pty`).
    let prefix: String

    init(body: [UInt8]) throws {
        if body.allSatisfy({ $0 == 0x20 || $0 == 0x0a || $0 == 0x0d || $0 == 0x09 }) {
            self.init(object: [:], prefix: "")
            return
        }
        let value: Any
        do {
            value = try JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed])
        } catch {
            throw Problem.invalid("", "the request body is not valid JSON (\(Self.reason(error))); send a JSON object")
        }
        guard let object = value as? [String: Any] else {
            throw Problem.invalid("", "the request body must be a JSON object")
        }
        self.init(object: object, prefix: "")
    }

    init(object: [String: Any], prefix: String) {
        self.object = object
        self.prefix = prefix
    }

    /// Whether a parsed JSON value was `true`/`false` (on Linux the numbers 0 and 1 also pass `is Bool`).
    static func isBoolean(_ n: NSNumber) -> Bool { String(cString: n.objCType) == "c" }

    static func reason(_ error: any Error) -> String {
        let ns = error as NSError
        return (ns.userInfo[NSDebugDescriptionErrorKey] as? String) ?? ns.localizedDescription
    }

    var isEmpty: Bool { object.isEmpty }
    func has(_ key: String) -> Bool { object[key] != nil && !(object[key] is NSNull) }
    /// Whether `key` holds an object (e.g. an inline `profile`, not a profile name).
    func hasObject(_ key: String) -> Bool { object[key] is [String: Any] }

    private mutating func take(_ key: String) -> Any? {
        used.insert(key)
        guard let v = object[key], !(v is NSNull) else { return nil }
        return v
    }

    func bad(_ key: String, _ what: String) -> Problem {
        Problem.invalid(prefix + key, "\(prefix + key): \(what)")
    }

    mutating func raw(_ key: String) -> Any? { take(key) }

    mutating func string(_ key: String) throws -> String? {
        guard let v = take(key) else { return nil }
        guard let s = v as? String else { throw bad(key, "must be a string") }
        return s
    }

    mutating func bool(_ key: String) throws -> Bool? {
        guard let v = take(key) else { return nil }
        guard let b = v as? Bool else { throw bad(key, "must be true or false") }
        return b
    }

    mutating func int(_ key: String, min: Int = Int.min, max: Int = Int.max) throws -> Int? {
        guard let v = take(key) else { return nil }
        guard !(v is String), let n = v as? NSNumber, !Self.isBoolean(n), let i = Int(exactly: n.doubleValue) else {
            throw bad(key, min == Int.min && max == Int.max ? "must be an integer" : "must be an integer from \(min) to \(max)")
        }
        guard i >= min && i <= max else { throw bad(key, "must be between \(min) and \(max)") }
        return i
    }

    mutating func strings(_ key: String) throws -> [String]? {
        guard let v = take(key) else { return nil }
        guard let a = v as? [Any], let s = a as? [String] else { throw bad(key, "must be an array of strings") }
        return s
    }

    mutating func stringMap(_ key: String) throws -> [String: String]? {
        guard let v = take(key) else { return nil }
        guard let m = v as? [String: Any] else { throw bad(key, "must be an object of string values") }
        var out: [String: String] = [:]
        for (k, value) in m {
            guard let s = value as? String else { throw bad("\(key).\(k)", "must be a string") }
            out[k] = s
        }
        return out
    }

    /// A duration as text (`"10m"`, `"500ms"`) or a number of seconds.
    mutating func duration(_ key: String) throws -> Duration? {
        guard let v = take(key) else { return nil }
        if let s = v as? String {
            do { return try DurationText.parse(s, field: prefix + key) } catch { throw Problem.invalid(prefix + key, error.message) }
        }
        if let n = v as? NSNumber, !Self.isBoolean(n) {
            do { return try DurationText.seconds(n.doubleValue, field: prefix + key) } catch { throw Problem.invalid(prefix + key, error.message) }
        }
        throw bad(key, "must be a duration such as \"30s\", \"10m\" or a number of seconds")
    }

    mutating func object(_ key: String) throws -> JSONFields? {
        guard let v = take(key) else { return nil }
        guard let m = v as? [String: Any] else { throw bad(key, "must be an object") }
        return JSONFields(object: m, prefix: prefix + key + ".")
    }

    /// Rejects any field no accessor read.
    func finish() throws {
        if let unknown = object.keys.sorted().first(where: { !used.contains($0) }) {
            throw Problem.invalid(prefix + unknown, "unknown field '\(prefix + unknown)'; allowed: \(used.sorted().map { prefix + $0 }.joined(separator: ", "))")
        }
    }
}

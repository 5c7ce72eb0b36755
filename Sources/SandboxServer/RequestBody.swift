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
}

/// The key of any field of a JSON object, so a body type can see the fields it does not know.
public struct BodyKey: CodingKey, Sendable {
    public var stringValue: String
    public var intValue: Int? { nil }
    init(_ name: String) { stringValue = name }
    public init(stringValue: String) { self.stringValue = stringValue }
    public init?(intValue: Int) { nil }
}

/// One JSON object of a request body, read field by field inside a type's `init(from:)`: each
/// accessor checks the type and names the field (with its dotted path) when it is wrong;
/// ``finish()`` rejects every field nobody read (unknown fields are errors, not ignored).
struct BodyFields {
    private let container: KeyedDecodingContainer<BodyKey>
    private var used: Set<String> = []
    /// Dotted path of this object in the body (`""` at the top, `pty.` inside `pty`).
    let prefix: String

    /// The object `decoder` holds; anything else is a 400 (the whole body, or the field `prefix` names).
    init(_ decoder: any Decoder, prefix: String = "") throws {
        do { container = try decoder.container(keyedBy: BodyKey.self) } catch {
            guard !prefix.isEmpty else { throw Problem.invalid("", "the request body must be a JSON object") }
            let field = String(prefix.dropLast())
            throw Problem.invalid(field, "\(field): must be an object")
        }
        self.prefix = prefix
    }

    /// Whether `key` is in the object at all (`null` included).
    func contains(_ key: String) -> Bool { container.contains(BodyKey(key)) }

    /// Whether `key` is given and not `null`.
    func has(_ key: String) -> Bool {
        container.contains(BodyKey(key)) && !((try? container.decodeNil(forKey: BodyKey(key))) ?? true)
    }
    /// Whether `key` holds an object (an inline `profile`, not a profile name).
    func hasObject(_ key: String) -> Bool {
        (try? container.nestedContainer(keyedBy: BodyKey.self, forKey: BodyKey(key))) != nil
    }
    /// Whether `key` holds an array.
    func hasArray(_ key: String) -> Bool { (try? container.nestedUnkeyedContainer(forKey: BodyKey(key))) != nil }

    /// Marks `key` read; whether it is given and not `null` (for a field of more than one shape).
    mutating func given(_ key: String) -> Bool { take(key) != nil }

    /// Marks `key` read; its key when it is given and not `null`.
    private mutating func take(_ key: String) -> BodyKey? {
        used.insert(key)
        return has(key) ? BodyKey(key) : nil
    }

    func bad(_ key: String, _ what: String) -> Problem {
        Problem.invalid(prefix + key, "\(prefix + key): \(what)")
    }

    /// `key` decoded as `T` (the type's own errors, such as a profile's, pass through); a value of
    /// the wrong JSON type is a 400 saying it `what`.
    mutating func value<T: Decodable>(_ key: String, _: T.Type, _ what: String) throws -> T? {
        guard let k = take(key) else { return nil }
        do { return try container.decode(T.self, forKey: k) } catch is DecodingError { throw bad(key, what) }
    }

    mutating func string(_ key: String) throws -> String? { try value(key, String.self, "must be a string") }

    mutating func bool(_ key: String) throws -> Bool? { try value(key, Bool.self, "must be true or false") }

    /// A whole number (`3` or `3.0`, never `true` or `"3"`) inside `min...max`.
    mutating func int(_ key: String, min: Int = Int.min, max: Int = Int.max) throws -> Int? {
        guard let k = take(key) else { return nil }
        guard let i = (try? container.decode(Int.self, forKey: k)) ?? (try? container.decode(Double.self, forKey: k)).flatMap({ Int(exactly: $0) }) else {
            throw bad(key, min == Int.min && max == Int.max ? "must be an integer" : "must be an integer from \(min) to \(max)")
        }
        guard i >= min && i <= max else { throw bad(key, "must be between \(min) and \(max)") }
        return i
    }

    /// A number, whole or not (a signal may be `15` or `15.0`).
    mutating func number(_ key: String) -> Double? {
        guard let k = take(key) else { return nil }
        return try? container.decode(Double.self, forKey: k)
    }

    mutating func strings(_ key: String) throws -> [String]? { try value(key, [String].self, "must be an array of strings") }

    mutating func stringMap(_ key: String) throws -> [String: String]? {
        guard let k = take(key) else { return nil }
        guard let object = try? container.nestedContainer(keyedBy: BodyKey.self, forKey: k) else {
            throw bad(key, "must be an object of string values")
        }
        var out: [String: String] = [:]
        for name in object.allKeys {
            guard let s = try? object.decode(String.self, forKey: name) else { throw bad("\(key).\(name.stringValue)", "must be a string") }
            out[name.stringValue] = s
        }
        return out
    }

    /// A duration as text (`"10m"`, `"500ms"`) or a number of seconds.
    mutating func duration(_ key: String) throws -> Duration? {
        guard let k = take(key) else { return nil }
        if let s = try? container.decode(String.self, forKey: k) {
            do { return try DurationText.parse(s, field: prefix + key) } catch { throw Problem.invalid(prefix + key, error.message) }
        }
        if let n = try? container.decode(Double.self, forKey: k) {
            do { return try DurationText.seconds(n, field: prefix + key) } catch { throw Problem.invalid(prefix + key, error.message) }
        }
        throw bad(key, "must be a duration such as \"30s\", \"10m\" or a number of seconds")
    }

    /// The object at `key`, read with the same rules under the path `key.`.
    mutating func object(_ key: String) throws -> BodyFields? {
        guard let k = take(key) else { return nil }
        guard hasObject(key) else { throw bad(key, "must be an object") }
        return try BodyFields(try container.superDecoder(forKey: k), prefix: prefix + key + ".")
    }

    /// Rejects any field no accessor read.
    func finish() throws {
        if let unknown = container.allKeys.map(\.stringValue).sorted().first(where: { !used.contains($0) }) {
            throw Problem.invalid(prefix + unknown, "unknown field '\(prefix + unknown)'; allowed: \(used.sorted().map { prefix + $0 }.joined(separator: ", "))")
        }
    }
}

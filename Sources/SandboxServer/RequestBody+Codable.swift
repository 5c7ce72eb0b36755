import Foundation
import Hummingbird
import SandboxCore

extension BodyReader {
    /// Collects and decodes a JSON object body as `T` (an empty body is `{}`): a missing or mistyped
    /// field is a 400 naming it; `T` refuses unknown fields (``BodyFields/finish()``).
    /// `profiles` is the loader that a body with a `profile` field resolves names and inline objects with.
    static func decode<T: Decodable>(_: T.Type, _ request: Request, limit: Int64, profiles: ProfileLoader? = nil) async throws -> T {
        try decode(T.self, bytes: try await collect(request, limit: limit, name: "max_json_body_bytes"), profiles: profiles)
    }

    /// Decodes collected bytes (a request body, a WebSocket message) the same way.
    static func decode<T: Decodable>(_: T.Type, bytes: [UInt8], profiles: ProfileLoader? = nil) throws -> T {
        let blank = bytes.allSatisfy { $0 == 0x20 || $0 == 0x0a || $0 == 0x0d || $0 == 0x09 }
        let decoder = JSONDecoder()
        if let profiles { decoder.userInfo[ProfileField.loaderKey] = profiles }
        do {
            return try decoder.decode(T.self, from: blank ? Data("{}".utf8) : Data(bytes))
        } catch let error as DecodingError {
            throw Self.problem(error)
        }
    }

    /// A decoding error as the API says it: the field's dotted path and what was wrong.
    static func problem(_ error: DecodingError) -> Problem {
        func path(_ keys: [any CodingKey]) -> String {
            keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".").replacingOccurrences(of: ".[", with: "[")
        }
        switch error {
        case .keyNotFound(let key, let context):
            let field = path(context.codingPath + [key])
            return Problem.invalid(field, "\(field) is required")
        case .typeMismatch(let type, let context), .valueNotFound(let type, let context):
            let field = path(context.codingPath)
            return Problem.invalid(field, "\(field.isEmpty ? "the request body" : field): expected \(Self.describe(type))")
        case .dataCorrupted(let context):
            let field = path(context.codingPath)
            return field.isEmpty
                ? Problem.invalid("", "the request body is not valid JSON; send a JSON object")
                : Problem.invalid(field, "\(field): \(context.debugDescription)")
        @unknown default:
            return Problem.invalid("", "the request body cannot be read: \(error)")
        }
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type, is Int64.Type: "an integer"
        case is Double.Type: "a number"
        case is String.Type: "a string"
        case is Bool.Type: "true or false"
        default: type is [String: Any].Type ? "a JSON object" : "\(type)"
        }
    }
}

import Foundation
import Hummingbird

/// The server's JSON conventions: snake_case keys (declared by each type), ISO 8601 dates, sorted
/// keys, unescaped slashes — the same form `sandboxer run --json` prints.
enum APIJSON {
    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        e.dateEncodingStrategy = .iso8601
        return e
    }()

    static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        return d
    }()

    /// A JSON response with `status`.
    static func response<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Response {
        let data = try encoder.encode(value)
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// `204 No Content`.
    static var noContent: Response { Response(status: .noContent) }
}

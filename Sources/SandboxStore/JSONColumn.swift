import Foundation
import GRDB
import SandboxCore

/// How nested values and dates go into columns: JSON text (sorted keys) and REAL seconds since
/// the reference date (exact for `Date`). `encode` and `decode(_:text:)` are shared by every engine.
public enum JSONColumn {
    public static func encode<T: Encodable>(_ value: T) throws(SandboxError) -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do { return String(decoding: try enc.encode(value), as: UTF8.self) } catch {
            throw SandboxError(.invalidRequest, "cannot store \(T.self): \(error)")
        }
    }

    /// Reads JSON text a store wrote; a row it cannot read is a `system` error that names `what`.
    public static func decode<T: Decodable>(_: T.Type, text: String, what: String) throws(SandboxError) -> T {
        do { return try JSONDecoder().decode(T.self, from: Data(text.utf8)) } catch {
            throw SandboxError(.system, "\(what) cannot be read (\(error)); was it written by a newer sandboxer?")
        }
    }

    static func decode<T: Decodable>(_: T.Type, _ row: Row, _ column: String) throws -> T {
        let text: String = try row.decode(forColumn: column)
        return try JSONDecoder().decode(T.self, from: Data(text.utf8))
    }

    static func decodeIfPresent<T: Decodable>(_: T.Type, _ row: Row, _ column: String) throws -> T? {
        guard let text: String = try row.decode(forColumn: column) else { return nil }
        return try JSONDecoder().decode(T.self, from: Data(text.utf8))
    }

    static func date(_ row: Row, _ column: String) throws -> Date {
        Date(timeIntervalSinceReferenceDate: try row.decode(Double.self, forColumn: column))
    }

    static func dateIfPresent(_ row: Row, _ column: String) throws -> Date? {
        try row.decode(Double?.self, forColumn: column).map(Date.init(timeIntervalSinceReferenceDate:))
    }
}

extension Date {
    /// The column value of a date (seconds since the reference date), in every engine.
    public var column: Double { timeIntervalSinceReferenceDate }
}

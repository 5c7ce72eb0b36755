import Foundation
import MultipartKit
import NIOCore

/// The part of a `multipart/form-data` upload that holds the file, parsed by multipart-kit's
/// streaming parser (one pass, linear in the body) with the boundary held to RFC 2046's 1–70
/// characters and at most ``maxParts`` parts of at most ``maxHeaders`` headers each.
enum Multipart {
    /// RFC 2046 §5.1.1: a boundary has 1 to 70 characters.
    static let maxBoundary = 70
    static let maxParts = 64
    static let maxHeaders = 32

    /// The first part with a `filename` (else the first part named `file`, else the first part).
    static func firstFile(_ body: [UInt8], contentType: String) throws -> [UInt8] {
        let parts = try self.parts(body, contentType: contentType)
        guard let part = parts.first(where: { $0.filename != nil }) ?? parts.first(where: { $0.name == "file" }) ?? parts.first else {
            throw Problem.invalid("body", "the multipart body has no complete part (it needs a closing --boundary line)")
        }
        return part.content
    }

    /// One part of a form: its `name` and `filename` (from Content-Disposition, case kept) and bytes.
    struct FormPart {
        var name: String?
        var filename: String?
        var content: [UInt8]
    }

    /// Every complete part of the body, in order.
    static func parts(_ body: [UInt8], contentType: String) throws -> [FormPart] {
        let boundary = try self.boundary(contentType)
        let parts = PartCollector()
        let parser = MultipartParser(boundary: boundary)
        parser.onHeader = { name, value in parts.header(name, value) }
        parser.onBody = { buffer in parts.body(&buffer) }
        parser.onPartComplete = { parts.complete() }
        do { try parser.execute(body) } catch {
            throw Problem.invalid("body", "the multipart body is malformed (a part's headers or boundary line); send multipart/form-data as a browser or curl -F does")
        }
        if let problem = parts.problem { throw problem }
        return parts.done.map { part in
            let disposition = part.headers.first { $0.name == "content-disposition" }?.value ?? ""
            return FormPart(name: parameter("name", of: disposition), filename: parameter("filename", of: disposition), content: part.content)
        }
    }

    /// A quoted (or bare) parameter of a Content-Disposition value, e.g. `filename="a b.txt"`.
    static func parameter(_ key: String, of value: String) -> String? {
        for item in value.split(separator: ";").dropFirst() {
            let pair = item.split(separator: "=", maxSplits: 1)
            guard pair.count == 2, pair[0].trimmingCharacters(in: .whitespaces).lowercased() == key else { continue }
            var v = pair[1].trimmingCharacters(in: .whitespaces)
            if v.hasPrefix("\""), v.hasSuffix("\""), v.count >= 2 {
                v = String(v.dropFirst().dropLast()).replacingOccurrences(of: "\\\"", with: "\"")
            }
            return v
        }
        return nil
    }

    /// The `boundary` parameter of a `multipart/form-data` content type.
    static func boundary(_ contentType: String) throws -> String {
        guard let range = contentType.range(of: "boundary=", options: .caseInsensitive) else {
            throw Problem.invalid("Content-Type", "multipart/form-data without a boundary")
        }
        var boundary = String(contentType[range.upperBound...])
        if let semi = boundary.firstIndex(of: ";") { boundary = String(boundary[..<semi]) }
        boundary = boundary.trimmingCharacters(in: CharacterSet(charactersIn: "\" "))
        guard (1...maxBoundary).contains(boundary.utf8.count) else {
            throw Problem.invalid("Content-Type", "the multipart boundary has \(boundary.utf8.count) characters; RFC 2046 allows 1 to \(maxBoundary)")
        }
        return boundary
    }

    /// What the parser's callbacks collect: finished parts, the one being read, the first limit hit.
    private final class PartCollector {
        struct Part {
            var headers: [(name: String, value: String)] = []
            var content: [UInt8] = []
        }
        var done: [Part] = []
        var current = Part()
        var problem: Problem?

        func header(_ name: String, _ value: String) {
            guard problem == nil else { return }
            guard current.headers.count < Multipart.maxHeaders else {
                problem = Problem.invalid("body", "a multipart part has more than \(Multipart.maxHeaders) headers")
                return
            }
            current.headers.append((name.lowercased(), value))
        }

        func body(_ buffer: inout ByteBuffer) {
            guard problem == nil else { return }
            current.content.append(contentsOf: buffer.readableBytesView)
        }

        func complete() {
            guard problem == nil else { return }
            guard done.count < Multipart.maxParts else {
                problem = Problem.invalid("body", "the multipart body has more than \(Multipart.maxParts) parts; send one file per request")
                return
            }
            done.append(current)
            current = Part()
        }
    }
}

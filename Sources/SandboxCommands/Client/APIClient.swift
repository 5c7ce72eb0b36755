import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// A problem response of the API (`application/problem+json`), as the CLI reports it:
/// `sandboxer: <code>: <detail>`, exit status 2.
public struct APIProblem: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: Int
    public var code: String
    public var detail: String
    public init(status: Int, code: String, detail: String) {
        self.status = status
        self.code = code
        self.detail = detail
    }
    public var description: String { "\(code): \(detail)" }

    /// Reads a problem body (or makes one up from the status when the body is not one).
    init(status: Int, body: [UInt8]) {
        struct Body: Decodable { var code: String?; var detail: String? }
        let parsed = try? JSONDecoder().decode(Body.self, from: Data(body))
        self.init(status: status, code: parsed?.code ?? "http_\(status)",
                  detail: parsed?.detail ?? (String(decoding: body.prefix(500), as: UTF8.self).isEmpty ? "HTTP \(status)" : String(decoding: body.prefix(500), as: UTF8.self)))
    }
}

/// A small HTTP/1.1 client for the sandboxer API over SwiftNIO: one connection per request,
/// bearer auth, whole or streamed response bodies.
public struct APIClient: Sendable {
    public var host: String
    public var port: Int
    public var apiKey: String?

    /// `url` like `http://127.0.0.1:7070` (only plain HTTP).
    public init(url: String, apiKey: String?) throws {
        guard let u = URL(string: url), u.scheme == "http", let host = u.host else {
            throw APIProblem(status: 0, code: "invalid_request", detail: "--server \(url): give an http://HOST:PORT URL")
        }
        self.host = host
        self.port = u.port ?? 80
        self.apiKey = apiKey
    }

    /// A whole response.
    public struct Reply: Sendable {
        public var status: Int
        public var headers: [String: String]
        public var body: [UInt8]
    }

    /// Sends one request and returns the whole response (problems included; see ``checked(_:)``).
    public func send(_ method: String, _ path: String, body: [UInt8]? = nil, contentType: String? = "application/json",
                     accept: String? = nil, headers extra: [String: String] = [:]) async throws -> Reply {
        var reply = Reply(status: 0, headers: [:], body: [])
        reply.status = try await stream(method, path, body: body, contentType: contentType, accept: accept, headers: extra,
                                        onHead: { _, headers in reply.headers = headers },
                                        onBody: { reply.body += $0 })
        return reply
    }

    /// Sends one request and throws ``APIProblem`` for a status of 400 or more.
    public func checked(_ method: String, _ path: String, body: [UInt8]? = nil, contentType: String? = "application/json") async throws -> Reply {
        let reply = try await send(method, path, body: body, contentType: contentType)
        guard reply.status < 400 else { throw APIProblem(status: reply.status, body: reply.body) }
        return reply
    }

    /// Sends a request (a body as the route's own Encodable type) and decodes a JSON reply.
    public func json<T: Decodable>(_ method: String, _ path: String, _ body: (any Encodable)? = nil, as: T.Type) async throws -> T {
        let bytes = try body.map { Array(try JSONEncoder().encode($0)) }
        let reply = try await checked(method, path, body: bytes)
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(T.self, from: Data(reply.body))
    }

    /// Sends one request and hands the response over as it arrives; returns the status.
    public func stream(_ method: String, _ path: String, body: [UInt8]? = nil, contentType: String? = "application/json",
                       accept: String? = nil, headers extra: [String: String] = [:], onHead: (Int, [String: String]) async throws -> Void,
                       onBody: ([UInt8]) async throws -> Void) async throws -> Int {
        let channel: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>
        do {
            channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw APIProblem(status: 0, code: "unreachable", detail: "cannot reach the sandboxer server at http://\(host):\(port) (\(error)); start it with 'sandboxer serve' or set --server/$SANDBOXER_URL")
        }
        let (host, port, apiKey) = (self.host, self.port, self.apiKey)
        return try await channel.executeThenClose { inbound, outbound in
            var head = HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: method), uri: path)
            head.headers.add(name: "Host", value: "\(host):\(port)")
            head.headers.add(name: "Connection", value: "close")
            head.headers.add(name: "User-Agent", value: "sandboxer-cli")
            if let apiKey { head.headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
            if let accept { head.headers.add(name: "Accept", value: accept) }
            for (name, value) in extra.sorted(by: { $0.key < $1.key }) { head.headers.add(name: name, value: value) }
            if let body {
                head.headers.add(name: "Content-Length", value: String(body.count))
                if let contentType { head.headers.add(name: "Content-Type", value: contentType) }
            }
            // A server may answer and close before it has read the whole request (a 401 or 413 does):
            // a failed write is reported only when no answer came.
            var writeError: (any Error)?
            do {
                try await outbound.write(.head(head))
                if let body, !body.isEmpty { try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
                try await outbound.write(.end(nil))
            } catch {
                writeError = error
            }
            var status = 0
            do {
                for try await part in inbound {
                    switch part {
                    case let .head(h):
                        status = Int(h.status.code)
                        var headers: [String: String] = [:]
                        for (name, value) in h.headers { headers[name.lowercased()] = value }
                        try await onHead(status, headers)
                    case let .body(buffer):
                        try await onBody(Array(buffer.readableBytesView))
                    case .end:
                        return status
                    }
                }
            } catch {
                throw status == 0 ? (writeError ?? error) : error
            }
            if status == 0, let writeError { throw writeError }
            return status
        }
    }
}

/// Splits a `text/event-stream` body into events as bytes arrive.
public struct SSEParser: Sendable {
    private var buffer: [UInt8] = []
    public init() {}

    /// Feeds bytes; returns the complete events (name, data) they finished.
    public mutating func feed(_ bytes: [UInt8]) -> [(event: String, data: String)] {
        buffer += bytes
        var events: [(String, String)] = []
        while let end = Self.blankLine(in: buffer) {
            let block = String(decoding: buffer[..<end.start], as: UTF8.self)
            buffer.removeFirst(end.end)
            var name = "message"
            var data: [String] = []
            for line in block.split(separator: "\n", omittingEmptySubsequences: false) {
                let l = line.hasSuffix("\r") ? line.dropLast() : line
                if l.hasPrefix("event:") { name = l.dropFirst(6).trimmingCharacters(in: .whitespaces) }
                else if l.hasPrefix("data:") { data.append(String(l.dropFirst(5).drop(while: { $0 == " " }))) }
            }
            events.append((name, data.joined(separator: "\n")))
        }
        return events
    }

    /// The bytes of a `stdout`/`stderr` event's data (`{"text":…}` or `{"base64":…}`).
    public static func chunk(_ json: String) -> [UInt8] {
        struct Chunk: Decodable { var text: String?; var base64: String? }
        guard let c = try? JSONDecoder().decode(Chunk.self, from: Data(json.utf8)) else { return [] }
        if let t = c.text { return Array(t.utf8) }
        return c.base64.flatMap { Data(base64Encoded: $0) }.map { Array($0) } ?? []
    }

    static func blankLine(in b: [UInt8]) -> (start: Int, end: Int)? {
        var i = 0
        while i + 1 < b.count {
            if b[i] == 10 && b[i + 1] == 10 { return (i, i + 2) }
            if i + 3 < b.count && b[i] == 13 && b[i + 1] == 10 && b[i + 2] == 13 && b[i + 3] == 10 { return (i, i + 4) }
            i += 1
        }
        return nil
    }
}

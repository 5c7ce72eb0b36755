import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import SandboxCore

/// A keep-alive HTTP/1.1 connection for `sandboxer bench --suite api`: one TCP connection carries
/// every request of a ``with(host:port:apiKey:_:)`` block, one request at a time. The CLI's
/// ``APIClient`` opens a connection per request (`Connection: close`), which would add a TCP
/// handshake and a server-side channel set-up to every measured call; agents' SDKs keep
/// connections open, and so does this client.
struct BenchConnection {
    typealias Inbound = NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator
    typealias Outbound = NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>

    private var inbound: Inbound
    private let outbound: Outbound
    private let host: String
    private let apiKey: String

    /// A response: status and whole body.
    struct Reply {
        var status: Int
        var body: [UInt8]
        var text: String { String(decoding: body.prefix(400), as: UTF8.self) }
    }

    /// Opens one connection, runs `body` with it, closes it.
    static func with<R>(host: String = "127.0.0.1", port: Int, apiKey: String,
                        _ body: (inout BenchConnection) async throws -> R) async throws -> R {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            var connection = BenchConnection(inbound: inbound.makeAsyncIterator(), outbound: outbound,
                                             host: "\(host):\(port)", apiKey: apiKey)
            return try await body(&connection)
        }
    }

    /// Sends one request on the open connection and reads its whole response.
    mutating func send(_ method: HTTPMethod, _ path: String, json: String? = nil) async throws -> Reply {
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: path)
        head.headers.add(name: "Host", value: host)
        head.headers.add(name: "Authorization", value: "Bearer \(apiKey)")
        let bytes = json.map { Array($0.utf8) }
        if let bytes {
            head.headers.add(name: "Content-Type", value: "application/json")
            head.headers.add(name: "Content-Length", value: String(bytes.count))
        }
        // Head, body and end in one write (one flush, one segment for a small request), as HTTP
        // clients send a small request (Python's http.client joins headers and body for this).
        var parts: [HTTPClientRequestPart] = [.head(head)]
        if let bytes { parts.append(.body(.byteBuffer(ByteBuffer(bytes: bytes)))) }
        parts.append(.end(nil))
        try await outbound.write(contentsOf: parts)
        var reply = Reply(status: 0, body: [])
        while let part = try await inbound.next() {
            switch part {
            case let .head(h): reply.status = Int(h.status.code)
            case let .body(buffer): reply.body += buffer.readableBytesView
            case .end: return reply
            }
        }
        throw SandboxError(.system, "the server closed the connection during \(method) \(path)")
    }

    /// Sends a request that must answer `expect`; returns the body.
    @discardableResult
    mutating func expect(_ status: Int, _ method: HTTPMethod, _ path: String, json: String? = nil) async throws -> [UInt8] {
        let r = try await send(method, path, json: json)
        guard r.status == status else {
            throw SandboxError(.system, "\(method) \(path) answered \(r.status), not \(status): \(r.text)")
        }
        return r.body
    }

    /// `POST /v1/sandboxes` with the default profile; returns the new sandbox's id.
    mutating func createSandbox() async throws -> String {
        let body = try await expect(201, .POST, "/v1/sandboxes", json: "{}")
        struct Created: Decodable { var id: String }
        return try JSONDecoder().decode(Created.self, from: Data(body)).id
    }

    /// `POST /v1/sandboxes/{id}/exec` of `/bin/true`; checks it exited 0.
    mutating func execTrue(_ id: String) async throws {
        let body = try await expect(200, .POST, "/v1/sandboxes/\(id)/exec", json: #"{"cmd":["/bin/true"]}"#)
        struct Result: Decodable { var exit_code: Int? }
        let r = try JSONDecoder().decode(Result.self, from: Data(body))
        guard r.exit_code == 0 else {
            throw SandboxError(.system, "exec /bin/true in \(id) did not exit 0: \(String(decoding: body.prefix(400), as: UTF8.self))")
        }
    }

    /// `DELETE /v1/sandboxes/{id}`.
    mutating func deleteSandbox(_ id: String) async throws {
        try await expect(200, .DELETE, "/v1/sandboxes/\(id)")
    }
}

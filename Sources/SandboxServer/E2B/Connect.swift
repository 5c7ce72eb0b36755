import Foundation
import Hummingbird
import NIOCore
import SandboxCore

/// A Connect protocol error code (connectrpc.com/docs/protocol#error-codes) and the HTTP status a
/// unary response carries for it.
enum ConnectCode: String, Sendable, Codable {
    case canceled, unknown, internalError = "internal", unavailable, unimplemented, unauthenticated
    case invalidArgument = "invalid_argument", deadlineExceeded = "deadline_exceeded", notFound = "not_found"
    case alreadyExists = "already_exists", permissionDenied = "permission_denied", resourceExhausted = "resource_exhausted"
    case failedPrecondition = "failed_precondition", aborted, outOfRange = "out_of_range", dataLoss = "data_loss"

    var httpStatus: Int {
        switch self {
        case .canceled: 499
        case .unknown, .internalError, .dataLoss: 500
        case .invalidArgument, .outOfRange: 400
        case .deadlineExceeded: 504
        case .notFound: 404
        case .alreadyExists, .aborted: 409
        case .permissionDenied: 403
        case .resourceExhausted: 429
        case .failedPrecondition: 400
        case .unimplemented: 501
        case .unavailable: 503
        case .unauthenticated: 401
        }
    }
}

/// An error as the Connect protocol carries it: `{"code": "not_found", "message": "…"}` (the body
/// of a failed unary call, or the `error` of a stream's end message).
struct ConnectError: Error, Sendable, Codable, CustomStringConvertible {
    var code: ConnectCode
    var message: String

    init(_ code: ConnectCode, _ message: String) {
        self.code = code
        self.message = message
    }

    /// Any error of the server (a ``SandboxError``, a ``Problem``, a Connect error) in Connect's terms.
    init(_ error: any Error) {
        if let e = error as? ConnectError { self = e; return }
        if error is CancellationError { self.init(.canceled, "the call was cancelled"); return }
        let p = Problem(error)
        let code: ConnectCode = switch p.status {
        case 400, 413, 422: p.code == SandboxError.Code.limitExceeded.rawValue ? .resourceExhausted : .invalidArgument
        case 401: .unauthenticated
        case 403: .permissionDenied
        case 404: .notFound
        case 409: p.code == SandboxError.Code.invalidState.rawValue ? .failedPrecondition : .alreadyExists
        case 429: .resourceExhausted
        case 501: .unimplemented
        case 503: .unavailable
        case 504: .deadlineExceeded
        default: .internalError
        }
        self.init(code, p.detail)
    }

    var description: String { "\(code.rawValue): \(message)" }

    /// A unary call's failure: the code's HTTP status, the error as JSON.
    var unaryResponse: Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        let body = (try? Connect.encoder.encode(self)) ?? Data("{\"code\":\"internal\"}".utf8)
        return Response(status: .init(code: code.httpStatus), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}

/// Connect's framing of streamed messages: one flags byte (0x01 compressed, 0x02 end of stream),
/// a 4-byte big-endian length, then the message.
struct ConnectEnvelope: Sendable, Equatable {
    static let compressed: UInt8 = 0x01
    static let endStream: UInt8 = 0x02
    /// A message larger than this ends the call with `resource_exhausted`.
    static let maxMessageBytes = 16 << 20

    var flags: UInt8
    var payload: [UInt8]

    var bytes: ByteBuffer {
        var b = ByteBuffer()
        b.reserveCapacity(5 + payload.count)
        b.writeInteger(flags)
        b.writeInteger(UInt32(payload.count), endianness: .big)
        b.writeBytes(payload)
        return b
    }

    /// The end-of-stream message: `{}` or `{"error": …}`.
    static func end(_ error: ConnectError?) -> ConnectEnvelope {
        struct End: Encodable { var error: ConnectError? }
        let json = (try? JSONEncoder().encode(End(error: error))) ?? Data("{}".utf8)
        return ConnectEnvelope(flags: endStream, payload: Array(json))
    }
}

/// Reads envelopes out of a request body that arrives in chunks of any size.
struct ConnectEnvelopeReader<Body: AsyncSequence & Sendable>: Sendable where Body.Element == ByteBuffer {
    var body: Body

    /// The envelopes in order; a truncated one, a compressed one (we offer no compression) or one
    /// over ``ConnectEnvelope/maxMessageBytes`` throws `invalid_argument` / `resource_exhausted`.
    func envelopes() -> AsyncThrowingStream<ConnectEnvelope, any Error> {
        let body = self.body
        return AsyncThrowingStream { continuation in
            let task = Task {
                var pending = ByteBuffer()
                do {
                    for try await chunk in body {
                        var chunk = chunk
                        pending.writeBuffer(&chunk)
                        while let envelope = try Self.next(from: &pending) { continuation.yield(envelope) }
                    }
                    if pending.readableBytes > 0 { throw ConnectError(.invalidArgument, "the request ends inside a Connect envelope (\(pending.readableBytes) bytes left over)") }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    static func next(from buffer: inout ByteBuffer) throws(ConnectError) -> ConnectEnvelope? {
        guard buffer.readableBytes >= 5,
              let flags = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self),
              let length = buffer.getInteger(at: buffer.readerIndex + 1, endianness: .big, as: UInt32.self) else { return nil }
        guard length <= ConnectEnvelope.maxMessageBytes else {
            throw ConnectError(.resourceExhausted, "a Connect message of \(length) bytes is over the limit of \(ConnectEnvelope.maxMessageBytes)")
        }
        guard flags & ConnectEnvelope.compressed == 0 else {
            throw ConnectError(.invalidArgument, "compressed Connect messages are not supported: send them uncompressed (no Connect-Content-Encoding)")
        }
        guard buffer.readableBytes >= 5 + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: 5)
        let payload = buffer.readBytes(length: Int(length)) ?? []
        buffer.discardReadBytes()
        return ConnectEnvelope(flags: flags, payload: payload)
    }
}

/// The Connect protocol with the JSON codec, server side: unary calls (`application/json`) and
/// streams (`application/connect+json`), proto3 JSON messages as Codable values.
enum Connect {
    static let decoder = JSONDecoder()
    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.withoutEscapingSlashes]
        return e
    }()

    /// Whether a request is a streaming call (its messages in envelopes).
    static func isStreaming(_ request: Request) -> Bool {
        (request.headers[.contentType] ?? "").hasPrefix("application/connect+json")
    }

    /// Decodes a unary request's message (an empty body is the empty message `{}`).
    static func decodeUnary<M: Decodable>(_ type: M.Type, from request: Request, limit: Int = 4 << 20) async throws -> M {
        guard (request.headers[.contentType] ?? "application/json").hasPrefix("application/json") else {
            throw ConnectError(.invalidArgument, "a unary call's Content-Type must be application/json (only Connect's JSON codec is served)")
        }
        let body = try await request.body.collect(upTo: limit)
        return try decode(type, Array(buffer: body))
    }

    /// Decodes one message, or `invalid_argument` naming what is wrong.
    static func decode<M: Decodable>(_ type: M.Type, _ bytes: [UInt8]) throws -> M {
        let json = bytes.isEmpty ? Array("{}".utf8) : bytes
        do {
            return try decoder.decode(type, from: Data(json))
        } catch {
            throw ConnectError(.invalidArgument, "the request message is not valid \(M.self) JSON: \(error)")
        }
    }

    /// The first message of a server-streaming call (exactly one envelope, not the end flag).
    static func decodeStreamRequest<M: Decodable>(_ type: M.Type, from request: Request) async throws -> M {
        guard isStreaming(request) else {
            throw ConnectError(.invalidArgument, "a streaming call's Content-Type must be application/connect+json")
        }
        // The whole body is read (one message, then the client ends it): a connection whose
        // request was left half read could not carry the client's next call.
        var message: M?
        for try await envelope in ConnectEnvelopeReader(body: request.body).envelopes() {
            guard envelope.flags & ConnectEnvelope.endStream == 0 else { break }
            guard message == nil else { throw ConnectError(.invalidArgument, "a server-streaming call carries exactly one request message") }
            message = try decode(type, envelope.payload)
        }
        guard let message else { throw ConnectError(.invalidArgument, "the streaming call carries no request message") }
        return message
    }

    /// The messages of a client-streaming call, in order, until the client ends its body (or
    /// sends an envelope with the end flag); a malformed envelope or message ends it with
    /// `invalid_argument`.
    static func decodeStreamRequests<M: Decodable & Sendable>(_ type: M.Type, from request: Request) throws -> AsyncThrowingStream<M, any Error> {
        guard isStreaming(request) else {
            throw ConnectError(.invalidArgument, "a streaming call's Content-Type must be application/connect+json")
        }
        let envelopes = ConnectEnvelopeReader(body: request.body).envelopes()
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    for try await envelope in envelopes {
                        guard envelope.flags & ConnectEnvelope.endStream == 0 else { break }
                        continuation.yield(try decode(type, envelope.payload))
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// A streaming call that failed before its first message: the end message with the error
    /// (Connect's streams report errors there, with HTTP 200).
    static func streamFailure(_ error: any Error) -> Response {
        let failure = ConnectError(error)
        return serverStream(EmptyMessage.self) { _ in throw failure }
    }

    /// The empty message `{}`.
    struct EmptyMessage: Codable, Sendable {}

    /// A unary call's success: the message as JSON.
    static func unary(_ message: some Encodable) throws -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(message))))
    }

    /// A server stream: `produce` sends messages through `send`; the stream then ends with the end
    /// message, carrying `produce`'s error if it threw. The client going away cancels `produce`.
    static func serverStream<M: Encodable & Sendable>(
        _ type: M.Type = M.self,
        _ produce: @escaping @Sendable (_ send: @escaping @Sendable (M) async throws -> Void) async throws -> Void
    ) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/connect+json"
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            let (messages, continuation) = AsyncStream<ConnectEnvelope>.makeStream()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    var failure: ConnectError?
                    do {
                        try await produce { message in
                            let payload = try encoder.encode(message)
                            continuation.yield(ConnectEnvelope(flags: 0, payload: Array(payload)))
                        }
                    } catch {
                        failure = ConnectError(error)
                    }
                    continuation.yield(.end(failure))
                    continuation.finish()
                }
                for await envelope in messages { try await writer.write(envelope.bytes) }
                try await group.waitForAll()
            }
            try await writer.finish(nil)
        })
    }
}

import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
@testable import SandboxServer
import Testing

/// Connect's streaming requests (a server stream's one message, a client stream's messages) read
/// out of a body that arrives in chunks of any size; what is malformed is `invalid_argument`.
@Suite struct ConnectStreamRequestTests {
    struct Note: Codable, Sendable, Equatable { var text: String }

    static func envelope(_ json: String, flags: UInt8 = 0) -> [UInt8] {
        ConnectEnvelope(flags: flags, payload: Array(json.utf8)).bytes.readableBytesView.map { $0 }
    }

    /// A streaming request whose body arrives as `bytes` cut into pieces of `chunk` bytes.
    static func request(_ bytes: [UInt8], chunk: Int, contentType: String = "application/connect+json") -> Request {
        let pieces = stride(from: 0, to: bytes.count, by: chunk).map { ByteBuffer(bytes: bytes[$0..<min($0 + chunk, bytes.count)]) }
        var fields = HTTPFields()
        fields[.contentType] = contentType
        let head = HTTPRequest(method: .post, scheme: "http", authority: "localhost", path: "/process.Process/StreamInput", headerFields: fields)
        let body = AsyncStream<ByteBuffer> { continuation in
            for piece in pieces { continuation.yield(piece) }
            continuation.finish()
        }
        return Request(head: head, body: RequestBody(asyncSequence: body))
    }

    static func messages(_ request: Request) async throws -> [Note] {
        var out: [Note] = []
        for try await note in try Connect.decodeStreamRequests(Note.self, from: request) { out.append(note) }
        return out
    }

    @Test(arguments: [1, 2, 5, 7, 64, 4096])
    func clientStreamMessagesSurviveAnyChunking(chunk: Int) async throws {
        let body = Self.envelope(#"{"text":"one"}"#) + Self.envelope(#"{"text":""}"#)
            + Self.envelope(#"{"text":"three"}"#)
        #expect(try await Self.messages(Self.request(body, chunk: chunk)) == [Note(text: "one"), Note(text: ""), Note(text: "three")])
    }

    @Test func anEndFlaggedEnvelopeEndsTheClientStream() async throws {
        let body = Self.envelope(#"{"text":"kept"}"#) + Self.envelope("{}", flags: ConnectEnvelope.endStream) + Self.envelope(#"{"text":"after"}"#)
        #expect(try await Self.messages(Self.request(body, chunk: 3)) == [Note(text: "kept")])
    }

    @Test func aTruncatedEnvelopeIsInvalidArgument() async throws {
        let body = Self.envelope(#"{"text":"whole"}"#) + Array(Self.envelope(#"{"text":"cut"}"#).dropLast(2))
        do {
            _ = try await Self.messages(Self.request(body, chunk: 4))
            Issue.record("a truncated envelope was taken")
        } catch let e as ConnectError {
            #expect(e.code == .invalidArgument)
        }
    }

    @Test func aMessageThatIsNotTheTypeIsInvalidArgument() async throws {
        do {
            _ = try await Self.messages(Self.request(Self.envelope(#"{"text": 5}"#), chunk: 100))
            Issue.record("a number for a string decoded")
        } catch let e as ConnectError {
            #expect(e.code == .invalidArgument)
        }
    }

    @Test func aServerStreamTakesExactlyOneMessage() async throws {
        let one = try await Connect.decodeStreamRequest(Note.self, from: Self.request(Self.envelope(#"{"text":"x"}"#), chunk: 2))
        #expect(one == Note(text: "x"))
        for body in [Self.envelope(#"{"text":"x"}"#) + Self.envelope(#"{"text":"y"}"#), []] {
            do {
                _ = try await Connect.decodeStreamRequest(Note.self, from: Self.request(body, chunk: 3))
                Issue.record("a server stream's request of \(body.count) bytes was taken")
            } catch let e as ConnectError {
                #expect(e.code == .invalidArgument)
            }
        }
    }

    @Test func aStreamNeedsTheConnectContentType() async throws {
        #expect(throws: ConnectError.self) {
            _ = try Connect.decodeStreamRequests(Note.self, from: Self.request(Self.envelope("{}"), chunk: 10, contentType: "application/json"))
        }
    }
}

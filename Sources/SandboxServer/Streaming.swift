import Foundation
import Hummingbird
import SandboxCore

/// One thing a stream (SSE or WebSocket) carries: an output chunk, the final result, or a problem
/// that ended it early.
enum StreamEvent: Sendable {
    case output(StdStream, [UInt8])
    case result(ExecResult)
    case failure(Problem)

    /// A chunk as JSON: `text` when the bytes are UTF-8, else `base64`.
    struct Chunk: Codable {
        var type: String?
        var text: String?
        var base64: String?
        init(type: String?, bytes: [UInt8]) {
            self.type = type
            if let s = String(validating: bytes, as: UTF8.self) { text = s } else { base64 = Data(bytes).base64EncodedString() }
        }
    }

    /// Server-sent event: `event: stdout|stderr|result|error`, `data:` one line of JSON.
    var sse: ByteBuffer {
        let name: String
        let data: Data
        switch self {
        case let .output(stream, bytes):
            name = stream.rawValue
            data = (try? APIJSON.encoder.encode(Chunk(type: nil, bytes: bytes))) ?? Data()
        case let .result(result):
            name = "result"
            data = (try? APIJSON.encoder.encode(result)) ?? Data()
        case let .failure(problem):
            name = "error"
            data = Data(problem.jsonBytes)
        }
        return ByteBuffer(string: "event: \(name)\ndata: \(String(decoding: data, as: UTF8.self))\n\n")
    }

    /// WebSocket text message: `{"type":"stdout","text":…}`, `{"type":"result","result":…}`,
    /// `{"type":"error","problem":…}`.
    var webSocketText: String {
        switch self {
        case let .output(stream, bytes):
            return String(decoding: (try? APIJSON.encoder.encode(Chunk(type: stream.rawValue, bytes: bytes))) ?? Data(), as: UTF8.self)
        case let .result(result):
            return Self.envelope("result", key: "result", (try? APIJSON.encoder.encode(result)) ?? Data("null".utf8))
        case let .failure(problem):
            return Self.envelope("error", key: "problem", Data(problem.jsonBytes))
        }
    }

    static func envelope(_ type: String, key: String, _ json: Data) -> String {
        "{\"type\":\"\(type)\",\"\(key)\":\(String(decoding: json, as: UTF8.self))}"
    }
}

enum Streaming {
    /// Runs `operation` (an exec, or a connect to a process) and streams its output as server-sent
    /// events, ending with `result` (or `error`). The client going away cancels the operation.
    static func sse(_ operation: @escaping @Sendable (_ output: @escaping OutputHandler) async throws -> ExecResult) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            let (events, continuation) = AsyncStream<StreamEvent>.makeStream()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    await produce(operation, into: continuation)
                }
                for await event in events {
                    try await writer.write(event.sse)
                }
                try await group.waitForAll()
            }
            try await writer.finish(nil)
        })
    }

    /// Runs `operation`, yielding its output, then its result or problem, and finishes the stream.
    static func produce(_ operation: @Sendable (_ output: @escaping OutputHandler) async throws -> ExecResult,
                        into continuation: AsyncStream<StreamEvent>.Continuation) async {
        do {
            let result = try await operation { stream, bytes in continuation.yield(.output(stream, bytes)) }
            continuation.yield(.result(result))
        } catch {
            continuation.yield(.failure(Problem(error)))
        }
        continuation.finish()
    }

    /// Whether the client asked for server-sent events.
    static func wantsEventStream(_ request: Request) -> Bool {
        request.headers[.accept]?.contains("text/event-stream") ?? false
    }
}

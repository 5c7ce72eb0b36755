import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import SandboxCore
import SandboxManager

/// E2B's code interpreter (port 49999) as the `e2b-code-interpreter` SDK calls it: `POST /execute`
/// (the execution as JSON lines), `POST /contexts`, `GET /contexts`, `DELETE /contexts/{id}`,
/// `POST /contexts/{id}/restart`, `GET /health`. The interpreter runs inside the sandbox (the
/// `code-interpreter-v1` template's driver and kernels, see ``InterpreterDriver``); a client that
/// goes away during an execution interrupts it.
struct InterpreterService: E2BSandboxService {
    let manager: SandboxManager
    /// One execution at a time per context, across requests (a queued one would otherwise be
    /// aborted by the kernel when the one before it fails or is interrupted).
    let queues = InterpreterQueues()
    var port: Int { E2BTarget.interpreterPort }

    /// A context as the SDK reads it.
    struct ContextView: Codable, Sendable {
        var id: String
        var language: String
        var cwd: String
    }

    /// `POST /execute`'s body.
    struct ExecuteBody: Codable, Sendable {
        var code: String
        var context_id: String?
        var language: String?
        var env_vars: [String: String]?
    }

    func respond(to request: Request, target: E2BTarget, context: APIRequestContext) async throws -> Response? {
        let parts = request.uri.path.split(separator: "/").map(String.init)
        let driver = InterpreterDriver(manager: manager, target: target)
        do {
            switch (request.method, parts.count, parts.first) {
            case (.get, 1, "health"):
                return Self.json("OK")
            case (.post, 1, "execute"):
                return try await execute(request, driver)
            case (.post, 1, "contexts"):
                struct Create: Codable { var language: String?; var cwd: String? }
                let body = try await Self.decode(Create.self, request)
                return Self.json(try await driver.call("create", body, as: ContextView.self))
            case (.get, 1, "contexts"):
                return Self.json(try await driver.call("list", [String: String](), as: [ContextView].self) ?? [])
            case (.delete, 2, "contexts"):
                let id = try Self.contextId(parts[1])
                _ = try await queues.serialized("\(target.sandboxId)/\(id)") { try await driver.call("remove", ["id": id], as: ContextView.self) }
                return Self.json(ContextView?.none)
            case (.post, 3, "contexts") where parts[2] == "restart":
                let id = try Self.contextId(parts[1])
                _ = try await queues.serialized("\(target.sandboxId)/\(id)") { try await driver.call("restart", ["id": id], as: ContextView.self) }
                return Self.json(ContextView?.none)
            default:
                return nil
            }
        } catch let refusal as InterpreterDriver.Refusal {
            return Self.text(refusal.status, refusal.message)
        } catch let failure as E2BPlaneFailure {
            return failure.response
        }
    }

    /// `POST /execute`: the context is resolved first (a wrong one is a plain 4xx, as E2B answers),
    /// then the execution streams as JSON lines ending with `end_of_execution`.
    func execute(_ request: Request, _ driver: InterpreterDriver) async throws -> Response {
        let body = try await Self.decode(ExecuteBody.self, request)
        if body.context_id != nil && body.language != nil {
            return Self.text(400, "Only one of context_id or language can be provided")
        }
        if let id = body.context_id { _ = try Self.contextId(id) }
        struct Resolve: Codable { var context_id: String?; var language: String? }
        guard let resolved = try await driver.call("resolve", Resolve(context_id: body.context_id, language: body.language), as: ContextView.self) else {
            throw SandboxError(.system, "the code interpreter's driver resolved no context")
        }
        let run = ExecuteBody(code: body.code, context_id: resolved.id, language: nil, env_vars: body.env_vars)
        let key = "\(driver.target.sandboxId)/\(resolved.id)"
        var headers = HTTPFields()
        headers[.contentType] = "application/x-ndjson"
        headers[.cacheControl] = "no-cache"
        let queues = self.queues
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            try await queues.serialized(key) {
                let ended = try await InterpreterStream.run(driver, run, contextId: resolved.id) { try await writer.write($0) }
                if ended { try await writer.write(ByteBuffer(string: "{\"type\": \"end_of_execution\"}\n")) }
            }
            try await writer.finish(nil)
        })
    }

    static func decode<T: Decodable>(_ type: T.Type, _ request: Request) async throws -> T {
        let bytes = try await request.body.collect(upTo: InterpreterDriver.maxRequestBytes)
        do {
            return try JSONDecoder().decode(T.self, from: Data(buffer: bytes.readableBytes == 0 ? ByteBuffer(string: "{}") : bytes))
        } catch {
            throw InterpreterDriver.Refusal(status: 400, message: "the request body is not the JSON this call takes: \(error)")
        }
    }

    /// A context id as the driver names them (a UUID); anything else is no context.
    static func contextId(_ text: String) throws -> String {
        guard (1...64).contains(text.count), text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) else {
            throw InterpreterDriver.Refusal(status: 404, message: "Context \(text.prefix(64)) not found")
        }
        return text
    }

    static func json(_ value: some Encodable) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        let data = (try? encoder.encode(value)) ?? Data("null".utf8)
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func text(_ status: Int, _ message: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; charset=utf-8"
        return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: ByteBuffer(string: message)))
    }
}

/// Runs one call at a time per key (a sandbox's context); the others wait their turn in order.
actor InterpreterQueues {
    private var busy: Set<String> = []
    private var waiting: [String: [CheckedContinuation<Void, Never>]] = [:]

    nonisolated func serialized<T>(_ key: String, _ body: () async throws -> T) async throws -> T {
        await acquire(key)
        do {
            let value = try await body()
            await release(key)
            return value
        } catch {
            await release(key)
            throw error
        }
    }

    private func acquire(_ key: String) async {
        if busy.contains(key) {
            await withCheckedContinuation { waiting[key, default: []].append($0) }
        } else {
            busy.insert(key)
        }
    }

    /// Hands the key to the next waiter (it stays busy), or frees it.
    private func release(_ key: String) {
        if var queue = waiting[key], !queue.isEmpty {
            let next = queue.removeFirst()
            waiting[key] = queue.isEmpty ? nil : queue
            next.resume()
        } else {
            busy.remove(key)
        }
    }
}

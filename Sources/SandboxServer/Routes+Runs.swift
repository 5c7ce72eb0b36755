import Foundation
import Hummingbird
import SandboxCore
import SandboxRuns
import SandboxStore

extension SandboxServer {
    /// The run queue: submit, list, get, cancel, retry, logs (JSON or followed over SSE).
    func addRunRoutes(_ routes: RouteRegistry) {
        guard let service = runs else { return }
        let store = service.store
        let keys = self.store
        let manager = self.manager
        let maxJSON = configuration.maxJSONBytes

        routes.add(.post, "/v1/runs", action: .runSubmit) { request, context in
            let caller = try context.requireCaller()
            let key = try RunBody.idempotencyKey(request.headers[HTTPFields.Element.Name("Idempotency-Key")!])
            let profiles = await manager.configuration.profiles
            let body = try await BodyReader.decode(RunSubmitBody.self, request, limit: maxJSON, profiles: profiles)
            let run = try body.record(tenantId: caller.tenantId, idempotencyKey: key, profiles: profiles)
            try await manager.checkTenantProfile(tenantId: caller.tenantId, profile: run.spec.profile, inline: body.inlineProfile,
                                                 isolationField: body.isolation != nil ? "isolation" : "profile.isolation")
            let (stored, created) = try await store.submitRun(run, maxQueued: try await manager.quota(caller.tenantId).maxQueued)
            context.auditTarget.target = stored.id
            return try Self.runResponse(RunView(stored, showSecret: created), status: created ? .accepted : .ok)
        }

        routes.add(.get, "/v1/runs") { request, context in
            let caller = try context.requireCaller()
            let query = try RunBody.listQuery(request.uri.queryParameters.map { (String($0.key), String($0.value)) }, tenantId: caller.tenantId)
            let page = try await store.runs(query)
            return try Self.runResponse(RunList(items: page.items.map { RunView($0) }, nextCursor: page.nextCursor))
        }

        routes.add(.get, "/v1/runs/{id}") { _, context in
            let caller = try context.requireCaller()
            let id = try context.parameters.require("id")
            guard let run = try await store.run(id: id), run.tenantId == caller.tenantId else { throw RunRules.notFound(id) }
            return try Self.runResponse(RunView(run))
        }

        // A queued run's sandboxes are one-shot and have no sandbox record: their trails (egress
        // decisions above all) are read through the run, every attempt in order.
        routes.add(.get, "/v1/runs/{id}/audit") { _, context in
            let caller = try context.requireCaller()
            let id = try context.parameters.require("id")
            guard let run = try await store.run(id: id), run.tenantId == caller.tenantId else { throw RunRules.notFound(id) }
            var events: [AuditEvent] = []
            for sandboxId in run.attempts.compactMap(\.sandboxId) {
                events += try await manager.store.events(sandboxId: sandboxId, after: 0, limit: 10_000)
            }
            var headers = HTTPFields()
            headers[.contentType] = "application/x-ndjson"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: AuditLine.buffer(events.map(AuditLine.init))))
        }

        routes.add(.post, "/v1/runs/{id}/cancel", action: .runCancel) { _, context in
            let caller = try context.requireCaller()
            let run = try await store.cancelRun(tenantId: caller.tenantId, id: try context.parameters.require("id"))
            return try Self.runResponse(RunView(run))
        }

        routes.add(.post, "/v1/runs/{id}/retry", action: .runRetry) { _, context in
            let caller = try context.requireCaller()
            let run = try await store.retryRun(tenantId: caller.tenantId, id: try context.parameters.require("id"),
                                                maxQueued: try await manager.quota(caller.tenantId).maxQueued)
            return try Self.runResponse(RunView(run))
        }

        routes.add(.get, "/v1/runs/{id}/logs") { request, context in
            let caller = try context.requireCaller()
            let id = try context.parameters.require("id")
            var attempt: Int?
            for (k, v) in request.uri.queryParameters {
                guard k == "attempt" else { throw Problem.invalid(String(k), "unknown query parameter '\(k)'; allowed: attempt") }
                guard let n = Int(String(v)), n >= 1 else { throw Problem.invalid("attempt", "attempt: an attempt number from 1") }
                attempt = n
            }
            guard let run = try await store.run(id: id), run.tenantId == caller.tenantId else { throw RunRules.notFound(id) }
            if let attempt, attempt > run.attempts.count, !Streaming.wantsEventStream(request) {
                throw SandboxError(.notFound, "run \(id) has \(run.attempts.count) attempt(s) so far; ask for attempt 1 to \(max(1, run.attempts.count))")
            }
            if Streaming.wantsEventStream(request) {
                return Self.followResponse(store: store, keys: keys, key: KeyWatch.key(of: request), id: id, tenantId: caller.tenantId, attempt: attempt)
            }
            let number = attempt ?? run.attempts.count
            var out: [UInt8] = [], err: [UInt8] = []
            if number > 0 {
                for chunk in try await store.runLog(runId: id, attempt: number, afterSeq: 0) {
                    if chunk.stream == .stdout { out += chunk.data } else { err += chunk.data }
                }
            }
            return try APIJSON.response(RunLogsView(runId: id, attempt: number, state: run.state, stdout: out, stderr: err))
        }

        addRunReplayRoutes(routes, store: store)
    }

    static func runResponse<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try RunView.encoder.encode(value))))
    }

    /// Server-sent events of ``RunFollower``: `attempt`, `stdout`/`stderr`, then `run` (or `error`).
    /// A revoked `key` ends the follow with an `unauthorized` error at its next event (the key is
    /// checked at most every ``KeyWatch/interval``).
    static func followResponse(store: any RunStore, keys: any SandboxStore, key: String?, id: String, tenantId: String, attempt: Int?) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            do {
                var checked = ContinuousClock.now
                for try await event in RunFollower.follow(store: store, id: id, tenantId: tenantId, attempt: attempt) {
                    guard await KeyWatch.stillValid(keys, key: key, last: &checked) else { throw KeyWatch.revoked }
                    switch event {
                    case .attempt(let n):
                        try await writer.write(ByteBuffer(string: "event: attempt\ndata: {\"attempt\":\(n)}\n\n"))
                    case .output(let stream, let bytes):
                        try await writer.write(StreamEvent.output(stream, bytes).sse)
                    case .end(let run):
                        let json = String(decoding: try RunView.encoder.encode(RunView(run)), as: UTF8.self)
                        try await writer.write(ByteBuffer(string: "event: run\ndata: \(json)\n\n"))
                    }
                }
            } catch {
                try await writer.write(StreamEvent.failure(Problem(error)).sse)
            }
            try await writer.finish(nil)
        })
    }
}

/// One page of runs.
typealias RunList = ListPage<RunView>

/// One page of a listing: its items and the cursor of the next page (`null` on the last).
struct ListPage<Item: Encodable>: Encodable {
    var items: [Item]
    var nextCursor: String?
    enum CodingKeys: String, CodingKey { case items, nextCursor = "next_cursor" }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(items, forKey: .items)
        try c.encode(nextCursor, forKey: .nextCursor)
    }
}

/// `GET /v1/runs/{id}/logs` as JSON: text when UTF-8, else base64 beside an empty text.
struct RunLogsView: Encodable {
    var runId: String
    var attempt: Int
    var state: RunState
    var stdout: [UInt8]
    var stderr: [UInt8]
    enum CodingKeys: String, CodingKey {
        case runId = "run_id", attempt, state, stdout, stderr, stdoutBase64 = "stdout_base64", stderrBase64 = "stderr_base64"
    }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(runId, forKey: .runId)
        try c.encode(attempt, forKey: .attempt)
        try c.encode(state, forKey: .state)
        for (bytes, text, b64) in [(stdout, CodingKeys.stdout, CodingKeys.stdoutBase64), (stderr, .stderr, .stderrBase64)] {
            if let s = String(validating: bytes, as: UTF8.self) {
                try c.encode(s, forKey: text)
            } else {
                try c.encode("", forKey: text)
                try c.encode(Data(bytes).base64EncodedString(), forKey: b64)
            }
        }
    }
}

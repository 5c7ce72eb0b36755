import Foundation
import Hummingbird
import SandboxCore
import SandboxManager

extension SandboxServer {
    /// `POST /v1/sandboxes/{id}/exec`: one process to its end; JSON result, or SSE with
    /// `Accept: text/event-stream`.
    func addExecRoutes(_ routes: RouteRegistry) {
        let manager = self.manager
        let store = self.store
        let metrics = self.metrics
        let maxJSON = configuration.maxJSONBytes

        routes.add(.post, "/v1/sandboxes/{id}/exec") { request, context in
            let caller = try context.requireCaller()
            let id = try context.parameters.require("id")
            let body = try await BodyReader.decode(ExecBody.self, request, limit: maxJSON)
            let exec = try body.request(try await manager.get(tenantId: caller.tenantId, id: id))
            let run: @Sendable (OutputHandler?) async throws -> ExecResult = { output in
                let start = ContinuousClock.now
                let result = try await manager.exec(tenantId: caller.tenantId, id: id, exec, actor: caller.keyId, output: output)
                metrics.recordExec(outcome: result.outcome.rawValue, duration: ContinuousClock.now - start)
                return result
            }
            if Streaming.wantsEventStream(request) {
                let key = KeyWatch.key(of: request)
                return Streaming.sse { output in try await KeyWatch.whileValid(store, key: key) { try await run(output) } }
            }
            return try APIJSON.response(try await run(nil))
        }
    }
}

import Foundation
import Hummingbird

extension SandboxServer {
    /// `/healthz` (the process is up), `/readyz` (the store answers), `/metrics` (Prometheus text).
    func addHealthRoutes(_ routes: RouteRegistry) {
        routes.add(.get, "/healthz") { _, _ in
            try APIJSON.response(["status": "ok"])
        }
        let store = self.store
        let manager = self.manager
        routes.add(.get, "/readyz") { _, context in
            guard await manager.isReady else {
                throw Problem(status: 503, code: "internal", detail: "the manager has not finished starting (reconciliation)")
            }
            do {
                _ = try await store.tenant(id: "readiness-probe")
                return try APIJSON.response(["status": "ready"])
            } catch {
                context.logger.warning("readiness: store unreachable", metadata: ["error": "\(error)"])
                throw Problem(status: 503, code: "internal", detail: "the store is unreachable")
            }
        }
        let metrics = self.metrics
        routes.add(.get, "/metrics") { _, _ in
            let gauges = await manager.gauges()
            metrics.recordGauges(byState: gauges.byState, poolSize: gauges.poolSize)
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: metrics.exposition())))
        }
    }
}

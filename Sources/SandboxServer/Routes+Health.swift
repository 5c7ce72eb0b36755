import Foundation
import Hummingbird
import SandboxCore

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
        let readers = configuration.metricsTenants
        routes.add(.get, "/metrics") { _, context in
            let caller = try context.requireCaller()
            guard let tenant = try await store.tenant(id: caller.tenantId), readers.contains(tenant.name) else {
                throw SandboxError(.forbidden, "/metrics shows the whole server's counts, which are the operator's: only keys of the tenants the server names with serve --metrics-tenant NAME may read them")
            }
            let gauges = await manager.gauges()
            metrics.recordGauges(byState: gauges.byState, poolSize: gauges.poolSize)
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: metrics.exposition())))
        }
    }
}

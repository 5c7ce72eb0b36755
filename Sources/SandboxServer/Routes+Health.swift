import Foundation
import Hummingbird
import SandboxCore
import SandboxLinux

extension SandboxServer {
    /// `/healthz` (the process is up, whatever the store does), `/readyz` (started and the store answers), `/metrics` (Prometheus text).
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
            // Down already: say so at once (the prober brings it back); up: ask now, bounded.
            let health = store.health
            var outage = health.outage
            if outage == nil { outage = await health.check() }
            if let outage {
                context.logger.warning("readiness: store unreachable", metadata: ["store": "\(health.name)", "reason": "\(outage.reason)"])
                var problem = Problem(status: 503, code: SandboxError.Code.storeUnavailable.rawValue,
                                      detail: "the store (\(health.name)) does not answer since \(outage.since.formatted(.iso8601)): \(outage.reason)")
                problem.retryAfter = 2
                throw problem
            }
            return try APIJSON.response(["status": "ready"])
        }
        let metrics = self.metrics
        let readers = configuration.metricsTenants
        routes.add(.get, "/metrics") { _, context in
            let caller = try context.requireCaller()
            // The manager's tenant (kept through a store outage: the metrics matter most then).
            let tenant = try await manager.tenantRecord(caller.tenantId)
            guard readers.contains(tenant.name) else {
                throw SandboxError(.forbidden, "/metrics shows the whole server's counts, which are the operator's: only keys of the tenants the server names with serve --metrics-tenant NAME may read them")
            }
            let gauges = await manager.gauges()
            metrics.recordGauges(byState: gauges.byState, poolSize: gauges.poolSize, storeUp: store.health.isUp, spooled: gauges.spooled)
            metrics.recordBlocking(BlockingPool.shared.snapshot(), dedicatedThreads: DedicatedThread.live, misplaced: BlockingCheck.misplaced)
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: metrics.exposition())))
        }
    }
}

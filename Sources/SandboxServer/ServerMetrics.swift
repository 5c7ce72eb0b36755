import Foundation
import Metrics
import Prometheus
import SandboxCore
import SandboxLinux
import SandboxStore
import Synchronization

/// The server's Prometheus registry and what it records through swift-metrics: execs by outcome,
/// exec latency, and (at each scrape) sandboxes by state and the warm pool's size. Through the
/// global factory also: per-tenant usage (`sandboxer_tenant_*_total`, ``TenantMetrics``), open
/// HTTP connections, the store's write latency and the time of calls on live sandboxes.
///
/// `sandboxer serve` also bootstraps the global `MetricsSystem` with ``factory`` so the manager's own
/// metrics land in the same registry.
public struct ServerMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    public let factory: PrometheusMetricsFactory
    private let blockingCounts = CountsSeen()

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets["sandboxer_exec_duration_seconds"] = [
            .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
            .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10), .seconds(30), .seconds(60),
        ]
        let fast: [Duration] = [
            .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2.5), .milliseconds(5), .milliseconds(10),
            .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1), .seconds(5),
        ]
        factory.durationHistogramBuckets["sandboxer_store_write_seconds"] = fast
        factory.durationHistogramBuckets["sandboxer_agent_call_seconds"] = fast
        factory.durationHistogramBuckets["sandboxer_store_call_seconds"] = fast
        self.factory = factory
        // Created now, so a scrape shows them (at 0) before the first call.
        Counter(label: "sandboxer_blocking_pool_calls_total", dimensions: [], factory: factory).increment(by: 0)
        Counter(label: "sandboxer_blocking_misplaced_total", dimensions: [], factory: factory).increment(by: 0)
    }

    /// Counts one finished exec and its wall time.
    public func recordExec(outcome: String, duration: Duration) {
        Counter(label: "sandboxer_execs_total", dimensions: [("outcome", outcome)], factory: factory).increment()
        Metrics.Timer(label: "sandboxer_exec_duration_seconds", dimensions: [], factory: factory).recordNanoseconds(
            duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
    }

    /// Sets the gauges from the manager's counts.
    /// `sandboxer_store_up` is 1 while the store answers; `sandboxer_recorder_spooled` counts the
    /// records waiting on local disk for it.
    public func recordGauges(byState: [SandboxState: Int], poolSize: Int, storeUp: Bool, spooled: Int) {
        for state in SandboxState.allCases {
            Gauge(label: "sandboxer_sandboxes", dimensions: [("state", state.rawValue)], factory: factory).record(byState[state] ?? 0)
        }
        Gauge(label: "sandboxer_pool_size", dimensions: [], factory: factory).record(poolSize)
        Gauge(label: "sandboxer_store_up", dimensions: [], factory: factory).record(storeUp ? 1 : 0)
        Gauge(label: "sandboxer_recorder_spooled", dimensions: [], factory: factory).record(spooled)
    }

    /// Records every store call's duration as `sandboxer_store_call_seconds` (the process's store
    /// latency, whichever engine; ``StoreHealth/callObserver``).
    public func observeStoreCalls() {
        let timer = Metrics.Timer(label: "sandboxer_store_call_seconds", dimensions: [], factory: factory)
        StoreHealth.callObserver.set { d in
            timer.recordNanoseconds(d.components.seconds * 1_000_000_000 + d.components.attoseconds / 1_000_000_000)
        }
    }

    /// Sets the blocking pool's gauges (threads, calls running, calls waiting for a thread), its
    /// call count, the live dedicated threads (process-lifetime waits) and the blocking calls
    /// found inside a Swift task (0 unless there is a bug).
    public func recordBlocking(_ pool: BlockingPool.Snapshot, dedicatedThreads: Int, misplaced: UInt64) {
        Gauge(label: "sandboxer_blocking_pool_threads", dimensions: [], factory: factory).record(pool.threads)
        Gauge(label: "sandboxer_blocking_pool_active", dimensions: [], factory: factory).record(pool.active)
        Gauge(label: "sandboxer_blocking_pool_queued", dimensions: [], factory: factory).record(pool.queued)
        Gauge(label: "sandboxer_dedicated_threads", dimensions: [], factory: factory).record(dedicatedThreads)
        blockingCounts.advance(calls: pool.calls, misplaced: misplaced) { calls, misplaced in
            if calls > 0 { Counter(label: "sandboxer_blocking_pool_calls_total", dimensions: [], factory: factory).increment(by: Int64(calls)) }
            if misplaced > 0 { Counter(label: "sandboxer_blocking_misplaced_total", dimensions: [], factory: factory).increment(by: Int64(misplaced)) }
        }
    }

    /// The Prometheus text exposition of everything recorded.
    public func exposition() -> [UInt8] { registry.emitToBuffer() }
}

/// The process-wide counts already added to the Prometheus counters (the pool keeps totals; a
/// scrape adds what is new, under one lock so concurrent scrapes never add a call twice).
private final class CountsSeen: Sendable {
    private let seen = Mutex<(calls: UInt64, misplaced: UInt64)>((0, 0))

    func advance(calls: UInt64, misplaced: UInt64, _ add: (UInt64, UInt64) -> Void) {
        seen.withLock {
            add(calls > $0.calls ? calls - $0.calls : 0, misplaced > $0.misplaced ? misplaced - $0.misplaced : 0)
            $0.calls = max($0.calls, calls)
            $0.misplaced = max($0.misplaced, misplaced)
        }
    }
}

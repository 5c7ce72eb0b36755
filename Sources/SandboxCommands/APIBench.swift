import BackendOCI
import Foundation
import Logging
import SandboxCore
import SandboxLinux
import SandboxManager
import SandboxServer
import SandboxStore
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// `sandboxer bench --suite api`: the HTTP API of `sandboxer serve`, started in-process on a free
/// loopback port over a temporary data directory, driven over real TCP with keep-alive
/// connections (``BenchConnection``), against raw `crun run` / `crun exec` in the same run.
///
/// Parts: cold create, warm-pool create (and create + first exec), exec round trip (HTTP, the
/// manager in-process, the agent alone, raw `crun exec`), throughput at 1/8/32 clients, and the
/// memory of idle sandboxes. Everything it creates is deleted; leftovers fail the run.
struct APIBench {
    /// Samples per latency case.
    let iterations: Int
    /// Idle sandboxes of the memory part.
    let idle: Int
    /// Warm-pool size of the warm-create part (also its number of samples).
    let poolSize: Int
    /// Seconds per throughput case.
    let seconds: Double

    /// One served manager: its port, the bench tenant's key, its container backend.
    struct Served: Sendable {
        let port: Int
        let key: String
        let tenantId: String
        let manager: SandboxManager
        let oci: OCIBackend
    }

    func run() async throws {
        guard getuid() == 0 else { throw SandboxError(.hostUnsupported, "bench --suite api needs root (container sandboxes)") }
        var template = Array("/tmp/sandboxer-bench-api-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw SandboxError(.system, "cannot make a temporary data directory") }
        let data = String(cString: made)
        let stateDirectory = SandboxManager.Configuration.stateDirectory(forData: data)
        let store = try ServerSetup.makeStore(dataDirectory: data)
        let (key, record) = try await store.createAPIKey(tenantName: "bench")
        // The default quota (100 sandboxes, 6000 execs/min, 64 GiB of memory limits) must not
        // shape the numbers: the idle part holds hundreds of sandboxes, throughput far more execs.
        try await store.setQuota(tenantId: record.tenantId,
                                 QuotaOverrides(maxSandboxes: 100_000, execsPerMinute: 1_000_000_000, maxMemoryBytes: 1 << 52))
        let leftovers = Leftovers(stateDirectory: stateDirectory)
        let before = leftovers.snapshot()
        print(Self.hostLine(iterations: iterations))
        var failure: (any Error)?
        do {
            let raw = try await Self.serve(data: data, store: store, key: key, tenantId: record.tenantId, warmPool: [:]) { s in
                let raw = try await rawCrunRun(s.oci)
                try await coldCreate(s, raw: raw)
                return raw
            }
            // A server whose pool starts filling as it starts: wait until it is full, then measure.
            try await Self.serve(data: data, store: store, key: key, tenantId: record.tenantId, warmPool: ["default": poolSize]) { s in
                let fill = try await waitForPool(s)
                try await warmCreate(s, raw: raw, fill: fill)
                return ()
            }
            try await Self.serve(data: data, store: store, key: key, tenantId: record.tenantId, warmPool: [:]) { s in
                try await execRoundTrip(s)
                try await throughput(s)
                try await idleMemory(s)
                return ()
            }
        } catch {
            failure = error
        }
        let problems = leftovers.check(against: before)
        if problems.isEmpty {
            SysFile.removeTree(stateDirectory)
            try? FileManager.default.removeItem(atPath: data)
        }
        if let failure { throw failure }
        guard problems.isEmpty else {
            throw SandboxError(.system, "bench --suite api left things behind:\n  " + problems.joined(separator: "\n  "))
        }
        print("\nclean-up checked: no sandbox directories, runtime state, mounts, sbx- cgroups or agent processes left")
    }

    static func hostLine(iterations: Int) -> String {
        var uts = utsname()
        uname(&uts)
        let release = withUnsafeBytes(of: uts.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return "sandboxer API over loopback HTTP/1.1 keep-alive, N=\(iterations) (kernel \(release), \(ProcessInfo.processInfo.activeProcessorCount) cpus)"
    }

    /// Runs `body` against a real server on a free loopback port, then deletes whatever sandboxes
    /// the bench tenant still has and shuts the server down (the manager destroys its pool).
    static func serve<T: Sendable>(
        data: String, store: any SandboxStore, key: String, tenantId: String, warmPool: [String: Int],
        _ body: @Sendable (Served) async throws -> T
    ) async throws -> T {
        var logger = Logger(label: "sandboxer.bench")
        logger.logLevel = .warning
        var configuration = SandboxManager.Configuration(dataDirectory: data, warmPool: warmPool)
        // Nor the host's tenant_memory ceiling: 500 idle sandboxes' memory limits add up past the
        // host's RAM (limits, not use; the idle part measures what they use).
        configuration.ceilings.tenantMemoryBytes = 1 << 52
        let backends = try ServerSetup.makeBackends(configuration, logger: logger)
        guard let oci = backends[.container] as? OCIBackend else {
            throw SandboxError(.hostUnsupported, "bench --suite api needs isolation container (crun or runc)")
        }
        let manager = SandboxManager(store: store, backends: backends, configuration: configuration, logger: logger)
        let server = SandboxServer(manager: manager, configuration: .init(host: "127.0.0.1", port: 0), logger: logger)
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        let app = server.makeApplication { port in portContinuation.yield(port) }
        let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw SandboxError(.system, "the bench server did not start") }
            let served = Served(port: port, key: key, tenantId: tenantId, manager: manager, oci: oci)
            do {
                let result = try await body(served)
                try await deleteAll(served)
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
                return result
            } catch {
                try? await deleteAll(served)
                await group.triggerGracefulShutdown()
                try? await tasks.waitForAll()
                throw error
            }
        }
    }

    /// Destroys every live sandbox of the bench tenant (the safety net after a failed part).
    static func deleteAll(_ s: Served) async throws {
        while true {
            let page = try await s.manager.list(SandboxQuery(tenantId: s.tenantId, states: [.creating, .running], limit: 500))
            if page.items.isEmpty { return }
            for r in page.items { _ = try? await s.manager.destroy(tenantId: s.tenantId, id: r.id, actor: "bench") }
            if page.nextCursor == nil {
                let rest = try await s.manager.list(SandboxQuery(tenantId: s.tenantId, states: [.creating, .running], limit: 1))
                if rest.items.isEmpty { return }
                throw SandboxError(.system, "cannot destroy sandbox \(rest.items[0].id)")
            }
        }
    }
}

/// p50/p90/p99 (nearest rank) of a set of samples, in ms.
struct Percentiles {
    let p50: Double, p90: Double, p99: Double, count: Int

    init(_ xs: [Double]) {
        let s = xs.sorted()
        count = s.count
        func at(_ q: Double) -> Double { s.isEmpty ? .nan : s[min(s.count - 1, Int(Double(s.count) * q))] }
        p50 = at(0.5)
        p90 = at(0.9)
        p99 = at(0.99)
    }
}

/// A markdown table row of label, numbers and a note.
func benchRow(_ cells: [String]) -> String { "| " + cells.joined(separator: " | ") + " |" }
func ms(_ x: Double) -> String { x.isNaN ? "-" : String(format: "%.2f", x) }
func ratio(_ x: Double) -> String { x.isNaN ? "-" : String(format: "%.2f×", x) }

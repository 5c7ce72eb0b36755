import Foundation
import SandboxCore
import SandboxLinux

/// `sandboxer bench --suite blocking`: what a call on the shared blocking pool costs against the
/// former model (a new thread per call), one at a time and in a burst of concurrent calls.
struct BlockingBench {
    let iterations: Int

    /// Microseconds per call of `body`, `count` calls one after another.
    static func sequential(_ count: Int, _ body: () async -> Void) async -> [Double] {
        var xs: [Double] = []
        for _ in 0..<count {
            let t = HostClock.nowMs()
            await body()
            xs.append((HostClock.nowMs() - t) * 1000)
        }
        return xs
    }

    /// Milliseconds for `count` concurrent calls of `body` to all finish.
    static func burst(_ count: Int, _ body: @escaping @Sendable () async -> Void) async -> Double {
        let t = HostClock.nowMs()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<count { group.addTask { await body() } }
        }
        return HostClock.nowMs() - t
    }

    func run() async {
        let pool = BlockingPool.shared
        let n = max(200, iterations * 100)
        for _ in 0..<20 { _ = await pool.run { 0 }; _ = await DedicatedThread.run(name: "sbx-bench") { 0 } }
        let onPool = await Self.sequential(n) { _ = await pool.run { 0 } }
        let perThread = await Self.sequential(n) { _ = await DedicatedThread.run(name: "sbx-bench") { 0 } }
        let (p50, p90) = StartupBench.summary(onPool)
        let (t50, t90) = StartupBench.summary(perThread)
        print("blocking pool: \(pool.snapshot().threads) threads; \(n) empty calls one at a time")
        print(String(format: "  pool call          p50 %7.1f µs  p90 %7.1f µs", p50, p90))
        print(String(format: "  thread per call    p50 %7.1f µs  p90 %7.1f µs   (pool / thread-per-call: %.2f×)", t50, t90, p50 / t50))
        let burst = 256
        let poolBurst = await Self.burst(burst) { _ = await pool.run { usleep(1000) } }
        let threadBurst = await Self.burst(burst) { _ = await DedicatedThread.run(name: "sbx-bench") { usleep(1000) } }
        print("\(burst) concurrent calls of 1 ms each (the pool queues past its size; a thread per call does not)")
        print(String(format: "  pool               %7.1f ms  (%d threads, so ≥ %.0f ms)", poolBurst, pool.snapshot().threads,
                     ceil(Double(burst) / Double(pool.snapshot().threads))))
        print(String(format: "  thread per call    %7.1f ms  (%d threads at once)", threadBurst, burst))
    }
}

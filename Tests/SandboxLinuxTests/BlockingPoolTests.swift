import Dispatch
import Foundation
import SandboxCore
import Synchronization
import Testing
@testable import SandboxLinux

/// The one bounded pool for short blocking host work (issue 18, item 5): a fixed number of
/// threads, a queue beyond them, never the caller's thread.
@Suite("The blocking pool")
struct BlockingPoolTests {
    /// Calls that block until ``open()`` (a gate the test controls, not a timer).
    final class Gate: Sendable {
        let semaphore = DispatchSemaphore(value: 0)
        func wait() { semaphore.wait() }
        func open(_ n: Int) { for _ in 0..<n { semaphore.signal() } }
    }

    /// Calls running now, the most at once, and how many ever started.
    final class Counts: Sendable {
        private let state = Mutex<(now: Int, most: Int, entered: Int)>((0, 0, 0))
        func enter() { state.withLock { $0.now += 1; $0.most = max($0.most, $0.now); $0.entered += 1 } }
        func leave() { state.withLock { $0.now -= 1 } }
        var mostAtOnce: Int { state.withLock { $0.most } }
        var entered: Int { state.withLock { $0.entered } }
    }

    /// Waits until the pool reaches `predicate` (bounded; the bound is not a speed requirement).
    static func until(_ pool: BlockingPool, _ predicate: (BlockingPool.Snapshot) -> Bool) async throws -> BlockingPool.Snapshot {
        for _ in 0..<3000 {
            let s = pool.snapshot()
            if predicate(s) { return s }
            try await Task.sleep(for: .milliseconds(10))
        }
        return pool.snapshot()
    }

    static var threadName: String {
        ((try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? "").trimmingCharacters(in: .newlines)
    }

    @Test("a pool starts the threads it is given and the default size is 4 per core, 16 to 256")
    func size() throws {
        let pool = try BlockingPool(threads: 3, name: "t-size")
        defer { pool.shutdown() }
        #expect(pool.snapshot() == .init(threads: 3, active: 0, queued: 0, calls: 0))
        #expect((16...256).contains(BlockingPool.defaultThreads))
        #expect(BlockingPool.defaultThreads >= 4 * ProcessInfo.processInfo.activeProcessorCount || BlockingPool.defaultThreads == 256)
    }

    @Test("a call runs on a pool thread, outside any Swift task, and its result comes back")
    func runsOnAPoolThread() async throws {
        let pool = try BlockingPool(threads: 2, name: "t-where")
        defer { pool.shutdown() }
        let (name, inTask) = await pool.run { (Self.threadName, BlockingCheck.inTask) }
        #expect(name.hasPrefix("t-where-"))
        #expect(inTask == false)
        #expect(BlockingCheck.inTask, "the test itself runs in a task")
        #expect(await pool.run { 6 * 7 } == 42)
    }

    @Test("more calls than threads all complete: the extra ones wait in the queue, which empties again")
    func boundAndQueue() async throws {
        let pool = try BlockingPool(threads: 2, name: "t-queue")
        defer { pool.shutdown() }
        let gate = Gate()
        let counts = Counts()
        try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 0..<6 {
                group.addTask {
                    await pool.run {
                        counts.enter()
                        gate.wait()
                        counts.leave()
                        return i
                    }
                }
            }
            // All six submitted, and the two threads have each taken one (they stay on the gate).
            let busy = try await Self.until(pool) { $0.active + $0.queued == 6 && $0.active >= 2 }
            #expect(busy.active == 2, "as many calls run as the pool has threads")
            #expect(busy.queued == 4, "the rest wait in the queue")
            gate.open(6)
            var results: [Int] = []
            for try await r in group { results.append(r) }
            #expect(results.sorted() == Array(0..<6))
        }
        #expect(counts.mostAtOnce == 2)
        let idle = try await Self.until(pool) { $0.active == 0 }
        #expect(idle == .init(threads: 2, active: 0, queued: 0, calls: 6))
    }

    @Test("cancelling a caller does not abandon its call: the host work runs and its result is delivered")
    func cancellation() async throws {
        let pool = try BlockingPool(threads: 1, name: "t-cancel")
        defer { pool.shutdown() }
        let gate = Gate()
        let ran = Counts()
        async let blocker: Void = pool.run { gate.wait() }
        _ = try await Self.until(pool) { $0.active == 1 }
        let caller = Task { await pool.run { ran.enter(); return "done" } }
        _ = try await Self.until(pool) { $0.queued == 1 }
        caller.cancel()
        gate.open(1)
        await blocker
        #expect(await caller.value == "done")
        #expect(ran.entered == 1)
    }

    @Test("process-lifetime waits get dedicated threads, counted while they run")
    func dedicatedThreadsAreCounted() async throws {
        let gate = Gate()
        let before = DedicatedThread.started
        async let waited: String = DedicatedThread.run(name: "t-lifetime") { gate.wait(); return Self.threadName }
        // Other tests may start dedicated threads too: wait for ours to be counted.
        for _ in 0..<3000 where DedicatedThread.started == before { try await Task.sleep(for: .milliseconds(10)) }
        #expect(DedicatedThread.started > before)
        #expect(DedicatedThread.live >= 1)
        gate.open(1)
        #expect(await waited == "t-lifetime")
    }
}

/// `SandboxCgroup.killAll` sleeps in a loop for up to ~1.8 s: it must never run on the cooperative
/// pool. ``BlockingCheck`` names every such call made from inside a Swift task.
@Suite("Kill loops stay off the cooperative pool")
struct KillLoopPlacementTests {
    static func cgroup() -> SandboxCgroup {
        SandboxCgroup(id: "sbx-placement\(UInt32.random(in: 0...UInt32.max))", host: CgroupHost.detect())
    }

    @Test("a kill loop called inside a task is caught and named (the check can fail)")
    func misplacedIsCaught() {
        let cg = Self.cgroup()  // no such cgroup: the loop finds no process and returns at once
        let before = BlockingCheck.misplaced
        cg.killAll()
        #expect(BlockingCheck.misplaced > before)
        #expect(BlockingCheck.recentMisplaced.contains("SandboxCgroup.killAll \(cg.id)"))
    }

    @Test("through the blocking pool it is not")
    func onThePoolIsFine() async {
        let cg = Self.cgroup()
        await BlockingPool.shared.run { cg.killAll() }
        #expect(!BlockingCheck.recentMisplaced.contains { $0.hasSuffix(cg.id) })
    }
}

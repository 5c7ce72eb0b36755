import Foundation
import Logging
import Synchronization
import SandboxTestSupport
import Testing
import SandboxCore
import SandboxLinux
@testable import SandboxStore

/// The guard around every store call: a deadline that holds even when the call ignores
/// cancellation, and SQLite's full disk as an outage the store recovers from by itself.
@Suite("Store health")
struct StoreHealthTests {
    @Test("a call that ignores cancellation still ends at its deadline: the caller gets Passed while the call runs on")
    func deadlineHolds() async throws {
        let finished = Mutex(false)
        await #expect(throws: Deadline.Passed.self) {
            try await Deadline.run(.milliseconds(100)) {
                // A blocking wait that no cancellation reaches (a query on a hung connection).
                await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                    // Far beyond the 100 ms deadline, so a loaded host (2 cores, the whole suite
                    // running) that delays the deadline's timer by seconds cannot finish it first.
                    DispatchQueue.global().asyncAfter(deadline: .now() + 60) { c.resume() }
                }
                finished.withLock { $0 = true }
            }
        }
        #expect(finished.withLock { $0 } == false, "the caller waited for the call")
    }

    @Test("the store-call observer is told every call, 200,000 in a row without overflowing the stack (a closure kept directly in a generic Mutex grew a chain of reabstraction thunks on every read)")
    func observerStaysFlat() async throws {
        let slot = StoreCallObserver()
        let count = Mutex(0)
        slot.observe(.zero)  // nobody listens yet: nothing happens
        slot.set { _ in count.withLock { $0 += 1 } }
        for _ in 0..<200_000 { slot.observe(.milliseconds(1)) }
        #expect(count.withLock { $0 } == 200_000)
        slot.set(nil)
        slot.observe(.zero)
        #expect(count.withLock { $0 } == 200_000, "removed: not told any more")
    }

    @Test("a call within its deadline returns its value, and its error as is")
    func deadlinePassesThrough() async throws {
        #expect(try await Deadline.run(.seconds(5)) { 42 } == 42)
        await #expect(throws: SandboxError(.notFound, "x")) {
            _ = try await Deadline.run(.seconds(5)) { () async throws -> Int in throw SandboxError(.notFound, "x") }
        }
    }

    /// How many questions a probe was asked.
    final class Questions: Sendable {
        let asked = Mutex(0)
        var count: Int { asked.withLock { $0 } }
    }

    /// A health whose slow calls are suspected quickly and whose probe fails its first `failures` questions.
    static func suspicious(failures: Int, questions: Questions) -> StoreHealth {
        let health = StoreHealth(name: "test", failsFast: true, slowAfter: .milliseconds(20), probeDeadline: .seconds(2),
                                 probeInterval: .milliseconds(50), logger: Logger(label: "test"))
        health.attach {
            let n = questions.asked.withLock { $0 += 1; return $0 }
            if n <= failures { throw SandboxError(.storeUnavailable, "no connection in time (question \(n))") }
        }
        return health
    }

    @Test("a slow call on a loaded host is not an outage when the second question answers")
    func slowCallOneFailedQuestion() async throws {
        let questions = Questions()
        let health = Self.suspicious(failures: 1, questions: questions)
        defer { health.close() }
        #expect(try await health.run("a slow call") { () async throws(SandboxError) -> Int in
            try? await Task.sleep(for: .milliseconds(300))
            return 1
        } == 1)
        for _ in 0..<100 where questions.count < 2 { try await Task.sleep(for: .milliseconds(20)) }
        try await Task.sleep(for: .milliseconds(100))
        #expect(questions.count == 2, "the engine was asked twice")
        #expect(health.isUp, "one failed question on a busy host declared the store down")
    }

    @Test("a slow call whose two questions both fail marks the store down")
    func slowCallTwoFailedQuestions() async throws {
        let questions = Questions()
        let health = Self.suspicious(failures: 100, questions: questions)
        defer { health.close() }
        _ = try? await health.run("a slow call") { () async throws(SandboxError) -> Int in
            try? await Task.sleep(for: .milliseconds(300))
            return 1
        }
        for _ in 0..<250 where health.isUp { try await Task.sleep(for: .milliseconds(20)) }
        #expect(!health.isUp)
        #expect(health.outage?.reason.contains("longer than") == true, "\(String(describing: health.outage))")
    }

    @Test("SQLite fsyncs every commit: its durability says so")
    func sqliteDurable() async throws {
        try await withStore { store, _ in
            let d = try await store.durability()
            #expect(d.durable)
            #expect(d.detail.contains("synchronous=FULL"))
        }
    }

    @Test("SQLite on a full disk: writes answer insufficient_storage, the store is down, and it comes back once there is room",
          .requires("needs root to mount a small tmpfs") { getuid() == 0 ? nil : "needs root to mount a small tmpfs" })
    func sqliteDiskFull() async throws {
        let root = NSTemporaryDirectory() + "sbx-full-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        #expect(await Self.sh("mount -t tmpfs -o size=4m sbx-full \(root)") == 0)
        let store = try SQLiteStore(directory: root + "/data")
        do { try await fillAndFree(store, root) } catch {
            try? store.close()
            _ = await Self.sh("umount -l \(root)")
            throw error
        }
        try? store.close()
        _ = await Self.sh("umount -l \(root)")
        try? FileManager.default.removeItem(atPath: root)
    }

    func fillAndFree(_ store: SQLiteStore, _ root: String) async throws {
        let tenant = try await store.ensureTenant(name: "acme")
        // Fill the filesystem to the last block.
        _ = await Self.sh("dd if=/dev/zero of=\(root)/filler bs=64k 2>/dev/null")
        var refused: SandboxError?
        for i in 0..<200 where refused == nil {
            let run = RunRecord(id: "run-full-\(i)", tenantId: tenant.id,
                                spec: RunSpec(profile: .default, argv: ["/bin/true"], code: Array(repeating: 65, count: 32 << 10)))
            do { _ = try await store.submitRun(run, maxQueued: 1000) } catch let e as SandboxError { refused = e }
        }
        let e = try #require(refused, "the full disk never refused a write")
        #expect(e.code == .insufficientStorage, "\(e)")
        #expect(e.message.contains("full"))
        #expect(await store.health.check() != nil, "the readiness probe still says ready on a full disk")
        // Reads still answer.
        #expect(try await store.tenant(id: tenant.id)?.name == "acme")

        try FileManager.default.removeItem(atPath: root + "/filler")
        #expect(await store.health.waitUntilUp(atMost: .seconds(30)))
        let run = RunRecord(id: "run-after", tenantId: tenant.id, spec: RunSpec(profile: .default, argv: ["/bin/true"]))
        _ = try await store.submitRun(run, maxQueued: 1000)
        #expect(try await store.run(id: "run-after") != nil)
    }

    @Test("SQLite on a read-only data directory: the store does not open, and says which directory to fix",
          .requires("needs root to bind-mount the directory read-only") { getuid() == 0 ? nil : "needs root to bind-mount the directory read-only" })
    func sqliteReadOnly() async throws {
        // (A directory that turns read-only under a running server cannot be made here: a file
        // open for writing keeps the kernel from remounting read-only. SQLITE_READONLY then maps
        // to store_unavailable like any outage.)
        let temp = TempData()
        defer { temp.cleanup() }
        let first = try temp.open()
        _ = try await first.ensureTenant(name: "acme")
        try first.close()
        // Root ignores permission bits: a read-only bind mount is what makes it read-only.
        #expect(await Self.sh("mount --bind \(temp.dir) \(temp.dir) && mount -o remount,bind,ro \(temp.dir)") == 0)
        let e = #expect(throws: SandboxError.self) { _ = try temp.open() }
        #expect(e?.message.contains(temp.dir) == true)
        #expect(e?.message.contains("not writable") == true)
        _ = await Self.sh("umount -l \(temp.dir)")
    }

    static func sh(_ command: String) async -> Int32 {
        guard let (status, _, _) = try? await ChildProcess.run(["/bin/sh", "-c", command]), case .exited(let code) = status else { return -1 }
        return code
    }
}

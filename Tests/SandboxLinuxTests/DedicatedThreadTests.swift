import Glibc
import SandboxCore
import Synchronization
import Testing
@testable import SandboxLinux

@Suite("Dedicated threads for blocking work")
struct DedicatedThreadTests {
    @Test("blocking work runs off the cooperative pool and its result comes back")
    func blockingWorkReturns() async {
        let onOwnThread = await DedicatedThread.run(name: "test-own") { pthread_self() }
        #expect(onOwnThread != pthread_self())
        #expect(await DedicatedThread.run(name: "test-own") { 6 * 7 } == 42)
    }

    @Test("a thread that cannot be started is an error, not a closure that silently never runs")
    func startFailureIsReported() {
        let ran = Mutex(false)
        // No address space has room for a 64 TiB stack: pthread_create fails.
        #expect(throws: SandboxError.self) {
            try DedicatedThread.start(stackSize: 1 << 46) { ran.withLock { $0 = true } }
        }
        #expect(ran.withLock { $0 } == false)
    }
}

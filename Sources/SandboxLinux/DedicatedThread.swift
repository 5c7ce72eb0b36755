import CSandboxLinux
import Logging
import SandboxCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A detached POSIX thread running one closure. Unlike Foundation's `Thread`, starting one
/// reports failure (`pthread_create` returns `EAGAIN` when the process or its cgroup is out of
/// threads or memory), so a caller awaiting the closure's result is never left waiting for a
/// thread that was never born.
///
/// Dedicated threads are for waits that last as long as something outside the process does: a
/// process's exit (`waitpid`), its output until end of file, its stdin relay, a guest's run, a
/// DNS lookup the egress proxy bounds itself. Short blocking calls go to ``BlockingPool``.
/// The live ones are counted (``live``, `sandboxer_dedicated_threads` in `/metrics`).
public enum DedicatedThread {
    private final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    private static let counts = Mutex<(live: Int, started: UInt64)>((0, 0))
    private static let logger = Logger(label: "sandboxer.blocking")

    /// Dedicated threads running now (the blocking pool's own threads not included).
    public static var live: Int { counts.withLock { $0.live } }
    /// Dedicated threads started since the process started.
    public static var started: UInt64 { counts.withLock { $0.started } }

    /// Starts `body` on a new detached thread with the given stack size (rounded up to pages).
    /// `counted: false` leaves it out of ``live`` (the blocking pool's threads are counted there).
    public static func start(stackSize: Int, name: String? = nil, counted: Bool = true,
                             _ body: @escaping @Sendable () -> Void) throws(SandboxError) {
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        defer { pthread_attr_destroy(&attr) }
        let page = sysconf(Int32(_SC_PAGESIZE))
        let size = max(Int(PTHREAD_STACK_MIN), (stackSize + page - 1) / page * page)
        pthread_attr_setstacksize(&attr, size)
        pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
        if counted { counts.withLock { $0.live += 1; $0.started += 1 } }
        let context = Unmanaged.passRetained(Box {
            if let name { _ = sbx_set_thread_name(name) }
            body()
            if counted { counts.withLock { $0.live -= 1 } }
        }).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, &attr, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.body()
            return nil
        }, context)
        if rc != 0 {
            Unmanaged<Box>.fromOpaque(context).release()
            if counted { counts.withLock { $0.live -= 1; $0.started -= 1 } }
            throw Syscall.error("start a thread (\(size >> 10) KiB stack)", errno: rc)
        }
    }

    /// Runs `body`, a wait that lasts a process's lifetime, on a thread of its own and resumes the
    /// caller with its result. If no thread can be started, `body` waits in the blocking pool's
    /// queue instead (logged): slower, but never on the caller's thread.
    public static func run<T: Sendable>(name: String, stackSize: Int = 1 << 20, _ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { (cont: CheckedContinuation<T, Never>) in
            do throws(SandboxError) {
                try start(stackSize: stackSize, name: name) { cont.resume(returning: body()) }
            } catch {
                logger.error("no thread for a process-lifetime wait; it runs on the blocking pool", metadata: ["thread": "\(name)", "error": "\(error.message)"])
                BlockingPool.shared.submit { cont.resume(returning: body()) }
            }
        }
    }
}

extension DedicatedThread {
    /// Runs `body` on a thread of its own that ends with it, or throws when no thread can start
    /// (for work that may leave its thread unusable, such as a namespace switch that cannot be
    /// undone: it must never run on a pooled thread).
    public static func runAlone<T: Sendable>(name: String, stackSize: Int = 256 << 10, _ body: @escaping @Sendable () -> T) async throws(SandboxError) -> T {
        let result = await withCheckedContinuation { (cont: CheckedContinuation<Result<T, SandboxError>, Never>) in
            do throws(SandboxError) {
                try start(stackSize: stackSize, name: name) { cont.resume(returning: .success(body())) }
            } catch {
                cont.resume(returning: .failure(error))
            }
        }
        return try result.get()
    }
}

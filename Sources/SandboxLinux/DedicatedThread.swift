import CSandboxLinux
import SandboxCore

#if canImport(Glibc)
import Glibc
#endif

/// A detached POSIX thread running one closure. Unlike Foundation's `Thread`, starting one
/// reports failure (`pthread_create` returns `EAGAIN` when the process or its cgroup is out of
/// threads or memory), so a caller awaiting the closure's result is never left waiting for a
/// thread that was never born.
public enum DedicatedThread {
    private final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    /// Starts `body` on a new detached thread with the given stack size (rounded up to pages).
    public static func start(stackSize: Int, name: String? = nil, _ body: @escaping @Sendable () -> Void) throws(SandboxError) {
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        defer { pthread_attr_destroy(&attr) }
        let page = sysconf(Int32(_SC_PAGESIZE))
        let size = max(Int(PTHREAD_STACK_MIN), (stackSize + page - 1) / page * page)
        pthread_attr_setstacksize(&attr, size)
        pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
        let context = Unmanaged.passRetained(Box {
            if let name { _ = sbx_set_thread_name(name) }
            body()
        }).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, &attr, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.body()
            return nil
        }, context)
        if rc != 0 {
            Unmanaged<Box>.fromOpaque(context).release()
            throw Syscall.error("start a thread (\(size >> 10) KiB stack)", errno: rc)
        }
    }
}

/// Runs blocking work on its own thread and resumes the caller when done.
public enum BlockingThread {
    /// Runs `body` on a dedicated 1 MiB-stack thread. If no thread can be started, `body` runs
    /// on the calling thread instead: slower for everyone else, but never a caller left waiting.
    public static func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { (cont: CheckedContinuation<T, Never>) in
            do {
                try DedicatedThread.start(stackSize: 1 << 20) { cont.resume(returning: body()) }
            } catch {
                cont.resume(returning: body())
            }
        }
    }
}

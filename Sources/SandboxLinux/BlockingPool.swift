import CSandboxLinux
import Dispatch
import Logging
import SandboxCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The process's one bounded pool of threads for short blocking host work: cgroup reads and
/// writes, mounts, `crun delete`, kill loops, workspace copies, file I/O, name lookups.
///
/// Swift concurrency's cooperative pool has one thread per core and SwiftNIO's event loops serve
/// many connections each: a blocking call on either stalls unrelated work. Such calls go here
/// instead (``run(_:)``). The pool has a fixed number of threads, started when it is made; when
/// all are busy a call waits in the pool's queue (``Snapshot/queued``) — it never falls back to
/// the calling thread. A call that waits for a process's whole lifetime (its exit, its output,
/// its stdin) does not belong here: it would hold a slot for minutes; those use
/// ``DedicatedThread/run(name:stackSize:_:)``.
///
/// Cancellation: a call already submitted always runs to completion and its result is delivered
/// (host work such as a tear-down must not stop half way); the caller sees its task's
/// cancellation after the call returns.
public final class BlockingPool: Sendable {
    /// What the pool is doing now (for `/metrics`).
    public struct Snapshot: Sendable, Equatable {
        /// Threads running in the pool.
        public var threads: Int
        /// Calls running now.
        public var active: Int
        /// Calls waiting for a free thread.
        public var queued: Int
        /// Calls finished since the pool started.
        public var calls: UInt64
    }

    private struct State: ~Copyable {
        var jobs: [(@Sendable () -> Void)?] = []
        var head = 0
        var active = 0
        var threads = 0
        var calls: UInt64 = 0
        var stopped = false

        var queued: Int { jobs.count - head }

        mutating func take() -> (@Sendable () -> Void)? {
            guard head < jobs.count else { return nil }
            let job = jobs[head]
            jobs[head] = nil
            head += 1
            if head > 64 && head * 2 > jobs.count {
                jobs.removeFirst(head)
                head = 0
            }
            return job
        }
    }

    /// The thread name prefix (`<name>-<n>`, at most 15 bytes in all as Linux keeps it).
    public let name: String
    private let state = Mutex(State())
    private let wake = DispatchSemaphore(value: 0)
    private static let logger = Logger(label: "sandboxer.blocking")

    /// Starts a pool of `threads` threads (1 MiB stacks). Threads that cannot be started are left
    /// out (``Snapshot/threads`` shows how many run); throws when not even one can start.
    public init(threads: Int, name: String = "sbx-pool") throws(SandboxError) {
        self.name = name
        var started = 0
        var lastError: SandboxError?
        for i in 0..<max(1, threads) {
            do throws(SandboxError) {
                try DedicatedThread.start(stackSize: 1 << 20, name: "\(name)-\(i)", counted: false) { [self] in work() }
                started += 1
            } catch {
                lastError = error
            }
        }
        state.withLock { $0.threads = started }
        if started == 0 {
            throw SandboxError(.system, "cannot start any thread of the blocking pool (\(lastError?.message ?? "unknown error")); the process or its cgroup is out of threads or memory: raise its pids/memory limits")
        }
        if started < threads {
            Self.logger.warning("the blocking pool started fewer threads than asked", metadata: [
                "asked": "\(threads)", "started": "\(started)", "error": "\(lastError?.message ?? "")"])
        }
    }

    /// Runs `body` on a pool thread and returns its result; waits in the queue while every
    /// thread is busy. See the type's note on cancellation.
    public func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { (cont: CheckedContinuation<T, Never>) in
            submit { cont.resume(returning: body()) }
        }
    }

    /// Queues `job` for a pool thread without waiting for it (for callers outside Swift
    /// concurrency, such as an event loop completing a promise from the job).
    public func submit(_ job: @escaping @Sendable () -> Void) {
        let accepted = state.withLock { (s: inout State) -> Bool in
            guard !s.stopped else { return false }
            s.jobs.append(job)
            return true
        }
        precondition(accepted, "a job was submitted to the blocking pool \(name) after shutdown()")
        wake.signal()
    }

    /// The pool's counts now.
    public func snapshot() -> Snapshot {
        state.withLock { Snapshot(threads: $0.threads, active: $0.active, queued: $0.queued, calls: $0.calls) }
    }

    /// Lets the threads end once the queue is empty (for pools made by tests; the shared pool
    /// lives as long as the process). Submitting afterwards is a programming error.
    public func shutdown() {
        let threads = state.withLock { (s: inout State) -> Int in
            if s.stopped { return 0 }
            s.stopped = true
            return s.threads
        }
        for _ in 0..<threads { wake.signal() }
    }

    /// A thread's loop: every wake-up is either one queued job or, after ``shutdown()``, one
    /// thread's turn to end.
    private func work() {
        while true {
            wake.wait()
            let job = state.withLock { (s: inout State) -> (@Sendable () -> Void)? in
                guard let job = s.take() else {
                    s.threads -= 1
                    return nil
                }
                s.active += 1
                return job
            }
            guard let job else { return }
            job()
            state.withLock {
                $0.active -= 1
                $0.calls += 1
            }
        }
    }
}

extension BlockingPool {
    /// The default size: four threads per core, at least 16 and at most 256 (the calls here wait
    /// on disks, the kernel and helper processes, not on the CPU; some take seconds).
    public static var defaultThreads: Int {
        let cores = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        return min(256, max(16, 4 * max(1, cores)))
    }

    private static let sharedPool = Mutex<(pool: BlockingPool?, size: Int?)>((nil, nil))

    /// The process's pool, started on first use with ``configure(threads:)``'s size (or
    /// ``defaultThreads``). A process that cannot start one thread for it stops with the reason.
    public static var shared: BlockingPool {
        sharedPool.withLock { (s: inout (pool: BlockingPool?, size: Int?)) -> BlockingPool in
            if let pool = s.pool { return pool }
            do throws(SandboxError) {
                let pool = try BlockingPool(threads: s.size ?? defaultThreads)
                s.pool = pool
                return pool
            } catch {
                fatalError(error.message)
            }
        }
    }

    /// Sets the shared pool's size and starts it now (`sandboxer serve --blocking-threads`), so a
    /// process that cannot start its threads fails at start-up with the reason. A pool already
    /// started keeps its size (logged).
    @discardableResult
    public static func configure(threads: Int) throws(SandboxError) -> BlockingPool {
        let result = sharedPool.withLock { (s: inout (pool: BlockingPool?, size: Int?)) -> Result<BlockingPool, SandboxError> in
            if let pool = s.pool {
                if pool.snapshot().threads != threads {
                    logger.warning("the blocking pool was already started; its size stays", metadata: ["threads": "\(pool.snapshot().threads)", "asked": "\(threads)"])
                }
                return .success(pool)
            }
            s.size = threads
            return Result { () throws(SandboxError) in
                let pool = try BlockingPool(threads: threads)
                s.pool = pool
                return pool
            }
        }
        return try result.get()
    }
}

/// Where blocking host work runs, checked: a function that may block for long (a kill loop, a
/// cgroup removal) calls ``check(_:)``, which counts (and logs) a call made from inside a Swift
/// task — that is, on the cooperative pool or another executor — instead of from the blocking
/// pool, a dedicated thread or plain synchronous code.
public enum BlockingCheck {
    private static let misplacedCalls = Mutex<(count: UInt64, recent: [String])>((0, []))
    private static let logger = Logger(label: "sandboxer.blocking")

    /// Blocking calls made from inside a task since the process started (0 in a correct program;
    /// `sandboxer_blocking_misplaced_total` in `/metrics`).
    public static var misplaced: UInt64 { misplacedCalls.withLock { $0.count } }

    /// The last 256 misplaced calls, oldest first (as given to ``check(_:)``).
    public static var recentMisplaced: [String] { misplacedCalls.withLock { $0.recent } }

    /// True when the calling thread runs a Swift task (a cooperative pool or executor thread).
    public static var inTask: Bool { withUnsafeCurrentTask { $0 != nil } }

    /// Records `what` as misplaced when called from inside a Swift task.
    public static func check(_ what: @autoclosure () -> String) {
        guard inTask else { return }
        let call = what()
        misplacedCalls.withLock {
            $0.count += 1
            $0.recent.append(call)
            if $0.recent.count > 256 { $0.recent.removeFirst() }
        }
        logger.error("a blocking call ran inside a Swift task instead of on the blocking pool; report this as a bug", metadata: ["call": "\(call)"])
    }
}

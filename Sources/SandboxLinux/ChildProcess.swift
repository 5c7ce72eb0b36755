import CSandboxLinux
import Foundation
import SandboxCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// How a child process ended.
public enum Termination: Sendable, Equatable {
    case exited(Int32)
    case signaled(Int32)

    init(status: Int32) {
        if sbx_wifsignaled(status) != 0 { self = .signaled(sbx_wtermsig(status)) } else {
            self = .exited(sbx_wexitstatus(status))
        }
    }
}

/// A process started with `posix_spawn`: all signals default and unblocked in the child, its own
/// process group, and no descriptor inherited except the three it is given.
public struct ChildProcess: Sendable {
    public let pid: pid_t

    /// Spawns `argv` (`argv[0]` must be an absolute path) with fds 0/1/2 set to the given descriptors.
    public static func spawn(
        _ argv: [String], environment: [String] = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
        stdin: Int32, stdout: Int32, stderr: Int32
    ) throws(SandboxError) -> ChildProcess {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdin, 0)
        posix_spawn_file_actions_adddup2(&actions, stdout, 1)
        posix_spawn_file_actions_adddup2(&actions, stderr, 2)
        sbx_spawn_addclosefrom(&actions, 3)

        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var none = sigset_t()
        sigemptyset(&none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attr, &none)
        posix_spawnattr_setsigdefault(&attr, &all)
        posix_spawnattr_setpgroup(&attr, 0)
        posix_spawnattr_setflags(
            &attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP) | sbx_spawn_usevfork())

        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = environment.map { strdup($0) } + [nil]
        defer {
            cArgs.forEach { free($0) }
            cEnv.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, &attr, cArgs, cEnv)
        if rc != 0 { throw Syscall.error("spawn \(argv[0])", errno: rc) }
        return ChildProcess(pid: pid)
    }

    /// Waits for the process, blocking the calling thread (retries on EINTR).
    public func waitBlocking() -> Termination {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return .exited(-1) }
        }
        return Termination(status: status)
    }

    /// Waits for the process on a dedicated thread (never blocking the cooperative pool, and never
    /// holding a slot of the bounded blocking pool for the process's lifetime).
    public func wait() async -> Termination {
        let me = self
        return await DedicatedThread.run(name: "sbx-waitpid", stackSize: 64 << 10) { me.waitBlocking() }
    }

    /// Runs a short helper command to completion with its stdio on /dev/null, blocking the calling
    /// thread (for teardown, gc, benchmarks: places that are not on the cooperative pool's hot path).
    @discardableResult
    public static func runSilently(_ argv: [String]) throws(SandboxError) -> Termination {
        let devnull = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { close(devnull) }
        return try spawn(argv, stdin: devnull, stdout: devnull, stderr: devnull).waitBlocking()
    }

    /// Runs a command to completion, capturing its output (for short helper commands such as
    /// `crun delete` or `mount`). Output beyond 1 MiB per stream is dropped.
    public static func run(
        _ argv: [String], environment: [String] = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]
    ) async throws(SandboxError) -> (Termination, String, String) {
        let out = try Pipe2()
        let err = try Pipe2()
        let devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { close(devnull) }
        let child: ChildProcess
        do {
            child = try spawn(argv, environment: environment, stdin: devnull, stdout: out.writeEnd, stderr: err.writeEnd)
        } catch {
            out.closeBoth()
            err.closeBoth()
            throw error
        }
        out.closeWrite()
        err.closeWrite()
        async let o = OutputReader(fd: out.readEnd, cap: 1 << 20).readAll()
        async let e = OutputReader(fd: err.readEnd, cap: 1 << 20).readAll()
        let t = await child.wait()
        let (ob, eb) = await (o, e)
        return (t, String(decoding: ob.bytes, as: UTF8.self), String(decoding: eb.bytes, as: UTF8.self))
    }
}

/// A CLOEXEC pipe.
public final class Pipe2: Sendable {
    private let ends: Mutex<(read: Int32, write: Int32)>
    /// The read end, or -1 once closed.
    public var readEnd: Int32 { ends.withLock { $0.read } }
    /// The write end, or -1 once closed.
    public var writeEnd: Int32 { ends.withLock { $0.write } }

    public init() throws(SandboxError) {
        var fds: [Int32] = [-1, -1]
        try Syscall.call("pipe2") { sbx_pipe_cloexec(&fds) }
        ends = Mutex((fds[0], fds[1]))
    }

    public func closeWrite() {
        let fd = ends.withLock { e in defer { e.write = -1 }; return e.write }
        if fd >= 0 { close(fd) }
    }
    public func closeRead() {
        let fd = ends.withLock { e in defer { e.read = -1 }; return e.read }
        if fd >= 0 { close(fd) }
    }
    public func closeBoth() {
        closeRead()
        closeWrite()
    }
}

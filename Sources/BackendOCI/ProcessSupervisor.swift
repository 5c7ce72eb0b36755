import Foundation
import SandboxCore
import SandboxLinux
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Runs one runtime process (`crun run` / `crun exec`) to completion: feeds stdin, drains and caps
/// both output streams live, and enforces the wall-clock deadline with a caller-supplied kill.
struct ProcessSupervisor: Sendable {
    struct Outcome: Sendable {
        var termination: Termination
        var stdout: CapturedOutput
        var stderr: CapturedOutput
        var timedOut: Bool
        /// The caller's task was cancelled and the process killed for it.
        var cancelled: Bool = false
        var spawnWallMs: Double
        var exitedAtMs: Double
    }

    var limits: Limits
    var output: OutputHandler?

    /// The descriptor a process reads as stdin, and what to release after the process ended.
    struct Stdin: Sendable {
        var fd: Int32
        var relay: StdinRelay?

        func close() {
            relay?.finish()
            _ = Glibc.close(fd)
        }
    }

    /// Opens what the process reads as stdin: always a pipe (or /dev/null), never a file or a
    /// descriptor of the host's — the runtime hands stdio to the container user (crun chowns
    /// it), so a file would become the sandbox's to rewrite and a terminal its to write to.
    static func openStdin(_ source: ExecRequest.StdinSource, limit: Int64) throws(SandboxError) -> Stdin {
        let relay: StdinRelay
        switch source {
        case .none:
            return Stdin(fd: open("/dev/null", O_RDONLY | O_CLOEXEC))
        case .inherit(let fd):
            relay = try StdinRelay.start(from: fd)
        case .file(let path):
            relay = try StdinRelay.start(bytes: try readInput(path, limit: limit))
        case .bytes(let bytes):
            relay = try StdinRelay.start(bytes: bytes)
        }
        return Stdin(fd: relay.readEnd, relay: relay)
    }

    /// Reads a stdin file, refusing it when it holds more than `limit` bytes (it may have grown
    /// since the size check).
    static func readInput(_ path: String, limit: Int64) throws(SandboxError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw SandboxError(.invalidRequest, "cannot open stdin file \(path): \(String(cString: strerror(errno)))") }
        defer { Glibc.close(fd) }
        var out = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, 65536) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw SandboxError(.invalidRequest, "cannot read stdin file \(path): \(String(cString: strerror(errno)))") }
            if n == 0 { return out }
            out.append(contentsOf: buf[0..<n])
            if Int64(out.count) > limit { throw .over("input_bytes", limit: limit, actual: Int64(out.count)) }
        }
    }

    func run(argv: [String], stdin: Int32, kill: @escaping @Sendable () async -> Void) async throws(SandboxError) -> Outcome {
        let out = try Pipe2()
        let err = try Pipe2()
        let spawnWall = HostClock.wallMs()
        let child: ChildProcess
        do {
            child = try ChildProcess.spawn(argv, stdin: stdin, stdout: out.writeEnd, stderr: err.writeEnd)
        } catch {
            out.closeBoth()
            err.closeBoth()
            throw SandboxError(.setupFailed, "cannot start the OCI runtime: \(error.message)")
        }
        out.closeWrite()
        err.closeWrite()
        let handler = output
        async let stdoutCapture = OutputReader(fd: out.readEnd, cap: limits.outputBytes, stream: .stdout, handler: handler).readAll()
        async let stderrCapture = OutputReader(fd: err.readEnd, cap: limits.outputBytes, stream: .stderr, handler: handler).readAll()

        // Cancelling the caller's task is a kill, like the deadline: the process never runs on
        // unsupervised.
        enum Event: Sendable { case exited(Termination), deadline, cancelled }
        let timeout = limits.timeout
        var timedOut = false
        var cancelled = false
        var termination = Termination.exited(-1)
        await withTaskGroup(of: Event.self) { group in
            group.addTask { .exited(await child.wait()) }
            group.addTask {
                do { try await Task.sleep(for: timeout) } catch { return .cancelled }
                return .deadline
            }
            // One kill is not enough when it comes while the runtime is still starting the
            // container (a Ctrl-C during set-up): the cgroup is empty then and the container's
            // processes appear after it. So the sandbox is killed again until the runtime exits.
            // (The group's tasks are cancelled with the caller, so this loop neither checks
            // cancellation nor sleeps with Task.sleep: it ends when the runtime has exited.)
            let exited = Flag()
            func keepKilling() {
                group.addTask {
                    var round = 0
                    while !exited.isSet {
                        if round % 10 == 0 { await kill() }  // every 100 ms, looking every 10 ms
                        round += 1
                        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(10)) { c.resume() }
                        }
                    }
                    return .cancelled
                }
            }
            var killing = false
            while let event = await group.next() {
                switch event {
                case .deadline:
                    timedOut = true
                    if !killing { killing = true; keepKilling() }
                case .cancelled:
                    if !timedOut { cancelled = true }
                    if !killing { killing = true; keepKilling() }
                case .exited(let t):
                    termination = t
                    exited.set()
                    group.cancelAll()
                    return
                }
            }
        }
        if Task.isCancelled && !timedOut { cancelled = true }
        let exitedAt = HostClock.nowMs()
        let (o, e) = await (stdoutCapture, stderrCapture)
        return Outcome(
            termination: termination, stdout: o, stderr: e, timedOut: timedOut, cancelled: cancelled,
            spawnWallMs: spawnWall, exitedAtMs: exitedAt)
    }
}

/// A flag one task sets and another polls.
private final class Flag: Sendable {
    private let value = Mutex(false)
    var isSet: Bool { value.withLock { $0 } }
    func set() { value.withLock { $0 = true } }
}

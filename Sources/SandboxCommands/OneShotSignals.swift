import SandboxLinux
import Foundation
import Synchronization
import SandboxCore

#if canImport(Glibc)
import Glibc
#endif

/// Where the signal handler reports a signal (written once, before the handler is installed).
nonisolated(unsafe) private var signalPipeWriteEnd: Int32 = -1

/// Turns the ways a CLI run can be interrupted — SIGINT, SIGTERM, SIGHUP, and a closed output pipe
/// (`| head`) — into cancelling the run's task, which kills the sandbox and tears it down before
/// the CLI exits with the status shells expect (128 + the signal: 130, 143, 129, 141).
final class OneShotSignals: Sendable {
    private struct State {
        var cancel: (@Sendable () -> Void)?
        var signalNumber: Int32?
    }
    private let state = Mutex(State())

    /// The signal that interrupted the run (SIGPIPE for a closed output pipe), if any.
    var received: Int32? { state.withLock { $0.signalNumber } }

    /// Starts catching the signals; `SIGPIPE` is ignored so a closed pipe shows up as `EPIPE`.
    ///
    /// A handler writes the signal number to a pipe that a thread of its own reads. (A dispatch
    /// signal source is not enough: it sees a signal only if the thread it is delivered to has it
    /// blocked, and the Swift runtime's threads do not.)
    init() {
        signal(SIGPIPE, SIG_IGN)
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return }
        _ = fcntl(fds[1], F_SETFL, O_NONBLOCK)
        signalPipeWriteEnd = fds[1]
        let readEnd = fds[0]
        try? DedicatedThread.start(stackSize: 64 << 10, name: "sbx-signals") { [weak self] in
            var byte: UInt8 = 0
            while read(readEnd, &byte, 1) == 1 || errno == EINTR {
                self?.interrupt(Int32(byte))
            }
        }
        for s in [SIGINT, SIGTERM, SIGHUP] {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { s in
                var b = UInt8(truncatingIfNeeded: s)
                _ = write(signalPipeWriteEnd, &b, 1)
            }
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART
            sigaction(s, &action, nil)
        }
    }

    /// Runs `body` as a task the signals cancel, and returns its value.
    func run<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let task = Task { try await body() }
        let pending = state.withLock { (s: inout State) -> Bool in
            s.cancel = { task.cancel() }
            return s.signalNumber != nil
        }
        if pending { task.cancel() }
        return try await task.value
    }

    /// Records the first interruption and cancels the run.
    func interrupt(_ s: Int32) {
        let c = state.withLock { (state: inout State) -> (@Sendable () -> Void)? in
            if state.signalNumber == nil { state.signalNumber = s }
            return state.cancel
        }
        c?()
    }

    /// Writes sandbox output to this process's stdout/stderr; a closed pipe interrupts the run.
    func writeLive(_ stream: StdStream, _ bytes: [UInt8]) {
        let fd: Int32 = stream == .stdout ? 1 : 2
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + off, bytes.count - off) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 {
                if errno == EPIPE { interrupt(SIGPIPE) }
                return
            }
            off += n
        }
    }
}

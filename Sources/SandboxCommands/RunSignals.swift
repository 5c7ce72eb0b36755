import Dispatch
import Foundation
import SandboxCore

#if canImport(Glibc)
import Glibc
#endif

/// Turns the ways a CLI run can be interrupted — SIGINT, SIGTERM, SIGHUP, and a closed output pipe
/// (`| head`) — into cancelling the run's task, which kills the sandbox and tears it down before
/// the CLI exits with the status shells expect (128 + the signal: 130, 143, 129, 141).
final class RunSignals: @unchecked Sendable {
    private let lock = NSLock()
    private var sources: [DispatchSourceSignal] = []
    private var cancel: (@Sendable () -> Void)?
    private var signalNumber: Int32?

    /// The signal that interrupted the run (SIGPIPE for a closed output pipe), if any.
    var received: Int32? { lock.withLock { signalNumber } }

    /// Starts catching the signals; `SIGPIPE` is ignored so a closed pipe shows up as `EPIPE`.
    init() {
        signal(SIGPIPE, SIG_IGN)
        for s in [SIGINT, SIGTERM, SIGHUP] {
            signal(s, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: s, queue: .global())
            source.setEventHandler { [weak self] in self?.interrupt(s) }
            source.resume()
            sources.append(source)
        }
    }

    deinit { sources.forEach { $0.cancel() } }

    /// Runs `body` as a task the signals cancel, and returns its value.
    func run<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let task = Task { try await body() }
        let pending = lock.withLock { () -> Bool in
            cancel = { task.cancel() }
            return signalNumber != nil
        }
        if pending { task.cancel() }
        return try await task.value
    }

    /// Records the first interruption and cancels the run.
    func interrupt(_ s: Int32) {
        let c = lock.withLock { () -> (@Sendable () -> Void)? in
            if signalNumber == nil { signalNumber = s }
            return cancel
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

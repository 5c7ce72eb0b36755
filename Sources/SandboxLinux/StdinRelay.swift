import Foundation
import SandboxCore

#if canImport(Glibc)
import Glibc
#endif

/// Feeds a descriptor the caller owns (a terminal, a pipe, a file) to a sandboxed process through
/// a fresh pipe, so the process never holds the caller's descriptor itself: it cannot write to the
/// operator's terminal past the output cap, nor reopen a host file through `/proc/self/fd/0`.
public final class StdinRelay: Sendable {
    /// The pipe's read end, for the child's stdin (the caller closes it after spawning).
    public let readEnd: Int32
    private let stopWrite: Int32

    private init(readEnd: Int32, stopWrite: Int32) {
        self.readEnd = readEnd
        self.stopWrite = stopWrite
    }

    /// Starts feeding `bytes` into the pipe (then end of file) on a thread of its own.
    public static func start(bytes: [UInt8]) throws(SandboxError) -> StdinRelay {
        try start { sink, stop in
            var off = 0
            while off < bytes.count {
                guard wait(for: sink, events: Int16(POLLOUT), stop: stop) else { return }
                let w = bytes.withUnsafeBytes { write(sink, $0.baseAddress! + off, bytes.count - off) }
                if w < 0 && (errno == EINTR || errno == EAGAIN) { continue }
                if w < 0 { return }
                off += w
            }
        }
    }

    /// Starts copying `source` into the pipe on a thread of its own until `source` ends, the
    /// reader goes away, or ``finish()``.
    public static func start(from source: Int32) throws(SandboxError) -> StdinRelay {
        try start { sink, stop in pump(from: source, to: sink, stop: stop) }
    }

    /// Runs `feed(sink, stop)` on a thread, then closes the pipe's write end.
    static func start(_ feed: @escaping @Sendable (Int32, Int32) -> Void) throws(SandboxError) -> StdinRelay {
        let data = try Pipe2()
        let stop: Pipe2
        do { stop = try Pipe2() } catch {
            data.closeBoth()
            throw error
        }
        let writeEnd = data.writeEnd
        let stopRead = stop.readEnd
        _ = fcntl(writeEnd, F_SETFL, fcntl(writeEnd, F_GETFL) | O_NONBLOCK)
        do {
            try DedicatedThread.start(stackSize: 256 << 10, name: "sbx-stdin") {
                // A reader that went away must show up as EPIPE here, not kill the process: SIGPIPE
                // from write(2) is sent to this thread, which keeps it blocked until it exits.
                var pipeSignal = sigset_t()
                sigemptyset(&pipeSignal)
                sigaddset(&pipeSignal, SIGPIPE)
                pthread_sigmask(SIG_BLOCK, &pipeSignal, nil)
                feed(writeEnd, stopRead)
                close(writeEnd)
                close(stopRead)
            }
        } catch {
            data.closeBoth()
            stop.closeBoth()
            throw error
        }
        return StdinRelay(readEnd: data.readEnd, stopWrite: stop.writeEnd)
    }

    /// Stops the relay (a read from a terminal that never ends does not keep the thread alive):
    /// closing the stop pipe wakes the thread's poll with a hang-up, and cannot raise SIGPIPE.
    public func finish() {
        close(stopWrite)
    }

    /// Copies until EOF, a write error (the sandbox closed its stdin) or a stop request.
    static func pump(from source: Int32, to sink: Int32, stop: Int32) {
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            guard wait(for: source, events: Int16(POLLIN), stop: stop) else { return }
            let n = buf.withUnsafeMutableBytes { read(source, $0.baseAddress, 65536) }
            if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            if n <= 0 { return }
            var off = 0
            while off < n {
                guard wait(for: sink, events: Int16(POLLOUT), stop: stop) else { return }
                let w = buf.withUnsafeBytes { write(sink, $0.baseAddress! + off, n - off) }
                if w < 0 && (errno == EINTR || errno == EAGAIN) { continue }
                if w < 0 { return }
                off += w
            }
        }
    }

    /// Waits until `fd` is ready for `events` (or hung up); false when a stop was requested.
    static func wait(for fd: Int32, events: Int16, stop: Int32) -> Bool {
        var fds = [pollfd(fd: fd, events: events, revents: 0), pollfd(fd: stop, events: Int16(POLLIN), revents: 0)]
        while true {
            let rc = poll(&fds, 2, -1)
            if rc < 0 && errno == EINTR { continue }
            if rc < 0 { return false }
            if fds[1].revents != 0 { return false }
            if fds[0].revents != 0 { return true }
        }
    }
}

import AgentProtocol

#if canImport(Glibc)
import Glibc
#endif

/// One host connection: its decoder, what it waits to send, and what it is doing.
final class Connection {
    enum State {
        /// Before `hello`.
        case new
        case idle
        /// Streaming a process's events until it exits.
        case attached(Int32)
        /// Receiving `file` frames for a `write`.
        case writing(fd: Int32, remaining: Int64, mode: UInt32)
        /// A `write` failed (disk full, a directory at the path, …): its remaining `file` frames are
        /// read and dropped, then `error` is answered and the connection stays usable — the host is
        /// still sending, and a closed connection would look like a dead agent.
        case discarding(remaining: Int64, error: AgentEvent)
    }

    let fd: Int32
    var decoder = FrameDecoder()
    var out: [UInt8] = []
    var outStart = 0
    var state = State.new
    /// Close once everything queued is sent (after an error frame for a malformed request).
    var closing = false
    var dead = false

    init(fd: Int32) { self.fd = fd }

    var hasPendingOutput: Bool { outStart < out.count }
    var pendingOutputBytes: Int { out.count - outStart }

    func send(_ frame: Frame) {
        out.append(contentsOf: frame.encoded())
    }

    func send(_ event: AgentEvent) { send(AgentCoding.frame(event)) }

    /// Sends an error and closes after it is flushed.
    func fail(_ code: AgentErrorCode, _ message: String) {
        send(.error(code, message))
        closing = true
    }

    /// Writes what the socket takes now; false when the peer is gone.
    func flush() -> Bool {
        while outStart < out.count {
            let n = out.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + outStart, out.count - outStart, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN { break }
                return false
            }
            outStart += n
        }
        if outStart == out.count {
            out.removeAll(keepingCapacity: out.capacity <= 1 << 20)
            outStart = 0
        } else if outStart > 1 << 20 {
            out.removeFirst(outStart)
            outStart = 0
        }
        return true
    }

    /// Reads what is available into the decoder; false on EOF or error.
    func receive() -> Bool {
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, 65536, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                return errno == EAGAIN
            }
            if n == 0 { return false }
            decoder.feed(buf[0..<n])
            if n < 65536 || decoder.pendingBytes > 4 << 20 { return true }
        }
    }
}

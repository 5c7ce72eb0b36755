import AgentProtocol

#if canImport(Glibc)
import Glibc
#endif

/// One host connection: its decoder, what it waits to send, and the requests whose data frames
/// are still arriving (by request id). Many requests are in flight on one connection; process
/// streams live in each process's ``Follower`` list, keyed by this connection's fd and the id.
final class Connection {
    /// A request receiving data frames.
    enum Upload {
        /// `write`: `file` frames go to the file.
        case writing(fd: Int32, remaining: Int64, mode: UInt32, user: SandboxUser)
        /// `input`: `stdin` frames go to the process's queue.
        case input(pid: Int32, remaining: Int64)
        /// The request failed (disk full, a directory at the path, the process ended, …): its
        /// remaining data frames are read and dropped, then `error` is answered and the connection
        /// stays usable — the host is still sending, and a closed connection would look like a dead agent.
        case discarding(remaining: Int64, error: AgentEvent)
    }

    let fd: Int32
    var decoder = FrameDecoder()
    var out: [UInt8] = []
    var outStart = 0
    /// Whether `hello` was answered.
    var greeted = false
    var uploads: [UInt32: Upload] = [:]
    /// Close once everything queued is sent (after an error frame for a malformed request).
    var closing = false

    init(fd: Int32) { self.fd = fd }

    var hasPendingOutput: Bool { outStart < out.count }
    var pendingOutputBytes: Int { out.count - outStart }

    func send(_ frame: Frame) {
        frame.encode(into: &out)
    }

    /// Sends an event; one that cannot be encoded (e.g. a listing over the frame limit) is
    /// answered as an error instead, never as an empty frame.
    func send(_ event: AgentEvent, id: UInt32) {
        do { send(try AgentCoding.frame(event, id: id)) } catch {
            let fallback = AgentEvent.error(.tooLarge, "the answer could not be sent: \(error)")
            if let f = try? AgentCoding.frame(fallback, id: id) { send(f) } else { closing = true }
        }
    }

    /// Sends an error and closes after it is flushed.
    func fail(_ code: AgentErrorCode, _ message: String, id: UInt32 = 0) {
        send(.error(code, message), id: id)
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

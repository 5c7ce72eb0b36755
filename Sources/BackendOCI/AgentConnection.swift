import AgentProtocol
import Foundation
import SandboxCore
import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// One blocking connection to a sandbox's agent (used from dedicated threads only, never from
/// Swift's cooperative pool). Every failure of the agent side is `sandbox_lost`, naming what happened.
final class AgentConnection: @unchecked Sendable {
    let fd: Int32
    let sandboxID: String
    private var decoder = FrameDecoder()
    private let writeLock = NSLock()
    private let stateLock = NSLock()
    private var _cancelled = false

    /// Whether ``cancel()`` ended this connection (so an EOF is the caller's doing, not the agent's death).
    var cancelled: Bool { stateLock.withLock { _cancelled } }

    private init(fd: Int32, sandboxID: String) {
        self.fd = fd
        self.sandboxID = sandboxID
    }

    deinit { close(fd) }

    static func lost(_ id: String, _ what: String) -> SandboxError {
        SandboxError(.sandboxLost, "the agent of sandbox \(id) \(what); the sandbox is lost: collect it and create a new one")
    }

    /// Connects to `<socketDirectory>/agent.sock` through an O_PATH descriptor of the directory
    /// (`/proc/self/fd/N/agent.sock` stays under sun_path's 108 bytes whatever the state
    /// directory), then exchanges `hello`. `helloTimeout` bounds an agent that accepts but never answers.
    static func open(socketDirectory: String, sandboxID: String, helloTimeout: Int = 5, expiresAt: Date? = nil) throws(SandboxError) -> AgentConnection {
        let dirFd = Glibc.open(socketDirectory, 0o10000000 /* O_PATH */ | O_DIRECTORY | O_CLOEXEC)
        if dirFd < 0 { throw lost(sandboxID, "has no socket directory (\(String(cString: strerror(errno))))") }
        defer { close(dirFd) }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 { throw Syscall.error("socket", errno: errno) }
        let conn = AgentConnection(fd: fd, sandboxID: sandboxID)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let path = Array("/proc/self/fd/\(dirFd)/agent.sock".utf8)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in path.enumerated() { raw[i] = b }
            raw[path.count] = 0
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if rc != 0 { throw lost(sandboxID, "does not accept connections (\(String(cString: strerror(errno))))") }
        conn.setReceiveTimeout(seconds: helloTimeout)
        var hello = AgentRequest(op: .hello)
        hello.version = AgentProtocolVersion.current
        hello.expiresAt = expiresAt?.timeIntervalSince1970
        try conn.send(AgentCoding.frame(hello))
        let answer = try conn.receiveEvent()
        guard answer.type == .hello, answer.version == AgentProtocolVersion.current else {
            throw SandboxError(.sandboxLost, "the agent of sandbox \(sandboxID) speaks protocol \(answer.version ?? -1), not \(AgentProtocolVersion.current): \(answer.message ?? "")")
        }
        conn.setReceiveTimeout(seconds: 0)
        return conn
    }

    /// SO_RCVTIMEO (0: none).
    func setReceiveTimeout(seconds: Int) {
        var tv = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Ends the connection from another thread: a blocked receive returns at once. For a foreground
    /// process this is also how the agent learns the caller gave up (it kills the process).
    func cancel() {
        stateLock.withLock { _cancelled = true }
        shutdown(fd, Int32(SHUT_RDWR))
    }

    func send(_ frame: Frame) throws(SandboxError) {
        let bytes = frame.encoded()
        writeLock.lock()
        defer { writeLock.unlock() }
        do {
            var off = 0
            while off < bytes.count {
                let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + off, bytes.count - off, Int32(MSG_NOSIGNAL)) }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw Self.lost(sandboxID, "closed the connection while being written to (\(String(cString: strerror(errno))))")
                }
                off += n
            }
        }
    }

    func send(_ request: AgentRequest) throws(SandboxError) { try send(AgentCoding.frame(request)) }

    /// The next frame; throws `sandbox_lost` on EOF, a reset, a timeout or a malformed frame.
    func receive() throws(SandboxError) -> Frame {
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            do {
                if let f = try decoder.next() { return f }
            } catch {
                throw Self.lost(sandboxID, "sent a malformed frame (\(error))")
            }
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, 65536, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN { throw Self.lost(sandboxID, "stopped answering (no reply within the timeout)") }
                throw Self.lost(sandboxID, "closed the connection (\(String(cString: strerror(errno))); did the agent die?)")
            }
            if n == 0 { throw Self.lost(sandboxID, "closed the connection (the agent died or the sandbox was killed)") }
            decoder.feed(buf[0..<n])
        }
    }

    /// The next control frame, skipping nothing: a data frame here is a protocol error.
    func receiveEvent() throws(SandboxError) -> AgentEvent {
        let f = try receive()
        guard let ev = AgentCoding.event(f) else { throw Self.lost(sandboxID, "sent an unexpected \(f.kind) frame") }
        return ev
    }
}

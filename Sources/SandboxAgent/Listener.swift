import CSandboxAgent

#if canImport(Glibc)
import Glibc
#endif

/// The agent's listening unix socket.
enum Listener {
    /// Binds and listens (non-blocking, close-on-exec, mode 0600); dies on failure. With `owner`,
    /// the socket is made with that filesystem id (the owner of its directory, see
    /// `AgentBundle.socketOwner`), then the agent's ids are back.
    static func open(path: String, owner: UInt32?) -> Int32 {
        if let owner {
            _ = sbx_agent_setfsgid(owner)
            _ = sbx_agent_setfsuid(owner)
        }
        defer {
            _ = sbx_agent_setfsuid(0)
            _ = sbx_agent_setfsgid(0)
        }
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { die("socket: \(String(cString: strerror(errno)))") }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { die("socket path \(path) is too long") }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
            raw[bytes.count] = 0
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { die("bind \(path): \(String(cString: strerror(errno)))") }
        chmod(path, 0o600)
        guard listen(fd, 128) == 0 else { die("listen: \(String(cString: strerror(errno)))") }
        return fd
    }
}

/// The sandbox user processes run as and file operations are checked as.
struct SandboxUser {
    var uid: UInt32
    var gid: UInt32
    /// Capabilities (bit n = capability n) a uid-0 process keeps: only a template build's sandbox sets them.
    var keepCapabilities: UInt64 = 0

    /// Runs `body` with this user's filesystem ids (permission checks are the user's), then back to the agent's.
    func asUser<T>(_ body: () -> T) -> T {
        _ = sbx_agent_setfsgid(gid)
        _ = sbx_agent_setfsuid(uid)
        defer {
            _ = sbx_agent_setfsuid(0)
            _ = sbx_agent_setfsgid(0)
        }
        return body()
    }
}

/// Monotonic and wall clocks in milliseconds.
enum Clock {
    static func monotonicMs() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
    static func wallSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}

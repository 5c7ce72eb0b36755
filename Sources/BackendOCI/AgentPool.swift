import AgentProtocol
import Foundation
import NIOCore
import NIOPosix
import SandboxCore
import SandboxLinux
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The open agent connections of this process: one ``AgentMux`` per sandbox, opened (with its
/// `hello`) on first use and again after it closed (the agent restarted, the socket dropped, a
/// protocol error). Calls in flight on a connection that closes fail; the next call reconnects.
// @unchecked: its state lives beside the Mutex (see `lock`), touched only inside `locked`.
public final class AgentPool: @unchecked Sendable {
    /// Guards `muxes` and `opened` (a Mutex around state kept beside it: the entries hold
    /// continuations, which a Mutex's value cannot hand out).
    private let lock = Mutex<Void>(())
    private var muxes: [String: Entry] = [:]
    private var opened = 0
    let group: EventLoopGroup

    /// A sandbox's connection, or the callers waiting while one caller opens it (a burst of
    /// first calls opens one connection, not one each).
    private enum Entry {
        case ready(AgentMux)
        case connecting([CheckedContinuation<Result<AgentMux, SandboxError>?, Never>])
    }

    /// Connections this pool opened so far (one per sandbox, plus one per reconnect).
    public var connectionsOpened: Int { locked { opened } }

    private func locked<T>(_ body: () -> T) -> T {
        lock.withLock { (_: inout Void) -> T in body() }
    }

    public init(group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.group = group
    }

    /// How long a new connection waits for the agent's `hello`.
    static let helloTimeoutSeconds: Int64 = 5

    /// The open connection to sandbox `id`'s agent, or a new one.
    func mux(socketDirectory: String, sandboxID: String) async throws(SandboxError) -> AgentMux {
        enum Step { case use(AgentMux), wait, connect }
        while true {
            let step = locked { () -> Step in
                switch muxes[sandboxID] {
                case .ready(let m) where m.isOpen: return .use(m)
                case .connecting: return .wait
                default:
                    muxes[sandboxID] = .connecting([])
                    return .connect
                }
            }
            switch step {
            case .use(let m): return m
            case .wait:
                let r = await withCheckedContinuation { (cont: CheckedContinuation<Result<AgentMux, SandboxError>?, Never>) in
                    let queued = locked { () -> Bool in
                        guard case .connecting(var waiting) = muxes[sandboxID] else { return false }
                        waiting.append(cont)
                        muxes[sandboxID] = .connecting(waiting)
                        return true
                    }
                    if !queued { cont.resume(returning: nil) }  // it just finished: look again
                }
                if let r { return try r.get() }
            case .connect:
                let r: Result<AgentMux, SandboxError>
                do throws(SandboxError) {
                    r = .success(try await Self.connect(socketDirectory: socketDirectory, sandboxID: sandboxID, group: group))
                } catch {
                    r = .failure(error)
                }
                let waiting = locked { () -> [CheckedContinuation<Result<AgentMux, SandboxError>?, Never>]? in
                    guard case .connecting(let waiting) = muxes[sandboxID] else { return nil }
                    if case .success(let m) = r {
                        muxes[sandboxID] = .ready(m)
                        opened += 1
                    } else {
                        muxes[sandboxID] = nil
                    }
                    return waiting
                }
                guard let waiting else {
                    // Closed (the sandbox is being destroyed) while this connection was opened.
                    let m = try r.get()
                    m.close(SandboxError(.sandboxLost, "sandbox \(sandboxID) is being destroyed"))
                    return m
                }
                for w in waiting { w.resume(returning: r) }
                return try r.get()
            }
        }
    }

    /// Closes and forgets sandbox `id`'s connection (the sandbox is being destroyed or collected).
    public func close(_ sandboxID: String) {
        guard case .ready(let m)? = locked({ muxes.removeValue(forKey: sandboxID) }) else { return }
        m.close(SandboxError(.sandboxLost, "sandbox \(sandboxID) is being destroyed"))
    }

    /// Connects to `<socketDirectory>/agent.sock` through an O_PATH descriptor of the directory
    /// (`/proc/self/fd/N/agent.sock` stays under sun_path's 108 bytes whatever the state
    /// directory), hands the socket to NIO and exchanges `hello`.
    static func connect(socketDirectory: String, sandboxID: String, group: EventLoopGroup) async throws(SandboxError) -> AgentMux {
        let fd = try connectSocket(socketDirectory: socketDirectory, sandboxID: sandboxID)
        let mux = AgentMux(sandboxID: sandboxID)
        let channel: Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .channelInitializer { ch in
                    ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(AgentMuxHandler(mux: mux)) }
                }
                .withConnectedSocket(fd).get()
        } catch {
            throw AgentMux.lost(sandboxID, "could not be connected to (\(error))")
        }
        mux.attach(channel)
        return try await greet(mux)
    }

    /// Sends `hello` on a new connection (id 0) and checks the agent speaks this protocol.
    static func greet(_ mux: AgentMux) async throws(SandboxError) -> AgentMux {
        let answer: AgentEvent
        do {
            answer = try await mux.call(.hello(version: AgentProtocolVersion.current, expiresAt: nil), timeoutSeconds: helloTimeoutSeconds, hello: true).0
        } catch {
            mux.close(error)
            throw error
        }
        switch answer {
        case .hello(let version, _) where version == AgentProtocolVersion.current: return mux
        case .error(let f):
            let e = SandboxError(.sandboxLost, "the agent of sandbox \(mux.sandboxID) refused hello: \(f.message)")
            mux.close(e)
            throw e
        default:
            let e = SandboxError(.sandboxLost, "the agent of sandbox \(mux.sandboxID) answered hello with \(answer.name), not protocol \(AgentProtocolVersion.current)")
            mux.close(e)
            throw e
        }
    }

    /// A connected, non-blocking unix socket (a full accept queue is refused, not waited on).
    static func connectSocket(socketDirectory: String, sandboxID: String) throws(SandboxError) -> Int32 {
        let dirFd = Glibc.open(socketDirectory, 0o10000000 /* O_PATH */ | O_DIRECTORY | O_CLOEXEC)
        if dirFd < 0 { throw AgentMux.lost(sandboxID, "has no socket directory (\(String(cString: strerror(errno))))") }
        defer { Glibc.close(dirFd) }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        if fd < 0 { throw Syscall.error("socket", errno: errno) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let path = Array("/proc/self/fd/\(dirFd)/agent.sock".utf8)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in path.enumerated() { raw[i] = b }
            raw[path.count] = 0
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if rc != 0 {
            let e = errno
            Glibc.close(fd)
            throw AgentMux.lost(sandboxID, "does not accept connections (\(String(cString: strerror(e))))")
        }
        return fd
    }
}

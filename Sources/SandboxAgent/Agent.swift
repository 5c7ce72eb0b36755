import AgentProtocol
import CSandboxAgent

#if canImport(Glibc)
import Glibc
#endif

/// The poll loop: connections, processes, signals, deadlines.
struct Agent {
    let listener: Int32
    let signals: Int32
    let user: SandboxUser
    var conns: [Int32: Connection] = [:]
    var procs: [Int32: ManagedProcess] = [:]
    /// Finished background processes kept for `list`/`connect`, oldest first.
    var finished: [Int32] = []
    /// When the sandbox ends unless a server moves it on (wall clock, Unix seconds; see
    /// `AgentRequest.expiresAt`). Nil: no end of its own.
    var expiresAt: Double?
    /// Directories watched for the host (`watchAdd`), by id.
    var watches: [Int32: DirectoryWatch] = [:]
    var nextWatchId: Int32 = 1

    static let defaultCap = 1 << 20
    static let maxConnections = 512
    static let maxFinished = 64
    /// A follower this far behind (output kept but not yet sent to it, for want of credit) stops
    /// the agent reading that process's pipe: the process waits for its slowest reader.
    static let followerLag = 256 << 10
    /// Output queued on one connection beyond which no more stream output is queued on it.
    static let connectionBacklog = 2 << 20
    /// Bytes of one stream sent in one go before the next stream's turn.
    static let sendSlice = 64 << 10
    /// Most watches at once; one whose events nobody took for ``watchIdleMs`` goes at the next `watchAdd`.
    static let maxWatches = 64
    static let watchIdleMs: Int64 = 600_000

    init(listener: Int32, signals: Int32, user: SandboxUser) {
        self.listener = listener
        self.signals = signals
        self.user = user
    }

    enum Role { case signals, listener, conn(Int32), out(Int32), err(Int32), input(Int32), watch(Int32) }

    mutating func run() -> Never {
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            var fds: [pollfd] = [pollfd(fd: signals, events: Int16(POLLIN), revents: 0),
                                 pollfd(fd: listener, events: Int16(POLLIN), revents: 0)]
            var roles: [Role] = [.signals, .listener]
            for c in conns.values {
                var ev = Int16(POLLIN)
                if c.hasPendingOutput { ev |= Int16(POLLOUT) }
                fds.append(pollfd(fd: c.fd, events: ev, revents: 0))
                roles.append(.conn(c.fd))
            }
            for w in watches.values {
                fds.append(pollfd(fd: w.fd, events: Int16(POLLIN), revents: 0))
                roles.append(.watch(w.id))
            }
            var timeout: Int32 = -1
            let now = Clock.monotonicMs()
            for p in procs.values {
                if p.outFd >= 0 && !p.lagging(stderr: false, by: Self.followerLag) {
                    fds.append(pollfd(fd: p.outFd, events: Int16(POLLIN), revents: 0))
                    roles.append(.out(p.pid))
                }
                if p.errFd >= 0 && !p.lagging(stderr: true, by: Self.followerLag) {
                    fds.append(pollfd(fd: p.errFd, events: Int16(POLLIN), revents: 0))
                    roles.append(.err(p.pid))
                }
                if p.inFd >= 0 && !p.pendingInput.isEmpty {
                    fds.append(pollfd(fd: p.inFd, events: Int16(POLLOUT), revents: 0))
                    roles.append(.input(p.pid))
                }
                if let d = p.deadline, p.running, !p.timedOut {
                    let left = Int32(clamping: max(0, d - now))
                    timeout = timeout < 0 ? left : min(timeout, left)
                }
            }
            if let e = expiresAt {
                // At most a minute at a time: the clock may be set, and no arithmetic may trap.
                let left = Int32(min(60_000, max(0, (e - Clock.wallSeconds()) * 1000)).rounded(.up))
                timeout = timeout < 0 ? left : min(timeout, left)
            }
            let n = poll(&fds, nfds_t(fds.count), timeout)
            if n < 0 && errno != EINTR { die("poll: \(String(cString: strerror(errno)))") }
            checkDeadlines()
            for (i, f) in fds.enumerated() where f.revents != 0 {
                switch roles[i] {
                case .signals: handleSignals()
                case .listener: accept()
                case .conn(let fd): serve(fd, revents: f.revents)
                case .out(let pid): if let p = procs[pid] { pump(p, stderr: false, buf: &buf, all: false) }
                case .err(let pid): if let p = procs[pid] { pump(p, stderr: true, buf: &buf, all: false) }
                case .input(let pid): if let p = procs[pid] { feedInput(p) }
                case .watch(let id): watches[id]?.read()
                }
            }
            sendOutput()
            for c in conns.values where c.hasPendingOutput && !c.closing { if !c.flush() { drop(c) } }
            for c in conns.values where c.closing && !c.hasPendingOutput { drop(c) }
        }
    }

    /// Sends every follower the output it has credit and room for, `exited` once it has all of
    /// an ended process's output, and forgets ended foreground processes nobody follows any more.
    mutating func sendOutput() {
        for p in procs.values {
            var i = 0
            while i < p.followers.count {
                var f = p.followers[i]
                // (A closing connection's followers are ended by ``drop(_:)``, which kills a foreground
                // process nobody follows any more.)
                guard let c = conns[f.key.conn] else { p.followers.remove(at: i); continue }
                if c.closing {
                    i += 1
                    continue
                }
                while f.credit > 0 && c.pendingOutputBytes < Self.connectionBacklog {
                    let outLeft = p.stdout.kept.count - f.sentOut
                    let errLeft = p.stderr.kept.count - f.sentErr
                    if outLeft == 0 && errLeft == 0 { break }
                    let useErr = outLeft == 0 || (errLeft > 0 && f.sentErr < f.sentOut)
                    let start = useErr ? f.sentErr : f.sentOut
                    let n = min(useErr ? errLeft : outLeft, Int(min(f.credit, Int64(Self.sendSlice))))
                    let kept = useErr ? p.stderr.kept : p.stdout.kept
                    c.send(Frame(kind: useErr ? .stderr : .stdout, id: f.key.id, payload: Array(kept[start..<start + n])))
                    if useErr { f.sentErr += n } else { f.sentOut += n }
                    f.credit -= Int64(n)
                }
                if p.drained && f.sentOut == p.stdout.kept.count && f.sentErr == p.stderr.kept.count {
                    c.send(p.exitedEvent, id: f.key.id)
                    p.followers.remove(at: i)
                    continue
                }
                p.followers[i] = f
                i += 1
            }
            if p.drained && p.followers.isEmpty && !p.background { procs.removeValue(forKey: p.pid) }
        }
    }

    // MARK: signals and processes

    mutating func handleSignals() {
        while true {
            let s = sbx_agent_read_signal(signals)
            if s <= 0 { return }
            if s == SIGTERM || s == SIGINT {
                // Everything else in the sandbox's pid namespace dies with the agent.
                kill(-1, SIGKILL)
                exit(0)
            }
            reap()
        }
    }

    mutating func reap() {
        var status: Int32 = 0
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let pid = waitpid(-1, &status, WNOHANG)
            if pid <= 0 { return }
            guard let p = procs[pid], p.running else { continue }  // an orphan: reaped, nothing to report
            p.status = status
            pump(p, stderr: false, buf: &buf, all: true)
            pump(p, stderr: true, buf: &buf, all: true)
            finish(p)
        }
    }

    mutating func checkDeadlines() {
        if let e = expiresAt, Clock.wallSeconds() >= e { endSandbox() }
        let now = Clock.monotonicMs()
        for p in procs.values where p.running && !p.timedOut {
            if let d = p.deadline, d <= now {
                p.timedOut = true
                p.killTree()
            }
        }
    }

    /// The sandbox's deadline passed with no server to move it on: every process in the sandbox
    /// is killed and the agent (pid 1) exits, which ends the container; the next server start
    /// collects what is left on the host.
    func endSandbox() -> Never {
        let line = "sandboxer-agent: the sandbox's lifetime ended and no server renewed it; ending the sandbox\n"
        _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
        _ = kill(-1, SIGKILL)
        exit(0)
    }

    /// Reads output: one chunk (fairness between floods), or with `all` until nothing is left
    /// (after the process ended; bounded, as a grandchild may keep writing).
    mutating func pump(_ p: ManagedProcess, stderr: Bool, buf: inout [UInt8], all: Bool) {
        var rounds = all ? 256 : 1
        while rounds > 0 {
            rounds -= 1
            let fd = stderr ? p.errFd : p.outFd
            guard fd >= 0 else { return }
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, 65536) }
            if n < 0 && errno == EINTR { rounds += 1; continue }
            if n < 0 && errno == EAGAIN { return }
            if n <= 0 {  // EOF, or EIO from a PTY whose slave side is closed
                close(fd)
                if stderr { p.errFd = -1 } else {
                    if p.inFd == p.outFd { p.inFd = -1 }
                    p.outFd = -1
                }
                return
            }
            // Kept (up to the cap) for followers, sent as their credit allows (``sendOutput``).
            if stderr { _ = p.stderr.append(buf[0..<n]) } else { _ = p.stdout.append(buf[0..<n]) }
        }
    }

    /// A reaped process: its pipes are closed (what was in them is kept), waiting writers are
    /// answered; followers get `exited` once they have its output (``sendOutput``).
    mutating func finish(_ p: ManagedProcess) {
        p.closeAll()
        p.pendingInput = []
        releaseInputWaiters(p)
        if p.background {
            finished.append(p.pid)
            if finished.count > Self.maxFinished { procs.removeValue(forKey: finished.removeFirst()) }
        }
    }

    /// Answers the `input` requests that waited for the process's queue to shrink.
    func releaseInputWaiters(_ p: ManagedProcess) {
        for w in p.inputWaiters { conns[w.conn]?.send(.ok, id: w.id) }
        p.inputWaiters = []
    }

    mutating func feedInput(_ p: ManagedProcess) {
        while !p.pendingInput.isEmpty && p.inFd >= 0 {
            let n = p.pendingInput.withUnsafeBytes { write(p.inFd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN { return }
                p.pendingInput = []  // the reader is gone (EPIPE): drop what it will never read
                break
            }
            p.pendingInput.removeFirst(n)
        }
        if p.pendingInput.isEmpty && p.closeInputWhenDrained { closeInput(p) }
        if !p.inputWaiters.isEmpty && (p.pendingInput.count <= Self.maxPendingInput || p.inFd < 0) { releaseInputWaiters(p) }
    }

    func closeInput(_ p: ManagedProcess) {
        if p.pty {
            // A terminal has no end of input: send EOF (^D) as a terminal would.
            p.pendingInput = []
            var eof: UInt8 = 4
            _ = write(p.inFd, &eof, 1)
            return
        }
        if p.inFd >= 0 { close(p.inFd) }
        p.inFd = -1
    }

    // MARK: connections

    mutating func accept() {
        while true {
            let fd = sbx_agent_accept(listener)
            if fd < 0 { return }
            if conns.count >= Self.maxConnections {
                close(fd)
                continue
            }
            conns[fd] = Connection(fd: fd)
        }
    }

    mutating func drop(_ c: Connection) {
        conns.removeValue(forKey: c.fd)
        close(c.fd)
        for case .writing(let fd, _, _, _) in c.uploads.values { close(fd) }
        for p in procs.values {
            p.inputWaiters.removeAll { $0.conn == c.fd }
            if p.followers.contains(where: { $0.key.conn == c.fd }) { unfollow(p) { $0.key.conn == c.fd } }
        }
    }

    /// Ends one stream (the host cancelled it).
    mutating func unfollow(_ key: Follower.Key) {
        for p in procs.values where p.followers.contains(where: { $0.key == key }) { unfollow(p) { $0.key == key } }
    }

    /// Removes followers; a foreground process dies with the last request following it (the
    /// caller gave up), and is forgotten once ended.
    mutating func unfollow(_ p: ManagedProcess, where match: (Follower) -> Bool) {
        p.followers.removeAll(where: match)
        guard p.followers.isEmpty && !p.background else { return }
        if p.running { p.killTree() } else if p.drained { procs.removeValue(forKey: p.pid) }
    }

    mutating func serve(_ fd: Int32, revents: Int16) {
        guard let c = conns[fd] else { return }
        if revents & Int16(POLLOUT) != 0 && !c.flush() { return drop(c) }
        if revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
            let open = c.receive()
            while !c.closing {
                let frame: Frame?
                do { frame = try c.decoder.next() } catch {
                    c.fail(.badRequest, "malformed frame: \(error)", id: 0)
                    break
                }
                guard let frame else { break }
                handle(frame, on: c)
            }
            if !open { return drop(c) }
        }
        if c.hasPendingOutput && !c.flush() { drop(c) }
    }
}

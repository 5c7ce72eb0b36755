import AgentProtocol
import CSandboxAgent

#if canImport(Glibc)
import Glibc
#endif

/// One output stream of a process: the bytes kept (up to the cap, also the replay buffer), and
/// whether more was written and dropped.
struct StreamBuffer {
    var kept: [UInt8] = []
    var cap: Int
    var truncated = false

    /// Keeps what fits; returns the part kept (to forward live).
    mutating func append(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        let room = max(0, cap - kept.count)
        if bytes.count > room { truncated = true }
        let part = bytes.prefix(room)
        kept.append(contentsOf: part)
        return part
    }
}

/// A process the agent started, with its pipes (or PTY), buffers and who follows it.
final class ManagedProcess {
    let pid: Int32
    let argv: [String]
    let cwd: String
    let tag: String?
    let background: Bool
    let startedAt: Double
    /// stdout (or the PTY master), stderr (-1 with a PTY), stdin write end (the PTY master with a PTY).
    var outFd: Int32
    var errFd: Int32
    var inFd: Int32
    let pty: Bool
    var pendingInput: [UInt8] = []
    var closeInputWhenDrained = false
    var stdout: StreamBuffer
    var stderr: StreamBuffer
    var deadline: Int64?
    var timedOut = false
    /// Set once reaped.
    var status: Int32?
    /// The streams following this process.
    var followers: [Follower] = []
    /// `input` requests answered once the queue is back under the agent's limit.
    var inputWaiters: [Follower.Key] = []

    init(pid: Int32, argv: [String], cwd: String, tag: String?, background: Bool, pty: Bool,
         outFd: Int32, errFd: Int32, inFd: Int32, cap: Int, deadline: Int64?) {
        self.pid = pid
        self.argv = argv
        self.cwd = cwd
        self.tag = tag
        self.background = background
        self.pty = pty
        self.outFd = outFd
        self.errFd = errFd
        self.inFd = inFd
        self.stdout = StreamBuffer(cap: cap)
        self.stderr = StreamBuffer(cap: cap)
        self.deadline = deadline
        self.startedAt = Clock.wallSeconds()
    }

    var running: Bool { status == nil }

    var exitCode: Int32? { status.flatMap { sbx_agent_wifexited($0) != 0 ? sbx_agent_wexitstatus($0) : nil } }
    var signal: Int32? { status.flatMap { sbx_agent_wifsignaled($0) != 0 ? sbx_agent_wtermsig($0) : nil } }

    var info: AgentProcessInfo {
        AgentProcessInfo(pid: pid, argv: argv, cwd: cwd, tag: tag, pty: pty, background: background, running: running,
                         exitCode: exitCode, signal: signal, startedAt: startedAt)
    }

    var exitedEvent: AgentEvent {
        .exited(ProcessExit(pid: pid, exitCode: exitCode, signal: signal, timedOut: timedOut,
                            stdoutTruncated: stdout.truncated, stderrTruncated: stderr.truncated))
    }

    /// Whether a follower has `lag` bytes or more of this stream kept but not sent (while the kept
    /// buffer has room: at the cap, reading drains and drops, as it must to let the process go on).
    func lagging(stderr: Bool, by lag: Int) -> Bool {
        let s = stderr ? self.stderr : self.stdout
        guard s.kept.count < s.cap else { return false }
        return followers.contains { s.kept.count - (stderr ? $0.sentErr : $0.sentOut) >= lag }
    }

    /// Ended, and every byte of output read from its pipes.
    var drained: Bool { status != nil && outFd < 0 && errFd < 0 }

    /// SIGKILLs the process group and every descendant found in /proc (a child that called setsid
    /// left the group), twice to catch forks racing the first pass. A process that already left the
    /// tree (double fork, reparented to the agent) is beyond reach until the sandbox is destroyed.
    func killTree() {
        for _ in 0..<2 {
            // Descendants first: once the leader dies, its children are reparented to the agent.
            let tree = Self.descendants(of: pid)
            kill(-pid, SIGKILL)
            kill(pid, SIGKILL)
            for p in tree { kill(p, SIGKILL) }
        }
    }

    static func descendants(of root: Int32) -> [Int32] {
        var parent: [Int32: [Int32]] = [:]
        guard let dir = opendir("/proc") else { return [] }
        defer { closedir(dir) }
        while let ent = readdir(dir) {
            let name = withUnsafeBytes(of: ent.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            guard let pid = Int32(name), let stat = readSmall("/proc/\(pid)/stat"), let close = stat.lastIndex(of: UInt8(ascii: ")")) else { continue }
            let fields = stat[(close + 2)...].split(separator: UInt8(ascii: " "))
            if fields.count > 1, let ppid = Int32(String(decoding: fields[1], as: UTF8.self)) { parent[ppid, default: []].append(pid) }
        }
        var out: [Int32] = []
        var queue = parent[root] ?? []
        while let p = queue.popLast() {
            out.append(p)
            queue += parent[p] ?? []
        }
        return out
    }

    static func readSmall(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 1024)
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, 1024) }
        return n > 0 ? Array(buf[0..<n]) : nil
    }

    func closeAll() {
        for fd in Set([outFd, errFd, inFd]) where fd >= 0 { close(fd) }
        outFd = -1
        errFd = -1
        inFd = -1
    }
}

/// One stream following a process: the connection and request id its frames go to, how much
/// output the host has room for, and how far into each kept stream it has been sent.
struct Follower {
    /// A stream's address: connection fd and request id.
    struct Key: Hashable {
        var conn: Int32
        var id: UInt32
    }
    var key: Key
    var credit: Int64
    var sentOut = 0
    var sentErr = 0
}

/// Starts processes: pipes or a PTY, the explicit environment, the sandbox user.
enum Spawner {
    struct Failure: Error {
        var code: AgentErrorCode
        var message: String
    }

    static func nonblockingPipe() -> (Int32, Int32)? {
        var fds: [Int32] = [-1, -1]
        guard sbx_agent_pipe(&fds) == 0 else { return nil }
        return (fds[0], fds[1])
    }

    static func spawn(_ r: ProcessStart, user: SandboxUser, defaultCap: Int) -> Result<ManagedProcess, Failure> {
        let argv = r.argv
        guard !argv.isEmpty else { return .failure(Failure(code: .badRequest, message: "start needs a non-empty argv")) }
        let cwd = r.cwd
        if let p = AgentPath.problem(cwd) { return .failure(Failure(code: .invalidPath, message: "cwd: " + p)) }
        for a in argv + r.env where a.utf8.contains(0) {
            return .failure(Failure(code: .badRequest, message: "argv and env must not contain NUL bytes"))
        }
        var toClose: [Int32] = []
        defer { for fd in toClose { close(fd) } }
        var outFd: Int32 = -1, errFd: Int32 = -1, inFd: Int32 = -1
        var childIn: Int32 = -1, childOut: Int32 = -1, childErr: Int32 = -1, slave: Int32 = -1
        if let size = r.pty {
            var m: Int32 = -1, s: Int32 = -1
            guard sbx_agent_openpty(&m, &s, size.cols, size.rows) == 0 else {
                return .failure(Failure(code: .spawnFailed, message: "openpty: \(String(cString: strerror(errno)))"))
            }
            outFd = m
            inFd = dup(m)
            _ = fcntl(inFd, F_SETFD, FD_CLOEXEC)
            slave = s
            toClose.append(s)
        } else {
            guard let o = nonblockingPipe(), let e = nonblockingPipe() else {
                return .failure(Failure(code: .spawnFailed, message: "pipe: \(String(cString: strerror(errno)))"))
            }
            outFd = o.0; childOut = o.1
            errFd = e.0; childErr = e.1
            toClose += [o.1, e.1]
            if r.openStdin {
                guard let i = nonblockingPipe() else {
                    close(o.0); close(e.0)
                    return .failure(Failure(code: .spawnFailed, message: "pipe: \(String(cString: strerror(errno)))"))
                }
                childIn = i.0
                inFd = i.1
                toClose.append(i.0)
            } else {
                childIn = open("/dev/null", O_RDONLY | O_CLOEXEC)
                toClose.append(childIn)
            }
        }
        for fd in [outFd, errFd, inFd] where fd >= 0 { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        let cArgv = argv.map { strdup($0) } + [nil]
        let cEnv = r.env.map { strdup($0) } + [nil]
        let cCwd = strdup(cwd)
        defer {
            cArgv.forEach { free($0) }
            cEnv.forEach { free($0) }
            free(cCwd)
        }
        var errNo: Int32 = 0
        var stage: UnsafePointer<CChar>?
        let pid = cArgv.withUnsafeBufferPointer { av in
            cEnv.withUnsafeBufferPointer { ev in
                let root = r.asRoot == true
                var a = sbx_spawn_args(argv: av.baseAddress, envp: ev.baseAddress, cwd: cCwd, uid: root ? 0 : user.uid, gid: root ? 0 : user.gid,
                                       stdin_fd: childIn, stdout_fd: childOut, stderr_fd: childErr, pty_slave: slave,
                                       keep_caps: user.keepCapabilities)
                return sbx_agent_spawn(&a, &errNo, &stage)
            }
        }
        if pid < 0 {
            for fd in Set([outFd, errFd, inFd]) where fd >= 0 { close(fd) }
            let what = stage.map { String(cString: $0) } ?? "spawn"
            let subject = what == "chdir" ? cwd : argv[0]
            return .failure(Failure(code: .spawnFailed, message: "\(what) \(subject): \(String(cString: strerror(errNo)))"))
        }
        let cap = Int(r.outputCap ?? Int64(defaultCap))
        let deadline = r.timeoutMs.map { Clock.monotonicMs() + $0 }
        return .success(ManagedProcess(
            pid: pid, argv: argv, cwd: cwd, tag: r.tag, background: r.background, pty: r.pty != nil,
            outFd: outFd, errFd: errFd, inFd: inFd, cap: max(0, cap), deadline: deadline))
    }
}

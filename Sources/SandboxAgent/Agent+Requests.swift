import AgentProtocol
import CSandboxAgent

#if canImport(Glibc)
import Glibc
#endif

extension Agent {
    /// Most input queued for a process that has not read it yet.
    static let maxPendingInput = 8 << 20

    mutating func handle(_ frame: Frame, on c: Connection) {
        switch c.state {
        case .new:
            guard let r = AgentCoding.request(frame), r.op == .hello else {
                return c.fail(.badRequest, "the first frame must be hello")
            }
            guard r.version == AgentProtocolVersion.current else {
                return c.fail(.badRequest, "protocol version \(r.version ?? -1) is not this agent's (\(AgentProtocolVersion.current)); update the host or the agent")
            }
            if let e = r.expiresAt, e.isFinite { expiresAt = e }
            var ev = AgentEvent(type: .hello)
            ev.version = AgentProtocolVersion.current
            ev.pid = getpid()
            c.send(ev)
            c.state = .idle
        case .writing(let fd, let remaining, let mode):
            guard frame.kind == .file, Int64(frame.payload.count) <= remaining else {
                close(fd)
                c.state = .idle
                return c.fail(.badRequest, "a write expects exactly its size in file frames")
            }
            var off = 0
            let left = remaining - Int64(frame.payload.count)
            while off < frame.payload.count {
                let n = frame.payload.withUnsafeBytes { write(fd, $0.baseAddress! + off, $0.count - off) }
                if n < 0 {
                    if errno == EINTR { continue }
                    let e = errno
                    // What was written of this upload is given back (a full disk stays usable).
                    _ = ftruncate(fd, 0)
                    close(fd)
                    return discard(left, then: .error(Files.errorCode(e), "write: \(String(cString: strerror(e)))", errno: e), on: c)
                }
                off += n
            }
            if left == 0 { finishWrite(fd, mode: mode, on: c) } else { c.state = .writing(fd: fd, remaining: left, mode: mode) }
        case .discarding(let remaining, let error):
            guard frame.kind == .file, Int64(frame.payload.count) <= remaining else {
                c.state = .idle
                return c.fail(.badRequest, "a write expects exactly its size in file frames")
            }
            discard(remaining - Int64(frame.payload.count), then: error, on: c)
        case .idle, .attached:
            switch frame.kind {
            case .control:
                guard let r = AgentCoding.request(frame) else { return c.fail(.badRequest, "a control frame is not a valid request") }
                request(r, on: c)
            case .stdin:
                var pid = frame.pid
                if pid == 0, case .attached(let a) = c.state { pid = a }
                guard let p = procs[pid], p.running, p.inFd >= 0, !p.closeInputWhenDrained else {
                    return reply(.error(.noSuchProcess, "process \(pid) has no open stdin"), on: c)
                }
                guard p.pendingInput.count + frame.payload.count <= Self.maxPendingInput else {
                    return reply(.error(.tooLarge, "process \(pid) is not reading its stdin; over \(Self.maxPendingInput) bytes queued"), on: c)
                }
                p.pendingInput += frame.payload
                feedInput(p)
                reply(AgentEvent(type: .ok), on: c)
            default:
                c.fail(.badRequest, "unexpected \(frame.kind) frame")
            }
        }
    }

    /// Answers on idle connections only: an attached connection carries its process's events.
    func reply(_ ev: AgentEvent, on c: Connection) {
        if case .attached = c.state { return }
        c.send(ev)
    }

    /// Reads and drops the `remaining` bytes of a failed write's `file` frames, then answers `error`.
    func discard(_ remaining: Int64, then error: AgentEvent, on c: Connection) {
        if remaining > 0 {
            c.state = .discarding(remaining: remaining, error: error)
        } else {
            c.state = .idle
            c.send(error)
        }
    }

    func finishWrite(_ fd: Int32, mode: UInt32, on c: Connection) {
        fchmod(fd, mode_t(mode))
        close(fd)
        c.state = .idle
        c.send(AgentEvent(type: .ok))
    }

    /// The process a request names (its `pid`, or the one this connection follows).
    func target(_ r: AgentRequest, _ c: Connection) -> ManagedProcess? {
        var pid = r.pid ?? 0
        if pid == 0, case .attached(let a) = c.state { pid = a }
        return procs[pid]
    }

    mutating func request(_ r: AgentRequest, on c: Connection) {
        let user = self.user
        switch r.op {
        case .hello:
            var ev = AgentEvent(type: .hello)
            ev.version = AgentProtocolVersion.current
            reply(ev, on: c)
        case .start:
            if case .attached = c.state { return c.fail(.badRequest, "this connection already follows a process") }
            switch Spawner.spawn(r, user: user, defaultCap: Self.defaultCap) {
            case .failure(let f): c.send(.error(f.code, f.message))
            case .success(let p):
                if let old = procs[p.pid] { old.closeAll(); finished.removeAll { $0 == p.pid } }
                procs[p.pid] = p
                var ev = AgentEvent(type: .started)
                ev.pid = p.pid
                c.send(ev)
                p.followers = [c.fd]
                c.state = .attached(p.pid)
            }
        case .connect:
            if case .attached = c.state { return c.fail(.badRequest, "this connection already follows a process") }
            guard let pid = r.pid, let p = procs[pid] else { return c.send(.error(.noSuchProcess, "no process \(r.pid ?? 0)")) }
            var ev = AgentEvent(type: .started)
            ev.pid = p.pid
            c.send(ev)
            let replayCap = Int(r.outputCap ?? Int64(Self.defaultCap))
            for (kind, kept) in [(FrameKind.stdout, p.stdout.kept), (.stderr, p.stderr.kept)] {
                var off = 0
                let end = min(kept.count, replayCap)
                while off < end {
                    let n = min(end - off, Frame.maxPayload - 16)
                    c.send(Frame(kind: kind, pid: p.pid, payload: Array(kept[off..<off + n])))
                    off += n
                }
            }
            if p.running {
                p.followers.append(c.fd)
                c.state = .attached(p.pid)
            } else {
                c.send(p.exitedEvent)
            }
        case .list:
            var ev = AgentEvent(type: .processes)
            ev.processes = procs.values.map(\.info).sorted { $0.pid < $1.pid }
            reply(ev, on: c)
        case .closeStdin:
            guard let p = target(r, c), p.running else { return reply(.error(.noSuchProcess, "no running process \(r.pid ?? 0)"), on: c) }
            p.closeInputWhenDrained = true
            feedInput(p)
            reply(AgentEvent(type: .ok), on: c)
        case .signal:
            guard let p = target(r, c) else { return reply(.error(.noSuchProcess, "no process \(r.pid ?? 0)"), on: c) }
            let sig = r.signal ?? SIGKILL
            guard sig > 0 && sig < 65 else { return reply(.error(.badRequest, "signal \(sig) is out of range"), on: c) }
            // The whole process group: what the process started goes too. After the leader ended,
            // its group lives on while members remain (the kernel reuses no pid that is a live pgid).
            if kill(-p.pid, sig) != 0 && (!p.running || kill(p.pid, sig) != 0) {
                return reply(.error(.noSuchProcess, "process \(p.pid) and its group have ended"), on: c)
            }
            reply(AgentEvent(type: .ok), on: c)
        case .resize:
            guard let p = target(r, c), p.running, p.pty, p.outFd >= 0, let cols = r.ptyCols, let rows = r.ptyRows else {
                return reply(.error(.noSuchProcess, "no running PTY process \(r.pid ?? 0) (resize needs pid, pty_cols, pty_rows)"), on: c)
            }
            _ = sbx_agent_set_winsize(p.outFd, cols, rows)
            kill(-p.pid, SIGWINCH)
            reply(AgentEvent(type: .ok), on: c)
        case .stat: reply(user.asUser { Files.statEntry(r) }, on: c)
        case .listDir: reply(user.asUser { Files.listDir(r) }, on: c)
        case .makeDir: reply(user.asUser { Files.makeDir(r) }, on: c)
        case .move: reply(user.asUser { Files.move(r) }, on: c)
        case .remove: reply(user.asUser { Files.remove(r) }, on: c)
        case .read:
            if case .attached = c.state { return }
            for f in user.asUser({ Files.read(r) }) { c.send(f) }
        case .write:
            if case .attached = c.state { return c.fail(.badRequest, "write on a connection that follows a process") }
            switch user.asUser({ Files.openForWrite(r) }) {
            case .failure(let e): discard(max(0, r.size ?? 0), then: e.event, on: c)
            case .success(let fd):
                let mode = r.mode ?? 0o644
                if r.size == 0 { finishWrite(fd, mode: mode, on: c) } else { c.state = .writing(fd: fd, remaining: r.size!, mode: mode) }
            }
        }
    }
}

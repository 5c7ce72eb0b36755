import AgentProtocol
import CSandboxAgent

#if canImport(Glibc)
import Glibc
#endif

extension Agent {
    /// Most input queued for a process that has not read it yet before an `input` waits.
    static let maxPendingInput = 8 << 20
    /// Most input queued at all (waiting writers included): beyond, `input` is refused.
    static let hardPendingInput = maxPendingInput + 4 * Frame.maxPayload

    mutating func handle(_ frame: Frame, on c: Connection) {
        guard c.greeted else { return greet(frame, on: c) }
        switch frame.kind {
        case .control:
            let r: AgentRequest
            do { r = try AgentCoding.request(frame) } catch {
                return c.fail(.badRequest, "a control frame is not a valid request (\(error))", id: frame.id)
            }
            request(r, id: frame.id, on: c)
        case .file, .stdin:
            guard let upload = c.uploads[frame.id] else {
                return c.fail(.badRequest, "\(frame.kind) frame for request \(frame.id), which expects none", id: frame.id)
            }
            receive(frame, into: upload, on: c)
        case .stdout, .stderr:
            c.fail(.badRequest, "unexpected \(frame.kind) frame", id: frame.id)
        }
    }

    mutating func greet(_ frame: Frame, on c: Connection) {
        guard frame.kind == .control, case .hello(let version, let expires)? = try? AgentCoding.request(frame) else {
            return c.fail(.badRequest, "the first frame must be hello", id: frame.id)
        }
        guard version == AgentProtocolVersion.current else {
            return c.fail(.badRequest, "protocol version \(version) is not this agent's (\(AgentProtocolVersion.current)); update the host or the agent", id: frame.id)
        }
        if let e = expires, e.isFinite { expiresAt = e }
        c.send(.hello(version: AgentProtocolVersion.current, pid: getpid()), id: frame.id)
        c.greeted = true
    }

    /// A data frame of a `write` or an `input`.
    mutating func receive(_ frame: Frame, into upload: Connection.Upload, on c: Connection) {
        let id = frame.id
        let count = Int64(frame.payload.count)
        switch upload {
        case .writing(let fd, let remaining, let mode, let user):
            guard frame.kind == .file, count <= remaining else {
                close(fd)
                c.uploads[id] = nil
                return c.fail(.badRequest, "a write expects exactly its size in file frames", id: id)
            }
            var off = 0
            let left = remaining - count
            while off < frame.payload.count {
                let n = frame.payload.withUnsafeBytes { write(fd, $0.baseAddress! + off, $0.count - off) }
                if n < 0 {
                    if errno == EINTR { continue }
                    let e = errno
                    // What was written of this upload is given back (a full disk stays usable).
                    _ = ftruncate(fd, 0)
                    close(fd)
                    return discard(left, then: .error(Files.errorCode(e), "write: \(String(cString: strerror(e)))", errno: e), id: id, on: c)
                }
                off += n
            }
            if left == 0 { finishWrite(fd, mode: mode, user: user, id: id, on: c) } else { c.uploads[id] = .writing(fd: fd, remaining: left, mode: mode, user: user) }
        case .input(let pid, let remaining):
            guard frame.kind == .stdin, count <= remaining else {
                c.uploads[id] = nil
                return c.fail(.badRequest, "an input expects exactly its size in stdin frames", id: id)
            }
            let left = remaining - count
            guard let p = procs[pid], p.running, p.inFd >= 0 else {
                return discard(left, then: .error(.noSuchProcess, "process \(pid) has no open stdin"), id: id, on: c)
            }
            guard p.pendingInput.count + frame.payload.count <= Self.hardPendingInput else {
                return discard(left, then: .error(.tooLarge, "process \(pid) is not reading its stdin; over \(Self.maxPendingInput) bytes queued"), id: id, on: c)
            }
            p.pendingInput += frame.payload
            feedInput(p)
            guard left == 0 else { c.uploads[id] = .input(pid: pid, remaining: left); return }
            c.uploads[id] = nil
            if p.pendingInput.count <= Self.maxPendingInput { c.send(.ok, id: id) } else { p.inputWaiters.append(.init(conn: c.fd, id: id)) }
        case .discarding(let remaining, let error):
            guard count <= remaining else {
                c.uploads[id] = nil
                return c.fail(.badRequest, "a request expects exactly its size in data frames", id: id)
            }
            discard(remaining - count, then: error, id: id, on: c)
        }
    }

    /// Reads and drops the `remaining` bytes of a failed upload's data frames, then answers `error`.
    func discard(_ remaining: Int64, then error: AgentEvent, id: UInt32, on c: Connection) {
        if remaining > 0 {
            c.uploads[id] = .discarding(remaining: remaining, error: error)
        } else {
            c.uploads[id] = nil
            c.send(error, id: id)
        }
    }

    /// Ends an upload: the file gets `mode` as the user who wrote it (the agent's own fsuid 0 is not
    /// the sandbox user's file's owner and has no CAP_FOWNER, so its fchmod failed and an existing
    /// file kept its old mode).
    func finishWrite(_ fd: Int32, mode: UInt32, user: SandboxUser, id: UInt32, on c: Connection) {
        let e = user.asUser { fchmod(fd, mode_t(mode)) == 0 ? 0 : errno }
        close(fd)
        c.uploads[id] = nil
        if e != 0 { return c.send(.error(Files.errorCode(e), "chmod \(String(mode, radix: 8)): \(String(cString: strerror(e)))", errno: e), id: id) }
        c.send(.ok, id: id)
    }

    /// `user`: whom file operations act as (the sandbox user unless an `asRoot` request says root).
    mutating func request(_ r: AgentRequest, id: UInt32, on c: Connection, as fileUser: SandboxUser? = nil) {
        let user = fileUser ?? self.user
        if c.uploads[id] != nil { return c.fail(.badRequest, "request id \(id) is still receiving data", id: id) }
        switch r {
        case .hello(let version, _):
            guard version == AgentProtocolVersion.current else { return c.fail(.badRequest, "protocol version \(version) changed mid-connection", id: id) }
            c.send(.hello(version: AgentProtocolVersion.current, pid: getpid()), id: id)
        case .ping(let expires):
            if let e = expires, e.isFinite { expiresAt = e }
            c.send(.ok, id: id)
        case .start(let spec):
            switch Spawner.spawn(spec, user: user, defaultCap: Self.defaultCap) {
            case .failure(let f): c.send(.error(f.code, f.message), id: id)
            case .success(let p):
                if let old = procs[p.pid] { old.closeAll(); finished.removeAll { $0 == p.pid } }
                procs[p.pid] = p
                c.send(.started(pid: p.pid), id: id)
                // A background start's stream ends here; `connect` follows the process later.
                if !p.background { p.followers = [Follower(key: .init(conn: c.fd, id: id), credit: AgentFlow.initialWindow)] }
            }
        case .connect(let pid, let fromNow):
            guard let p = procs[pid], p.background || p.running else { return c.send(.error(.noSuchProcess, "no process \(pid)"), id: id) }
            c.send(.started(pid: p.pid), id: id)
            // Its kept output is replayed from the start (or skipped, `fromNow`), then live output
            // follows (``sendOutput``).
            let skip = fromNow == true
            p.followers.append(Follower(key: .init(conn: c.fd, id: id), credit: AgentFlow.initialWindow,
                                        sentOut: skip ? p.stdout.kept.count : 0, sentErr: skip ? p.stderr.kept.count : 0))
        case .credit(let bytes):
            guard bytes > 0 else { return c.fail(.badRequest, "credit must be positive", id: id) }
            let key = Follower.Key(conn: c.fd, id: id)
            for p in procs.values {
                if let i = p.followers.firstIndex(where: { $0.key == key }) {
                    let (sum, overflow) = p.followers[i].credit.addingReportingOverflow(bytes)
                    p.followers[i].credit = overflow ? Int64.max : sum
                }
            }
        case .cancel:
            unfollow(Follower.Key(conn: c.fd, id: id))
        case .list:
            c.send(.processes(procs.values.filter { $0.background || $0.running }.map(\.info).sorted { $0.pid < $1.pid }), id: id)
        case .input(let pid, let size):
            guard size >= 0 else { return c.fail(.badRequest, "input needs a size of 0 or more", id: id) }
            guard let p = procs[pid], p.running, p.inFd >= 0, !p.closeInputWhenDrained else {
                return discard(size, then: .error(.noSuchProcess, "process \(pid) has no open stdin"), id: id, on: c)
            }
            if size == 0 { return c.send(.ok, id: id) }
            c.uploads[id] = .input(pid: pid, remaining: size)
        case .closeStdin(let pid):
            guard let p = procs[pid], p.running else { return c.send(.error(.noSuchProcess, "no running process \(pid)"), id: id) }
            p.closeInputWhenDrained = true
            feedInput(p)
            c.send(.ok, id: id)
        case .signal(let pid, let sig):
            guard let p = procs[pid] else { return c.send(.error(.noSuchProcess, "no process \(pid)"), id: id) }
            guard sig > 0 && sig < 65 else { return c.send(.error(.badRequest, "signal \(sig) is out of range"), id: id) }
            // The whole process group: what the process started goes too. After the leader ended,
            // its group lives on while members remain (the kernel reuses no pid that is a live pgid).
            if kill(-p.pid, sig) != 0 && (!p.running || kill(p.pid, sig) != 0) {
                return c.send(.error(.noSuchProcess, "process \(p.pid) and its group have ended"), id: id)
            }
            c.send(.ok, id: id)
        case .resize(let pid, let size):
            guard let p = procs[pid], p.running, p.pty, p.outFd >= 0 else {
                return c.send(.error(.noSuchProcess, "no running PTY process \(pid)"), id: id)
            }
            _ = sbx_agent_set_winsize(p.outFd, size.cols, size.rows)
            kill(-p.pid, SIGWINCH)
            c.send(.ok, id: id)
        case .asRoot(let inner):
            guard inner.isFileOperation, fileUser == nil else { return c.fail(.badRequest, "asRoot carries one file operation", id: id) }
            request(inner, id: id, on: c, as: SandboxUser(uid: 0, gid: 0))
        case .stat(let path): c.send(user.asUser { Files.statEntry(path) }, id: id)
        case .listDir(let path): c.send(user.asUser { Files.listDir(path) }, id: id)
        case .makeDir(let path, let parents, let mode): c.send(user.asUser { Files.makeDir(path, parents: parents, mode: mode) }, id: id)
        case .move(let from, let to): c.send(user.asUser { Files.move(from, to) }, id: id)
        case .remove(let path, let recursive): c.send(user.asUser { Files.remove(path, recursive: recursive) }, id: id)
        case .setMetadata(let path, let metadata): c.send(user.asUser { Files.setMetadata(path, metadata) }, id: id)
        case .watchAdd(let path, let recursive):
            let now = Clock.monotonicMs()
            for w in watches.values where now - w.lastTaken > Self.watchIdleMs { watches.removeValue(forKey: w.id)?.close() }
            guard watches.count < Self.maxWatches else {
                return c.send(.error(.tooLarge, "\(Self.maxWatches) directories are watched already; remove a watch first"), id: id)
            }
            switch DirectoryWatch.open(id: nextWatchId, path: path, recursive: recursive, user: user) {
            case .failure(let e): c.send(e.event, id: id)
            case .success(let w):
                watches[w.id] = w
                nextWatchId = nextWatchId == Int32.max ? 1 : nextWatchId + 1
                c.send(.watching(id: w.id), id: id)
            }
        case .watchTake(let wid):
            guard let w = watches[wid] else { return c.send(.error(.notFound, "no watch \(wid) (removed, or idle too long)"), id: id) }
            c.send(w.take(), id: id)
        case .watchRemove(let wid):
            guard let w = watches.removeValue(forKey: wid) else { return c.send(.error(.notFound, "no watch \(wid)"), id: id) }
            w.close()
            c.send(.ok, id: id)
        case .read(let path, let limit):
            switch user.asUser({ Files.read(path, limit: limit) }) {
            case .failure(let e): c.send(e.event, id: id)
            case .success(let chunks):
                c.send(.content(size: chunks.reduce(0) { $0 + Int64($1.count) }), id: id)
                for chunk in chunks { c.send(Frame(kind: .file, id: id, payload: chunk)) }
                c.send(.ok, id: id)
            }
        case .write(let path, let size, let mode):
            let mode = mode ?? 0o644
            switch user.asUser({ Files.openForWrite(path, size: size, mode: mode) }) {
            case .failure(let e): discard(max(0, size), then: e.event, id: id, on: c)
            case .success(let fd):
                if size == 0 { finishWrite(fd, mode: mode, user: user, id: id, on: c) } else { c.uploads[id] = .writing(fd: fd, remaining: size, mode: mode, user: user) }
            }
        }
    }
}

import Foundation
import Logging
import SandboxCore
import SandboxLinux
import SandboxStore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One write the ``Recorder`` owes the store, in the form it is written (and kept in the spool):
/// everything a replay needs to make the write idempotent (an events batch's key, a log chunk's
/// offset) is fixed when the item is taken from the queue.
enum SpoolEntry: Codable, Sendable, Equatable {
    case exec(ExecRecord, insert: Bool)
    /// `data` starts at byte `offset` of the exec's stream (what the recorder handed over before it).
    case log(execId: String, sandboxId: String, stream: StdStream, data: Data, cap: Int, offset: Int)
    case sandbox(SandboxRecord)
    /// Entries of tenants' trails under their batch key.
    case tenant([TenantEvent], batch: String)
    /// The meter's samples (each keyed by its id).
    case usage([UsageSample])
    /// A route audit entry spooled by a server from before the tenant trail (read, never written):
    /// replayed as an `api.request` entry of the tenant's trail, as schema v8 moved the stored ones.
    case audit(LegacyRouteAudit)
    /// A batch of trail entries under its key.
    case events([AuditEvent], batch: String)

    /// How many items of each sandbox this entry holds (what a full spool counts as dropped).
    var sandboxCounts: [String: Int] {
        switch self {
        case .exec(let r, _): return [r.sandboxId: 1]
        case .log(_, let sandboxId, _, _, _, _): return [sandboxId: 1]
        case .sandbox(let r): return [r.id: 1]
        case .tenant, .usage, .audit: return [:]
        case .events(let events, _): return events.reduce(into: [:]) { $0[$1.sandboxId, default: 0] += 1 }
        }
    }
}

/// The route audit entry of servers from before the tenant trail, as their spool holds it.
struct LegacyRouteAudit: Codable, Sendable, Equatable {
    var at: Date
    var tenantId: String
    var actor: String
    var action: String
    var target: String
    var result: String
    var detail: String?

    /// The entry as the tenant trail holds old route audit entries.
    var event: TenantEvent {
        var d: [String: EventValue] = ["action": .string(action), "target": .string(target), "result": .string(result)]
        if let detail { d["detail"] = .string(detail) }
        return TenantEvent(at: at, tenantId: tenantId, kind: .apiRequest, actor: actor, detail: d)
    }
}

/// The recorder's on-disk queue of writes the store could not take (an outage): JSON lines in
/// `<directory>/recorder.jsonl` (0600, the directory 0700), replayed in order once the store
/// answers. The file's first line names it (`{"spool":"<uuid>"}`); `recorder.cursor` holds
/// `<uuid> <offset>`, the byte offset of the first line not yet written to the store. A cursor
/// naming another file (a crash between a compaction and its cursor) means "from the start".
/// Lines are appended with `fsync`; the cursor is replaced by rename after each replayed line
/// (a crash may replay a written line once more: the recorder's writes are idempotent). The
/// live lines are also kept in memory (at most ``Limits`` of them).
final class RecorderSpool: Sendable {
    /// How much the spool holds before further items are counted as dropped (an `audit.gap`).
    struct Limits: Sendable {
        /// Bytes of live lines (default 64 MiB).
        var maxBytes: Int = RecorderSpool.defaultMaxBytes
        /// Live lines (default 100 000).
        var maxItems: Int = RecorderSpool.defaultMaxItems
        init(maxBytes: Int = RecorderSpool.defaultMaxBytes, maxItems: Int = RecorderSpool.defaultMaxItems) {
            self.maxBytes = maxBytes
            self.maxItems = maxItems
        }
    }

    /// Default cap of the spool's live bytes: an outage of minutes under a busy server, yet small
    /// next to the disk the data directory is on.
    static let defaultMaxBytes = 64 << 20
    /// Default cap of the spool's live items.
    static let defaultMaxItems = 100_000

    /// What ``append(_:force:)`` did.
    enum Appended: Equatable {
        case spooled
        /// Over ``Limits``: not written.
        case full
        /// The spool's disk refused it (logged): not written.
        case failed
    }

    let directory: String
    let limits: Limits
    let logger: Logger
    var dataPath: String { directory + "/recorder.jsonl" }
    var cursorPath: String { directory + "/recorder.cursor" }

    private struct State {
        /// Live entries from `head` on, with the length of their line.
        var entries: [(entry: SpoolEntry, length: Int)] = []
        var head = 0
        var bytes = 0
        /// The open data file (-1: none on disk), its id and size, and the offset of the first live line.
        var fd: Int32 = -1
        var fileId = ""
        var size = 0
        var cursor = 0
        var count: Int { entries.count - head }
    }
    private let state = Mutex(State())

    /// Opens the spool in `directory`, loading what a previous process left (created on the first append).
    init(directory: String, limits: Limits = Limits(), logger: Logger) {
        self.directory = directory
        self.limits = limits
        self.logger = logger
        load()
    }

    deinit {
        state.withLock { s in if s.fd >= 0 { close(s.fd) } }
    }

    var count: Int { state.withLock { $0.count } }
    var isEmpty: Bool { count == 0 }
    /// Bytes of the live lines.
    var bytes: Int { state.withLock { $0.bytes } }

    /// The oldest entry not yet written to the store.
    var first: SpoolEntry? {
        state.withLock { s in s.head < s.entries.count ? s.entries[s.head].entry : nil }
    }

    /// Appends `entry` (on disk when this returns); `force` ignores ``Limits`` (the gap entries).
    func append(_ entry: SpoolEntry, force: Bool = false) -> Appended {
        let line: [UInt8]
        do { line = Array(try JSONEncoder().encode(entry)) + [0x0A] } catch {
            logger.error("a store write could not be encoded for the spool", metadata: ["error": "\(error)"])
            return .failed
        }
        return state.withLock { s -> Appended in
            if !force, s.count >= limits.maxItems || s.bytes + line.count > limits.maxBytes { return .full }
            do {
                if s.fd < 0 { try create(&s, lines: []) }
                try Syscall.writeAll(s.fd, line, dataPath)
                try Self.sync(s.fd, path: dataPath)
            } catch {
                _ = ftruncate(s.fd, off_t(s.size))  // no torn line stays behind
                logger.error("could not write to the recorder's spool", metadata: ["path": "\(dataPath)", "error": "\(error)"])
                return .failed
            }
            s.entries.append((entry, line.count))
            s.size += line.count
            s.bytes += line.count
            return .spooled
        }
    }

    /// Marks the first entry written to the store: the cursor moves past it; an empty spool
    /// removes its files, one whose written part outgrew the live cap is rewritten.
    func removeFirst() {
        state.withLock { s in
            guard s.head < s.entries.count else { return }
            let length = s.entries[s.head].length
            s.head += 1
            s.bytes -= length
            s.cursor += length
            if s.head > 1024, s.head * 2 > s.entries.count {
                s.entries.removeFirst(s.head)
                s.head = 0
            }
            if s.count == 0 {
                if s.fd >= 0 { close(s.fd) }
                s = State()
                unlink(dataPath)
                unlink(cursorPath)
                return
            }
            do {
                if s.cursor > limits.maxBytes {
                    try create(&s, lines: try s.entries[s.head...].map { Array(try JSONEncoder().encode($0.entry)) + [0x0A] })
                } else {
                    try SysFile.create(cursorPath + ".new", Array("\(s.fileId) \(s.cursor)\n".utf8), mode: 0o600)
                    try Syscall.call("rename \(cursorPath).new") { rename(cursorPath + ".new", cursorPath) }
                }
            } catch {
                // The line may be replayed once more after a restart (idempotent writes).
                logger.warning("could not save the recorder spool's cursor", metadata: ["path": "\(cursorPath)", "error": "\(error)"])
            }
        }
    }

    /// Starts a new data file holding `lines` (a fresh id; renamed over the old one once on disk).
    private func create(_ s: inout State, lines: [[UInt8]]) throws(SandboxError) {
        try SysFile.makeDirectory(directory, mode: 0o700)
        let id = UUID().uuidString
        let header = Array("{\"spool\":\"\(id)\"}\n".utf8)
        let temp = dataPath + ".new"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw Syscall.error("create \(temp)", errno: errno) }
        do {
            try Syscall.writeAll(fd, header + lines.flatMap { $0 }, temp)
            try Self.sync(fd, path: temp)
            try Syscall.call("rename \(temp) to \(dataPath)") { rename(temp, dataPath) }
        } catch {
            close(fd)
            unlink(temp)
            throw error
        }
        if s.fd >= 0 { close(s.fd) }
        s.fd = fd
        s.fileId = id
        s.cursor = header.count
        s.size = header.count + lines.reduce(0) { $0 + $1.count }
    }

    /// Reads what a previous process left: the lines past the cursor; a torn last line (a crash
    /// mid-append) is cut off.
    private func load() {
        guard let data = FileManager.default.contents(atPath: dataPath) else { return }
        let bytes = [UInt8](data)
        guard let headerEnd = bytes.firstIndex(of: 0x0A),
              let header = try? JSONDecoder().decode([String: String].self, from: Data(bytes[..<headerEnd])),
              let id = header["spool"]
        else {
            let aside = dataPath + ".unreadable-\(Int(Date().timeIntervalSince1970))"
            rename(dataPath, aside)
            logger.error("the recorder's spool has no header; moved aside, not replayed", metadata: ["path": "\(aside)"])
            return
        }
        var start = headerEnd + 1
        if let text = SysFile.read(cursorPath) {
            let parts = text.split(whereSeparator: \.isWhitespace)
            if parts.count == 2, parts[0] == id, let offset = Int(parts[1]), offset >= start, offset <= bytes.count { start = offset }
        }
        var s = State()
        var position = start
        var skipped = 0
        while let end = bytes[position...].firstIndex(of: 0x0A) {
            let length = end + 1 - position
            if let entry = try? JSONDecoder().decode(SpoolEntry.self, from: Data(bytes[position..<end])) {
                s.entries.append((entry, length))
                s.bytes += length
            } else {
                skipped += 1
            }
            position = end + 1
        }
        if skipped > 0 {
            logger.error("lines of the recorder's spool could not be read; skipped", metadata: ["path": "\(dataPath)", "lines": "\(skipped)"])
        }
        let fd = open(dataPath, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else {
            logger.error("could not open the recorder's spool", metadata: ["path": "\(dataPath)", "errno": "\(errno)"])
            return
        }
        if position < bytes.count { _ = ftruncate(fd, off_t(position)) }
        s.fd = fd
        s.fileId = id
        s.size = position
        s.cursor = start
        if s.count == 0 {
            close(fd)
            unlink(dataPath)
            unlink(cursorPath)
            return
        }
        logger.notice("the recorder's spool holds writes from before the restart; they are written once the store answers",
                      metadata: ["path": "\(dataPath)", "items": "\(s.count)"])
        state.withLock { $0 = s }
    }

    private static func sync(_ fd: Int32, path: String) throws(SandboxError) {
        try Syscall.call("fsync \(path)") { fsync(fd) }
    }
}

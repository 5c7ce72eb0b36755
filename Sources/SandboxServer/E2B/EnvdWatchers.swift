import Foundation
import HTTPTypes
import Hummingbird
import SandboxCore
import SandboxManager

/// One watched directory: what it held when last looked at. Changes are found by comparing
/// listings through the agent (polling, not inotify): a file created and removed between two
/// looks goes unseen, and several writes between two looks are one `WRITE`.
struct EnvdWatch: Sendable {
    var tenantId: String
    var sandboxId: String
    var root: String
    var recursive: Bool
    var includeEntry: Bool
    var names: EnvdOwnerNames
    /// Entries by path relative to `root`.
    var seen: [String: FileEntry]
    var lastUsed = Date()

    /// The events that turn `old` into `new` (both keyed by relative path), sorted by name: a new
    /// entry is `CREATE` (and `WRITE` for a non-empty file, as a write to a new file is); a
    /// file whose size or mtime changed `WRITE`; a changed mode `CHMOD`; a gone entry `REMOVE`,
    /// or `RENAME` when an entry with the same inode appeared under another name.
    static func diff(_ old: [String: FileEntry], _ new: [String: FileEntry], includeEntry: Bool,
                     names: EnvdOwnerNames) -> [EnvdFilesystemEvent] {
        var events: [EnvdFilesystemEvent] = []
        func entry(_ e: FileEntry) -> EnvdEntryInfo? { includeEntry ? EnvdEntryInfo(e, names: names) : nil }
        let createdInodes = Set(new.filter { old[$0.key] == nil }.compactMap(\.value.inode))
        for (name, before) in old.sorted(by: { $0.key < $1.key }) {
            guard let after = new[name] else {
                let renamed = before.inode.map(createdInodes.contains) ?? false
                events.append(EnvdFilesystemEvent(name: name, type: renamed ? .rename : .remove))
                continue
            }
            if after.type == .file, after.size != before.size || after.mtime != before.mtime {
                events.append(EnvdFilesystemEvent(name: name, type: .write, entry: entry(after)))
            }
            if after.mode != before.mode { events.append(EnvdFilesystemEvent(name: name, type: .chmod, entry: entry(after))) }
        }
        for (name, after) in new.sorted(by: { $0.key < $1.key }) where old[name] == nil {
            events.append(EnvdFilesystemEvent(name: name, type: .create, entry: entry(after)))
            if after.type == .file, after.size > 0 { events.append(EnvdFilesystemEvent(name: name, type: .write, entry: entry(after))) }
        }
        return events.sorted { $0.name < $1.name }
    }
}

/// The watchers of `CreateWatcher`, polled by `GetWatcherEvents`. At most ``maxPerSandbox`` per
/// sandbox; one nobody polled for ``idleLimit`` is dropped (as is every watcher of a sandbox that
/// is gone, the next time anyone adds one).
actor EnvdWatchers {
    static let maxPerSandbox = 16
    static let idleLimit: TimeInterval = 600

    private var watches: [String: EnvdWatch] = [:]

    func add(_ watch: EnvdWatch) throws(ConnectError) -> String {
        let now = Date()
        watches = watches.filter { now.timeIntervalSince($0.value.lastUsed) < Self.idleLimit }
        guard watches.values.filter({ $0.sandboxId == watch.sandboxId }).count < Self.maxPerSandbox else {
            throw ConnectError(.resourceExhausted, "this sandbox has \(Self.maxPerSandbox) watchers; remove one (RemoveWatcher) first")
        }
        let id = UUID().uuidString.lowercased()
        watches[id] = watch
        return id
    }

    func get(_ id: String, sandboxId: String) -> EnvdWatch? {
        guard let w = watches[id], w.sandboxId == sandboxId else { return nil }
        return w
    }

    func update(_ id: String, _ watch: EnvdWatch) {
        guard watches[id] != nil else { return }
        var w = watch
        w.lastUsed = Date()
        watches[id] = w
    }

    func remove(_ id: String, sandboxId: String) -> Bool {
        guard watches[id]?.sandboxId == sandboxId else { return false }
        watches[id] = nil
        return true
    }

    func count(sandboxId: String) -> Int { watches.values.filter { $0.sandboxId == sandboxId }.count }
}

extension EnvdFilesystemService {
    /// How often a WatchDir stream looks again, and how many quiet looks pass before a keepalive
    /// when the client names no interval.
    static let watchInterval: Duration = .milliseconds(250)
    static let keepaliveEvery = 40
    /// The SDK's `Keepalive-Ping-Interval` (seconds): a keepalive after that long without events.
    static let keepaliveHeader = HTTPField.Name("Keepalive-Ping-Interval")!
    /// Depth a recursive watch looks down to.
    static let recursiveWatchDepth = 32

    /// A watch of `r.path` (which must be a directory), with what it holds now.
    func startWatch(_ target: E2BTarget, _ r: EnvdWatchRequest, user: String) async throws -> EnvdWatch {
        let root = try EnvdPath.resolve(r.path, user: user)
        let entry = try await manager.stat(tenantId: target.tenantId, id: target.sandboxId, path: root)
        guard entry.type == .directory else { throw ConnectError(.invalidArgument, "path \(root) is not a directory") }
        var watch = EnvdWatch(tenantId: target.tenantId, sandboxId: target.sandboxId, root: root, recursive: r.recursive,
                              includeEntry: r.includeEntry, names: ownerNames(target), seen: [:])
        watch.seen = try await snapshot(target, watch)
        return watch
    }

    func snapshot(_ target: E2BTarget, _ watch: EnvdWatch) async throws -> [String: FileEntry] {
        let entries = try await list(target, watch.root, depth: watch.recursive ? Self.recursiveWatchDepth : 1)
        let prefix = watch.root == "/" ? "/" : watch.root + "/"
        var byName: [String: FileEntry] = [:]
        for e in entries where e.path.hasPrefix(prefix) { byName[String(e.path.dropFirst(prefix.count))] = e }
        return byName
    }

    /// The changes since the watch last looked; the watch then holds the new view.
    func poll(_ target: E2BTarget, _ watch: inout EnvdWatch) async throws -> [EnvdFilesystemEvent] {
        let now = try await snapshot(target, watch)
        let events = EnvdWatch.diff(watch.seen, now, includeEntry: watch.includeEntry, names: watch.names)
        watch.seen = now
        return events
    }

    /// WatchDir: a server stream of `start`, then the changes as they are seen, with keepalives;
    /// it ends when the client goes or the sandbox does.
    func watchDir(_ request: Request, _ target: E2BTarget) async throws -> Response {
        let watch: EnvdWatch
        do {
            let r = try await Connect.decodeStreamRequest(EnvdWatchRequest.self, from: request)
            watch = try await startWatch(target, r, user: try EnvdPath.user(nil, default: target.user))
        } catch {
            let failure = EnvdErrors.connect(error)
            return Connect.serverStream(EnvdWatchDirResponse.self) { _ in throw failure }
        }
        let quietLimit = request.headers[Self.keepaliveHeader].flatMap { Int($0) }.map { min(max($0, 1), 300) * 4 } ?? Self.keepaliveEvery
        return Connect.serverStream(EnvdWatchDirResponse.self) { send in
            var watch = watch
            try await send(.start)
            var quiet = 0
            while !Task.isCancelled {
                try await Task.sleep(for: Self.watchInterval)
                let events: [EnvdFilesystemEvent]
                do { events = try await poll(target, &watch) } catch { throw EnvdErrors.connect(error) }
                for e in events { try await send(.filesystem(e)) }
                quiet = events.isEmpty ? quiet + 1 : 0
                if quiet >= quietLimit {
                    quiet = 0
                    try await send(.keepalive)
                }
            }
        }
    }
}

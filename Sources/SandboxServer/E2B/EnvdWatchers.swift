import Foundation
import HTTPTypes
import Hummingbird
import SandboxCore
import SandboxManager

/// One watched directory: an inotify watch the sandbox's agent keeps (`watchAdd`), whose events
/// are taken by `GetWatcherEvents` or the `WatchDir` stream.
struct EnvdWatch: Sendable {
    var tenantId: String
    var sandboxId: String
    var agentWatch: Int32
    var root: String
    var includeEntry: Bool
    var lastUsed = Date()

    /// The agent's events in envd's terms (`name` relative to the watched directory).
    static func events(_ batch: FileWatchBatch) -> [EnvdFilesystemEvent] {
        batch.events.map { e in
            let type: EnvdEventType = switch e.kind {
            case .create: .create
            case .write: .write
            case .remove: .remove
            case .rename: .rename
            case .chmod: .chmod
            }
            return EnvdFilesystemEvent(name: e.name, type: type)
        }
    }
}

/// The watchers of `CreateWatcher`, polled by `GetWatcherEvents`. At most ``maxPerSandbox`` per
/// sandbox; one nobody polled for ``idleLimit`` is dropped the next time anyone adds one (its
/// sandbox's agent drops an idle watch on its own too).
actor EnvdWatchers {
    static let maxPerSandbox = 16
    static let idleLimit: TimeInterval = 600

    private var watches: [String: EnvdWatch] = [:]

    /// Keeps a watch under a new id; answers the watches that were idle too long (for the caller
    /// to remove from their agents).
    func add(_ watch: EnvdWatch) throws(ConnectError) -> (id: String, expired: [EnvdWatch]) {
        let now = Date()
        let expired = watches.filter { now.timeIntervalSince($0.value.lastUsed) >= Self.idleLimit }
        let live = watches.values.filter { $0.sandboxId == watch.sandboxId && now.timeIntervalSince($0.lastUsed) < Self.idleLimit }
        guard live.count < Self.maxPerSandbox else {
            throw ConnectError(.resourceExhausted, "this sandbox has \(Self.maxPerSandbox) watchers; remove one (RemoveWatcher) first")
        }
        for id in expired.keys { watches[id] = nil }
        let id = UUID().uuidString.lowercased()
        watches[id] = watch
        return (id, Array(expired.values))
    }

    func get(_ id: String, sandboxId: String) -> EnvdWatch? {
        guard let w = watches[id], w.sandboxId == sandboxId else { return nil }
        return w
    }

    /// Notes that the watcher was polled (an idle one is dropped).
    func touch(_ id: String) {
        watches[id]?.lastUsed = Date()
    }

    func remove(_ id: String, sandboxId: String) -> EnvdWatch? {
        guard let w = watches[id], w.sandboxId == sandboxId else { return nil }
        watches[id] = nil
        return w
    }
}

extension EnvdFilesystemService {
    /// How often a WatchDir stream takes the agent's events, and how many empty takes pass before
    /// a keepalive when the client names no interval.
    static let watchInterval: Duration = .milliseconds(100)
    static let keepaliveEvery = 100
    /// The SDK's `Keepalive-Ping-Interval` (seconds): a keepalive after that long without events.
    static let keepaliveHeader = HTTPField.Name("Keepalive-Ping-Interval")!
    /// Most events of one take that get an entry (`includeEntry` stats each one).
    static let maxEntriesPerTake = 256

    /// A watch of `r.path` (which must be a directory).
    func startWatch(_ target: E2BTarget, _ r: EnvdWatchRequest, user: String) async throws -> EnvdWatch {
        let root = try EnvdPath.resolve(r.path, user: user)
        let entry = try await manager.stat(tenantId: target.tenantId, id: target.sandboxId, path: root)
        guard entry.type == .directory || entry.type == .symlink else { throw ConnectError(.invalidArgument, "path \(root) is not a directory") }
        let id = try await manager.addFileWatch(tenantId: target.tenantId, id: target.sandboxId, path: root, recursive: r.recursive)
        return EnvdWatch(tenantId: target.tenantId, sandboxId: target.sandboxId, agentWatch: id, root: root, includeEntry: r.includeEntry)
    }

    /// Removes the agent's watch, also from a task that was cancelled (a stream whose client
    /// went): the removal runs in a task of its own, awaited here.
    func stopWatch(_ watch: EnvdWatch) async {
        let manager = self.manager
        await Task {
            try? await manager.removeFileWatch(tenantId: watch.tenantId, id: watch.sandboxId, watch: watch.agentWatch)
        }.value
    }

    /// The changes since the last take, with entries when the watch asked for them (not for
    /// removes and renames: the entry is gone from that path).
    func take(_ target: E2BTarget, _ watch: EnvdWatch) async throws -> [EnvdFilesystemEvent] {
        var events = EnvdWatch.events(try await manager.fileWatchEvents(tenantId: watch.tenantId, id: watch.sandboxId, watch: watch.agentWatch))
        guard watch.includeEntry else { return events }
        let names = ownerNames(target)
        let prefix = watch.root == "/" ? "/" : watch.root + "/"
        for i in events.indices.prefix(Self.maxEntriesPerTake) where events[i].type != .remove && events[i].type != .rename {
            if let e = try? await manager.stat(tenantId: watch.tenantId, id: watch.sandboxId, path: prefix + events[i].name) {
                events[i].entry = EnvdEntryInfo(e, names: names)
            }
        }
        return events
    }

    /// WatchDir: a server stream of `start`, then the changes as inotify reports them, with
    /// keepalives; it ends (and the watch with it) when the client goes or the sandbox does.
    func watchDir(_ request: Request, _ target: E2BTarget) async throws -> Response {
        let watch: EnvdWatch
        do {
            let r = try await Connect.decodeStreamRequest(EnvdWatchRequest.self, from: request)
            watch = try await startWatch(target, r, user: try EnvdPath.user(nil, default: target.user))
        } catch {
            let failure = EnvdErrors.connect(error)
            return Connect.serverStream(EnvdWatchDirResponse.self) { _ in throw failure }
        }
        let quietLimit = request.headers[Self.keepaliveHeader].flatMap { Int($0) }.map { min(max($0, 1), 300) * 10 } ?? Self.keepaliveEvery
        return Connect.serverStream(EnvdWatchDirResponse.self) { send in
            do {
                try await send(.start)
                var quiet = 0
                while !Task.isCancelled {
                    try await Task.sleep(for: Self.watchInterval)
                    let events: [EnvdFilesystemEvent]
                    do { events = try await take(target, watch) } catch { throw EnvdErrors.connect(error) }
                    for e in events { try await send(.filesystem(e)) }
                    quiet = events.isEmpty ? quiet + 1 : 0
                    if quiet >= quietLimit {
                        quiet = 0
                        try await send(.keepalive)
                    }
                }
            } catch {
                await stopWatch(watch)
                throw error
            }
            await stopWatch(watch)
        }
    }
}

import Foundation
import Hummingbird
import SandboxCore
import SandboxManager

/// envd's `filesystem.Filesystem` Connect service (port 49983), over SandboxManager's file API:
/// every call goes through the sandbox's agent (the sandbox user's permissions, /proc and /sys
/// refused) and lands in the audit trail as `/v1`'s file calls do.
struct EnvdFilesystemService: E2BSandboxService {
    static let prefix = "/filesystem.Filesystem/"
    /// Most entries a ListDir answers.
    static let maxEntries = 10_000

    let manager: SandboxManager
    let watchers: EnvdWatchers
    var port: Int { E2BTarget.envdPort }

    /// As envd: the file operations of a call act as its user (`root` through `Authorization: Basic`).
    func respond(to request: Request, target: E2BTarget, context: APIRequestContext) async throws -> Response? {
        try await SandboxFileUser.acting(asRoot: target.user == "root") { try await respondAsUser(to: request, target: target) }
    }

    func respondAsUser(to request: Request, target: E2BTarget) async throws -> Response? {
        let path = request.uri.path
        guard path.hasPrefix(Self.prefix), request.method == .post else { return nil }
        let method = String(path.dropFirst(Self.prefix.count))
        if method == "WatchDir" { return try await watchDir(request, target) }
        do {
            let user = try EnvdPath.user(nil, default: target.user)
            switch method {
            case "Stat":
                let r = try await Connect.decodeUnary(EnvdPathRequest.self, from: request)
                return try Connect.unary(EnvdEntryResponse(entry: try await info(target, try EnvdPath.resolve(r.path, user: user))))
            case "MakeDir":
                let r = try await Connect.decodeUnary(EnvdPathRequest.self, from: request)
                return try Connect.unary(EnvdEntryResponse(entry: try await makeDir(target, try EnvdPath.resolve(r.path, user: user))))
            case "Move":
                let r = try await Connect.decodeUnary(EnvdMoveRequest.self, from: request)
                let from = try EnvdPath.resolve(r.source, user: user), to = try EnvdPath.resolve(r.destination, user: user)
                return try Connect.unary(EnvdEntryResponse(entry: try await move(target, from, to)))
            case "Remove":
                let r = try await Connect.decodeUnary(EnvdPathRequest.self, from: request)
                try await remove(target, try EnvdPath.resolve(r.path, user: user))
                return try Connect.unary(EnvdEmpty())
            case "ListDir":
                let r = try await Connect.decodeUnary(EnvdListDirRequest.self, from: request)
                let entries = try await list(target, try EnvdPath.resolve(r.path, user: user), depth: Int(max(1, r.depth)))
                let names = ownerNames(target)
                return try Connect.unary(EnvdListDirResponse(entries: entries.map { EnvdEntryInfo($0, names: names) }))
            case "CreateWatcher":
                let r = try await Connect.decodeUnary(EnvdWatchRequest.self, from: request)
                let watch = try await startWatch(target, r, user: user)
                let added: (id: String, expired: [EnvdWatch])
                do { added = try await watchers.add(watch) } catch {
                    await stopWatch(watch)
                    throw error
                }
                for old in added.expired { await stopWatch(old) }
                return try Connect.unary(EnvdCreateWatcherResponse(watcherId: added.id))
            case "GetWatcherEvents":
                let r = try await Connect.decodeUnary(EnvdWatcherIdRequest.self, from: request)
                guard let watch = await watchers.get(r.watcherId, sandboxId: target.sandboxId) else {
                    throw ConnectError(.notFound, "no watcher \(r.watcherId) in this sandbox (removed, or never created here)")
                }
                let events = try await take(target, watch)
                await watchers.touch(r.watcherId)
                return try Connect.unary(EnvdWatcherEventsResponse(events: events))
            case "RemoveWatcher":
                let r = try await Connect.decodeUnary(EnvdWatcherIdRequest.self, from: request)
                guard let watch = await watchers.remove(r.watcherId, sandboxId: target.sandboxId) else {
                    throw ConnectError(.notFound, "no watcher \(r.watcherId) in this sandbox")
                }
                await stopWatch(watch)
                return try Connect.unary(EnvdEmpty())
            default:
                throw ConnectError(.unimplemented, "filesystem.Filesystem has no method \(method)")
            }
        } catch {
            return EnvdErrors.connect(error).unaryResponse
        }
    }

    func ownerNames(_ target: E2BTarget) -> EnvdOwnerNames {
        EnvdOwnerNames(sandboxUid: target.record.profile.uid, sandboxGid: target.record.profile.gid)
    }

    func info(_ target: E2BTarget, _ path: String) async throws -> EnvdEntryInfo {
        EnvdEntryInfo(try await manager.stat(tenantId: target.tenantId, id: target.sandboxId, path: path), names: ownerNames(target))
    }

    /// envd's MakeDir: `already_exists` for a directory that is there, `invalid_argument` for a
    /// file in the way, else the directory with its parents.
    func makeDir(_ target: E2BTarget, _ path: String) async throws -> EnvdEntryInfo {
        if let existing = try? await manager.stat(tenantId: target.tenantId, id: target.sandboxId, path: path) {
            if existing.type == .directory { throw ConnectError(.alreadyExists, "directory already exists: \(path)") }
            throw ConnectError(.invalidArgument, "path already exists but it is not a directory: \(path)")
        }
        try await manager.makeDirectory(tenantId: target.tenantId, id: target.sandboxId, path: path, parents: true, actor: target.actor)
        return EnvdEntryInfo(name: EnvdPath.baseName(path), type: .directory, path: path)
    }

    /// envd's Remove (Go's RemoveAll): a whole tree; a path that is not there is already removed.
    func remove(_ target: E2BTarget, _ path: String) async throws {
        do {
            try await manager.removeFile(tenantId: target.tenantId, id: target.sandboxId, path: path, recursive: true, actor: target.actor)
        } catch let e as SandboxError where e.code == .notFound && e.message.hasPrefix("remove ") {
            return
        }
    }

    /// envd's Move: the destination's parents are made, then the rename; answers the moved entry.
    func move(_ target: E2BTarget, _ from: String, _ to: String) async throws -> EnvdEntryInfo {
        _ = try await manager.stat(tenantId: target.tenantId, id: target.sandboxId, path: from)
        let parent = EnvdPath.parent(to)
        if parent != "/" {
            try await manager.makeDirectory(tenantId: target.tenantId, id: target.sandboxId, path: parent, parents: true, actor: target.actor)
        }
        try await manager.move(tenantId: target.tenantId, id: target.sandboxId, from: from, to: to, actor: target.actor)
        return try await info(target, to)
    }

    /// The entries under `root` down to `depth` levels, in the order Go's WalkDir gives (each
    /// directory's entries by name, a directory's children right after it); symlinks to
    /// directories are not followed. Subdirectories the user cannot read are left out.
    func list(_ target: E2BTarget, _ root: String, depth: Int) async throws -> [FileEntry] {
        var result: [FileEntry] = []
        func walk(_ dir: String, _ level: Int) async throws {
            let items: [FileEntry]
            do {
                items = try await manager.listDirectory(tenantId: target.tenantId, id: target.sandboxId, path: dir)
            } catch where level > 1 {
                return
            }
            for item in items {
                guard result.count < Self.maxEntries else {
                    throw ConnectError(.resourceExhausted, "\(root) holds more than \(Self.maxEntries) entries to depth \(depth); list a smaller directory or a lower depth")
                }
                result.append(item)
                if item.type == .directory, level < depth { try await walk(item.path, level + 1) }
            }
        }
        try await walk(root, 1)
        return result
    }
}

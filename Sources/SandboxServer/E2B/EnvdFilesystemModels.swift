import Foundation
import SandboxCore

#if canImport(Glibc)
import Glibc
#endif

/// envd's `filesystem.FileType`, named as proto3 JSON names enum values.
enum EnvdFileType: String, Sendable, Encodable {
    case unspecified = "FILE_TYPE_UNSPECIFIED"
    case file = "FILE_TYPE_FILE"
    case directory = "FILE_TYPE_DIRECTORY"
    case symlink = "FILE_TYPE_SYMLINK"

    init(_ kind: FileEntry.Kind) {
        switch kind {
        case .file: self = .file
        case .directory: self = .directory
        case .symlink: self = .symlink
        case .other: self = .unspecified
        }
    }
}

/// envd's `filesystem.EventType`.
enum EnvdEventType: String, Sendable, Encodable, Equatable {
    case create = "EVENT_TYPE_CREATE"
    case write = "EVENT_TYPE_WRITE"
    case remove = "EVENT_TYPE_REMOVE"
    case rename = "EVENT_TYPE_RENAME"
    case chmod = "EVENT_TYPE_CHMOD"
}

/// envd's `filesystem.EntryInfo` in proto3 JSON: camelCase, int64 as a string, fields at their
/// default value left out, `modifiedTime` as an RFC 3339 timestamp.
struct EnvdEntryInfo: Sendable, Encodable, Equatable {
    var name: String
    var type: EnvdFileType
    var path: String
    var size: Int64 = 0
    var mode: UInt32 = 0
    var permissions = ""
    var owner = ""
    var group = ""
    var modifiedTime: Date?
    var symlinkTarget: String?
    var metadata: [String: String] = [:]

    /// The entry as envd shapes it; `names` turns uids and gids into names.
    init(_ entry: FileEntry, names: EnvdOwnerNames = .init()) {
        name = entry.name
        type = EnvdFileType(entry.type)
        path = entry.path
        size = entry.size
        mode = entry.mode & 0o777
        permissions = Self.permissions(entry.type, entry.mode)
        owner = entry.uid.map(names.user) ?? ""
        group = entry.gid.map(names.group) ?? ""
        modifiedTime = Date(timeIntervalSince1970: entry.mtime)
        symlinkTarget = entry.target
        metadata = entry.metadata ?? [:]
    }

    /// Just a name, a type and a path (what envd answers for a directory it made).
    init(name: String, type: EnvdFileType, path: String) {
        self.name = name
        self.type = type
        self.path = path
    }

    /// A mode as Go's `FileMode.String()` writes it, which envd sends: `-rw-r--r--`,
    /// `drwxr-xr-x`, `Lrwxrwxrwx`, `dtrwxrwxrwx` (sticky), `urwxr-xr-x` (setuid).
    static func permissions(_ kind: FileEntry.Kind, _ mode: UInt32) -> String {
        var text = ""
        if kind == .directory { text += "d" }
        if kind == .symlink { text += "L" }
        if mode & 0o4000 != 0 { text += "u" }
        if mode & 0o2000 != 0 { text += "g" }
        if mode & 0o1000 != 0 { text += "t" }
        if text.isEmpty { text = "-" }
        let letters: [Character] = ["r", "w", "x"]
        for bit in 0..<9 {
            text.append(mode & (1 << (8 - UInt32(bit))) != 0 ? letters[bit % 3] : "-")
        }
        return text
    }

    enum CodingKeys: String, CodingKey {
        case name, type, path, size, mode, permissions, owner, group, modifiedTime, symlinkTarget, metadata
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        if !name.isEmpty { try c.encode(name, forKey: .name) }
        if type != .unspecified { try c.encode(type, forKey: .type) }
        if !path.isEmpty { try c.encode(path, forKey: .path) }
        if size != 0 { try c.encode(String(size), forKey: .size) }
        if mode != 0 { try c.encode(mode, forKey: .mode) }
        if !permissions.isEmpty { try c.encode(permissions, forKey: .permissions) }
        if !owner.isEmpty { try c.encode(owner, forKey: .owner) }
        if !group.isEmpty { try c.encode(group, forKey: .group) }
        if let modifiedTime { try c.encode(ProtoTimestamp.string(modifiedTime), forKey: .modifiedTime) }
        if let symlinkTarget { try c.encode(symlinkTarget, forKey: .symlinkTarget) }
        if !metadata.isEmpty { try c.encode(metadata, forKey: .metadata) }
    }
}

/// Owner and group names of a sandbox's files. The sandbox's own `/etc/passwd` is not read (it
/// is the sandbox's to rewrite): uid/gid 0 is `root`, the sandbox user's is `user` (the name
/// E2B's templates give it), any other id is its number, as envd answers for an id it cannot name.
struct EnvdOwnerNames: Sendable {
    var sandboxUid: UInt32 = 1000
    var sandboxGid: UInt32 = 1000

    func user(_ uid: UInt32) -> String { uid == 0 ? "root" : uid == sandboxUid ? "user" : String(uid) }
    func group(_ gid: UInt32) -> String { gid == 0 ? "root" : gid == sandboxGid ? "user" : String(gid) }
}

/// google.protobuf.Timestamp in proto3 JSON: RFC 3339 in UTC with 0, 3, 6 or 9 fractional digits.
enum ProtoTimestamp {
    static func string(_ date: Date) -> String {
        let seconds = date.timeIntervalSince1970.rounded(.down)
        var nanos = Int(((date.timeIntervalSince1970 - seconds) * 1e9).rounded())
        var whole = Int64(seconds)
        if nanos >= 1_000_000_000 { whole += 1; nanos -= 1_000_000_000 }
        var t = time_t(whole)
        var parts = tm()
        gmtime_r(&t, &parts)
        let stem = String(format: "%04d-%02d-%02dT%02d:%02d:%02d", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday),
                          Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec))
        if nanos == 0 { return stem + "Z" }
        let digits = String(format: "%09d", nanos)
        let fraction = nanos % 1_000_000 == 0 ? digits.prefix(3) : nanos % 1000 == 0 ? digits.prefix(6) : Substring(digits)
        return stem + "." + fraction + "Z"
    }
}

/// The fields of a request message, read by proto3 JSON's rules: a field's JSON (camelCase)
/// name or its proto name; integers as numbers or strings; a missing field is its default.
struct ProtoFields {
    private let container: KeyedDecodingContainer<BodyKey>

    init(_ decoder: any Decoder) throws {
        container = try decoder.container(keyedBy: BodyKey.self)
    }

    private func key(_ json: String, _ proto: String) -> BodyKey? {
        [BodyKey(json), BodyKey(proto)].first { container.contains($0) }
    }

    func string(_ json: String, _ proto: String? = nil) throws -> String {
        guard let k = key(json, proto ?? json), try !container.decodeNil(forKey: k) else { return "" }
        return try container.decode(String.self, forKey: k)
    }

    func bool(_ json: String, _ proto: String? = nil) throws -> Bool {
        guard let k = key(json, proto ?? json), try !container.decodeNil(forKey: k) else { return false }
        return try container.decode(Bool.self, forKey: k)
    }

    func uint32(_ json: String, _ proto: String? = nil) throws -> UInt32 {
        guard let k = key(json, proto ?? json), try !container.decodeNil(forKey: k) else { return 0 }
        if let n = try? container.decode(UInt32.self, forKey: k) { return n }
        guard let n = UInt32(try container.decode(String.self, forKey: k)) else {
            throw ConnectError(.invalidArgument, "\(json) must be an unsigned 32-bit integer")
        }
        return n
    }
}

/// `StatRequest`, `MakeDirRequest`, `RemoveRequest`: a path.
struct EnvdPathRequest: Decodable, Sendable {
    var path: String
    init(from decoder: any Decoder) throws { path = try ProtoFields(decoder).string("path") }
}

/// `MoveRequest`.
struct EnvdMoveRequest: Decodable, Sendable {
    var source: String
    var destination: String
    init(from decoder: any Decoder) throws {
        let f = try ProtoFields(decoder)
        source = try f.string("source")
        destination = try f.string("destination")
    }
}

/// `ListDirRequest`: depth 0 means 1.
struct EnvdListDirRequest: Decodable, Sendable {
    var path: String
    var depth: UInt32
    init(from decoder: any Decoder) throws {
        let f = try ProtoFields(decoder)
        path = try f.string("path")
        depth = try f.uint32("depth")
    }
}

/// `WatchDirRequest` and `CreateWatcherRequest` (same fields).
struct EnvdWatchRequest: Decodable, Sendable {
    var path: String
    var recursive: Bool
    var includeEntry: Bool
    init(from decoder: any Decoder) throws {
        let f = try ProtoFields(decoder)
        path = try f.string("path")
        recursive = try f.bool("recursive")
        includeEntry = try f.bool("includeEntry", "include_entry")
    }
}

/// `GetWatcherEventsRequest`, `RemoveWatcherRequest`.
struct EnvdWatcherIdRequest: Decodable, Sendable {
    var watcherId: String
    init(from decoder: any Decoder) throws { watcherId = try ProtoFields(decoder).string("watcherId", "watcher_id") }
}

/// A response holding one entry (`StatResponse`, `MakeDirResponse`, `MoveResponse`).
struct EnvdEntryResponse: Encodable, Sendable {
    var entry: EnvdEntryInfo
}

/// `ListDirResponse`.
struct EnvdListDirResponse: Encodable, Sendable {
    var entries: [EnvdEntryInfo]
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: BodyKey.self)
        if !entries.isEmpty { try c.encode(entries, forKey: BodyKey("entries")) }
    }
}


/// `FilesystemEvent`: `name` is relative to the watched directory.
struct EnvdFilesystemEvent: Encodable, Sendable, Equatable {
    var name: String
    var type: EnvdEventType
    var entry: EnvdEntryInfo?
}

/// `WatchDirResponse`: a oneof of `start`, `filesystem`, `keepalive`.
enum EnvdWatchDirResponse: Encodable, Sendable {
    case start
    case filesystem(EnvdFilesystemEvent)
    case keepalive

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: BodyKey.self)
        switch self {
        case .start: try c.encode(EnvdEmpty(), forKey: BodyKey("start"))
        case .filesystem(let e): try c.encode(e, forKey: BodyKey("filesystem"))
        case .keepalive: try c.encode(EnvdEmpty(), forKey: BodyKey("keepalive"))
        }
    }
}

/// `CreateWatcherResponse`.
struct EnvdCreateWatcherResponse: Encodable, Sendable {
    var watcherId: String
}

/// `GetWatcherEventsResponse`.
struct EnvdWatcherEventsResponse: Encodable, Sendable {
    var events: [EnvdFilesystemEvent]
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: BodyKey.self)
        if !events.isEmpty { try c.encode(events, forKey: BodyKey("events")) }
    }
}

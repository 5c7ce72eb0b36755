import Foundation
import SandboxCore
import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// The `kv.get`/`kv.set` tools' store: JSON values by key, at most ``maxBytes`` in all.
///
/// A one-shot run's store starts empty and ends with the run. A long-lived sandbox's store is a
/// file in the sandbox's host directory (never in its workspace): loaded when a run starts, and
/// written back atomically (a temp file in the same directory, then `rename`) when a run that
/// changed it ends, so a crash leaves the previous version or the new one, never a mix.
///
/// The size of an entry is what it takes in the file: its key and value as JSON, plus 2 bytes.
struct KVStore {
    /// Largest store, bytes (the file is at most this plus 2 bytes).
    static let maxBytes = 4 << 20

    /// `Any` values are what `JSONSerialization` made (immutable Foundation objects).
    private(set) var entries: [String: Any] = [:]
    private(set) var bytes = 0
    /// Whether a `set` happened since the store was loaded.
    private(set) var changed = false

    init() {}

    static func size(key: String, value: Any) -> Int {
        ToolBridge.encode(key).count + ToolBridge.encode(value).count + 2
    }

    func value(_ key: String) -> Any? { entries[key] }

    /// Sets `key`; false (and nothing changed) when the store would grow over ``maxBytes``.
    mutating func set(_ key: String, _ value: Any) -> Bool {
        let old = entries[key].map { Self.size(key: key, value: $0) } ?? 0
        let new = Self.size(key: key, value: value)
        guard bytes - old + new <= Self.maxBytes else { return false }
        entries[key] = value
        bytes += new - old
        changed = true
        return true
    }

    /// The store in the file at `path`; empty when there is no file yet.
    static func load(path: String) throws(SandboxError) -> KVStore {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        if fd < 0 {
            if errno == ENOENT { return KVStore() }
            throw Syscall.error("open the kv store \(path)", errno: errno)
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            throw SandboxError(.setupFailed, "the kv store \(path) is not a regular file; remove it (the sandbox's kv data is lost) or destroy the sandbox")
        }
        let cap = maxBytes + 1024
        guard st.st_size <= cap else {
            throw SandboxError(.setupFailed, "the kv store \(path) is \(st.st_size) bytes, over the store's limit of \(maxBytes) bytes; it was not written by sandboxer: remove it or destroy the sandbox")
        }
        var data = [UInt8](repeating: 0, count: Int(st.st_size) + 1)
        var got = 0
        while got < data.count {
            let want = data.count - got
            let n = data.withUnsafeMutableBytes { read(fd, $0.baseAddress! + got, want) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw Syscall.error("read the kv store \(path)", errno: errno) }
            if n == 0 { break }
            got += n
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(data[0..<got])), let dict = object as? [String: Any] else {
            throw SandboxError(.setupFailed, "the kv store \(path) is not a JSON object; it was not written by sandboxer: remove it or destroy the sandbox")
        }
        var store = KVStore()
        for (key, value) in dict {
            guard store.set(key, value) else {
                throw SandboxError(.setupFailed, "the kv store \(path) holds more than \(maxBytes) bytes; remove it or destroy the sandbox")
            }
        }
        store.changed = false
        return store
    }

    /// Writes the store to `path` atomically: a new file beside it, flushed, then renamed over it.
    func save(path: String) throws(SandboxError) {
        let dir = (path as NSString).deletingLastPathComponent
        let base = (path as NSString).lastPathComponent
        var rng = SystemRandomNumberGenerator()
        let temp = "\(dir)/.\(base).\(String(rng.next(), radix: 16))"
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        if fd < 0 { throw Syscall.error("create a temp file for the kv store in \(dir)", errno: errno) }
        var ok = false
        defer {
            close(fd)
            if !ok { unlink(temp) }
        }
        let data = ToolBridge.encode(entries)
        var off = 0
        while off < data.count {
            let n = data.withUnsafeBytes { write(fd, $0.baseAddress! + off, data.count - off) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { throw Syscall.error("write the kv store \(temp)", errno: errno) }
            off += n
        }
        if fsync(fd) != 0 { throw Syscall.error("flush the kv store \(temp)", errno: errno) }
        if rename(temp, path) != 0 { throw Syscall.error("rename \(temp) to \(path)", errno: errno) }
        ok = true
    }
}

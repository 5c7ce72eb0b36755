import AgentProtocol
import CSandboxAgent

#if canImport(Glibc)
import Glibc
#endif

/// User metadata of files as `user.e2b.<key>` extended attributes (E2B's envd keeps it there).
extension Files {
    static let metadataPrefix = "user.e2b."
    /// Most keys, and bytes of keys and values, of metadata an entry carries.
    static let maxMetadataKeys = 64
    static let maxMetadataBytes = 16 << 10
    /// O_PATH (Linux), which Glibc's Swift overlay does not export.
    static let oPath: Int32 = 0o10000000

    /// The entry's `user.e2b.*` attributes, the prefix stripped; nil when it has none (or the
    /// filesystem keeps no xattrs).
    static func metadata(_ path: String) -> [String: String]? {
        var names = [CChar](repeating: 0, count: 8192)
        let n = sbx_agent_llistxattr(path, &names, UInt(names.count))
        guard n > 0 else { return nil }
        var result: [String: String] = [:]
        var value = [UInt8](repeating: 0, count: maxMetadataBytes)
        var total = 0
        for raw in names[0..<n].split(separator: 0) {
            let name = String(decoding: raw.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            guard name.hasPrefix(metadataPrefix), result.count < maxMetadataKeys else { continue }
            let size = value.withUnsafeMutableBytes { sbx_agent_lgetxattr(path, name, $0.baseAddress, UInt($0.count)) }
            // At most maxMetadataBytes per entry in all: a listing stays within its frame.
            guard size >= 0, total + size + name.utf8.count <= maxMetadataBytes else { continue }
            total += size + name.utf8.count
            result[String(name.dropFirst(metadataPrefix.count))] = String(decoding: value[0..<size], as: UTF8.self)
        }
        return result.isEmpty ? nil : result
    }

    /// Sets `user.e2b.<key>` for each key (lowercased, as envd stores them). Entries on /proc or
    /// /sys are refused like every other file operation there.
    static func setMetadata(_ path: String, _ metadata: [String: String]) -> AgentEvent {
        guard case .success(let p) = Files.path(path) else { return Files.path(path).refusal }
        guard metadata.count <= maxMetadataKeys else {
            return .error(.tooLarge, "\(metadata.count) metadata keys are over the limit of \(maxMetadataKeys)")
        }
        let bytes = metadata.reduce(0) { $0 + metadataPrefix.utf8.count + $1.key.utf8.count + $1.value.utf8.count }
        guard bytes <= maxMetadataBytes else {
            return .error(.tooLarge, "the metadata's keys and values take \(bytes) bytes, over the limit of \(maxMetadataBytes)")
        }
        if let refusal = magicLinkRefusal(p, followFinal: false) { return refusal }
        let fd = open(p, oPath | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return failure("open", p) }
        defer { close(fd) }
        if onKernelFilesystem(fd) { return kernelFilesystemRefusal(p) }
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            guard !key.isEmpty, !key.utf8.contains(0), !value.utf8.contains(0) else {
                return .error(.badRequest, "metadata keys must be non-empty and neither key nor value may hold a NUL byte")
            }
            let bytes = Array(value.utf8)
            let rc = bytes.withUnsafeBytes { sbx_agent_lsetxattr(p, metadataPrefix + key.lowercased(), $0.baseAddress, UInt($0.count)) }
            if rc != 0 { return failure("set metadata \(key) of", p) }
        }
        return .ok
    }
}

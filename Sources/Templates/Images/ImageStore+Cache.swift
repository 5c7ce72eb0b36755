import Foundation
import SandboxCore
import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

extension ImageStore {
    /// The machine's cache of built-in base templates (`debian`), shared by every data directory:
    /// `$SANDBOXER_CACHE`, else `/var/cache/sandboxer`. A base is built there once; a data
    /// directory gets the image's blobs (hard links where possible) and reads its unpacked layers
    /// from the cache (``sharedLayers``).
    public static var machineCacheDirectory: String {
        ProcessInfo.processInfo.environment["SANDBOXER_CACHE"].flatMap { $0.isEmpty ? nil : $0 } ?? "/var/cache/sandboxer"
    }

    /// The image store of the machine cache.
    public static var machineCache: ImageStore { ImageStore(dataDirectory: machineCacheDirectory) }

    /// Whether this store is the machine cache.
    public var isMachineCache: Bool { sharedLayers == nil }

    /// Whether the store has a template called `name`.
    public func has(_ name: String) -> Bool {
        ((try? readIndex())?.manifests.contains { $0.refName == name }) ?? false
    }

    /// Makes a built-in base template (`debian`) exist in this store, building it in the machine
    /// cache the first time (minutes at most; concurrent callers wait for the one build); the
    /// built-in `code-interpreter-v1` is copied from the machine cache when it is current there
    /// (``CodeInterpreterTemplate/ensure(in:runner:progress:)`` builds it). Any other name is left
    /// alone (it exists or the sandbox's set-up says which templates there are).
    public func ensureBuiltIn(_ name: String, mirror: String? = nil) async throws(SandboxError) {
        if name == CodeInterpreterTemplate.name { return try await CodeInterpreterTemplate.adoptFromCache(into: self) }
        guard name == DebianBase.name, !DebianBase.isCurrent(in: self) else { return }
        _ = try await DebianBase.ensure(in: self, mirror: mirror)
    }

    /// Copies template `name` of `other` into this store under the same name: its blobs are hard
    /// linked where both stores share a filesystem, else symbolic links to `other`'s (a data
    /// directory on a small filesystem of its own does not hold a second copy of a base). The
    /// layers are not unpacked again: this store reads them from the machine cache's.
    func adopt(_ name: String, from other: ImageStore) async throws(SandboxError) -> TemplateInfo {
        let image = try other.image(name)
        let blobs = [image.info.digest, image.manifest.config.digest] + image.manifest.layers.map(\.digest)
        try await locked { () throws(SandboxError) in
            try writer.prepare()
            for digest in blobs {
                let target = blobPath(digest)
                if FileManager.default.fileExists(atPath: target) { continue }
                let temporary = "\(layout)/blobs/sha256/.adopt-\(digest.short)-\(UUID().uuidString.prefix(8))"
                if link(other.blobPath(digest), temporary) != 0 && symlink(other.blobPath(digest), temporary) != 0 {
                    throw Syscall.error("linking blob \(digest.short) of template \(name) from \(other.layout)", errno: errno)
                }
                guard rename(temporary, target) == 0 else {
                    let e = errno
                    unlink(temporary)
                    throw Syscall.error("storing blob \(digest.short)", errno: e)
                }
            }
            guard let descriptor = try other.readIndex().manifests.last(where: { $0.refName == name }) else {
                throw SandboxError(.notFound, "template \(name) vanished from \(other.layout) while it was copied; try again")
            }
            try writer.name(descriptor, name)
        }
        _ = try await lowerDirectories(name)
        logger.info("template copied from the machine cache", metadata: ["template": "\(name)", "digest": "\(image.info.digest)"])
        return try self.image(name).info
    }
}

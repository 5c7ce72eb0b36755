import Foundation
import SandboxCore

#if canImport(Glibc)
import Glibc
#endif

/// The layer cache of template builds: a `RUN` step's key (the digest of its parent's key, its
/// instruction and the build state it runs in) → the layer it made. Kept beside `index.json` in
/// the image layout (`sandboxer-build-cache.json`), read and written under the store's lock; an
/// entry whose blob garbage collection removed (no template uses the layer any more) is dropped.
struct BuildCache: Codable {
    var steps: [String: OCIDescriptor] = [:]

    static func path(_ store: ImageStore) -> String { store.layout + "/sandboxer-build-cache.json" }

    static func read(_ store: ImageStore) -> BuildCache {
        guard let data = FileManager.default.contents(atPath: path(store)),
              let cache = try? JSONDecoder().decode(BuildCache.self, from: data) else { return BuildCache() }
        return cache
    }

    func write(_ store: ImageStore) throws(SandboxError) {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do { try enc.encode(self).write(to: URL(fileURLWithPath: Self.path(store)), options: .atomic) } catch {
            throw SandboxError(.system, "writing the build cache \(Self.path(store)): \(error)")
        }
    }
}

extension ImageStore {
    /// The cached layer of the step with `key`, when its blob is still in the store.
    func cachedLayer(_ key: String) async throws(SandboxError) -> OCIDescriptor? {
        try await locked { () throws(SandboxError) -> OCIDescriptor? in
            guard let layer = BuildCache.read(self).steps[key], FileManager.default.fileExists(atPath: blobPath(layer.digest)) else { return nil }
            return layer
        }
    }

    /// Records that the step with `key` made `layer`.
    func cacheLayer(_ key: String, _ layer: OCIDescriptor) async throws(SandboxError) {
        try await locked { () throws(SandboxError) in
            var cache = BuildCache.read(self)
            cache.steps[key] = layer
            try cache.write(self)
        }
    }

    /// Removes the working images of builds whose process is gone (`sandboxer-build-<pid>-…`; a
    /// crashed CLI or server), with what only they used.
    func removeAbandonedBuilds() async throws(SandboxError) {
        try await locked { () throws(SandboxError) in
            var index = try readIndex()
            let before = index.manifests.count
            index.manifests.removeAll { d in
                guard let name = d.refName, name.hasPrefix(TemplateBuilder.workingPrefix),
                      let pid = Int32(name.dropFirst(TemplateBuilder.workingPrefix.count).prefix { $0 != "-" }) else { return false }
                return kill(pid, 0) != 0 && errno == ESRCH
            }
            guard index.manifests.count != before else { return }
            try writer.writeIndex(index)
            try collectGarbage()
        }
    }

    /// Drops cache entries whose layer blob is gone (called by garbage collection, under the lock).
    func pruneBuildCache() {
        var cache = BuildCache.read(self)
        let before = cache.steps.count
        cache.steps = cache.steps.filter { FileManager.default.fileExists(atPath: blobPath($0.value.digest)) }
        if cache.steps.count != before { try? cache.write(self) }
    }
}

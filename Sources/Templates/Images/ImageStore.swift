import Crypto
import Foundation
import Logging
import SandboxCore
import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// A template as listings show it: a name pointing at an image manifest, whose digest is the
/// template's identity everywhere.
public struct TemplateInfo: Sendable, Codable, Equatable {
    public var name: String
    public var digest: ImageDigest
    public var created: String?
    /// The image's blobs (layers and config), as stored.
    public var sizeBytes: Int64
    public var layers: Int
    public var architecture: String
    /// The index entry's annotations (a snapshot's tenant and sandbox; not encoded).
    public var annotations: [String: String] = [:]

    /// `snapshot` for a sandbox's snapshot (``ImageStore/snapshotPrefix``), else `template`.
    public var kind: String { annotations[ImageStore.SnapshotAnnotation.tenant] != nil ? "snapshot" : "template" }

    enum CodingKeys: String, CodingKey {
        case name, digest, created, layers, architecture
        case sizeBytes = "size_bytes"
    }
}

/// One template in full: its manifest, its configuration and its layers.
public struct TemplateImage: Sendable {
    public var info: TemplateInfo
    public var manifest: OCIManifest
    public var config: OCIImageConfig
}

/// Every template of a data directory in one OCI image layout (`<data>/images`: `oci-layout`,
/// `index.json`, `blobs/sha256/…`), each layer unpacked once into `<data>/layers/<diff id>` in
/// overlayfs's format (``LayerUnpacker``). A template is a name in `index.json`
/// (`org.opencontainers.image.ref.name`). Images come in and go out through `skopeo` (OCI
/// directories and archives, `docker save` archives, registries); changes take an exclusive lock
/// on the data directory's `images.lock`, so a CLI and a server on the same directory agree.
public struct ImageStore: Sendable {
    public let layout: String
    public let layers: String
    let lockPath: String
    /// A second directory of unpacked layers, read (never written or collected) before unpacking
    /// one here: the machine cache's, where the built-in bases' layers are unpacked once for every
    /// data directory (nil for the machine cache itself).
    public let sharedLayers: String?
    /// The most a layer may unpack to.
    public var layerLimit: Int64
    let logger: Logger

    /// Names a template cannot have: built in (`host`) or Dockerfile words (`scratch`).
    public static let reservedNames: Set<String> = ["host", "scratch"]
    /// The prefix of the store's own images (a build's image so far, an imported `FROM` source,
    /// staging names): never listed, and no template's name.
    public static let internalPrefix = "sandboxer-"

    /// Where builds make their temporary directories (never below ``layers``, whose unknown
    /// entries garbage collection removes).
    public var buildDirectory: String { (layout as NSString).deletingLastPathComponent + "/build" }

    public init(dataDirectory: String, layerLimit: Int64 = 8 << 30, logger: Logger = Logger(label: "sandboxer.images")) {
        layout = dataDirectory + "/images"
        layers = dataDirectory + "/layers"
        lockPath = dataDirectory + "/images.lock"
        let cache = Self.machineCacheDirectory
        sharedLayers = dataDirectory == cache ? nil : cache + "/layers"
        self.layerLimit = layerLimit
        self.logger = logger
    }

    // MARK: - Reading

    /// Every template, by name.
    public func list() throws(SandboxError) -> [TemplateInfo] {
        let index = try readIndex()
        var out: [TemplateInfo] = []
        for d in index.manifests {
            guard let name = d.refName, !name.hasPrefix(Self.internalPrefix) else { continue }
            out.append(try image(name: name, descriptor: d).info)
        }
        return out.sorted { $0.name < $1.name }
    }

    /// The template `name` in full; `not_found` naming the templates there are.
    public func image(_ name: String) throws(SandboxError) -> TemplateImage {
        guard let d = try readIndex().manifests.last(where: { $0.refName == name }) else {
            let known = (try? list().map(\.name)) ?? []
            throw SandboxError(.notFound, "no template '\(name)'; templates here: \((["host"] + known).joined(separator: ", ")) (sandboxer template import SRC NAME adds one)")
        }
        return try image(name: name, descriptor: d)
    }

    private func image(name: String, descriptor d: OCIDescriptor) throws(SandboxError) -> TemplateImage {
        let manifest = try readJSON(OCIManifest.self, blob: d.digest, what: "the manifest of template \(name)")
        let config = try readJSON(OCIImageConfig.self, blob: manifest.config.digest, what: "the configuration of template \(name)")
        guard config.rootfs.diff_ids.count == manifest.layers.count else {
            throw SandboxError(.invalidRequest, "template \(name): its manifest has \(manifest.layers.count) layers but its configuration \(config.rootfs.diff_ids.count)")
        }
        let size = manifest.layers.reduce(manifest.config.size) { $0 + $1.size }
        var info = TemplateInfo(name: name, digest: d.digest, created: config.created ?? d.annotations?[OCIMedia.createdAnnotation],
                                sizeBytes: size, layers: manifest.layers.count, architecture: config.architecture)
        info.annotations = d.annotations ?? [:]
        return TemplateImage(info: info, manifest: manifest, config: config)
    }

    func readIndex() throws(SandboxError) -> OCIIndex { try writer.readIndex() }

    var writer: ImageWriter { ImageWriter(layout: layout) }

    func blobPath(_ digest: ImageDigest) -> String { "\(layout)/blobs/sha256/\(digest.hex)" }

    func readJSON<T: Decodable>(_ type: T.Type, blob: ImageDigest, what: String) throws(SandboxError) -> T {
        try readJSON(type, path: blobPath(blob), what: what)
    }

    func readJSON<T: Decodable>(_ type: T.Type, path: String, what: String) throws(SandboxError) -> T {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SandboxError(.system, "\(what) is missing (\(path)); re-import the template")
        }
        do { return try JSONDecoder().decode(type, from: data) } catch {
            throw SandboxError(.invalidRequest, "\(what) is not valid: \(error)")
        }
    }

    // MARK: - Changing

    /// Checks a template name: lowercase letters, digits, `.`, `_`, `-`, at most 128, not reserved.
    public static func validate(name: String) throws(SandboxError) {
        let alnum = Set("abcdefghijklmnopqrstuvwxyz0123456789")
        let allowed = alnum.union("._-")
        guard let first = name.first, alnum.contains(first), name.count <= 128, name.allSatisfy({ allowed.contains($0) }) else {
            throw SandboxError(.invalidRequest, "template name '\(name)': use lowercase letters, digits, '.', '_' and '-' (starting with a letter or digit, at most 128)")
        }
        guard !reservedNames.contains(name) else {
            throw SandboxError(.invalidRequest, "template name '\(name)' is reserved (\(reservedNames.sorted().joined(separator: ", ")) are built in)")
        }
        guard !name.hasPrefix(snapshotPrefix) else {
            throw SandboxError(.invalidRequest, "template name '\(name)': names starting with \(snapshotPrefix) are sandbox snapshots'; choose another")
        }
        guard !name.hasPrefix(internalPrefix) else {
            throw SandboxError(.invalidRequest, "template name '\(name)': names starting with \(internalPrefix) are the image store's own")
        }
    }

    /// The sources `import` accepts (skopeo transports that need no daemon).
    public static let importTransports = ["oci:", "oci-archive:", "docker-archive:", "docker://"]

    /// Copies the image at `source` (a skopeo reference: `oci:DIR[:tag]`, `oci-archive:FILE`,
    /// `docker-archive:FILE`, `docker://…`) in as template `name` (replacing one of that name) and
    /// unpacks its layers.
    public func importImage(from source: String, as name: String) async throws(SandboxError) -> TemplateInfo {
        try await importImage(from: source, as: name, ownImage: false)
    }

    /// ``importImage(from:as:)``; `ownImage`: `name` is one of the store's own (``internalPrefix``).
    func importImage(from source: String, as name: String, ownImage: Bool) async throws(SandboxError) -> TemplateInfo {
        if !ownImage { try Self.validate(name: name) }
        guard Self.importTransports.contains(where: { source.hasPrefix($0) }) else {
            throw SandboxError(.invalidRequest, "image source '\(source)': give one of \(Self.importTransports.map { $0 + "…" }.joined(separator: ", ")) (e.g. docker-archive:image.tar from docker save)")
        }
        // Under a staging name until every layer unpacked: a failed import leaves no template, and
        // an earlier template of the same name stays as it was.
        let staging = "sandboxer-importing-" + UUID().uuidString.prefix(8).lowercased()
        try await locked { () throws(SandboxError) in
            try writer.prepare()
            try await Skopeo.copy(from: source, to: "oci:\(layout):\(staging)", what: "importing \(source) as template \(name)")
        }
        let info = try await promote(staging, to: name)
        logger.info("template imported", metadata: ["template": "\(name)", "digest": "\(info.digest)", "source": "\(source)"])
        return info
    }

    /// The sources `export` writes.
    public static let exportTransports = ["oci-archive:", "docker-archive:"]

    /// Writes template `name` to `destination` (`oci-archive:FILE`, `docker-archive:FILE`), which
    /// `podman load` / `docker load` read.
    public func exportImage(_ name: String, to destination: String) async throws(SandboxError) {
        _ = try image(name)
        guard Self.exportTransports.contains(where: { destination.hasPrefix($0) }), destination.split(separator: ":").count >= 2 else {
            throw SandboxError(.invalidRequest, "export destination '\(destination)': give oci-archive:FILE or docker-archive:FILE")
        }
        let target = destination.split(separator: ":").count == 2 ? "\(destination):\(name)" : destination
        try await locked { () throws(SandboxError) in
            try await Skopeo.copy(from: "oci:\(layout):\(name)", to: target, what: "exporting template \(name)")
        }
    }

    /// Names an image written into this store's layout (``ImageWriter``) `name`, unpacks its
    /// layers, and collects what the template it replaces no longer needs.
    /// `annotations` go on its `index.json` entry (a snapshot's tenant and sandbox).
    /// `placing` are layer files written outside the layout (``ImageWriter/writeLayer(to:_:time:idBase:)``),
    /// moved in under the same lock as the commit, so no concurrent garbage collection sees them unnamed.
    /// `unpack: false` leaves the layers to be unpacked when a sandbox first needs them (a snapshot:
    /// its own layer was just written by sandboxer, and the snapshot call should not wait for it).
    public func commit(layers: [OCIDescriptor], config: OCIImageConfig, name: String, annotations: [String: String] = [:],
                       placing: [(file: String, layer: OCIDescriptor)] = [], unpack: Bool = true) async throws(SandboxError) -> TemplateInfo {
        let staging = "sandboxer-building-" + UUID().uuidString.prefix(8).lowercased()
        try await locked { () throws(SandboxError) in
            try writer.prepare()
            for p in placing { try writer.place(p.file, p.layer.digest) }
            try writer.commit(layers: layers, config: config, name: staging, annotations: annotations)
        }
        return try await promote(staging, to: name, unpack: unpack)
    }

    /// The index annotation naming the tenant that built a template over the API.
    public static let tenantAnnotation = "org.sandboxer.tenant"

    /// The annotations of template `name`'s entry in `index.json` (nil: no such template).
    public func annotations(of name: String) throws(SandboxError) -> [String: String]? {
        try readIndex().manifests.last(where: { $0.refName == name }).map { $0.annotations ?? [:] }
    }

    /// Unpacks the staged image's layers, then names it `name` (replacing a template of that name)
    /// and collects what the replaced one alone used. A failed unpack removes the staged image:
    /// nothing half-made stays, and an earlier template of that name stays as it was.
    func promote(_ staging: String, to name: String, unpack: Bool = true) async throws(SandboxError) -> TemplateInfo {
        if unpack {
            do { _ = try await lowerDirectories(staging) } catch {
                try? await remove(staging)
                throw error
            }
        }
        return try await locked { () throws(SandboxError) -> TemplateInfo in
            guard let manifest = try readIndex().manifests.last(where: { $0.refName == staging }) else {
                throw SandboxError(.system, "the staged image \(staging) vanished (removed meanwhile?); try again")
            }
            try writer.name(manifest, name)
            var index = try readIndex()
            index.manifests.removeAll { $0.refName == staging }
            try writer.writeIndex(index)
            try collectGarbage()
            return try image(name).info
        }
    }

    /// Removes template `name`; blobs and unpacked layers no other template uses go too.
    public func remove(_ name: String) async throws(SandboxError) {
        try await locked { () throws(SandboxError) in
            var index = try readIndex()
            guard index.manifests.contains(where: { $0.refName == name }) else { _ = try image(name); return }
            index.manifests.removeAll { $0.refName == name }
            try writer.writeIndex(index)
            try collectGarbage()
        }
        logger.info("template removed", metadata: ["template": "\(name)"])
    }

    /// Removes image `name` when the index has it (a build's own images on failure).
    func removeIfPresent(_ name: String) async throws(SandboxError) {
        try await locked { () throws(SandboxError) in
            var index = try readIndex()
            guard index.manifests.contains(where: { $0.refName == name }) else { return }
            index.manifests.removeAll { $0.refName == name }
            try writer.writeIndex(index)
            try collectGarbage()
        }
    }

    /// Removes blobs no manifest of the index reaches and unpacked layers no template uses.
    func collectGarbage() throws(SandboxError) {
        var keepBlobs: Set<String> = []
        var keepLayers: Set<String> = []
        for d in try readIndex().manifests {
            keepBlobs.insert(d.digest.hex)
            guard let m = try? readJSON(OCIManifest.self, blob: d.digest, what: "a manifest") else { continue }
            keepBlobs.insert(m.config.digest.hex)
            m.layers.forEach { keepBlobs.insert($0.digest.hex) }
            if let c = try? readJSON(OCIImageConfig.self, blob: m.config.digest, what: "a configuration") {
                c.rootfs.diff_ids.forEach { keepLayers.insert($0.hex) }
            }
        }
        let fm = FileManager.default
        for blob in (try? fm.contentsOfDirectory(atPath: layout + "/blobs/sha256")) ?? [] where !keepBlobs.contains(blob) {
            try? fm.removeItem(atPath: layout + "/blobs/sha256/" + blob)
        }
        // Names starting with '.' are work in progress (an unpack, a base build): their owners remove them.
        // A layer mounted as a live sandbox's lower directory stays (its template was removed
        // while the sandbox runs): the next collection after that sandbox's end takes it.
        let mounted = Mounts.mountedRoots()
        let inUse = { (layer: String) in mounted.contains { $0.hasSuffix("/layers/" + layer) } }
        for layer in (try? fm.contentsOfDirectory(atPath: layers)) ?? [] where !keepLayers.contains(layer) && !layer.hasPrefix(".") && !inUse(layer) {
            try? fm.removeItem(atPath: layers + "/" + layer)
        }
        pruneBuildCache()
        // Snapshot layers a crashed process left before their commit (a live snapshot's is minutes old at most).
        for file in (try? fm.contentsOfDirectory(atPath: snapshotStaging)) ?? [] {
            let path = snapshotStaging + "/" + file
            if let modified = (try? fm.attributesOfItem(atPath: path))?[.modificationDate] as? Date, modified.timeIntervalSinceNow < -3600 {
                try? fm.removeItem(atPath: path)
            }
        }
    }

    /// Runs `body` holding the data directory's image lock (other processes wait).
    func locked<T: Sendable>(_ body: () async throws(SandboxError) -> T) async throws(SandboxError) -> T {
        try await Self.locked(lockPath, body)
    }

    /// Runs `body` holding an exclusive flock on `lockPath` (other processes and tasks wait; one
    /// open file description per call, so two tasks of one process exclude each other too).
    static func locked<T: Sendable>(_ lockPath: String, _ body: () async throws(SandboxError) -> T) async throws(SandboxError) -> T {
        do { try FileManager.default.createDirectory(atPath: (lockPath as NSString).deletingLastPathComponent, withIntermediateDirectories: true) } catch {
            throw SandboxError(.system, "making the data directory for \(lockPath): \(error)")
        }
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Syscall.error("opening \(lockPath)", errno: errno) }
        defer { close(fd) }
        let got = await DedicatedThread.run(name: "sbx-imagelock", stackSize: 64 << 10) { () -> Int32 in
            while flock(fd, LOCK_EX) != 0 { if errno != EINTR { return errno } }
            return 0
        }
        guard got == 0 else { throw Syscall.error("locking \(lockPath)", errno: got) }
        return try await body()
    }
}

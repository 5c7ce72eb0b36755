import Foundation
import SandboxCore
import SandboxLinux

/// A sandbox's snapshot as listings show it: an image of the store named by its id (`snap-…`),
/// whose last layer is the sandbox's state (``SnapshotLayer``) over the layers of the template the
/// sandbox ran on; its tenant and source sandbox are annotations of its `index.json` entry.
public struct SnapshotInfo: Sendable, Equatable {
    public var id: String
    public var digest: ImageDigest
    /// The snapshot's own layer (what the sandbox had written), as stored.
    public var sizeBytes: Int64
    public var created: String?
    public var tenantId: String
    public var sandboxId: String
    /// The template the sandbox ran on (`host`: the snapshot is the workspace alone and restores onto `host`).
    public var template: String
}

extension ImageStore {
    /// Every snapshot's name starts with this (a template cannot be named so: ``validate(name:)``).
    public static let snapshotPrefix = "snap-"

    /// The annotations a snapshot's `index.json` entry carries.
    public enum SnapshotAnnotation {
        public static let tenant = "dev.sandboxer.snapshot.tenant"
        public static let sandbox = "dev.sandboxer.snapshot.sandbox"
        public static let template = "dev.sandboxer.snapshot.template"
        public static let layerSize = "dev.sandboxer.snapshot.layer_size"
    }

    /// Where a snapshot's layer is written before its commit moves it into the layout (the same
    /// filesystem; garbage collection of the layout never looks there).
    public var snapshotStaging: String { (layout as NSString).deletingLastPathComponent + "/images.staging" }

    /// A fresh file name in ``snapshotStaging`` (the directory made).
    public func snapshotStagingFile() throws(SandboxError) -> String {
        try SysFile.makeDirectory(snapshotStaging, mode: 0o700)
        return snapshotStaging + "/layer-" + UUID().uuidString.prefix(12).lowercased() + ".tar"
    }

    /// Commits the layer file `layerFile` (written by ``SnapshotLayer/write(upper:workspace:idBase:to:)``,
    /// described by `layer`) over the layers of template `base` (none for `host`) as image `id`. The
    /// new layer is unpacked when a restore first needs it (``unpackedLowerDirectories(_:)``), so
    /// the snapshot call does not wait for it.
    public func commitSnapshot(id: String, base: String, layerFile: String, layer: OCIDescriptor, tenantId: String,
                               sandboxId: String) async throws(SandboxError) -> SnapshotInfo {
        let clock = ISO8601DateFormatter()
        clock.formatOptions = [.withInternetDateTime, .withFractionalSeconds]  // snapshots of one second still list in order
        let now = clock.string(from: Date())
        var layers: [OCIDescriptor] = []
        var config = OCIImageConfig(rootfs: .init(diff_ids: []))
        if base != "host" {
            let image = try image(base)
            layers = image.manifest.layers
            config = image.config
        }
        layers.append(layer)
        config.rootfs.diff_ids.append(layer.digest)
        config.created = now
        config.history = (config.history ?? []) + [.init(created: now, created_by: "sandboxer snapshot of \(sandboxId)")]
        let annotations = [SnapshotAnnotation.tenant: tenantId, SnapshotAnnotation.sandbox: sandboxId, SnapshotAnnotation.template: base,
                           SnapshotAnnotation.layerSize: String(layer.size), OCIMedia.createdAnnotation: now]
        let info = try await commit(layers: layers, config: config, name: id, annotations: annotations, placing: [(layerFile, layer)],
                                    unpack: false)  // unpacked by the first restore
        guard let snapshot = Self.snapshot(info) else { throw SandboxError(.system, "snapshot \(id) was stored without its annotations") }
        return snapshot
    }

    /// The snapshots of `tenantId` (nil: every tenant's), oldest first.
    public func snapshots(tenantId: String?) throws(SandboxError) -> [SnapshotInfo] {
        try list().compactMap(Self.snapshot).filter { tenantId == nil || $0.tenantId == tenantId }
            .sorted { ($0.created ?? "", $0.id) < ($1.created ?? "", $1.id) }
    }

    /// Snapshot `id` of `tenantId`; another tenant's, a template's name, or none: `not_found`.
    public func snapshot(_ id: String, tenantId: String) throws(SandboxError) -> SnapshotInfo {
        let missing = SandboxError(.notFound, "no snapshot \(id); list yours with GET /v1/snapshots")
        guard id.hasPrefix(Self.snapshotPrefix), (try? readIndex().manifests.contains { $0.refName == id }) == true else { throw missing }
        guard let s = Self.snapshot(try image(id).info), s.tenantId == tenantId else { throw missing }
        return s
    }

    static func snapshot(_ info: TemplateInfo) -> SnapshotInfo? {
        let a = info.annotations
        guard info.name.hasPrefix(snapshotPrefix), let tenant = a[SnapshotAnnotation.tenant], let sandbox = a[SnapshotAnnotation.sandbox] else { return nil }
        return SnapshotInfo(id: info.name, digest: info.digest, sizeBytes: a[SnapshotAnnotation.layerSize].flatMap { Int64($0) } ?? info.sizeBytes,
                            created: info.created, tenantId: tenant, sandboxId: sandbox, template: a[SnapshotAnnotation.template] ?? "host")
    }
}

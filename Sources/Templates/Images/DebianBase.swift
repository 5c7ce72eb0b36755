import Foundation
import SandboxCore
import SandboxLinux

/// The built-in base template `debian`: Debian bookworm, minimal, with python3, nodejs,
/// ca-certificates, curl and coreutils, and the user `user` (uid 1000, home `/home/user`), built
/// by `mmdebstrap` from Debian's packages the first time it is needed and kept like any template.
public enum DebianBase {
    public static let name = "debian"
    public static let suite = "bookworm"
    public static let packages = ["python3", "python3-pip", "python3-venv", "nodejs", "ca-certificates", "curl", "coreutils", "procps"]
    /// What the base is made from, stored as a label of the image: a cached base whose recipe is
    /// not this one (an older sandboxer's) is built again on first use.
    public static let recipe = "mmdebstrap/minbase/\(suite)/\(packages.joined(separator: ","))/user-1000/pip-system/v3"
    static let recipeLabel = "org.sandboxer.base.recipe"

    /// Whether `store`'s `debian` is current: built from ``recipe``, or not ours at all (an image
    /// an operator imported under that name is theirs to keep).
    static func isCurrent(in store: ImageStore) -> Bool {
        guard store.has(name), let image = try? store.image(name) else { return false }
        guard let label = image.config.config?.Labels?[recipeLabel] else { return true }
        // A data directory's copy may link to the cache's blobs: gone when the cache was rebuilt.
        return label == recipe && image.manifest.layers.allSatisfy { FileManager.default.fileExists(atPath: store.blobPath($0.digest)) }
    }

    static let executables = ["/usr/bin/mmdebstrap"]

    /// Template `debian` of `store`: when it has none yet, the machine cache's (built there the first
    /// time, under the cache's `base.lock` so concurrent first uses build once) is copied in.
    public static func ensure(in store: ImageStore, mirror: String? = nil) async throws(SandboxError) -> TemplateInfo {
        if isCurrent(in: store) { return try store.image(name).info }
        let cache = ImageStore.machineCache
        if !isCurrent(in: cache) {
            try await ImageStore.locked(ImageStore.machineCacheDirectory + "/base.lock") { () throws(SandboxError) in
                if !isCurrent(in: cache) { _ = try await build(in: cache, mirror: mirror) }
            }
        }
        if store.isMachineCache { return try store.image(name).info }
        return try await store.adopt(name, from: cache)
    }

    /// Rebuilds `debian` in the machine cache and gives `store` the new one.
    public static func rebuild(in store: ImageStore, mirror: String? = nil) async throws(SandboxError) -> TemplateInfo {
        let cache = ImageStore.machineCache
        try await ImageStore.locked(ImageStore.machineCacheDirectory + "/base.lock") { () throws(SandboxError) in
            _ = try await build(in: cache, mirror: mirror)
        }
        if store.isMachineCache { return try store.image(name).info }
        return try await store.adopt(name, from: cache)
    }

    /// Builds (or rebuilds) template `debian` in `store` itself (not the machine cache): one layer,
    /// the root mmdebstrap makes. `bench --suite state` times it in a data directory of its own.
    public static func build(in store: ImageStore, mirror: String? = nil) async throws(SandboxError) -> TemplateInfo {
        guard let mmdebstrap = executables.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw SandboxError(.unavailable, "building the debian base needs mmdebstrap (apt-get install mmdebstrap; make installs it)")
        }
        let work = "\(store.layers)/.base-\(UUID().uuidString.prefix(8))"
        do { try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true) } catch {
            throw SandboxError(.system, "making \(work): \(error)")
        }
        defer { try? FileManager.default.removeItem(atPath: work) }
        let tar = work + "/root.tar"
        var argv = [mmdebstrap, "--quiet", "--variant=minbase", "--mode=root", "--format=tar",
                    "--include=" + packages.joined(separator: ","),
                    "--customize-hook=chroot \"$1\" useradd --create-home --uid 1000 --user-group --shell /bin/bash user",
                    "--customize-hook=rm -rf \"$1\"/var/cache/apt/archives/*.deb \"$1\"/var/lib/apt/lists/*",
                    // `pip install` into the system Python, as in the images users compare us with (PEP 668's marker off).
                    "--customize-hook=rm -f \"$1\"/usr/lib/python3*/EXTERNALLY-MANAGED",
                    suite, tar]
        if let mirror { argv.append(mirror) }
        let (status, _, err) = try await ChildProcess.run(argv, environment: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "SOURCE_DATE_EPOCH=0"])
        guard status == .exited(0) else {
            let last = err.split(separator: "\n").suffix(3).joined(separator: " / ")
            throw SandboxError(.unavailable, "building the debian base with mmdebstrap failed (\(status)): \(last); check that Debian's archive is reachable (or pass a mirror)")
        }
        let writer = store.writer
        try writer.prepare()
        let layer = try writer.addLayer(tarFile: tar)
        var run = OCIImageConfig.RunConfig()
        run.Env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"]
        run.Cmd = ["/bin/bash"]
        run.User = "user"
        run.WorkingDir = "/home/user"
        run.Labels = [recipeLabel: recipe]
        let config = OCIImageConfig(created: ISO8601DateFormatter().string(from: Date()), config: run, rootfs: .init(diff_ids: [layer.digest]),
                                    history: [.init(created_by: "mmdebstrap --variant=minbase --include=\(packages.joined(separator: ",")) \(suite)")])
        return try await store.commit(layers: [layer], config: config, name: name)
    }
}

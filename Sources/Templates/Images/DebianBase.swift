import Foundation
import SandboxCore
import SandboxLinux

/// The built-in base template `debian`: Debian bookworm, minimal, with python3, nodejs,
/// ca-certificates, curl and coreutils, and the user `user` (uid 1000, home `/home/user`), built
/// by `mmdebstrap` from Debian's packages the first time it is needed and kept like any template.
public enum DebianBase {
    public static let name = "debian"
    public static let suite = "bookworm"
    public static let packages = ["python3", "nodejs", "ca-certificates", "curl", "coreutils"]

    static let executables = ["/usr/bin/mmdebstrap"]

    /// Template `debian`, building it when the store does not have it yet.
    public static func ensure(in store: ImageStore, mirror: String? = nil) async throws(SandboxError) -> TemplateInfo {
        if let existing = try store.list().first(where: { $0.name == name }) { return existing }
        return try await build(in: store, mirror: mirror)
    }

    /// Builds (or rebuilds) template `debian`: one layer, the root mmdebstrap makes.
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
        let config = OCIImageConfig(created: ISO8601DateFormatter().string(from: Date()), config: run, rootfs: .init(diff_ids: [layer.digest]),
                                    history: [.init(created_by: "mmdebstrap --variant=minbase --include=\(packages.joined(separator: ",")) \(suite)")])
        return try await store.commit(layers: [layer], config: config, name: name)
    }
}

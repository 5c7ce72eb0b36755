import Foundation
import SandboxCore
import SandboxLinux
import SandboxTestSupport
import Testing
@testable import Templates

#if canImport(Glibc)
import Glibc
#endif

/// What the template tests need of the machine: root (device whiteouts, trusted xattrs, owners,
/// overlay mounts) and skopeo.
enum ImageRequirement {
    @Sendable static func root() -> String? { getuid() == 0 ? nil : "requires root (whiteouts are device nodes, owners are kept)" }
    @Sendable static func skopeo() -> String? {
        root() ?? (Skopeo.executable == nil ? "requires skopeo (apt-get install skopeo; make test installs it)" : nil)
    }
    @Sendable static func podman() -> String? {
        skopeo() ?? (FileManager.default.isExecutableFile(atPath: "/usr/bin/podman") ? nil : "requires podman (make test installs it)")
    }
}

/// A scratch directory removed at the end.
final class Scratch {
    let path: String
    init() throws {
        path = NSTemporaryDirectory() + "sbx-images-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit {
        _ = try? ChildProcess.runSilently(["/bin/umount", "-l", path + "/merged"])
        try? FileManager.default.removeItem(atPath: path)
    }

    func write(_ relative: String, _ text: String, mode: Int = 0o644) throws {
        let full = path + "/" + relative
        try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: full, atomically: false, encoding: .utf8)
        chmod(full, mode_t(mode))
    }
}

/// Two layers as a Dockerfile would leave them: a base, then a layer that deletes a file of the
/// base (whiteout), replaces a directory's content (opaque), and adds a hard link, a symlink and a
/// name longer than ustar's 100 bytes.
enum TestImage {
    static let longName = "deep/" + String(repeating: "n", count: 120) + ".txt"

    /// Writes the image into the OCI layout `layout` as `tag`; the first layer gzip-compressed when asked.
    static func write(layout: String, tag: String, scratch: Scratch, gzipBase: Bool = false) async throws -> OCIDescriptor {
        let base = scratch.path + "/base", top = scratch.path + "/top"
        try scratch.write("base/etc/os-release", "ID=test\n")
        try scratch.write("base/bin/tool", "#!/bin/sh\necho tool\n", mode: 0o755)
        #expect(link(base + "/bin/tool", base + "/bin/tool-again") == 0)
        try scratch.write("base/gone.txt", "deleted above\n")
        try scratch.write("base/replaced/old.txt", "hidden by the opaque directory above\n")
        try scratch.write("base/kept/file.txt", "kept\n")
        chown(base + "/kept/file.txt", 1000, 1000)

        try FileManager.default.createDirectory(atPath: top, withIntermediateDirectories: true)
        #expect(mknod(top + "/gone.txt", S_IFCHR, 0) == 0)
        try scratch.write("top/replaced/new.txt", "new\n")
        let fd = open(top + "/replaced", O_RDONLY | O_DIRECTORY)
        #expect(ExtendedAttributes.set(fd: fd, name: "trusted.overlay.opaque", value: Array("y".utf8)) == nil)
        close(fd)
        #expect(symlink("/etc/os-release", top + "/link") == 0)
        try scratch.write("top/" + longName, "long\n")

        let writer = ImageWriter(layout: layout)
        var baseLayer = try writer.addLayer(from: base)
        let diffIDs = [baseLayer.digest, try writer.addLayer(from: top).digest]
        if gzipBase {
            let blob = "\(layout)/blobs/sha256/\(baseLayer.digest.hex)"
            let (status, _, err) = try await ChildProcess.run(["/bin/sh", "-c", "gzip -n -c '\(blob)' > '\(blob).gz'"])
            #expect(status == .exited(0), "\(err)")
            let bytes = Array(FileManager.default.contents(atPath: blob + ".gz") ?? Data())
            try? FileManager.default.removeItem(atPath: blob + ".gz")
            baseLayer = try writer.addBlob(bytes, mediaType: OCIMedia.layerGzip)
        }
        var run = OCIImageConfig.RunConfig()
        run.Env = ["PATH=/bin"]
        run.Cmd = ["/bin/tool"]
        let config = OCIImageConfig(created: "2026-12-06T00:00:00Z", config: run, rootfs: .init(diff_ids: diffIDs),
                                    history: [.init(created_by: "base"), .init(created_by: "top")])
        return try writer.commit(layers: [baseLayer, try writer.addLayer(from: top)], config: config, name: tag)
    }
}

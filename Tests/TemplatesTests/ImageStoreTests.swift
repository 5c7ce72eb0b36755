import Foundation
import SandboxCore
import SandboxLinux
import SandboxTestSupport
import Testing
@testable import Templates

#if canImport(Glibc)
import Glibc
#endif

/// Templates are OCI images in the data directory: imported with skopeo from OCI layouts and
/// archives and `docker save` archives, their layers unpacked once and stacked by overlayfs,
/// exported so podman loads them, removed with what only they used.
@Suite("Template store", .requires("requires root and skopeo", ImageRequirement.skopeo))
struct ImageStoreTests {
    /// Mounts `lowers` (topmost first) read-only at `scratch/merged` and returns the mount point.
    static func mount(_ lowers: [String], _ scratch: Scratch) async throws -> String {
        let merged = scratch.path + "/merged"
        try FileManager.default.createDirectory(atPath: merged, withIntermediateDirectories: true)
        let (status, _, err) = try await ChildProcess.run(["/bin/mount", "-t", "overlay", "overlay", "-o", "ro,lowerdir=" + lowers.joined(separator: ":"), merged])
        try #require(status == .exited(0), "\(err)")
        return merged
    }

    static func unmount(_ merged: String) async throws {
        _ = try await ChildProcess.run(["/bin/umount", merged])
    }

    /// What the image's root shows once stacked: the top layer's deletions and replacements applied.
    static func expectTree(_ root: String) throws {
        let fm = FileManager.default
        #expect(!fm.fileExists(atPath: root + "/gone.txt"), "the whiteout hides the base's file")
        #expect(try fm.contentsOfDirectory(atPath: root + "/replaced") == ["new.txt"], "the opaque directory hides the base's content")
        #expect(try String(contentsOfFile: root + "/kept/file.txt", encoding: .utf8) == "kept\n")
        var st = stat(), again = stat()
        #expect(stat(root + "/kept/file.txt", &st) == 0 && st.st_uid == 1000 && st.st_gid == 1000, "owners are kept")
        #expect(stat(root + "/bin/tool", &st) == 0 && stat(root + "/bin/tool-again", &again) == 0 && st.st_ino == again.st_ino && st.st_mode & 0o777 == 0o755)
        #expect(try fm.destinationOfSymbolicLink(atPath: root + "/link") == "/etc/os-release")
        #expect(try String(contentsOfFile: root + "/" + TestImage.longName, encoding: .utf8) == "long\n")
    }

    @Test("import from an OCI layout (a gzip layer among them): listed, inspected, and its layers stack to the image's tree")
    func importOCILayout() async throws {
        let scratch = try Scratch()
        let source = scratch.path + "/src"
        _ = try await TestImage.write(layout: source, tag: "v1", scratch: scratch, gzipBase: true)
        let store = ImageStore(dataDirectory: scratch.path + "/data")
        let info = try await store.importImage(from: "oci:\(source):v1", as: "tools")
        #expect(info.name == "tools" && info.layers == 2)
        #expect(try store.list().map(\.name) == ["tools"])
        let image = try store.image("tools")
        #expect(image.config.config?.Cmd == ["/bin/tool"])
        #expect(image.info.digest == info.digest)

        let lowers = try await store.lowerDirectories("tools")
        #expect(lowers.count == 2 && lowers.allSatisfy { $0.hasPrefix(scratch.path + "/data/layers/") })
        #expect(lowers.map { String($0.split(separator: "/").last!) } == image.config.rootfs.diff_ids.reversed().map(\.hex))
        let merged = try await Self.mount(lowers, scratch)
        try Self.expectTree(merged)
        try await Self.unmount(merged)
    }

    @Test("import a docker save archive; export to an OCI archive that podman loads and that imports again as the same image")
    func archives() async throws {
        let scratch = try Scratch()
        let source = scratch.path + "/src"
        _ = try await TestImage.write(layout: source, tag: "v1", scratch: scratch)
        let docker = scratch.path + "/saved.tar"
        let (status, _, err) = try await ChildProcess.run(["/usr/bin/skopeo", "--insecure-policy", "copy", "--quiet", "oci:\(source):v1", "docker-archive:\(docker):tools:v1"])
        try #require(status == .exited(0), "\(err)")

        let store = ImageStore(dataDirectory: scratch.path + "/data")
        let imported = try await store.importImage(from: "docker-archive:\(docker)", as: "from-docker")
        let merged = try await Self.mount(try await store.lowerDirectories("from-docker"), scratch)
        try Self.expectTree(merged)
        try await Self.unmount(merged)

        let archive = scratch.path + "/export.tar"
        try await store.exportImage("from-docker", to: "oci-archive:\(archive)")
        let back = try await store.importImage(from: "oci-archive:\(archive)", as: "again")
        #expect(back.digest == imported.digest, "an exported template is the same image")

        if try Requirement.check(ImageRequirement.podman) {
            let root = scratch.path + "/podman"
            let podman = ["/usr/bin/podman", "--root", root + "/root", "--runroot", root + "/run", "--storage-driver", "vfs"]
            let (loaded, out, perr) = try await ChildProcess.run(podman + ["load", "-i", archive])
            #expect(loaded == .exited(0), "podman load: \(out) \(perr)")
            let (_, images, _) = try await ChildProcess.run(podman + ["images", "--format", "{{.ID}}"])
            #expect(!images.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "podman lists the loaded image")
        }
    }

    @Test("rm removes the template and the layers only it used; a layer another template has stays")
    func removeCollects() async throws {
        let scratch = try Scratch()
        let source = scratch.path + "/src"
        _ = try await TestImage.write(layout: source, tag: "v1", scratch: scratch)
        let store = ImageStore(dataDirectory: scratch.path + "/data")
        _ = try await store.importImage(from: "oci:\(source):v1", as: "one")
        _ = try await store.importImage(from: "oci:\(source):v1", as: "two")
        let lowers = try await store.lowerDirectories("two")
        try await store.remove("one")
        #expect(try store.list().map(\.name) == ["two"])
        #expect(lowers.allSatisfy { FileManager.default.fileExists(atPath: $0) }, "two still uses them")
        try await store.remove("two")
        #expect(try store.list().isEmpty)
        #expect(lowers.allSatisfy { !FileManager.default.fileExists(atPath: $0) })
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path + "/data/images/blobs/sha256").isEmpty)
        await #expect(throws: SandboxError.self) { try await store.remove("two") }
    }

    @Test("a bad import leaves nothing: an unknown source, a reserved name, a layer that escapes, a damaged layer")
    func badImports() async throws {
        let scratch = try Scratch()
        let store = ImageStore(dataDirectory: scratch.path + "/data")
        await #expect { _ = try await store.importImage(from: "/some/dir", as: "x") } throws: { ($0 as? SandboxError)?.message.contains("docker-archive:") == true }
        await #expect { _ = try await store.importImage(from: "oci:/nowhere", as: "host") } throws: { ($0 as? SandboxError)?.message.contains("reserved") == true }
        await #expect { _ = try await store.importImage(from: "oci:/nowhere:v1", as: "x") } throws: { ($0 as? SandboxError)?.message.contains("skopeo") == true }

        // An image whose layer has a member with '..': refused, and no template, blob or layer is left.
        let source = scratch.path + "/evil"
        let writer = ImageWriter(layout: source)
        let layer = try writer.addBlob(LayerUnpackTests.tar([("../escape.txt", "0", "x", "")]), mediaType: OCIMedia.layer)
        try writer.commit(layers: [layer], config: OCIImageConfig(rootfs: .init(diff_ids: [layer.digest])), name: "v1")
        await #expect { _ = try await store.importImage(from: "oci:\(source):v1", as: "evil") } throws: { ($0 as? SandboxError)?.message.contains("'..'") == true }
        #expect(try store.list().isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path + "/data/images/blobs/sha256").isEmpty)
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: scratch.path + "/data/layers")) ?? []).isEmpty)

        // A configuration naming another diff id than the layer's content: refused as damaged.
        let liar = scratch.path + "/liar"
        let w2 = ImageWriter(layout: liar)
        let good = try w2.addBlob(LayerUnpackTests.tar([("ok.txt", "0", "ok", "")]), mediaType: OCIMedia.layer)
        let other = try w2.addBlob(Array("not the layer".utf8), mediaType: OCIMedia.layer)
        try w2.commit(layers: [good], config: OCIImageConfig(rootfs: .init(diff_ids: [other.digest])), name: "v1")
        await #expect { _ = try await store.importImage(from: "oci:\(liar):v1", as: "liar") } throws: { ($0 as? SandboxError)?.message.contains("damaged") == true }
        #expect(try store.list().isEmpty)
    }
}


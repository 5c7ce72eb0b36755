import Foundation
import SandboxCommands
import SandboxCore
import SandboxLinux
import SandboxServer
import SandboxTestSupport
import Templates
import Testing

/// Hibernating a sandbox whose root is an image template (issue 19): what it changed in its root
/// (the overlay's upper directory: a deleted template file is a whiteout) and its workspace come
/// back after the resume, and nothing of the image root stays mounted meanwhile.
@Suite(.serialized) struct ImageHibernateTests {
    /// A one-layer template `mini` made from the host's dash and a few coreutils (with their
    /// libraries, and the C++ runtime the agent needs), `/etc/os-release`, and a world-writable `/data` holding `doomed` and `kept`.
    static func makeMiniTemplate(data: String) async throws {
        let root = data + "/mini-root"
        let (made, _, err) = try await ChildProcess.run(["/bin/sh", "-c", """
            set -e; r='\(root)'; mkdir -p $r/bin $r/etc $r/data
            for b in dash cat ls stat readlink rm ln; do p=$(command -v $b); cp -L $p $r/bin/$b
              for l in $(ldd $p | grep -o '/[^ ]*'); do cp -L --parents $l $r/; done; done
            # The agent (bind-mounted in) needs the C++ runtime of the image.
            for l in libm.so.6 libstdc++.so.6 libgcc_s.so.1; do cp -L --parents "$(ldconfig -p | grep -m1 "$l " | sed 's/.*=> //')" $r/; done
            ln -s dash $r/bin/sh; echo ID=mini > $r/etc/os-release
            echo bye > $r/data/doomed; echo keep > $r/data/kept; chmod 0777 $r/data
            """])
        try #require(made == .exited(0), "\(err)")
        let store = ImageStore(dataDirectory: data)
        let layer = try ImageWriter(layout: store.layout).addLayer(from: root)
        var run = OCIImageConfig.RunConfig()
        run.Env = ["PATH=/bin"]
        _ = try await store.commit(layers: [layer], config: OCIImageConfig(config: run, rootfs: .init(diff_ids: [layer.digest])), name: "mini")
        SysFile.removeTree(root)
    }

    /// A server on a fresh data directory holding template `mini`; the directory goes afterwards.
    static func withMiniTemplate(_ body: @Sendable (ServedApp) async throws -> Void) async throws {
        let data = NSTemporaryDirectory() + "sbx-imghib-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(atPath: data) }
        try await makeMiniTemplate(data: data)
        try await ServedApp.with(dataDirectory: data, body)
    }

    @Test("hibernate + resume on an image template: a deleted template file stays deleted, written files keep their modes, a symlink comes back; the image root is unmounted while hibernated", .realSandboxes)
    func imageRootSurvivesHibernation() async throws {
        try await Self.withMiniTemplate { app in
            let client = try app.client(try await app.key("acme"))
            let created = try LifecycleTests.decode(SandboxView.self, try await client.checked("POST", "/v1/sandboxes", body: try jsonBytes(["profile": ["template": "mini"]])))
            let base = "/v1/sandboxes/\(created.id)"
            let change = try LifecycleTests.decode(ExecResult.self, try await client.checked("POST", base + "/exec", body: try jsonBytes(["cmd": ["/bin/sh", "-c", """
                rm /data/doomed && echo new > /data/new && (umask 077; echo w > /workspace/w) && ln -s /data/kept /workspace/link && cat /etc/os-release
                """]])))
            #expect(change.stdout == "ID=mini\n", "\(change.stdout) \(change.stderr)")

            let hibernated = try LifecycleTests.decode(SandboxView.self, try await client.checked("POST", base + "/hibernate"))
            #expect(hibernated.state == .hibernated)
            let mounts = SysFile.read("/proc/self/mountinfo") ?? ""
            #expect(!mounts.contains("/roots/\(created.id)") && !mounts.contains(created.id), "the image root and workspace are unmounted")
            // Kept in one file (a tree archive), the deletion as a whiteout.
            let kept = app.dataDirectory + "/hibernated/\(created.id)", look = kept + ".look"
            defer { SysFile.removeTree(look) }
            #expect(try TreeArchive.sections(in: kept).sorted() == ["upper", "workspace"])
            try TreeArchive.unpack(section: "upper", from: kept, into: look)
            var st = stat()
            #expect(lstat(look + "/data/doomed", &st) == 0 && (st.st_mode & S_IFMT) == S_IFCHR && st.st_rdev == 0, "the deletion is kept as a whiteout")

            let script = "ls /data; cat /data/new /data/kept; stat -c '%a' /workspace/w; readlink /workspace/link; cat /etc/os-release"
            let check = try LifecycleTests.decode(ExecResult.self, try await client.checked("POST", base + "/exec", body: try jsonBytes(["cmd": ["/bin/sh", "-c", script]])))
            #expect(check.stdout == "kept\nnew\nnew\nkeep\n600\n/data/kept\nID=mini\n", "\(check.stdout) \(check.stderr)")
            #expect(!SysFile.exists(kept), "the wake removes the kept file")

            // A sandbox hibernated by a version that kept a directory (upper/, workspace/) still wakes.
            _ = try await client.checked("POST", base + "/hibernate")
            SysFile.removeTree(look)
            try SysFile.makeDirectory(look, mode: 0o700)
            try TreeArchive.unpack(section: "upper", from: kept, into: look + "/upper")
            try TreeArchive.unpack(section: "workspace", from: kept, into: look + "/workspace")
            SysFile.removeTree(kept)
            #expect(rename(look, kept) == 0)
            let legacy = try LifecycleTests.decode(ExecResult.self, try await client.checked("POST", base + "/exec", body: try jsonBytes(["cmd": ["/bin/sh", "-c", script]])))
            #expect(legacy.stdout == check.stdout, "\(legacy.stdout) \(legacy.stderr)")
            #expect(!SysFile.exists(kept))
            _ = try await client.checked("DELETE", base)
            #expect(!(SysFile.read("/proc/self/mountinfo") ?? "").contains(created.id))
        }
    }

    @Test("a persistent sandbox on an image template keeps its root's changes and workspace on its own disks (ext4, loop-mounted) through hibernate + resume; delete removes the disks", .realSandboxes)
    func persistentImageRoot() async throws {
        try await Self.withMiniTemplate { app in
            let client = try app.client(try await app.key("acme"))
            let created = try LifecycleTests.decode(SandboxView.self, try await client.checked("POST", "/v1/sandboxes", body: try jsonBytes(
                ["profile": ["template": "mini", "persistence": "persistent", "resources": ["workspace": "32M"]]])))
            let base = "/v1/sandboxes/\(created.id)"
            let mounts = (SysFile.read("/proc/self/mountinfo") ?? "").split(separator: "\n").filter { $0.contains(created.id) && $0.contains(" - ext4 /dev/loop") }
            #expect(mounts.count == 2, "the upper directory and the workspace are on ext4 disks: \(mounts)")
            _ = try await client.checked("POST", base + "/exec", body: try jsonBytes(["cmd": ["/bin/sh", "-c", "rm /data/doomed && echo p > /workspace/p"]]))
            #expect(try LifecycleTests.decode(SandboxView.self, try await client.checked("POST", base + "/hibernate")).state == .hibernated)
            #expect(!(SysFile.read("/proc/self/mountinfo") ?? "").contains(created.id))
            let check = try LifecycleTests.decode(ExecResult.self, try await client.checked("POST", base + "/exec", body: try jsonBytes(
                ["cmd": ["/bin/sh", "-c", "ls /data; cat /workspace/p; ls /workspace"]])))
            #expect(check.stdout == "kept\np\np\n", "\(check.stdout) \(check.stderr)")
            _ = try await client.checked("DELETE", base)
            #expect(!SysFile.exists(app.dataDirectory + "/persistent/\(created.id)"))
            #expect(!(SysFile.read("/proc/self/mountinfo") ?? "").contains(created.id))
        }
    }
}

import Foundation
import SandboxCommands
import SandboxLinux
import SandboxManager
import SandboxStore
import SandboxTestSupport
import Testing

/// Snapshot, restore and fork over HTTP, on the `debian` template with real crun: the snapshot is
/// the sandbox's filesystem (root changes and workspace) as one layer, the source runs on after
/// the thaw, a restore has exactly that filesystem, forks are independent; bad input is a clear
/// 4xx with nothing made; nothing stays behind.
@Suite("Snapshots, restore and fork", .realSandboxes, .requires("requires mmdebstrap and skopeo (make test installs them)") {
    ["/usr/bin/mmdebstrap", "/usr/bin/skopeo"].allSatisfy { FileManager.default.isExecutableFile(atPath: $0) } ? nil : "mmdebstrap or skopeo is missing"
})
struct SnapshotTests {
    /// Writes in the root and the workspace: a file of the template deleted, a symlink, modes, a
    /// 100 MB sparse file with one byte of data.
    static let writes = """
        set -e
        rm /home/user/.bashrc; mkdir -m 711 /home/user/d; echo root-side > /home/user/d/f; chmod 604 /home/user/d/f
        ln -s /etc/os-release /home/user/os
        cd /workspace; echo hello > w.txt; chmod 600 w.txt; mkdir sub; ln -s ../w.txt sub/link
        truncate -s 100M sparse.bin; printf x | dd of=sparse.bin bs=1 seek=52428800 conv=notrunc 2>/dev/null
        """

    /// Every path under /home/user and /workspace: type, mode, owner, and a file's size and hash or a link's target.
    static let tree = """
        for top in /home/user /workspace; do cd $top; find . -mindepth 1 | LC_ALL=C sort | while read -r p; do
          if [ -L "$p" ]; then x="-> $(readlink "$p")"; elif [ -f "$p" ]; then x="$(stat -c %s "$p") $(sha256sum < "$p" | cut -c1-16)"; else x=dir; fi
          echo "$top/${p#./} $(stat -c '%a %u:%g' "$p") $x"; done; done
        echo "sparse-kib $(du -k /workspace/sparse.bin | cut -f1)"
        """

    static func object(_ reply: APIClient.Reply) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: Any], "\(reply.body.text)")
    }

    static func stdout(_ client: APIClient, _ id: String, _ script: String) async throws -> String {
        let reply = try await client.checked("POST", "/v1/sandboxes/\(id)/exec", body: try jsonBytes(["cmd": ["sh", "-c", script]]))
        let o = try object(reply)
        #expect(o["exit_code"] as? Int == 0, "\(reply.body.text)")
        return o["stdout"] as? String ?? ""
    }

    static func create(_ client: APIClient, _ body: [String: Any]) async throws -> String {
        try #require(try object(try await client.checked("POST", "/v1/sandboxes", body: try jsonBytes(body)))["id"] as? String)
    }

    @Test("snapshot → restore is the same tree (paths, modes, owners, sizes, hashes, holes) and the source runs on; fork 3 gives three independent sandboxes; every bad input is a 4xx with nothing made; nothing is left after the deletes")
    func snapshotRestoreFork() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: SecretCLITests.executable), "build the sandboxer executable first (swift build)")
        let data = NSTemporaryDirectory() + "sandboxer-snap-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: data) }
        let base = try await SecretCLITests.run(["template", "base", "--data", data])
        try #require(base.status == 0, "\(base.err)")
        // The debian base's layers live in the machine cache; the data directory's own are the snapshots'.
        let debianLayers = Set((try? FileManager.default.contentsOfDirectory(atPath: data + "/layers")) ?? [])
        let made = try await ServedApp.with(defaultQuota: TenantQuota(maxSandboxes: 8), dataDirectory: data) { app -> [String] in
            var made: [String] = []
            let client = try app.client(try await app.key("acme"))
            let other = try app.client(try await app.key("rival"))
            let source = try await Self.create(client, ["profile": ["template": "debian"]])
            _ = try await Self.stdout(client, source, Self.writes)
            let before = try await Self.stdout(client, source, Self.tree)
            #expect(before.contains("/home/user/d/f 604 1000:1000 10 ") && before.contains("/workspace/sub/link 777 1000:1000 -> ../w.txt"), "\(before)")
            #expect(!before.contains(".bashrc") && before.contains("sparse-kib "), "\(before)")

            // Snapshot: 201 with id, digest, size, pause; the source runs on and keeps writing.
            let shot = try Self.object(try await client.checked("POST", "/v1/sandboxes/\(source)/snapshots"))
            let snap = try #require(shot["id"] as? String)
            #expect(snap.hasPrefix("snap-") && (shot["digest"] as? String)?.hasPrefix("sha256:") == true)
            #expect((shot["size_bytes"] as? Int ?? 0) > 0 && (shot["size_bytes"] as? Int ?? 0) < 1 << 20, "holes are not stored: \(shot)")
            #expect(shot["paused_ms"] is Double || shot["paused_ms"] is Int)
            #expect(try await Self.stdout(client, source, "cat /workspace/w.txt; echo later > /workspace/later; echo ok") == "hello\nok\n")

            // Restore: exactly the snapshot's tree (not what the source wrote after), holes kept.
            let restored = try await Self.create(client, ["snapshot": snap])
            made.append(restored)
            let after = try await Self.stdout(client, restored, Self.tree)
            #expect(after == before)
            let kib = after.split(separator: "\n").last.flatMap { Int($0.split(separator: " ").last ?? "") }
            #expect(kib.map { $0 < 1024 } == true, "the restored 100 MB sparse file keeps its holes: \(after)")
            #expect(try await Self.stdout(client, restored, "ls /workspace/later 2>/dev/null || echo absent; id -un") == "absent\nuser\n")
            let audit = try await client.checked("GET", "/v1/sandboxes/\(restored)/audit").body.text
            #expect(audit.contains("\"sandbox.create\"") && audit.contains(snap), "\(audit)")

            // The snapshot is the tenant's alone; the CLI lists it as a snapshot.
            let listed = try Self.object(try await client.checked("GET", "/v1/snapshots"))["snapshots"] as? [[String: Any]]
            #expect(listed?.map { $0["id"] as? String } == [snap] && listed?.first?["sandbox_id"] as? String == source)
            #expect((try Self.object(try await other.checked("GET", "/v1/snapshots"))["snapshots"] as? [Any])?.isEmpty == true)
            #expect(try await other.send("GET", "/v1/snapshots/\(snap)").status == 404)
            #expect(try await other.send("DELETE", "/v1/snapshots/\(snap)").status == 404)
            #expect(try await other.send("POST", "/v1/sandboxes", body: try jsonBytes(["snapshot": snap])).status == 404)
            #expect(try await other.send("POST", "/v1/sandboxes/\(source)/snapshots").status == 404)
            #expect(try await other.send("POST", "/v1/sandboxes/\(source)/fork", body: try jsonBytes(["count": 1])).status == 404)
            #expect(!(try await client.checked("GET", "/v1/templates").body.text.contains(snap)))
            let ls = try await SecretCLITests.run(["template", "ls", "--data", data])
            #expect(ls.out.contains("\(snap)\t") && ls.out.contains("snapshot of \(source)"), "\(ls.out)")
            let exported = try await SecretCLITests.run(["template", "export", snap, "oci-archive:\(data)/snap.tar", "--data", data])
            #expect(exported.status == 0 && FileManager.default.fileExists(atPath: data + "/snap.tar"), "\(exported.err)")

            // Fork 3: one snapshot, three sandboxes as create returns them, each on its own.
            let fork = try Self.object(try await client.checked("POST", "/v1/sandboxes/\(source)/fork", body: try jsonBytes(["count": 3])))
            let forkSnap = try #require(fork["snapshot"] as? String)
            let forks = try #require((fork["sandboxes"] as? [[String: Any]])?.compactMap { $0["id"] as? String })
            #expect(forks.count == 3 && (fork["sandboxes"] as? [[String: Any]])?.allSatisfy { $0["state"] as? String == "running" } == true)
            made += forks
            // A restored workspace is an overlay of the snapshot's layer: a fork's writes and deletes
            // (a file appended to is copied up) never reach the layer the other forks read.
            _ = try await Self.stdout(client, forks[0], "echo mine > /workspace/only0; echo more >> /workspace/later; rm /workspace/w.txt")
            #expect(try await Self.stdout(client, forks[0], "cat /workspace/later; ls /workspace/w.txt 2>/dev/null || echo gone") == "later\nmore\ngone\n")
            #expect(try await Self.stdout(client, forks[1], "cat /workspace/w.txt /workspace/later; ls /workspace/only0 2>/dev/null || echo absent") == "hello\nlater\nabsent\n")
            #expect(try await Self.stdout(client, source, "ls /workspace/only0 2>/dev/null || echo absent") == "absent\n")
            let trail = try await client.checked("GET", "/v1/sandboxes/\(source)/audit").body.text
            #expect(trail.contains("\"sandbox.snapshot\"") && trail.contains("\"sandbox.fork\"") && trail.contains(forkSnap), "\(trail)")

            // Bad input: each a 4xx naming the cause, nothing made.
            let snapshotsBefore = try Self.object(try await client.checked("GET", "/v1/snapshots"))["snapshots"] as? [Any]
            for count in [0, 1000] {
                let bad = try await client.send("POST", "/v1/sandboxes/\(source)/fork", body: try jsonBytes(["count": count]))
                #expect(bad.status == 400 && bad.body.text.contains("count") && bad.body.text.contains("100"), "\(bad.body.text)")
            }
            let over = try await client.send("POST", "/v1/sandboxes/\(source)/fork", body: try jsonBytes(["count": 4]))  // 5 live + 4 > 8
            #expect(over.status == 429 && over.body.text.contains("max_sandboxes"), "\(over.body.text)")
            let memory = try await client.send("POST", "/v1/sandboxes/\(source)/snapshots", body: try jsonBytes(["memory": true]))
            #expect(memory.status == 409 && memory.body.text.contains("criu"), "\(memory.body.text)")
            let unknown = try await client.send("POST", "/v1/sandboxes", body: try jsonBytes(["snapshot": "snap-000000000000"]))
            #expect(unknown.status == 404 && unknown.body.text.contains("no snapshot"), "\(unknown.body.text)")
            let byTemplate = try await client.send("POST", "/v1/sandboxes", body: try jsonBytes(["profile": ["template": snap]]))
            #expect(byTemplate.status == 400 && byTemplate.body.text.contains("\\\"snapshot\\\""), "\(byTemplate.body.text)")
            let wasm = try await Self.create(client, ["isolation": "wasm"])
            let wasmShot = try await client.send("POST", "/v1/sandboxes/\(wasm)/snapshots")
            #expect(wasmShot.status == 400 && wasmShot.body.text.contains("container sandboxes"), "\(wasmShot.body.text)")
            _ = try await client.checked("DELETE", "/v1/sandboxes/\(wasm)")
            let ended = try await client.send("POST", "/v1/sandboxes/\(wasm)/snapshots")
            #expect(ended.status == 409 && ended.body.text.contains("not running"), "\(ended.body.text)")
            let snapshotsAfter = try Self.object(try await client.checked("GET", "/v1/snapshots"))["snapshots"] as? [Any]
            #expect(snapshotsAfter?.count == snapshotsBefore?.count && snapshotsAfter?.count == 2, "a refused fork leaves no snapshot")
            let running = try Self.object(try await client.checked("GET", "/v1/sandboxes?state=running"))["items"] as? [Any]
            #expect(running?.count == 5, "a refused fork leaves no sandbox")

            // A snapshot that is a live sandbox's root stays until that sandbox goes.
            let inUse = try await client.send("DELETE", "/v1/snapshots/\(snap)")
            #expect(inUse.status == 409 && inUse.body.text.contains(restored), "\(inUse.body.text)")
            for id in [source] + made { _ = try await client.checked("DELETE", "/v1/sandboxes/\(id)") }
            for id in [snap, forkSnap] { #expect(try await client.send("DELETE", "/v1/snapshots/\(id)").status == 204) }
            #expect(try await client.send("GET", "/v1/snapshots/\(snap)").status == 404)
            let deleted = try await client.send("POST", "/v1/sandboxes", body: try jsonBytes(["snapshot": snap]))
            #expect(deleted.status == 404, "\(deleted.body.text)")
            let tenantTrail = try await client.checked("GET", "/v1/audit").body.text
            #expect(tenantTrail.contains("\"snapshot.remove\"") && tenantTrail.contains("\"sandbox.fork\""), "\(tenantTrail)")
            return made + [source]
        }

        // Nothing left: no root or workspace mounted, no cgroup, no snapshot layer or staging image.
        let mounts = SysFile.read("/proc/self/mountinfo") ?? ""
        for id in made {
            #expect(!mounts.contains(id), "\(id) left a mount")
            // find's status is not asked: a cgroup another test removes during the walk fails it.
            let (_, out, _) = try await ChildProcess.run(["/usr/bin/find", "/sys/fs/cgroup", "-maxdepth", "4", "-name", "*\(id)*"])
            #expect(out.isEmpty, "\(id) left cgroups: \(out)")
        }
        #expect(Set((try? FileManager.default.contentsOfDirectory(atPath: data + "/layers")) ?? []) == debianLayers)
        let index = SysFile.read(data + "/images/index.json") ?? ""
        #expect(!index.contains("snap-") && !index.contains("sandboxer-building-"), "\(index)")
        #expect(!(try FileManager.default.contentsOfDirectory(atPath: data + "/images/blobs/sha256")).contains { $0.hasPrefix(".writing-") })
        #expect((try? FileManager.default.contentsOfDirectory(atPath: data + "/images.staging"))?.isEmpty ?? true, "no snapshot layer left in staging")
    }

    @Test("a persistent sandbox restored from a snapshot hibernates and resumes on its own disks: the snapshot's workspace is restored once, not again over what the sandbox has since (a resume failed with 'File exists')")
    func persistentRestoreHibernateResume() async throws {
        let data = NSTemporaryDirectory() + "sandboxer-snap-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: data) }
        let base = try await SecretCLITests.run(["template", "base", "--data", data])
        try #require(base.status == 0, "\(base.err)")
        try await ServedApp.with(dataDirectory: data) { app in
            let client = try app.client(try await app.key("acme"))
            let profile: [String: Any] = ["template": "debian", "persistence": "persistent", "resources": ["workspace": "32M", "disk": "256M"]]
            let source = try await Self.create(client, ["profile": profile])
            _ = try await Self.stdout(client, source, "mkdir /workspace/t /home/user/t && echo one > /workspace/t/f && echo r > /home/user/t/g")
            let snap = try #require(try Self.object(try await client.checked("POST", "/v1/sandboxes/\(source)/snapshots"))["id"] as? String)
            let restored = try await Self.create(client, ["snapshot": snap, "profile": profile])
            _ = try await Self.stdout(client, restored, "echo two >> /workspace/t/f && rm /home/user/t/g")
            let hibernated = try Self.object(try await client.checked("POST", "/v1/sandboxes/\(restored)/hibernate"))
            #expect(hibernated["state"] as? String == "hibernated")
            let resumed = try await client.send("POST", "/v1/sandboxes/\(restored)/resume")
            #expect(resumed.status == 200, "\(resumed.body.text)")
            #expect(try await Self.stdout(client, restored, "cat /workspace/t/f; ls /home/user/t") == "one\ntwo\n")
            for id in [source, restored] { _ = try await client.checked("DELETE", "/v1/sandboxes/\(id)") }
            #expect(try await client.send("DELETE", "/v1/snapshots/\(snap)").status == 204)
        }
    }
}

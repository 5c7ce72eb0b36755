import Foundation
import SandboxCommands
import SandboxLinux
import SandboxTestSupport
import Testing

/// `sandboxer template` as an operator runs it: import, ls, inspect, export, rm on a `--data` directory.
@Suite("sandboxer template: the CLI", .requires("requires root and skopeo") {
    getuid() != 0 ? "requires root" : (FileManager.default.isExecutableFile(atPath: "/usr/bin/skopeo") ? nil : "requires skopeo (make test installs it)")
})
struct TemplateCLITests {
    @Test("import a hand-made OCI layout, list it, inspect it, export it, remove it")
    func lifecycle() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: SecretCLITests.executable), "build the sandboxer executable first (swift build)")
        let dir = NSTemporaryDirectory() + "sandboxer-template-cli-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try await Self.makeLayout(dir)

        let data = ["--data", dir + "/data"]
        let imp = try await SecretCLITests.run(["template", "import", "oci:\(dir)/src:v1", "etc-only"] + data)
        #expect(imp.status == 0 && imp.out.contains("template etc-only sha256:") && imp.out.contains("1 layers"), "\(imp.out) \(imp.err)")
        let ls = try await SecretCLITests.run(["template", "ls"] + data)
        #expect(ls.status == 0 && ls.out.contains("host\t") && ls.out.contains("etc-only\t"), "\(ls.out)")
        let inspect = try await SecretCLITests.run(["template", "inspect", "etc-only"] + data)
        #expect(inspect.status == 0 && inspect.out.contains("\"diff_ids\"") && inspect.out.contains("\"layers\""), "\(inspect.out)")
        let export = try await SecretCLITests.run(["template", "export", "etc-only", "oci-archive:\(dir)/out.tar"] + data)
        #expect(export.status == 0 && FileManager.default.fileExists(atPath: dir + "/out.tar"), "\(export.err)")
        let bad = try await SecretCLITests.run(["template", "export", "etc-only", "\(dir)/out.tar"] + data)
        #expect(bad.status == 2 && bad.err.contains("oci-archive:FILE"))
        let rm = try await SecretCLITests.run(["template", "rm", "etc-only"] + data)
        #expect(rm.status == 0)
        let missing = try await SecretCLITests.run(["template", "inspect", "etc-only"] + data)
        #expect(missing.status == 2 && missing.err.contains("no template 'etc-only'") && missing.err.contains("host"))
    }

    /// Writes a one-layer OCI layout (`/etc/os-release`) at `dir/src`, tag v1: made by hand (tar,
    /// sha256sum, printf), as any other tool would make it.
    static func makeLayout(_ dir: String) async throws {
        try FileManager.default.createDirectory(atPath: dir + "/rootfs/etc", withIntermediateDirectories: true)
        try "ID=cli\n".write(toFile: dir + "/rootfs/etc/os-release", atomically: true, encoding: .utf8)
        let (tarred, _, terr) = try await ChildProcess.run(["/bin/tar", "-C", dir + "/rootfs", "-cf", dir + "/layer.tar", "."])
        try #require(tarred == .exited(0), "\(terr)")
        let (imported, _, ierr) = try await ChildProcess.run(["/bin/sh", "-c", """
            set -e; cd '\(dir)'; mkdir -p src/blobs/sha256
            l=$(sha256sum layer.tar | cut -d' ' -f1); ls=$(stat -c %s layer.tar); cp layer.tar src/blobs/sha256/$l
            printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' $l > config.json
            c=$(sha256sum config.json | cut -d' ' -f1); cs=$(stat -c %s config.json); cp config.json src/blobs/sha256/$c
            printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' $c $cs $l $ls > manifest.json
            m=$(sha256sum manifest.json | cut -d' ' -f1); ms=$(stat -c %s manifest.json); cp manifest.json src/blobs/sha256/$m
            printf '{"imageLayoutVersion":"1.0.0"}' > src/oci-layout
            printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"v1"}}]}' $m $ms > src/index.json
            """])
        try #require(imported == .exited(0), "\(ierr)")

    }
}

/// `/v1/templates` on a server whose data directory has a template `sandboxer template import` added.
@Suite("Templates over the API", .requires("requires root and skopeo") {
    getuid() != 0 ? "requires root" : (FileManager.default.isExecutableFile(atPath: "/usr/bin/skopeo") ? nil : "requires skopeo (make test installs it)")
})
struct TemplateRouteTests {
    static func object(_ reply: APIClient.Reply) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: Any])
    }

    @Test("every tenant lists and reads templates (host first, built in); only an operator removes one, never host; the removal is in the trail")
    func listReadRemove() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: SecretCLITests.executable), "build the sandboxer executable first (swift build)")
        let dir = NSTemporaryDirectory() + "sandboxer-template-api-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try await TemplateCLITests.makeLayout(dir)
        try FileManager.default.createDirectory(atPath: dir + "/data", withIntermediateDirectories: true)
        let imported = try await SecretCLITests.run(["template", "import", "oci:\(dir)/src:v1", "etc-only", "--data", dir + "/data"])
        try #require(imported.status == 0, "\(imported.err)")

        try await ServedApp.with(configuration: .init(port: 0, operatorTenants: ["ops"]), dataDirectory: dir + "/data") { app in
            let tenant = try app.client(try await app.key("acme"))
            let ops = try app.client(try await app.key("ops"))
            let list = try Self.object(try await tenant.checked("GET", "/v1/templates"))["templates"] as? [[String: Any]] ?? []
            #expect(list.map { $0["name"] as? String } == ["host", "etc-only"])
            #expect(list.first?["builtin"] as? Bool == true && list.first?["digest"] == nil)
            let digest = try #require(list.last?["digest"] as? String)
            #expect(digest.hasPrefix("sha256:") && list.last?["layers"] as? Int == 1)

            let one = try Self.object(try await tenant.checked("GET", "/v1/templates/etc-only"))
            #expect(one["digest"] as? String == digest && (one["layer_digests"] as? [String])?.count == 1)
            #expect(try await tenant.send("GET", "/v1/templates/nope").status == 404)

            #expect(try await tenant.send("DELETE", "/v1/templates/etc-only").status == 403)
            #expect(try await ops.send("DELETE", "/v1/templates/host").status == 400)
            #expect(try await ops.send("DELETE", "/v1/templates/etc-only").status == 204)
            #expect(try await tenant.send("GET", "/v1/templates/etc-only").status == 404)

            await app.manager.flushRecorder()
            let trail = try await ops.checked("GET", "/v1/audit").body.text
            #expect(trail.contains("\"template.remove\"") && trail.contains(digest), "\(trail)")
        }
    }

    @Test("a template in use by a live sandbox: the API refuses to remove it (409 naming the sandbox); the CLI removes the name but its layer stays until the sandbox is gone, and the sandbox still reads its root")
    func removeWhileInUse() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: SecretCLITests.executable), "build the sandboxer executable first (swift build)")
        let dir = NSTemporaryDirectory() + "sandboxer-template-inuse-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = dir + "/data"
        try FileManager.default.createDirectory(atPath: dir + "/ctx", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        try "ID=cli\n".write(toFile: dir + "/ctx/os-release", atomically: true, encoding: .utf8)
        try "FROM debian\nCOPY os-release /etc/cli-release\n".write(toFile: dir + "/Dockerfile", atomically: true, encoding: .utf8)
        try #require(try await SecretCLITests.run(["template", "base", "--data", data]).status == 0)
        let layers: @Sendable () -> Set<String> = { Set((try? FileManager.default.contentsOfDirectory(atPath: data + "/layers")) ?? []).filter { !$0.hasPrefix(".") } }
        let before = layers()
        let build = { try await SecretCLITests.run(["template", "build", "etc-only", "-f", dir + "/Dockerfile", dir + "/ctx", "--data", data]) }
        let built = try await build()
        try #require(built.status == 0, "\(built.err)")
        let layer = try #require(layers().subtracting(before).first, "the COPY step's layer")

        try await ServedApp.with(configuration: .init(port: 0, operatorTenants: ["ops"]), dataDirectory: data) { app in
            let client = try app.client(try await app.key("acme"))
            let ops = try app.client(try await app.key("ops"))
            let created = try Self.object(try await client.checked("POST", "/v1/sandboxes", body: try jsonBytes(["profile": ["template": "etc-only"]])))
            let id = try #require(created["id"] as? String)
            let refused = try await ops.send("DELETE", "/v1/templates/etc-only")
            #expect(refused.status == 409 && refused.body.text.contains(id), "\(refused.body.text)")

            let rm = try await SecretCLITests.run(["template", "rm", "etc-only", "--data", data])
            #expect(rm.status == 0, "\(rm.err)")
            #expect(layers().contains(layer), "the layer under a live sandbox's root was removed")
            let read = try await client.checked("GET", "/v1/sandboxes/\(id)/files?path=/etc/cli-release")
            #expect(read.body.text == "ID=cli\n", "\(read.body.text)")
            _ = try await client.checked("DELETE", "/v1/sandboxes/\(id)")
        }
        // The next collection (any change of the store) takes the layer nothing uses any more.
        let again = try await build()
        try #require(again.status == 0, "\(again.err)")
        #expect(try await SecretCLITests.run(["template", "rm", "etc-only", "--data", data]).status == 0)
        #expect(!layers().contains(layer))
    }
}

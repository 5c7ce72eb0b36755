import Foundation
import SandboxLinux
import SandboxTestSupport
import Testing

/// A sandbox whose root is an image template: the built-in `debian` (mmdebstrap), its layers
/// stacked by overlayfs and idmapped into the sandbox's id range, writable where the image lets
/// the sandbox user write, and nothing left mounted afterwards.
@Suite("Sandboxes on image templates", .realSandboxes, .requires("requires mmdebstrap and skopeo (make test installs them)") {
    ["/usr/bin/mmdebstrap", "/usr/bin/skopeo"].allSatisfy { FileManager.default.isExecutableFile(atPath: $0) } ? nil : "mmdebstrap or skopeo is missing"
})
struct ImageTemplateRunTests {
    @Test("template debian: Debian's python3 and node, the user 'user', root-owned system files, a writable home, the host's programs out of sight; over HTTP a live sandbox and a queued run use it too")
    func debianSandbox() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: SecretCLITests.executable), "build the sandboxer executable first (swift build)")
        let data = NSTemporaryDirectory() + "sandboxer-debian-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: data) }
        let base = try await SecretCLITests.run(["template", "base", "--data", data])
        try #require(base.status == 0, "\(base.err)")
        #expect(base.out.hasPrefix("template debian sha256:"))
        let again = try await SecretCLITests.run(["template", "ls", "--data", data])
        #expect(again.out.contains("debian\t"))

        let script = """
            head -1 /etc/os-release; id -un; python3 -c 'print(40+2)'; node -e 'console.log(6*7)'
            stat -c '%u %U' /usr/bin/python3; echo note > /home/user/note && cat /home/user/note
            (echo x > /etc/x) 2>/dev/null || echo etc-refused
            command -v crun swift psql || echo no-host-programs
            """
        let run = try await SecretCLITests.run(["run", "--data", data, "--template", "debian", "--", "sh", "-c", script])
        #expect(run.status == 0, "\(run.err)")
        let lines = run.out.split(separator: "\n").map(String.init)
        #expect(lines == ["PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"", "user", "42", "42", "0 root", "note", "etc-refused", "no-host-programs"], "\(run.out) \(run.err)")

        // Each sandbox starts from the image: what the last one wrote is gone.
        let fresh = try await SecretCLITests.run(["run", "--data", data, "--template", "debian", "--", "sh", "-c", "cat /home/user/note 2>/dev/null || echo clean"])
        #expect(fresh.out == "clean\n", "\(fresh.out) \(fresh.err)")
        let ranJSON = try await SecretCLITests.run(["run", "--json", "--data", data, "--template", "debian", "--", "true"])
        let ranIn = try #require((try JSONSerialization.jsonObject(with: Data(ranJSON.out.utf8)) as? [String: Any])?["sandbox_id"] as? String, "\(ranJSON.out) \(ranJSON.err)")
        #expect(!(SysFile.read("/proc/self/mountinfo") ?? "").contains("/roots/\(ranIn)"), "an image root was left mounted")

        let unknown = try await SecretCLITests.run(["run", "--data", data, "--template", "nope", "--", "true"])
        #expect(unknown.status != 0 && unknown.err.contains("no template 'nope'"), "\(unknown.err)")

        // A server on the same data directory: a live sandbox (the agent as pid 1 on the image's
        // root) and a queued run, both named by an inline profile's template.
        try await ServedApp.with(dataDirectory: data) { app in
            let client = try app.client(try await app.key("acme"))
            let created = try await client.checked("POST", "/v1/sandboxes", body: try jsonBytes(["profile": ["template": "debian"]]))
            let view = try #require(try JSONSerialization.jsonObject(with: Data(created.body)) as? [String: Any])
            let id = try #require(view["id"] as? String)
            // The digest is the template's identity: in the sandbox's record and its sandbox.create entry.
            let digest = String(base.out.split(separator: " ")[2])
            #expect(view["template"] as? String == "debian" && view["template_digest"] as? String == digest && view["root"] as? String == "writable", "\(view)")
            let trail = try await client.checked("GET", "/v1/sandboxes/\(id)/audit").body.text
            #expect(trail.contains("\"kind\":\"sandbox.create\"") && trail.contains("\"template_digest\":\"\(digest)\""), "\(trail)")
            let exec = try await client.checked("POST", "/v1/sandboxes/\(id)/exec", body: try jsonBytes(
                ["cmd": ["sh", "-c", "id -un; python3 -c 'print(6*7)'; echo kept > /home/user/f; cat /home/user/f"]]))
            #expect(exec.body.text.contains("\"stdout\":\"user\\n42\\nkept\\n\""), "\(exec.body.text)")
            _ = try await client.checked("DELETE", "/v1/sandboxes/\(id)")
            let submitted = try await client.checked("POST", "/v1/runs", body: try jsonBytes(
                ["profile": ["template": "debian"], "cmd": ["python3", "-c", "import platform; print(platform.freedesktop_os_release()['ID'])"]]))
            let run = try #require((try JSONSerialization.jsonObject(with: Data(submitted.body)) as? [String: Any])?["id"] as? String)
            var record = ""
            for _ in 0..<300 {
                record = try await client.checked("GET", "/v1/runs/\(run)").body.text
                if record.contains("\"state\":\"succeeded\"") || record.contains("\"state\":\"failed\"") { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(record.contains("\"state\":\"succeeded\"") && record.contains("debian\\n"), "\(record)")
            #expect(record.contains("\"template_digest\":\"\(digest)\""), "a queued run keeps the image it ran on: \(record)")
        }
        let afterServe = try await SecretCLITests.run(["run", "--json", "--data", data, "--template", "debian", "--", "true"])
        let afterServeId = try #require((try JSONSerialization.jsonObject(with: Data(afterServe.out.utf8)) as? [String: Any])?["sandbox_id"] as? String, "\(afterServe.out) \(afterServe.err)")
        #expect(!(SysFile.read("/proc/self/mountinfo") ?? "").contains("/roots/\(afterServeId)"), "an image root was left mounted")
    }
}

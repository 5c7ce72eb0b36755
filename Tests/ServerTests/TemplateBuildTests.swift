import Foundation
import SandboxLinux
import SandboxTestSupport
import Testing

/// The data directory with the built-in `debian` base the build tests share: mmdebstrap takes
/// ~30 s, so it is built once per test process; each test builds its own template names in it
/// (the store's lock keeps concurrent builds apart) and removes them. The directory goes when the
/// test process exits.
actor SharedDebianData {
    static let shared = SharedDebianData()
    private var built: Task<String, any Error>?

    func directory() async throws -> String {
        if let built { return try await built.value }
        let task = Task { () throws -> String in
            let data = NSTemporaryDirectory() + "sandboxer-build-tests-\(getpid())"
            atexit { try? FileManager.default.removeItem(atPath: NSTemporaryDirectory() + "sandboxer-build-tests-\(getpid())") }
            let base = try await SecretCLITests.run(["template", "base", "--data", data])
            guard base.status == 0 else { throw TestFailure("building the debian base failed: \(base.err)") }
            return data
        }
        built = task
        return try await task.value
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// `sandboxer template build`: a Dockerfile run into a template, each RUN in a sandbox on the
/// layers so far, every layer cached; bad input refused naming its line, with nothing left behind.
@Suite("sandboxer template build", .serialized, .realSandboxes, .requires("requires mmdebstrap and skopeo (make test installs them)") {
    ["/usr/bin/mmdebstrap", "/usr/bin/skopeo"].allSatisfy { FileManager.default.isExecutableFile(atPath: $0) } ? nil : "mmdebstrap or skopeo is missing"
})
struct TemplateBuildTests {
    /// A fresh context directory with `files` (path → content); removed by the caller.
    static func context(_ files: [String: String]) throws -> String {
        let dir = NSTemporaryDirectory() + "sandboxer-build-ctx-\(UUID().uuidString.prefix(8))"
        for (path, content) in files {
            let full = dir + "/" + path
            try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try content.write(toFile: full, atomically: true, encoding: .utf8)
        }
        return dir
    }

    static func build(_ name: String, _ context: String, data: String, _ extra: [String] = []) async throws -> (status: Int32, out: String, err: String) {
        try await SecretCLITests.run(["template", "build", name, context, "--data", data] + extra)
    }

    /// What a failed build must not leave: the name, the build's own images, its directories, mounts.
    static func expectNothingLeft(_ data: String, name: String) throws {
        let index = SysFile.read(data + "/images/index.json") ?? ""
        #expect(!index.contains("\"\(name)\""), "the failed build named \(name)")
        #expect(!index.contains("sandboxer-build-"), "a build's working image stayed: \(index)")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: data + "/build")) ?? []).isEmpty, "a build directory stayed")
        #expect(!(SysFile.read("/proc/self/mountinfo") ?? "").contains(data), "something under the data directory stayed mounted")
    }

    @Test("FROM debian, RUN that writes a file and deletes one of the base, COPY --chown, ENV/WORKDIR/USER, exec-form RUN, CMD: the template runs with them; a rebuild is all cached with the same digest; a changed context file rebuilds from its step on")
    func dockerfileToTemplate() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: SecretCLITests.executable), "build the sandboxer executable first (swift build)")
        let data = try await SharedDebianData.shared.directory()
        let name = "built-\(UUID().uuidString.prefix(6).lowercased())"
        let marker = UUID().uuidString
        let ctx = try Self.context([
            "app/hello.txt": "hello\n",
            "Dockerfile": """
                FROM debian
                RUN echo \(marker) > /made.txt && rm /etc/issue
                COPY --chown=1000:1000 app/hello.txt /home/user/app/
                ENV GREETING=hi
                WORKDIR /srv/work
                RUN ["/bin/sh", "-c", "echo $GREETING $(pwd) $(id -u) > greeting"]
                USER user
                RUN id -un > $HOME/whoami
                CMD ["python3", "-V"]
                """,
        ])
        defer { try? FileManager.default.removeItem(atPath: ctx) }
        defer { _ = try? SecretCLITests.runBlocking(["template", "rm", name, "--data", data]) }

        let first = try await Self.build(name, ctx, data: data)
        try #require(first.status == 0, "\(first.out) \(first.err)")
        let lines = first.out.split(separator: "\n").map(String.init)
        #expect(lines.first == "step 1/9: FROM debian")
        #expect(lines.contains("step 2/9: RUN echo \(marker) > /made.txt && rm /etc/issue"), "\(first.out)")
        #expect(!first.out.contains("(cached)"), "a first build of new steps came from the cache: \(first.out)")
        let digest = try #require(lines.last.flatMap { $0.hasPrefix("template \(name) sha256:") ? String($0.split(separator: " ")[2]) : nil }, "\(first.out)")

        let run = try await SecretCLITests.run(["run", "--data", data, "--template", name, "--", "sh", "-c", """
            cat /made.txt; ls /etc/issue 2>/dev/null || echo no-issue
            stat -c '%u:%g %n' /made.txt /home/user/app /home/user/app/hello.txt; cat /home/user/app/hello.txt
            cat /srv/work/greeting /home/user/whoami
            """])
        #expect(run.status == 0, "\(run.err)")
        #expect(run.out.split(separator: "\n").map(String.init) == [
            marker, "no-issue", "0:0 /made.txt", "1000:1000 /home/user/app", "1000:1000 /home/user/app/hello.txt", "hello",
            "hi /srv/work 0", "user",
        ], "\(run.out) \(run.err)")
        let inspect = try await SecretCLITests.run(["template", "inspect", name, "--data", data])
        #expect(inspect.out.contains("\"GREETING=hi\"") && inspect.out.contains("\"WorkingDir\" : \"/srv/work\"")
                && inspect.out.contains("\"User\" : \"user\"") && inspect.out.contains("\"python3\",\n      \"-V\""), "\(inspect.out)")

        // Nothing changed: every layer step from the cache, no sandbox, the same manifest.
        let again = try await Self.build(name, ctx, data: data)
        #expect(again.status == 0, "\(again.err)")
        for step in ["RUN echo", "COPY", "WORKDIR", "RUN [", "RUN id -un"] {
            #expect(again.out.split(separator: "\n").contains { $0.contains(": \(step)") && $0.hasSuffix("(cached)") }, "\(step) was not cached: \(again.out)")
        }
        #expect(again.out.hasSuffix("template \(name) \(digest)\n"), "\(again.out)")

        // A changed context file: its COPY and every later layer step are made again.
        try "changed\n".write(toFile: ctx + "/app/hello.txt", atomically: true, encoding: .utf8)
        let changed = try await Self.build(name, ctx, data: data)
        #expect(changed.status == 0, "\(changed.err)")
        let marks = changed.out.split(separator: "\n").filter { $0.hasPrefix("step ") }.map { $0.hasSuffix("(cached)") }
        #expect(marks == [false, true, false, false, false, false, false, false, false], "\(changed.out)")
        #expect(!changed.out.contains(digest), "\(changed.out)")
        let reread = try await SecretCLITests.run(["run", "--data", data, "--template", name, "--", "cat", "/home/user/app/hello.txt"])
        #expect(reread.out == "changed\n", "\(reread.out) \(reread.err)")
    }

    @Test("FROM another template (its RUN seeing an ARG given by --build-arg), and FROM oci-archive of an exported one: imported once, the same layers below the new step")
    func fromTemplateAndArchive() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: SecretCLITests.executable), "build the sandboxer executable first (swift build)")
        let data = try await SharedDebianData.shared.directory()
        let suffix = UUID().uuidString.prefix(6).lowercased()
        let (parent, child, fromArchive) = ("parent-\(suffix)", "child-\(suffix)", "archived-\(suffix)")
        let ctx = try Self.context([
            "P": "FROM debian\nARG WHO=nobody\nRUN echo $WHO-\(suffix) > /parent.txt\n",
            "C": "FROM \(parent)\nRUN cat /parent.txt > /child.txt\n",
        ])
        defer { try? FileManager.default.removeItem(atPath: ctx) }
        defer { for n in [parent, child, fromArchive] { _ = try? SecretCLITests.runBlocking(["template", "rm", n, "--data", data]) } }
        let p = try await Self.build(parent, ctx, data: data, ["-f", ctx + "/P", "--build-arg", "WHO=parent"])
        try #require(p.status == 0, "\(p.err)")
        let c = try await Self.build(child, ctx, data: data, ["-f", ctx + "/C"])
        #expect(c.status == 0, "\(c.err)")
        let ran = try await SecretCLITests.run(["run", "--data", data, "--template", child, "--", "cat", "/child.txt"])
        #expect(ran.out == "parent-\(suffix)\n", "\(ran.out) \(ran.err)")

        let export = try await SecretCLITests.run(["template", "export", parent, "oci-archive:\(ctx)/parent.tar", "--data", data])
        try #require(export.status == 0, "\(export.err)")
        try "FROM oci-archive:\(ctx)/parent.tar\nRUN cat /parent.txt > /child.txt\n".write(toFile: ctx + "/A", atomically: true, encoding: .utf8)
        let a = try await Self.build(fromArchive, ctx, data: data, ["-f", ctx + "/A"])
        #expect(a.status == 0 && a.out.contains("step 1/2: FROM oci-archive:"), "\(a.out) \(a.err)")
        let again = try await Self.build(fromArchive, ctx, data: data, ["-f", ctx + "/A"])
        #expect(again.out.contains("RUN cat /parent.txt > /child.txt (cached)"), "the archive was not recognised as the same base: \(again.out)")
        let ls = try await SecretCLITests.run(["template", "ls", "--data", data])
        #expect(!ls.out.contains("sandboxer-"), "the store's own images are listed: \(ls.out)")
        let ranArchive = try await SecretCLITests.run(["run", "--data", data, "--template", fromArchive, "--", "cat", "/child.txt"])
        #expect(ranArchive.out == "parent-\(suffix)\n", "\(ranArchive.out) \(ranArchive.err)")
    }

    @Test("bad input fails naming the cause and leaves nothing: an unknown instruction, COPY outside the context (.., absolute, a symlink out), a RUN exiting non-zero, FROM host")
    func badInput() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: SecretCLITests.executable), "build the sandboxer executable first (swift build)")
        let data = try await SharedDebianData.shared.directory()
        let name = "bad-\(UUID().uuidString.prefix(6).lowercased())"
        let ctx = try Self.context(["f": "x\n"])
        defer { try? FileManager.default.removeItem(atPath: ctx) }
        try FileManager.default.createSymbolicLink(atPath: ctx + "/out", withDestinationPath: "/etc")
        let cases: [(String, String)] = [
            ("FROM debian\nHEALTHCHECK CMD true\n", "Dockerfile line 2: HEALTHCHECK is not supported"),
            ("FROM debian\nCOPY ../f /x\n", "Dockerfile line 2: COPY source ../f leaves the build context"),
            ("FROM debian\nCOPY /etc/passwd /x\n", "Dockerfile line 2: COPY source /etc/passwd is an absolute path"),
            ("FROM debian\n\nCOPY out/passwd /x\n", "Dockerfile line 3: COPY source out/passwd is a symlink leading out of the build context"),
            ("FROM debian\nRUN echo half > /half\nRUN exit 3\n", "step 3/3 (line 3: RUN exit 3) failed: exit 3"),
            ("FROM host\n", "FROM host: the built-in host template is the host's own /usr, not an image"),
        ]
        for (dockerfile, message) in cases {
            try dockerfile.write(toFile: ctx + "/Dockerfile", atomically: true, encoding: .utf8)
            let r = try await Self.build(name, ctx, data: data)
            #expect(r.status != 0 && r.err.contains(message), "\(dockerfile): \(r.err)")
            try Self.expectNothingLeft(data, name: name)
        }
    }

    @Test("RUN apt-get install works (root of the step's user namespace keeps the build capabilities, the mirrors through the egress proxy) while a host outside the mirrors is refused; the template's sandboxes hold no capability")
    func packageInstall() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: SecretCLITests.executable), "build the sandboxer executable first (swift build)")
        let data = try await SharedDebianData.shared.directory()
        let name = "apt-\(UUID().uuidString.prefix(6).lowercased())"
        let ctx = try Self.context(["Dockerfile": """
            FROM debian
            RUN grep CapEff /proc/self/status && (curl -sS -o /dev/null https://example.com/ 2>&1 || echo refused-\(name))
            RUN apt-get update -q && apt-get install -y -q --no-install-recommends jq && rm -rf /var/lib/apt/lists/*
            """])
        defer { try? FileManager.default.removeItem(atPath: ctx) }
        defer { _ = try? SecretCLITests.runBlocking(["template", "rm", name, "--data", data]) }
        let built = try await Self.build(name, ctx, data: data)
        #expect(built.status == 0, "\(built.out) \(built.err)")
        #expect(built.out.contains("refused-\(name)") && !built.out.contains("CapEff:\t0000000000000000"), "\(built.out)")
        let run = try await SecretCLITests.run(["run", "--data", data, "--template", name, "--", "sh", "-c", "jq -n 6*7; grep CapEff /proc/self/status"])
        #expect(run.out == "42\nCapEff:\t0000000000000000\n", "\(run.out) \(run.err)")
    }

    static func tar(_ directory: String, _ file: String, _ args: [String] = ["."]) async throws -> [UInt8] {
        let (status, _, err) = try await ChildProcess.run(["/bin/tar", "-P", "-C", directory, "-cf", file] + args)
        try #require(status == .exited(0), "\(err)")
        return Array(try #require(FileManager.default.contents(atPath: file)))
    }

    @Test("POST /v1/templates: a context tar → a build job (202) whose NDJSON log streams its steps and output to the end; the build and its template are the tenant's own (another tenant: 404, 409), built-in names are refused, a bad tar is a 400 naming the member, and template.build is in the trail")
    func buildOverHTTP() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: SecretCLITests.executable), "build the sandboxer executable first (swift build)")
        let data = try await SharedDebianData.shared.directory()
        let name = "api-\(UUID().uuidString.prefix(6).lowercased())"
        let ctx = try Self.context([
            "app/data.txt": "from the context\n",
            "Dockerfile": "FROM debian\nCOPY app/data.txt /data.txt\nRUN cat /data.txt > /copied.txt && echo said-\(name)\n",
        ])
        defer { try? FileManager.default.removeItem(atPath: ctx) }
        defer { _ = try? SecretCLITests.runBlocking(["template", "rm", name, "--data", data]) }
        let body = try await Self.tar(ctx, ctx + ".tar")
        defer { try? FileManager.default.removeItem(atPath: ctx + ".tar") }

        try await ServedApp.with(dataDirectory: data) { app in
            let acme = try app.client(try await app.key("acme"))
            let other = try app.client(try await app.key("other"))
            let started = try await acme.send("POST", "/v1/templates?name=\(name)", body: body, contentType: "application/x-tar")
            #expect(started.status == 202, "\(started.body.text)")
            let job = try TemplateRouteTests.object(started)
            let id = try #require(job["id"] as? String)
            #expect(id.hasPrefix("bld-") && job["name"] as? String == name && job["state"] as? String == "running")

            // The log from its start to its end: a line per step, the RUN's output, then done.
            let log = try await acme.checked("GET", "/v1/templates/builds/\(id)/logs")
            let lines = try log.body.text.split(separator: "\n").map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
            let steps = lines.filter { $0["type"] as? String == "step" }
            #expect(steps.map { $0["index"] as? Int } == [1, 2, 3], "\(log.body.text)")
            #expect(steps.last?["of"] as? Int == 3 && steps.last?["instruction"] as? String == "RUN cat /data.txt > /copied.txt && echo said-\(name)"
                    && steps.last?["cached"] as? Bool == false, "\(log.body.text)")
            #expect(lines.contains { $0["type"] as? String == "log" && ($0["data"] as? String ?? "").contains("said-\(name)") }, "\(log.body.text)")
            let done = try #require(lines.last)
            #expect(done["type"] as? String == "done" && done["state"] as? String == "succeeded", "\(log.body.text)")
            let digest = try #require(done["digest"] as? String)

            let view = try TemplateRouteTests.object(try await acme.checked("GET", "/v1/templates/builds/\(id)"))
            #expect(view["state"] as? String == "succeeded" && view["digest"] as? String == digest)
            #expect((view["steps"] as? [[String: Any]])?.map { $0["instruction"] as? String } == ["FROM debian", "COPY app/data.txt /data.txt", "RUN cat /data.txt > /copied.txt && echo said-\(name)"])
            #expect(try await other.send("GET", "/v1/templates/builds/\(id)").status == 404)
            #expect(try await other.send("GET", "/v1/templates/builds/\(id)/logs").status == 404)
            let template = try TemplateRouteTests.object(try await other.checked("GET", "/v1/templates/\(name)"))
            #expect(template["digest"] as? String == digest)

            // Only its builder replaces it; built-in names are nobody's to replace.
            let taken = try await other.send("POST", "/v1/templates?name=\(name)", body: body, contentType: "application/x-tar")
            #expect(taken.status == 409 && taken.body.text.contains("not built by this tenant"), "\(taken.body.text)")
            let builtin = try await acme.send("POST", "/v1/templates?name=debian", body: body, contentType: "application/x-tar")
            #expect(builtin.status == 409 && builtin.body.text.contains("built in"), "\(builtin.body.text)")
            let again = try await acme.send("POST", "/v1/templates?name=\(name)", body: body, contentType: "application/x-tar")
            #expect(again.status == 202, "\(again.body.text)")
            let againID = try #require(try TemplateRouteTests.object(again)["id"] as? String)
            let againLog = try await acme.checked("GET", "/v1/templates/builds/\(againID)/logs").body.text
            #expect(againLog.contains("\"cached\":true") && againLog.contains(digest), "\(againLog)")

            // Bad input: a tar leaving the context, a missing Dockerfile, a bad Dockerfile.
            let evil = try Self.context(["inside/x": "x\n"])
            defer { try? FileManager.default.removeItem(atPath: evil) }
            let escaping = try await Self.tar(evil + "/inside", evil + "/bad.tar", ["../inside/x"])
            let refused = try await acme.send("POST", "/v1/templates?name=\(name)-bad", body: escaping, contentType: "application/x-tar")
            #expect(refused.status == 400 && refused.body.text.contains("'..'"), "\(refused.body.text)")
            let noFile = try await acme.send("POST", "/v1/templates?name=\(name)-bad&dockerfile=nope", body: body, contentType: "application/x-tar")
            #expect(noFile.status == 400 && noFile.body.text.contains("no Dockerfile at nope"), "\(noFile.body.text)")
            #expect(((try? FileManager.default.contentsOfDirectory(atPath: data + "/build")) ?? []).isEmpty, "a context stayed in the build directory")

            await app.manager.flushRecorder()
            let trail = try await acme.checked("GET", "/v1/audit").body.text
            #expect(trail.contains("\"template.build\"") && trail.contains(digest), "\(trail)")
        }
        let run = try await SecretCLITests.run(["run", "--data", data, "--template", name, "--", "cat", "/copied.txt"])
        #expect(run.out == "from the context\n", "\(run.out) \(run.err)")
    }

    @Test("a tenant runs at most two builds at a time (429); a server's graceful shutdown ends its running builds: the RUN's sandbox, the working image and the context go, the template is not made")
    func shutdownEndsBuilds() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: SecretCLITests.executable), "build the sandboxer executable first (swift build)")
        let data = try await SharedDebianData.shared.directory()
        let name = "long-\(UUID().uuidString.prefix(6).lowercased())"
        let ctx = try Self.context(["Dockerfile": "FROM debian\nRUN echo started-\(name) && sleep 600\n"])
        defer { try? FileManager.default.removeItem(atPath: ctx) }
        let body = try await Self.tar(ctx, ctx + ".tar")
        defer { try? FileManager.default.removeItem(atPath: ctx + ".tar") }
        try await ServedApp.with(dataDirectory: data) { app in
            let acme = try app.client(try await app.key("acme"))
            let started = try await acme.checked("POST", "/v1/templates?name=\(name)", body: body, contentType: "application/x-tar")
            let id = try #require(try TemplateRouteTests.object(started)["id"] as? String)
            var seen = false
            for _ in 0..<600 where !seen {
                // The RUN's own output says its sandbox runs.
                let view = try await acme.checked("GET", "/v1/templates/builds/\(id)").body.text
                seen = view.contains("\"index\":2")
                if !seen { try await Task.sleep(for: .milliseconds(50)) }
            }
            try #require(seen, "the RUN step never started")
            let second = try await acme.send("POST", "/v1/templates?name=\(name)-2", body: body, contentType: "application/x-tar")
            #expect(second.status == 202, "\(second.body.text)")
            let third = try await acme.send("POST", "/v1/templates?name=\(name)-3", body: body, contentType: "application/x-tar")
            #expect(third.status == 429 && third.body.text.contains("already runs 2 template builds"), "\(third.body.text)")
        }
        try Self.expectNothingLeft(data, name: name)
        try Self.expectNothingLeft(data, name: name + "-2")
    }
}

import Foundation
import SandboxCore
import SandboxManager
import SandboxRuns
import SandboxStore
@testable import SandboxServer
import Testing

/// Request bodies are Codable types read through `BodyReader.decode` (issue 18, item 7): each field
/// keeps the type check and the 400 that names it, unknown fields are refused, and an inline
/// profile is decoded straight into a `Profile` by the loader's own rules.
@Suite struct RequestBodyTests {
    static func decode<T: Decodable>(_: T.Type, _ json: String) throws -> T {
        try BodyReader.decode(T.self, bytes: Array(json.utf8), profiles: ProfileLoader(searchPaths: []))
    }

    /// The 400 that decoding `json` as `T` answers.
    static func problem<T: Decodable>(_: T.Type, _ json: String) -> Problem? {
        do { _ = try decode(T.self, json) } catch { return Problem(error) }
        return nil
    }

    /// A profile in its file form (YAML) and the same profile as an inline JSON object.
    static let goodYAML = """
        name: tight
        extends: bounty
        isolation: container
        resources:
          memory: 128M
          pids: 32
          timeout: 5s
        network:
          mode: allowlist
          allow: [example.org]
        env:
          MODE: test
        user:
          uid: 1500
        """
    static let goodJSON = """
        {"name": "tight", "extends": "bounty", "isolation": "container",
         "resources": {"memory": "128M", "pids": 32, "timeout": "5s"},
         "network": {"mode": "allowlist", "allow": ["example.org"]}, "env": {"MODE": "test"}, "user": {"uid": 1500}}
        """

    func profileFile(_ text: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("body-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("p.yaml").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("an inline profile equals the same profile read from a YAML file, in a create and in a run")
    func inlineProfileEqualsTheFile() throws {
        let path = try profileFile(Self.goodYAML)
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        let fromFile = try ProfileLoader(searchPaths: []).loadFile(path)
        let create = try Self.decode(CreateSandboxBody.self, #"{"profile": \#(Self.goodJSON)}"#).request
        #expect(create.profile == .inline(fromFile))
        let run = try Self.decode(RunSubmitBody.self, #"{"profile": \#(Self.goodJSON), "cmd": ["true"]}"#)
        #expect(run.profile == .inline(fromFile) && run.inlineProfile)
        #expect(fromFile.limits.memoryBytes == 128 << 20 && fromFile.network.allow == ["example.org"] && fromFile.uid == 1500)
    }

    @Test("a bad profile is refused with the same detail as a YAML file and as inline JSON", arguments: [
        ("resources:\n  memory: lots\n", #"{"resources": {"memory": "lots"}}"#, "resources.memory"),
        ("resources:\n  memroy: 1G\n", #"{"resources": {"memroy": "1G"}}"#, "resources.memroy"),
        ("user:\n  uid: 0\n", #"{"user": {"uid": 0}}"#, "user.uid"),
        ("network:\n  mode: deny\n  allow: [a.org]\n", #"{"network": {"mode": "deny", "allow": ["a.org"]}}"#, "network.allow"),
        ("isolation: vm\n", #"{"isolation": "vm"}"#, "isolation"),
        ("extends: nothing\n", #"{"extends": "nothing"}"#, "extends"),
    ])
    func badProfileSameDetail(yaml: String, json: String, field: String) throws {
        let path = try profileFile(yaml)
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        var fileMessage = ""
        do { _ = try ProfileLoader(searchPaths: []).loadFile(path) } catch { fileMessage = error.message }
        #expect(fileMessage.hasPrefix("\(path): \(field): "), "\(fileMessage)")
        for inline in [Self.problem(CreateSandboxBody.self, #"{"profile": \#(json)}"#),
                       Self.problem(RunSubmitBody.self, #"{"profile": \#(json), "cmd": ["true"]}"#)] {
            let p = try #require(inline)
            #expect(p.status == 400 && p.field == "profile." + field, "\(p)")
            // The same words after the source: the file's path there, `profile` here.
            #expect("profile: " + fileMessage.dropFirst(path.count + 2) == p.detail)
        }
    }

    @Test("a profile that is neither a name nor an object, and a name that is a path, are refused")
    func profileShapes() throws {
        #expect(Self.problem(CreateSandboxBody.self, #"{"profile": 7}"#)?.detail == "profile: must be a profile name or a profile object")
        #expect(Self.problem(CreateSandboxBody.self, #"{"profile": "/etc/passwd"}"#)?.code == "not_found")
        #expect(try Self.decode(CreateSandboxBody.self, #"{"profile": "bounty"}"#).request.profile == .named("bounty"))
    }

    @Test("the body as a whole: not JSON, not an object, empty, or with an unknown field", arguments: [
        ("{\"ttl\": }", "", "not valid JSON"),
        ("[1, 2]", "", "the request body must be a JSON object"),
        ("\"text\"", "", "the request body must be a JSON object"),
        (#"{"ttl": "5m", "tll": 1}"#, "tll", "unknown field 'tll'; allowed: "),
    ])
    func wholeBody(json: String, field: String, detail: String) {
        let p = Self.problem(CreateSandboxBody.self, json)
        #expect(p?.status == 400 && p?.field == (field.isEmpty ? nil : field) && p?.detail.contains(detail) == true, "\(String(describing: p))")
    }

    @Test("an empty body and null fields are as if nothing were given")
    func emptyAndNull() throws {
        #expect(try Self.decode(CreateSandboxBody.self, "  \n").request == CreateSandboxRequest())
        #expect(try Self.decode(CreateSandboxBody.self, #"{"ttl": null, "setup": null, "profile": null}"#).request == CreateSandboxRequest())
        _ = try Self.decode(EmptyBody.self, "")
        #expect(Self.problem(EmptyBody.self, #"{"x": 1}"#)?.field == "x")
    }

    @Test("each field's type is checked and the 400 names it", arguments: [
        (#"{"metadata": {"a": 1}}"#, "metadata.a", "metadata.a: must be a string"),
        (#"{"env": ["A=1"]}"#, "env", "env: must be an object of string values"),
        (#"{"ttl": true}"#, "ttl", "ttl: must be a duration"),
        (#"{"secrets": "API_KEY"}"#, "secrets", "secrets: must be an array of strings"),
        (#"{"setup": []}"#, "setup", "setup: a shell command string or a non-empty array of strings"),
        (#"{"setup": 5}"#, "setup", "setup: a shell command string or a non-empty array of strings"),
        (#"{"setup": ""}"#, "setup", "setup: an empty command"),
        (#"{"isolation": "vm"}"#, "isolation", "isolation: unknown isolation 'vm'"),
    ])
    func createFields(json: String, field: String, detail: String) {
        let p = Self.problem(CreateSandboxBody.self, json)
        #expect(p?.status == 400 && p?.field == field && p?.detail.hasPrefix(detail) == true, "\(String(describing: p))")
    }

    @Test("run fields: integers are whole numbers in range, never booleans or text", arguments: [
        (#"{"cmd": ["true"], "priority": true}"#, "priority", "priority: must be an integer from -1000 to 1000"),
        (#"{"cmd": ["true"], "priority": "3"}"#, "priority", "priority: must be an integer from -1000 to 1000"),
        (#"{"cmd": ["true"], "max_attempts": 2.5}"#, "max_attempts", "max_attempts: must be an integer from 1 to 20"),
        (#"{"cmd": ["true"], "max_attempts": 21}"#, "max_attempts", "max_attempts: must be between 1 and 20"),
        (#"{"cmd": ["true"], "webhook": 5}"#, "webhook", "webhook: an http(s) URL"),
        (#"{"cmd": ["true"], "webhook": {"secret": "0123456789abcdef"}}"#, "webhook.url", "webhook.url is required"),
        (#"{"cmd": ["true"], "webhook": {"url": "https://h.example", "x": 1}}"#, "webhook.x", "unknown field 'webhook.x'"),
        (#"{"cmd": "true"}"#, "cmd", "cmd: must be an array of strings"),
        (#"{"cmd": ["true"], "stdin": "a", "stdin_base64": "YQ=="}"#, "stdin_base64", "give either stdin or stdin_base64"),
    ])
    func runFields(json: String, field: String, detail: String) {
        let p = Self.problem(RunSubmitBody.self, json)
        #expect(p?.status == 400 && p?.field == field && p?.detail.hasPrefix(detail) == true, "\(String(describing: p))")
    }

    @Test("a run's whole-number fields take 3.0 as 3, and a webhook as text or an object")
    func runValues() throws {
        let run = try Self.decode(RunSubmitBody.self, #"{"cmd": ["true"], "priority": 3.0, "max_attempts": 1e1, "webhook": "https://h.example/x"}"#)
        #expect(run.priority == 3 && run.maxAttempts == 10 && run.webhook?.url == "https://h.example/x")
        let object = try Self.decode(RunSubmitBody.self, #"{"cmd": ["true"], "webhook": {"url": "http://h.example", "secret": "0123456789abcdef"}}"#)
        #expect(object.webhook == .init(url: "http://h.example", secret: "0123456789abcdef"))
        // Without a secret one is made when the run is queued: whsec_ and 32 hex digits.
        let made = try run.record(tenantId: "t", idempotencyKey: nil, profiles: ProfileLoader(searchPaths: [])).webhook
        #expect(made?.url == "https://h.example/x" && made?.secret.hasPrefix("whsec_") == true && made?.secret.count == 38)
    }

    @Test("process bodies: pty, signal (name or number), resize, input")
    func processBodies() throws {
        let start = try Self.decode(ProcessStartBody.self, #"{"cmd": ["sh"], "tag": "t", "pty": {"cols": 100}}"#)
        #expect(start.options == ProcessOptions(background: true, pty: TerminalSize(cols: 100, rows: 24), tag: "t"))
        #expect(Self.problem(ProcessStartBody.self, #"{"cmd": ["sh"], "pty": {"cols": 0}}"#)?.field == "pty.cols")
        #expect(Self.problem(ProcessStartBody.self, #"{"cmd": ["sh"], "pty": "big"}"#)?.detail == "pty: must be an object")
        #expect(Self.problem(ExecBody.self, #"{"cmd": ["sh"], "tag": "t"}"#)?.field == "tag")
        #expect(try Self.decode(SignalBody.self, #"{"signal": 9.0}"#).signal == 9)
        #expect(try Self.decode(SignalBody.self, #"{"signal": "SIGKILL"}"#).signal == SIGKILL)
        #expect(try Self.decode(SignalBody.self, "{}").signal == SIGTERM)
        #expect(Self.problem(SignalBody.self, #"{"signal": true}"#)?.detail == "signal: a name such as \"TERM\" or a number")
        #expect(Self.problem(SignalBody.self, #"{"signal": 65}"#)?.detail == "signal: must be 1…64")
        #expect(Self.problem(ResizeBody.self, #"{"cols": 80}"#)?.field == "rows")
        #expect(try Self.decode(ProcessInputBody.self, #"{"data": "a", "data_base64": "Yg=="}"#).data == Array("ab".utf8))
        #expect(Self.problem(ProcessInputBody.self, #"{"data_base64": "%%"}"#)?.field == "data_base64")
    }

    @Test("a WebSocket exec's control messages are typed by `type`")
    func webSocketControl() throws {
        guard case .resize(let size) = try Self.decode(WebSocketControl.self, #"{"type": "resize", "rows": 40}"#) else {
            Issue.record("not a resize")
            return
        }
        #expect(size == TerminalSize(cols: 80, rows: 40))
        #expect(Self.problem(WebSocketControl.self, #"{"type": "stdin", "cols": 1}"#)?.field == "cols")
        #expect(Self.problem(WebSocketControl.self, #"{"type": "dance"}"#)?.field == "type")
        #expect(Self.problem(WebSocketControl.self, #"{"type": "signal", "signal": "NOPE"}"#)?.field == "signal")
    }

    @Test("a network change: mode, allow, add, remove, each checked")
    func networkChange() throws {
        let change = try Self.decode(NetworkChangeBody.self, #"{"add": ["example.org"]}"#)
        #expect(try change.applied(to: .deny) == NetworkPolicy(mode: .allowlist, allow: ["example.org"]))
        #expect(Self.problem(NetworkChangeBody.self, #"{"mode": "wide-open"}"#)?.field == "mode")
        let bad = try Self.decode(NetworkChangeBody.self, #"{"mode": "allowlist", "allow": ["ok.org", "bad host"]}"#)
        #expect(throws: Problem.self) { try bad.applied(to: .deny) }
    }

    @Test("the bodies the CLI sends are the same types, and decode back to what was encoded")
    func cliBodiesRoundTrip() throws {
        let exec = ExecFields(cmd: ["sh", "-c", "cat"], env: ["A": "1"], cwd: "/tmp", timeout: .milliseconds(1500), stdin: .bytes([0, 1, 255]))
        let sent = try JSONEncoder().encode(ExecBody(exec))
        let read = try BodyReader.decode(ExecBody.self, bytes: Array(sent)).exec
        #expect(read.cmd == exec.cmd && read.env == exec.env && read.cwd == "/tmp" && read.timeout == .milliseconds(1500) && read.stdin == exec.stdin)
        #expect(String(decoding: try JSONEncoder().encode(ExecBody(ExecFields(cmd: ["true"]))), as: UTF8.self) == #"{"cmd":["true"]}"#)

        let change = try BodyReader.decode(NetworkChangeBody.self, bytes: Array(try JSONEncoder().encode(NetworkChangeBody(remove: ["a.org"]))))
        #expect(change.remove == ["a.org"] && change.add.isEmpty && change.mode == nil && change.allow == nil)

        #expect(try BodyReader.decode(SignalBody.self, bytes: Array(try JSONEncoder().encode(SignalBody("KILL")))).signal == SIGKILL)
        #expect(try BodyReader.decode(SignalBody.self, bytes: Array(try JSONEncoder().encode(SignalBody("2")))).signal == 2)

        let create = CreateSandboxRequest(profile: .named("bounty"), isolation: .wasm, env: ["A": "1"], ttl: .seconds(600),
                                          idleTimeout: .seconds(90), metadata: ["team": "ml"])
        let created = try BodyReader.decode(CreateSandboxBody.self, bytes: Array(try JSONEncoder().encode(CreateSandboxBody(create))),
                                            profiles: ProfileLoader(searchPaths: [])).request
        #expect(created == create)

        var run = RunSubmitBody(exec: ExecFields(code: "print(1)", lang: "python", args: ["x"]), profile: .named("default"), isolation: .container)
        (run.priority, run.maxAttempts, run.labels, run.webhook) = (7, 2, ["k": "v"], .init(url: "https://h.example", secret: "0123456789abcdef"))
        let queued = try BodyReader.decode(RunSubmitBody.self, bytes: Array(try JSONEncoder().encode(run)), profiles: ProfileLoader(searchPaths: []))
        #expect(queued.profile == run.profile && queued.isolation == .container && queued.priority == 7 && queued.maxAttempts == 2)
        #expect(queued.labels == run.labels && queued.webhook == run.webhook && queued.exec.code == "print(1)" && queued.exec.args == ["x"])
    }

    @Test("a quota change: a missing field is kept, null clears it, a value sets it; the same field rules as every body")
    func quotaChange() throws {
        let change = try Self.decode(QuotaChangeBody.self, #"{"max_sandboxes": null, "max_memory": "2G", "max_queued": 5.0}"#).changes
        #expect(change.maxSandboxes == .clear && change.execsPerMinute == .keep && change.maxQueued == .set(5) && change.maxMemoryBytes == .set(2 << 30))
        #expect(try Self.decode(QuotaChangeBody.self, #"{"max_memory_bytes": 1024}"#).changes.maxMemoryBytes == .set(1024))
        #expect(Self.problem(QuotaChangeBody.self, #"{"max_sandboxes": true}"#)?.detail == "max_sandboxes: must be an integer")
        #expect(Self.problem(QuotaChangeBody.self, #"{"max_memory": null, "max_memory_bytes": 1}"#)?.field == "max_memory")
        #expect(Self.problem(QuotaChangeBody.self, #"{"max_sandbox": 1}"#)?.detail.hasPrefix("unknown field 'max_sandbox'") == true)
    }

    @Test("an Idempotency-Key of a bounty submission's own shape is refused: a caller's run cannot stand in for a submission's agent run")
    func submissionKeysAreReserved() throws {
        #expect(try RunBody.idempotencyKey("build-42") == "build-42")
        let reserved = SubmissionPlan.key("sub-000000000001", case: 0, role: "agent")
        var problem: Problem?
        do { _ = try RunBody.idempotencyKey(reserved) } catch { problem = Problem(error) }
        #expect(problem?.status == 400 && problem?.field == "Idempotency-Key", "\(String(describing: problem))")
    }
}

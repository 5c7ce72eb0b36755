import Foundation
import Testing
@testable import SandboxCore

@Suite("Profiles: built-ins, files, strict validation")
struct ProfileTests {
    let loader = ProfileLoader(searchPaths: [])

    @Test("the bounty profile carries the seed defaults")
    func bountySeedDefaults() throws {
        let p = try loader.load("bounty")
        #expect(p.limits.timeout == .seconds(30))
        #expect(p.limits.codeBytes == 512 * 1024)
        #expect(p.limits.inputBytes == 1024 * 1024)
        #expect(p.network.mode == .deny)
        #expect(p.tools.isEmpty)
        #expect(p.isolation == .container)
    }

    @Test("the default profile denies the network and has the seed time, code and input limits")
    func defaultProfile() throws {
        let p = try loader.load("default")
        #expect(p.network == .deny)
        #expect(p.limits.timeout == .seconds(30))
        #expect(p.limits.codeBytes == 512 * 1024)
        #expect(p.limits.inputBytes == 1 << 20)
    }

    @Test("an unknown profile name lists the known ones")
    func unknownProfile() {
        #expect {
            try loader.load("nope")
        } throws: { e in
            let e = e as! SandboxError
            return e.code == .notFound && e.message.contains("default") && e.message.contains("bounty") && e.message.contains("'nope'")
        }
    }

    @Test("a YAML profile sets every field group")
    func yamlProfile() throws {
        let p = try loader.parse(
            """
            name: tight
            description: for tests
            extends: bounty
            isolation: container
            runtime: runc
            persistence: persistent
            ttl: 10m
            resources:
              timeout: 2s
              memory: 128M
              pids: 32
              cpus: 0.5
              output: 64K
              workspace: 16M
              tmp: 8M
              code: 100K
              input: 10K
              open_files: 64
              file_size: 4M
            network:
              mode: allowlist
              allow: [example.org, api.example.com:443]
            tools: [kv.get, kv.set]
            env: {MODE: test}
            user: {uid: 2000, gid: 2000}
            """, defaultName: "x")
        #expect(p.name == "tight")
        #expect(p.runtime == "runc")
        #expect(p.persistence == .persistent)
        #expect(p.ttl == .seconds(600))
        #expect(p.limits.timeout == .seconds(2))
        #expect(p.limits.memoryBytes == 128 << 20)
        #expect(p.limits.pids == 32)
        #expect(p.limits.cpus == 0.5)
        #expect(p.limits.outputBytes == 64 << 10)
        #expect(p.limits.workspaceBytes == 16 << 20)
        #expect(p.limits.tmpBytes == 8 << 20)
        #expect(p.limits.codeBytes == 100 << 10)
        #expect(p.limits.inputBytes == 10 << 10)
        #expect(p.limits.openFiles == 64)
        #expect(p.limits.fileSizeBytes == 4 << 20)
        #expect(p.network.mode == .allowlist)
        #expect(p.network.allow == ["example.org", "api.example.com:443"])
        #expect(p.tools == ["kv.get", "kv.set"])
        #expect(p.env == ["MODE": "test"])
        #expect(p.uid == 2000 && p.gid == 2000)
    }

    @Test("a JSON profile file loads by path, named after the file")
    func jsonFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sbx-prof-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("quick.json")
        try #"{"resources": {"timeout": "5s", "memory": "64M"}}"#.write(to: file, atomically: true, encoding: .utf8)
        let p = try loader.load(file.path)
        #expect(p.name == "quick")
        #expect(p.limits.timeout == .seconds(5))
        #expect(p.limits.memoryBytes == 64 << 20)
    }

    @Test("profiles in the search path load by name and are listed", arguments: ["yaml", "yml", "json"])
    func searchPath(ext: String) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sbx-prof-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try "resources: {pids: 99}".write(to: dir.appendingPathComponent("mine.\(ext)"), atomically: true, encoding: .utf8)
        let l = ProfileLoader(searchPaths: [dir.path])
        #expect(try l.load("mine").limits.pids == 99)
        #expect(l.knownNames() == ["default", "bounty", "mine"])
    }

    @Test("an unknown field is named with its path", arguments: [
        ("colour: red", "colour"),
        ("resources: {memroy: 1G}", "resources.memroy"),
        ("network: {mode: deny, proxy: x}", "network.proxy"),
        ("user: {uid: 5, name: bob}", "user.name"),
    ])
    func unknownField(yaml: String, path: String) {
        #expect {
            try loader.parse(yaml, defaultName: "x")
        } throws: { e in
            let e = e as! SandboxError
            return e.code == .invalidRequest && e.message.contains(path) && e.message.contains("unknown field")
        }
    }

    @Test("on_idle and idle_timeout: what idleness does, after how long (default delete)")
    func onIdle() throws {
        let p = try loader.parse("on_idle: hibernate\nidle_timeout: 15m\n", defaultName: "x")
        #expect(p.onIdle == .hibernate && p.idleTimeout == .seconds(900))
        let d = try loader.parse("idle_timeout: 30s\n", defaultName: "x")
        #expect(d.onIdle == .delete && d.idleTimeout == .seconds(30))
        #expect(Profile.default.onIdle == .delete && Profile.default.idleTimeout == nil)
    }

    @Test("on_timeout: what the end of the TTL does (default delete), kept through the wire form")
    func onTimeout() throws {
        let p = try loader.parse("on_timeout: pause\nttl: 5m\n", defaultName: "x")
        #expect(p.onTimeout == .pause && Profile.default.onTimeout == .delete)
        let again = try JSONDecoder().decode(Profile.self, from: try JSONEncoder().encode(p))
        #expect(again.onTimeout == .pause)
    }

    @Test("an unknown value is named with the allowed ones", arguments: [
        ("isolation: vm", "isolation", "container"),
        ("persistence: forever", "persistence", "ephemeral"),
        ("network: {mode: wide}", "network.mode", "allowlist"),
        ("runtime: docker", "runtime", "crun"),
        ("{on_idle: sleep, idle_timeout: 5m}", "on_idle", "hibernate"),
        ("on_timeout: stop", "on_timeout", "hibernate"),
        ("on_idle: pause", "on_idle", "needs idle_timeout"),
        ("idle_timeout: 0s", "idle_timeout", "longer than 0s"),
    ])
    func unknownValue(yaml: String, path: String, hint: String) {
        #expect {
            try loader.parse(yaml, defaultName: "x")
        } throws: { e in
            let e = e as! SandboxError
            return e.message.contains(path) && e.message.contains(hint)
        }
    }

    @Test("bad sizes, durations and bounds are refused", arguments: [
        "resources: {memory: lots}", "resources: {timeout: soon}", "resources: {memory: 1M}",
        "resources: {pids: 1}", "resources: {cpus: 0}", "user: {uid: 0}", "network: {allow: [x.org]}",
        "- a list", "resources: [1, 2]",
    ])
    func badValues(yaml: String) {
        #expect(throws: SandboxError.self) { try loader.parse(yaml, defaultName: "x") }
    }
}

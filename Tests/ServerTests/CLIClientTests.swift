import ArgumentParser
import Foundation
import NIOConcurrencyHelpers
import SandboxCommands
import SandboxCore
import SandboxTestSupport
import Testing

/// The CLI client commands, run in-process against a served app, output captured.
@Suite(.serialized) struct CLIClientTests {
    final class Capture: Sendable {
        let out = NIOLockedValueBox<[UInt8]>([])
        let err = NIOLockedValueBox<[UInt8]>([])
        var console: ClientConsole {
            ClientConsole(out: { b in self.out.withLockedValue { $0 += b } }, err: { b in self.err.withLockedValue { $0 += b } })
        }
        var stdout: String { String(decoding: out.withLockedValue { $0 }, as: UTF8.self) }
        var stderr: String { String(decoding: err.withLockedValue { $0 }, as: UTF8.self) }
    }

    /// Runs `sandboxer ARGS --server URL --api-key KEY`; returns the exit status (0, an ExitCode, or
    /// the problem's) and what it printed.
    static func run(_ app: ServedApp, _ key: String?, _ args: [String]) async throws -> (status: Int32, out: String, err: String, problem: APIProblem?) {
        let capture = Capture()
        var full = Array(args.prefix { $0 != "--" }) + ["--server", app.url]
        if let key { full += ["--api-key", key] }
        full += args.drop { $0 != "--" }
        var status: Int32 = 0
        var problem: APIProblem?
        try await ClientConsole.$current.withValue(capture.console) {
            var command = try SandboxerCommand.parseAsRoot(full)
            do {
                if var c = command as? AsyncParsableCommand { try await c.run() } else { try command.run() }
            } catch let e as ExitCode {
                status = e.rawValue
            } catch let p as APIProblem {
                problem = p
                status = ExitStatus.refused
            }
        }
        return (status, capture.stdout, capture.stderr, problem)
    }

    @Test func problemsAreReportedWithTheirCode() async throws {
        try await ServedApp.with { app in
            let r = try await Self.run(app, "bad-key", ["ls"])
            #expect(r.status == 2 && r.problem?.code == "unauthorized")
            let k = try await app.key("acme")
            let missing = try await Self.run(app, k, ["rm", "sbx-nothere"])
            #expect(missing.status == 2)
            #expect(missing.err.contains("sandboxer: not_found:"))
            let capture = Capture()
            try await ClientConsole.$current.withValue(capture.console) {
                var ls = try SandboxerCommand.parseAsRoot(["ls", "--server", "http://127.0.0.1:1", "--api-key", k]) as! AsyncParsableCommand
                await #expect(throws: APIProblem.self) { try await ls.run() }
            }
        }
    }

    @Test(.realSandboxes) func createExecCopyListKillRemove() async throws {
        try await ServedApp.with { app in
            let key = try await app.key("acme")
            let created = try await Self.run(app, key, ["create", "--ttl", "10m", "--metadata", "team=ml", "--env", "GREETING=hi"])
            #expect(created.status == 0, "\(created)")
            let id = created.out.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(id.hasPrefix("sbx-"))

            let exec = try await Self.run(app, key, ["exec", id, "--", "sh", "-c", "echo $GREETING; echo oops >&2; exit 5"])
            #expect(exec.status == 5 && exec.out == "hi\n" && exec.err == "oops\n", "\(exec)")
            let json = try await Self.run(app, key, ["exec", "--json", id, "--", "python3", "-c", "print(6*7)"])
            #expect(json.status == 0)
            #expect(try JSONDecoder().decode(ExecResult.self, from: Data(json.out.utf8)).stdout == "42\n")

            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sbx-cli-\(UUID().uuidString.prefix(6))").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let bytes = Data((0..<5000).map { UInt8($0 % 251) })
            try bytes.write(to: URL(fileURLWithPath: dir + "/in.bin"))
            #expect(try await Self.run(app, key, ["cp", dir + "/in.bin", "\(id):/workspace/in.bin"]).status == 0)
            #expect(try await Self.run(app, key, ["cp", "\(id):/workspace/in.bin", dir + "/out.bin"]).status == 0)
            #expect(FileManager.default.contents(atPath: dir + "/out.bin") == bytes)

            let files = try await Self.run(app, key, ["ls", "\(id):/workspace"])
            #expect(files.out.contains("in.bin") && files.out.contains("5000"), "\(files.out)")
            let boxes = try await Self.run(app, key, ["ls"])
            let lines = boxes.out.split(separator: "\n")
            #expect(lines.first?.split(separator: " ", omittingEmptySubsequences: true) == ["ID", "STATE", "PROFILE", "ISOLATION", "CREATED", "EXPIRES"])
            #expect(lines.contains { $0.hasPrefix(Substring(id)) && $0.contains("running") && $0.contains("container") })
            #expect(try await Self.run(app, key, ["ls", "--filter", "team=web"]).out.split(separator: "\n").count == 1)

            let client = try app.client(key)
            let started = try await client.checked("POST", "/v1/sandboxes/\(id)/processes", body: try jsonBytes(["cmd": ["sleep", "60"]]))
            let pid = try JSONDecoder().decode(SandboxProcess.self, from: Data(started.body)).pid
            let ps = try await Self.run(app, key, ["ps", id])
            #expect(ps.out.contains("sleep 60") && ps.out.contains("running"), "\(ps.out)")
            #expect(try await Self.run(app, key, ["kill", id, String(pid), "--signal", "KILL"]).status == 0)
            _ = try await client.checked("GET", "/v1/sandboxes/\(id)/processes/\(pid)/output")

            let removed = try await Self.run(app, key, ["rm", id])
            #expect(removed.status == 0 && removed.out == id + "\n")
            #expect(try await Self.run(app, key, ["ls", "--state", "running"]).out.split(separator: "\n").count == 1)
            // Like docker ps: ended sandboxes only with -a, and without an expiry.
            #expect(!(try await Self.run(app, key, ["ls"]).out.contains(id)))
            let all = try await Self.run(app, key, ["ls", "-a"]).out.split(separator: "\n").first { $0.hasPrefix(Substring(id)) }
            #expect(all?.contains("destroyed") == true && all?.hasSuffix(" -") == true, "\(all ?? "")")

            // rm --no-wait: the sandbox is stopping when the command returns; the server ends it.
            let other = try await Self.run(app, key, ["create", "--profile", "default"]).out.trimmingCharacters(in: .whitespacesAndNewlines)
            let quick = try await Self.run(app, key, ["rm", "--no-wait", "--json", other])
            #expect(quick.status == 0 && quick.out.contains("\"stopping\""), "\(quick)")
            func row() async throws -> String {
                try await Self.run(app, key, ["ls", "-a"]).out.split(separator: "\n").first { $0.hasPrefix(Substring(other)) }.map(String.init) ?? ""
            }
            try await HostHealth.waitUntil(tries: 100, every: .milliseconds(100)) { try await row().contains("destroyed") }
            let ended = try await row()
            #expect(ended.contains("destroyed"), "\(ended)")
        }
    }
}

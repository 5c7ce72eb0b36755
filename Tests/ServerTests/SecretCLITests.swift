import Foundation
import SandboxLinux
import Testing

/// `sandboxer secret set/list/rm`, run as the built executable against a temporary `--data`.
@Suite("sandboxer secret: set from stdin, list without values, rm")
struct SecretCLITests {
    /// The built `sandboxer` beside the test bundle.
    static let executable = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("sandboxer").path

    /// Runs `sandboxer ARGS` with `stdin`; returns the exit status and what it printed. The wait
    /// is on a thread of its own: a `template build` takes many seconds, and a test blocking one of
    /// the two threads of the cooperative pool (2 cores) stalls every other test's timers with it.
    static func run(_ args: [String], stdin: String = "") async throws -> (status: Int32, out: String, err: String) {
        try await DedicatedThread.run(name: "test-cli") { Result { try runBlocking(args, stdin: stdin) } }.get()
    }

    /// The same, waiting on the calling thread (for a `defer`, which cannot await).
    static func runBlocking(_ args: [String], stdin: String = "") throws -> (status: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        env["SANDBOXER_STORE"] = nil
        p.environment = env
        // stderr goes to a file: read after stdout's end, a pipe of it could fill and stall both.
        let errPath = NSTemporaryDirectory() + "sbx-cli-err-\(UUID().uuidString)"
        guard FileManager.default.createFile(atPath: errPath, contents: nil), let errFile = FileHandle(forWritingAtPath: errPath) else {
            throw CocoaError(.fileWriteUnknown)
        }
        defer { try? FileManager.default.removeItem(atPath: errPath) }
        let (input, output) = (Pipe(), Pipe())
        (p.standardInput, p.standardOutput, p.standardError) = (input, output, errFile)
        try p.run()
        try errFile.close()
        input.fileHandleForWriting.write(Data(stdin.utf8))
        try input.fileHandleForWriting.close()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let err = FileManager.default.contents(atPath: errPath) ?? Data()
        return (p.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
    }

    @Test("set reads the value from stdin (one newline stripped); list shows name, hosts and header but never the value; rm removes")
    func setListRemove() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.executable), "build the sandboxer executable first (swift build)")
        let data = NSTemporaryDirectory() + "sandboxer-secret-cli-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: data) }
        let value = "sk-cli-\(UUID().uuidString)"

        let set = try await Self.run(["secret", "set", "OPENAI_API_KEY", "--hosts", "api.openai.com,*.openai.com", "--hosts", "oai.example.com",
                                "--header", "Authorization: Bearer {value}", "--shared", "--data", data], stdin: value + "\n")
        #expect(set.status == 0, "\(set.err)")
        #expect(set.out.contains("set OPENAI_API_KEY (shared)") && !set.out.contains(value))
        #expect(try await Self.run(["secret", "set", "GITHUB_TOKEN", "--hosts", "api.github.com", "--tenant", "acme", "--data", data], stdin: "ghp_1").status == 0)
        let unsaid = try await Self.run(["secret", "set", "X", "--hosts", "a.example.com", "--data", data], stdin: "v")
        #expect(unsaid.status != 0 && unsaid.err.contains("--tenant NAME") && unsaid.err.contains("--shared"), "whose a secret is must be said")

        let list = try await Self.run(["secret", "list", "--data", data])
        #expect(list.status == 0, "\(list.err)")
        #expect(list.out.contains("shared\tOPENAI_API_KEY\tapi.openai.com,*.openai.com,oai.example.com\tAuthorization: Bearer {value}\t"))
        #expect(list.out.contains("acme\tGITHUB_TOKEN\tapi.github.com\t-\t"))
        let acme = try await Self.run(["secret", "list", "--tenant", "acme", "--data", data])
        #expect(acme.out.contains("GITHUB_TOKEN") && !acme.out.contains("OPENAI_API_KEY"))
        let json = try await Self.run(["secret", "list", "--json", "--data", data])
        for output in [list.out, list.err, json.out, json.err] {
            #expect(!output.contains(value) && !output.contains("ghp_1"), "list never prints a value")
        }
        #expect(json.out.contains("\"hosts\"") && json.out.contains("\"updated_at\""))

        let bad = try await Self.run(["secret", "set", "K", "--hosts", "10.0.0.0/8", "--shared", "--data", data], stdin: "v")
        #expect(bad.status == 2 && bad.err.contains("invalid_request") && bad.err.contains("secret hosts entry '10.0.0.0/8'"))
        let empty = try await Self.run(["secret", "set", "K", "--hosts", "a.example.com", "--shared", "--data", data], stdin: "\n")
        #expect(empty.status == 2 && empty.err.contains("empty"))

        let shared = try await Self.run(["secret", "rm", "GITHUB_TOKEN", "--shared", "--data", data])
        #expect(shared.status == 2 && shared.err.contains("not_found"), "acme's secret is not a shared one")
        let rm = try await Self.run(["secret", "rm", "GITHUB_TOKEN", "--tenant", "acme", "--data", data])
        #expect(rm.status == 0 && rm.out.contains("removed GITHUB_TOKEN"))
        let again = try await Self.run(["secret", "rm", "GITHUB_TOKEN", "--tenant", "acme", "--data", data])
        #expect(again.status == 2 && again.err.contains("not_found"))
        #expect(!(try await Self.run(["secret", "list", "--data", data]).out.contains("GITHUB_TOKEN")))

        var st = stat()
        #expect(stat(data + "/secrets.key", &st) == 0 && st.st_mode & 0o777 == 0o600)
    }

    @Test("stripping keeps everything but one trailing newline")
    func stripOneNewline() async throws {
        let data = NSTemporaryDirectory() + "sandboxer-secret-cli-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: data) }
        try #require(FileManager.default.isExecutableFile(atPath: Self.executable), "build the sandboxer executable first (swift build)")
        let twoNewlines = try await Self.run(["secret", "set", "K", "--hosts", "a.example.com", "--shared", "--data", data], stdin: "v\n\n")
        #expect(twoNewlines.status == 2 && twoNewlines.err.contains("CR or LF"), "only one newline is stripped")
        #expect(try await Self.run(["secret", "set", "K", "--hosts", "a.example.com", "--shared", "--data", data], stdin: "v\r\n").status == 0)
    }
}

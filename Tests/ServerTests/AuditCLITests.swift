import Foundation
import SandboxCommands
import SandboxCore
import SandboxTestSupport
import Testing

/// `sandboxer audit` against a served app: the whole trail, and nothing a sandbox wrote can forge
/// a line or reach the terminal.
@Suite(.serialized) struct AuditCLITests {
    @Test(.realSandboxes) func theWholeTrailIsPrintedAndControlCharactersAreEscaped() async throws {
        try await ServedApp.with { app in
            let key = try await app.key("acme")
            let created = try await CLIClientTests.run(app, key, ["create", "--ttl", "10m"])
            let id = created.out.trimmingCharacters(in: .whitespacesAndNewlines)
            // More entries than one page (1,000): a flood must not hide what follows it.
            for i in 0..<2_500 {
                app.manager.eventSink.record(AuditEvent(sandboxId: id, kind: .fileRead, actor: "key_x", detail: ["path": .string("/workspace/\(i)")]))
            }
            // A DNS name chosen by sandbox code: a newline, a forged entry, a terminal escape.
            let forged = "a\n2099-01-01T00:00:00.000Z  #1  sandbox.delete  key_admin\u{1B}[2J\u{9B}31m.example"
            app.manager.eventSink.record(AuditEvent(sandboxId: id, kind: .egressDeny, actor: "sandbox", detail: ["host": .string(forged), "via": "dns"]))
            _ = try await CLIClientTests.run(app, key, ["rm", id])

            let audit = try await CLIClientTests.run(app, key, ["audit", id])
            #expect(audit.status == 0)
            let lines = audit.out.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
            // sandbox.create, 2,500 reads, the denial, sandbox.delete: one line each.
            #expect(lines.count == 2_503, "\(lines.count) lines")
            #expect(lines.last?.contains("sandbox.delete") == true)
            #expect(!audit.out.contains("\u{1B}") && !audit.out.contains("\u{9B}"))
            let denial = try #require(lines.first { $0.contains("egress.deny") })
            #expect(denial.contains("host=a\\n2099-01-01T00:00:00.000Z  #1  sandbox.delete  key_admin\\u{1b}[2J\\u{9b}31m.example"), "\(denial)")
        }
    }
}

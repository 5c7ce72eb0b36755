import ArgumentParser
import Foundation
import SandboxCore
import SandboxManager
import SandboxServer

/// `sandboxer create`: a long-lived sandbox on the server; prints its id.
struct CreateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create", abstract: "Create a sandbox on a sandboxer server and print its id.", discussion: clientExitDiscussion)

    @OptionGroup var client: ClientOptions

    @Option(name: .long, help: "Profile name (default, bounty, …).")
    var profile: String = "default"

    @Option(name: .long, help: "Isolation: container, gvisor, wasm, wasm+container (default: the profile's).")
    var isolation: String?

    @Option(name: .long, help: "Lifetime, e.g. 10m, 1h (default: the server's).")
    var ttl: String?

    @Option(name: .long, help: "Destroy after this long without activity, e.g. 5m.")
    var idleTimeout: String?

    @Option(name: [.customShort("e"), .long], help: "Environment variable NAME=value for every process (repeatable).")
    var env: [String] = []

    @Option(name: .long, help: "Metadata KEY=value (repeatable; filter with 'ls --filter').")
    var metadata: [String] = []

    func run() async throws {
        var create = CreateSandboxRequest(profile: .named(profile))
        create.isolation = try isolation.map { try IsolationLevel.named($0) }
        create.ttl = try ttl.map { try DurationText.parse($0, field: "ttl") }
        create.idleTimeout = try idleTimeout.map { try DurationText.parse($0, field: "idle_timeout") }
        create.env = try ClientText.pairs(env, flag: "--env")
        create.metadata = try ClientText.pairs(metadata, flag: "--metadata")
        let reply = try await client.client().checked("POST", "/v1/sandboxes", body: Array(try JSONEncoder().encode(CreateSandboxBody(create))))
        if client.json {
            ClientConsole.current.out(reply.body + [10])
        } else {
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            ClientConsole.print(try decoder.decode(SandboxView.self, from: Data(reply.body)).id)
        }
    }
}

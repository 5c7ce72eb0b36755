import Foundation
import SandboxCore
@testable import SandboxCommands
import SandboxTestSupport
import Testing

/// `serve`'s configuration file: YAML keys are `serve`'s flag names, read from the command's own
/// definition; the command line wins; an unknown key is an error listing the known ones.
@Suite("serve --config: every flag by name, flags win")
struct ServeConfigTests {
    static let flags: [FlagFile.Flag] = [
        .init(name: "port", kind: .option), .init(name: "warm-pool", kind: .repeatingOption),
        .init(name: "allow-open-network", kind: .flag), .init(name: "ceiling", kind: .repeatingOption),
    ]

    @Test("scalars, lists, mappings and switches become flags in the file's order; null sets nothing")
    func shapes() throws {
        let yaml = "port: 7071\nwarm-pool: [default=2, bounty=1]\nceiling: {memory: 4G, cpus: 2}\nallow-open-network: true\n"
        #expect(try FlagFile.arguments(yaml: yaml, flags: Self.flags, file: "c.yaml") == [
            "--port=7071", "--warm-pool=default=2", "--warm-pool=bounty=1", "--ceiling=memory=4G", "--ceiling=cpus=2",
            "--allow-open-network"])
        #expect(try FlagFile.arguments(yaml: "allow-open-network: false\nport: null\n", flags: Self.flags, file: "c.yaml") == [])
        #expect(try FlagFile.arguments(yaml: "# nothing set\n", flags: Self.flags, file: "c.yaml") == [])
    }

    @Test("an unknown key is an error that names it and lists the known keys")
    func unknownKey() {
        #expect {
            try FlagFile.arguments(yaml: "prot: 7070\n", flags: Self.flags, file: "/etc/sandboxer/config.yaml")
        } throws: { error in
            let message = (error as? SandboxError)?.message ?? ""
            return message.contains("/etc/sandboxer/config.yaml") && message.contains("'prot'")
                && message.contains("allow-open-network, ceiling, port, warm-pool")
        }
    }

    @Test("a value of the wrong shape for its flag is an error naming the flag")
    func wrongShapes() {
        for yaml in ["port: [1, 2]\n", "allow-open-network: maybe\n", "warm-pool: [[a]]\n", "- port\n"] {
            #expect(throws: SandboxError.self, "\(yaml)") { try FlagFile.arguments(yaml: yaml, flags: Self.flags, file: "c.yaml") }
        }
    }

    @Test("the keys are serve's own flags, the option group's included; not --config or --help")
    func keysFromTheCommand() {
        let byName = Dictionary(ServeConfig.flags.map { ($0.name, $0.kind) }, uniquingKeysWith: { a, _ in a })
        #expect(byName["port"] == .option)
        #expect(byName["warm-pool"] == .repeatingOption)
        #expect(byName["resolve"] == .repeatingOption)
        #expect(byName["allow-open-network"] == .flag)
        #expect(byName["config"] == nil && byName["help"] == nil)
    }

    @Test("packaging/config.example.yaml shows every key serve has")
    func exampleListsEveryKey() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let example = try String(contentsOf: root.appendingPathComponent("packaging/config.example.yaml"), encoding: .utf8)
        let shown = Set(example.split(separator: "\n").compactMap { line -> String? in
            guard line.hasPrefix("# "), let colon = line.firstIndex(of: ":") else { return nil }
            return String(line[line.index(line.startIndex, offsetBy: 2)..<colon])
        })
        let missing = ServeConfig.flags.map(\.name).filter { !shown.contains($0) }
        #expect(missing.isEmpty, "add these serve flags to packaging/config.example.yaml: \(missing)")
    }

    @Test("the file's settings are parsed by serve; a flag on the command line wins, a list given there replaces the file's")
    func commandLineWins() throws {
        let dir = NSTemporaryDirectory() + "sbx-config-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/config.yaml"
        try "port: 7071\nhost: 0.0.0.0\nwarm-pool: {default: 2}\ntenant-runs: 3\n".write(toFile: file, atomically: true, encoding: .utf8)
        let env = [ServeConfig.environmentVariable: file]

        let fromFile = try ServeCommand.parse(Array(ServeConfig.expand(["serve"], environment: env).dropFirst()))
        #expect(fromFile.port == 7071 && fromFile.host == "0.0.0.0" && fromFile.warmPool == ["default=2"] && fromFile.tenantRuns == 3)

        let overridden = try ServeCommand.parse(Array(ServeConfig.expand(
            ["serve", "--port", "7072", "--warm-pool=bounty=1"], environment: env).dropFirst()))
        #expect(overridden.port == 7072 && overridden.warmPool == ["bounty=1"] && overridden.host == "0.0.0.0")

        // --config names the file too (and beats the environment); "" reads none.
        let named = try ServeConfig.expand(["serve", "--config", file], environment: [ServeConfig.environmentVariable: "/nonexistent"])
        #expect(try ServeCommand.parse(Array(named.dropFirst())).port == 7071)
        #expect(try ServeConfig.expand(["serve", "--port", "1"], environment: [ServeConfig.environmentVariable: ""]) == ["serve", "--port", "1"])
    }

    @Test("other commands, help, and a missing named file")
    func edges() {
        let env = [ServeConfig.environmentVariable: "/nonexistent/config.yaml"]
        #expect((try? ServeConfig.expand(["run", "--", "true"], environment: env)) == ["run", "--", "true"])
        #expect((try? ServeConfig.expand(["serve", "--help"], environment: env)) == ["serve", "--help"])
        #expect(throws: SandboxError.self) { try ServeConfig.expand(["serve"], environment: env) }
    }
}

/// `sandboxer version`: this release, Swift, and the engines' versions, which cannot drift from
/// what the build uses.
@Suite("sandboxer version")
struct VersionTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test("WasmKit's version is Package.resolved's and QuickJS's is the one wasm/quickjs/build.sh builds")
    func enginesMatchTheBuild() async throws {
        let report = try await VersionCommand.report(store: nil)
        struct Resolved: Decodable {
            struct Pin: Decodable { struct State: Decodable { var version: String? }; var identity: String; var state: State }
            var pins: [Pin]
        }
        let resolved = try JSONDecoder().decode(Resolved.self, from: Data(contentsOf: Self.root.appendingPathComponent("Package.resolved")))
        #expect(resolved.pins.first { $0.identity == "wasmkit" }?.state.version == report.wasmkit)
        let build = try String(contentsOf: Self.root.appendingPathComponent("wasm/quickjs/build.sh"), encoding: .utf8)
        #expect(build.contains("QJS_VERSION=\"\(report.quickjs)\""))
    }

    @Test("the report names this release, the compiler and SQLite; crun when it is installed")
    func report() async throws {
        let report = try await VersionCommand.report(store: nil)
        #expect(report.sandboxer == SandboxerVersion.current)
        #expect(report.swift.hasPrefix("6."))
        #expect(report.sqlite?.hasPrefix("3.") == true)
        #expect(report.postgresql == nil)
        if report.crunPath != nil { #expect(report.crun?.first?.isNumber == true, "\(report.crun ?? "")") }
    }

    @Test("with a PostgreSQL store it reports the server's version", .postgres)
    func postgres() async throws {
        let report = try await VersionCommand.report(store: ProcessInfo.processInfo.environment["SANDBOXER_TEST_PG_URL"])
        #expect(report.postgresql?.first?.isNumber == true, "\(report.postgresql ?? "nil")")
    }
}

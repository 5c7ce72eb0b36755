import ArgumentParser
import BackendOCI
import BackendWasm
import Foundation
import SandboxCore
import SandboxLinux
import SandboxStore
import SandboxStorePostgres

/// `sandboxer version`: this release, the compiler that built it and the engines it runs on
/// (crun, SQLite, PostgreSQL with `--store`, WasmKit, QuickJS), as text or `--json`.
struct VersionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "version", abstract: "Print the versions of sandboxer, Swift and the engines it runs on.")

    @Option(name: .long, help: "Also ask this PostgreSQL store (a postgres:// URL; default: $SANDBOXER_STORE when it is one) for its server version.")
    var store: String?

    @Flag(name: .long, help: "Print one JSON object.")
    var json = false

    /// What `version` reports; nil fields are engines not found here.
    struct Report: Codable, Equatable {
        var sandboxer: String
        var swift: String
        var crun: String?
        var crunPath: String?
        var sqlite: String?
        var postgresql: String?
        var wasmkit: String
        var quickjs: String
        var qjsWasm: String?

        enum CodingKeys: String, CodingKey {
            case sandboxer, swift, crun, sqlite, postgresql, wasmkit, quickjs
            case crunPath = "crun_path", qjsWasm = "qjs_wasm"
        }
    }

    func run() async throws {
        let report = try await Self.report(store: store)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
            return
        }
        print("sandboxer \(report.sandboxer)")
        print("swift \(report.swift)")
        print("crun \(report.crun.map { "\($0) (\(report.crunPath ?? ""))" } ?? "not found")")
        print("sqlite \(report.sqlite ?? "unknown")")
        if let pg = report.postgresql { print("postgresql \(pg)") }
        print("wasmkit \(report.wasmkit)")
        print("quickjs quickjs-ng \(report.quickjs) (\(report.qjsWasm ?? "qjs.wasm not installed"))")
    }

    /// The report; with a PostgreSQL store URL it connects and asks the server.
    static func report(store: String?) async throws -> Report {
        let crunPath = OCIRuntime.locate("crun")
        let crunLine = crunPath.map { HostReport.firstLine(of: [$0, "--version"]) }
        var report = Report(
            sandboxer: SandboxerVersion.current, swift: SandboxerVersion.swift,
            crun: crunLine.map { $0.hasPrefix("crun version ") ? String($0.dropFirst("crun version ".count)) : $0 },
            crunPath: crunPath, sqlite: SQLiteStore.libraryVersion(), postgresql: nil,
            wasmkit: WasmVersions.wasmKit, quickjs: WasmVersions.quickJS, qjsWasm: try? QuickJS.locate())
        if let url = try ServerSetup.postgresURL(store) {
            let pg = try await PostgresStore.open(url: url)
            do { report.postgresql = try await pg.serverVersion() } catch {
                await pg.close()
                throw error
            }
            await pg.close()
        }
        return report
    }
}

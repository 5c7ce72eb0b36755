import ArgumentParser
import BackendOCI
import Foundation
import SandboxCore
import SandboxLinux
import SandboxStore
import SandboxStorePostgres

/// `sandboxer doctor`: what this host supports, and (`--fix`) preparing it for crun.
struct DoctorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Report what this host supports: runtimes, cgroup mode, user namespaces, seccomp, landlock, KVM.",
        discussion: """
            --fix prepares the host idempotently (on hybrid cgroup hosts: binds stray cgroup2 controllers to v1 hierarchies so crun runs).
            The KVM line runs three tiny guests on a vCPU (real mode; 64-bit long mode; an INT3 through the guest's IDT, as a kernel does at boot; at most 2 s in all): /dev/kvm opening is not enough for the microvm isolation.
            """)

    @Flag(name: .long, help: "Prepare the host where needed (idempotent).")
    var fix = false

    @Flag(name: .long, help: "Print the report as JSON.")
    var json = false

    @Option(name: .long, help: "Also check this store's durability: sqlite or a postgres:// URL (default: $SANDBOXER_STORE; sqlite is checked when --data is given).")
    var store: String?

    @Option(name: .long, help: "The data directory whose SQLite store to check (default: $SANDBOXER_DATA).")
    var data: String?

    func run() async throws {
        if fix {
            let steps = try HostPreparation().fix()
            if !json {
                print(steps.isEmpty ? "host already prepared: nothing to do" : steps.map { "done: \($0.description)" }.joined(separator: "\n"))
            }
        }
        var runtimes: [String: String?] = [:]
        for r in OCIRuntime.supported { runtimes[r] = OCIRuntime.locate(r) }
        var report = HostReport.collect(runtimes: runtimes)
        if let check = await storeCheck() { report.checks.append(check) }
        let memory = await MemorySnapshots.unavailableReason()
        report.checks.append(HostReport.Check(name: "memory snapshots", ok: memory == nil,
                                              detail: memory ?? "available (criu check passes)"))
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try enc.encode(report), as: UTF8.self))
        } else {
            for c in report.checks { print("\(c.ok ? "ok  " : "no  ") \(c.name): \(c.detail)") }
        }
        let crunReady = report.checks.first { $0.name == "cgroups" }?.ok ?? false
        if !crunReady && !fix { throw ExitCode(1) }
    }

    /// The `store` line: what a 201/202 means on the store `--store`/`--data` name (nil when neither
    /// is given, nor `$SANDBOXER_STORE`/`$SANDBOXER_DATA`). A non-durable store is reported, not fatal.
    func storeCheck() async -> HostReport.Check? {
        let env = ProcessInfo.processInfo.environment
        let dataDirectory = data ?? env["SANDBOXER_DATA"].flatMap { $0.isEmpty ? nil : $0 }
        do {
            let postgres = try ServerSetup.postgresURL(store, environment: env)
            guard postgres != nil || dataDirectory != nil else { return nil }
            let d: StoreDurability
            if let postgres {
                let opened = try await PostgresStore.open(url: postgres)
                do { d = try await opened.durability() } catch {
                    await opened.close()
                    throw error
                }
                await opened.close()
            } else {
                let opened = try SQLiteStore(directory: dataDirectory ?? StoreFiles.defaultDirectory())
                defer { try? opened.close() }
                d = try await opened.durability()
            }
            return HostReport.Check(name: "store", ok: d.durable, detail: "\(d.name): \(d.detail)")
        } catch {
            return HostReport.Check(name: "store", ok: false, detail: "\(error)")
        }
    }
}

import ArgumentParser
import BackendOCI
import Foundation
import SandboxCore
import SandboxLinux

/// `sandboxer doctor`: what this host supports, and (`--fix`) preparing it for crun.
struct DoctorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Report what this host supports: runtimes, cgroup mode, user namespaces, seccomp, landlock, KVM.",
        discussion: """
            --fix prepares the host idempotently (on hybrid cgroup hosts: binds stray cgroup2 controllers to v1 hierarchies so crun runs).
            The KVM line runs three tiny guests on a vCPU (real mode; 64-bit long mode; an INT3 through the guest's IDT, as a kernel does at boot; at most 2 s in all): /dev/kvm opening is not enough for the microvm lane.
            """)

    @Flag(name: .long, help: "Prepare the host where needed (idempotent).")
    var fix = false

    @Flag(name: .long, help: "Print the report as JSON.")
    var json = false

    func run() async throws {
        if fix {
            let steps = try HostPreparation().fix()
            if !json {
                print(steps.isEmpty ? "host already prepared: nothing to do" : steps.map { "done: \($0.description)" }.joined(separator: "\n"))
            }
        }
        var runtimes: [String: String?] = [:]
        for r in OCIRuntime.supported { runtimes[r] = OCIRuntime.locate(r) }
        let report = HostReport.collect(runtimes: runtimes)
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
}

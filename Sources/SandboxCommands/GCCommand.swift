import ArgumentParser
import BackendOCI
import Foundation
import SandboxCore
import SandboxLinux

/// `sandboxer gc`: removes leftovers of crashed runs.
struct GCCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Remove everything crashed runs left behind (runtime state, cgroups, mounts, directories), agent copies unused for an hour, and the empty state directories of servers whose data directory is gone.")

    func run() async throws {
        let backend = try OCIBackend()
        let configuration = backend.configuration
        let r = await BlockingPool.shared.run { GarbageCollector(configuration: configuration).collect() }
        if r.isEmpty {
            print("nothing to remove")
            return
        }
        for s in r.runtimeStates { print("removed runtime state \(s)") }
        for c in r.cgroups { print("removed cgroup sandboxer/\(c)") }
        for m in r.mounts { print("unmounted \(m)") }
        for s in r.sandboxes { print("removed sandbox directory \(s)") }
        for a in r.agentCopies { print("removed an agent copy unused for an hour: \(a)") }
        for d in r.serverStates { print("removed the empty state directory of a server whose data directory is gone: \(d)") }
    }
}

/// `sandboxer profiles`: lists known profiles.
struct ProfilesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "profiles", abstract: "List the known profiles.")

    func run() async throws {
        let loader = ProfileLoader()
        for name in loader.knownNames() {
            let p = try loader.load(name)
            print("\(p.name)\t\(p.description)")
        }
    }
}

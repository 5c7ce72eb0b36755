import ArgumentParser
import BackendOCI
import Foundation
import SandboxCore
import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// `sandboxer reap` (internal): exec'd by ``OwnerDeathGuard``'s waiter once the run's owner died
/// without saying it finished; kills and removes what the owner left (`gc` of dead owners).
struct ReapCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reap", abstract: "Internal: removes a run's sandbox if the process that owns it dies.",
        shouldDisplay: false)

    @Option(name: .long, help: "State directory of the owner.")
    var stateDir: String

    @Option(name: .long, help: "The owner's pid (its sandboxes are collected once it has exited).")
    var ownerPid: Int32

    func run() async throws {
        // Terminal and session signals must not stop the clean-up (the waiter ignored them too).
        for s in [SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT] { signal(s, SIG_IGN) }
        // The socket closes while the owner is still exiting; gc removes only sandboxes of dead
        // owners, so wait (at most 10 s) until it is gone or a zombie.
        let owner = ContainerLayout.Owner(pid: ownerPid, startTime: ContainerLayout.Owner.startTime(of: ownerPid) ?? 0)
        for _ in 0..<1000 where owner.isAlive { usleep(10_000) }
        let stateDir = self.stateDir
        let report = await BlockingPool.shared.run { GarbageCollector(configuration: .init(stateDirectory: stateDir)).collect() }
        if !report.isEmpty {
            FileHandle.standardError.write(Data("sandboxer reap: the owner died; removed \(report.sandboxes)\n".utf8))
        }
    }
}

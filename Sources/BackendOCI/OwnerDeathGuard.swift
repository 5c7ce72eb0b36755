import Foundation
import Logging
import SandboxCore
import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// Makes a sandbox die with the process that owns it, however that process ends (even SIGKILL).
///
/// A small reaper process (`sandboxer reap`) is started beside the run, in its own process group
/// (so a Ctrl-C or a signal to the owner does not reach it), reading a pipe whose only write end
/// the owner holds. When the run ends normally the owner says so and the reaper exits; when the
/// owner dies first, the pipe closes without that word and the reaper kills the sandbox's cgroup
/// and removes everything of it, as `sandboxer gc` would. The run's limits therefore never depend
/// on the owner staying alive.
public struct OwnerDeathGuard: Sendable {
    let writeEnd: Int32
    let child: ChildProcess

    /// The word that tells the reaper the owner finished normally.
    public static let doneWord: UInt8 = 0x64  // "d"

    /// Starts `argv` (the reaper command, e.g. `[sandboxer, "reap", …]`) with its stdin on a pipe
    /// whose write end only this process holds.
    public static func start(_ argv: [String]) throws(SandboxError) -> OwnerDeathGuard {
        let pipe = try Pipe2()
        let devnull = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer {
            close(devnull)
            pipe.closeRead()
        }
        do {
            let child = try ChildProcess.spawn(argv, stdin: pipe.readEnd, stdout: devnull, stderr: devnull)
            return OwnerDeathGuard(writeEnd: pipe.writeEnd, child: child)
        } catch {
            pipe.closeWrite()
            throw SandboxError(.setupFailed, "cannot start the sandbox reaper \(argv[0]): \(error.message)")
        }
    }

    /// Tells the reaper the run ended normally and lets it go (its exit is collected off the
    /// caller's path, so the run does not wait for the reaper's start-up).
    public func disarm() {
        var word = Self.doneWord
        _ = write(writeEnd, &word, 1)
        close(writeEnd)
        let child = self.child
        try? DedicatedThread.start(stackSize: 64 << 10, name: "sbx-reap-wait") { _ = child.waitBlocking() }
    }

    /// The reaper's side: blocks until the owner finishes (true) or dies (false).
    public static func waitForOwner(input: Int32 = 0) -> Bool {
        var byte: UInt8 = 0
        while true {
            let n = read(input, &byte, 1)
            if n < 0 && errno == EINTR { continue }
            return n == 1 && byte == doneWord
        }
    }
}

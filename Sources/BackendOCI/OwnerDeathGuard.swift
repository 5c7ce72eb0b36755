import Foundation
import Logging
import SandboxCore
import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// Makes a sandbox die with the process that owns it, however that process ends (even SIGKILL).
///
/// A small waiter (`/bin/sh`, ≈1 ms to start) is started beside the run, in its own process group
/// (so a Ctrl-C or a signal to the owner does not reach it), with signals ignored, reading a
/// socket whose other end only the owner holds. When the run ends normally the owner says so and
/// the waiter exits; when the owner dies first, the socket closes without that word and the waiter
/// execs the reaper command (`sandboxer reap`), which kills the sandbox's cgroup and removes
/// everything of it, as `sandboxer gc` would. The run's limits therefore never depend
/// on the owner staying alive.
public struct OwnerDeathGuard: Sendable {
    let writeEnd: Int32
    let child: ChildProcess

    /// The word that tells the waiter the owner finished normally.
    public static let doneWord: UInt8 = 0x64  // "d"

    /// The waiter: ignores the signals a terminal or a session sends, reads one word, and runs
    /// the reaper command (its arguments) unless the word says the owner finished.
    static let waiterScript =
        "trap '' HUP INT TERM PIPE QUIT; read -r word; [ \"$word\" = \(Character(Unicode.Scalar(doneWord))) ] || exec \"$0\" \"$@\""

    /// Starts the waiter for `argv` (the reaper command, e.g. `[sandboxer, "reap", …]`) with its
    /// stdin on a socket whose other end only this process holds (a socket, so telling a waiter
    /// that is already gone can use `MSG_NOSIGNAL` instead of raising SIGPIPE).
    public static func start(_ argv: [String]) throws(SandboxError) -> OwnerDeathGuard {
        var fds: [Int32] = [-1, -1]
        try Syscall.call("socketpair") { socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) }
        let devnull = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer {
            close(devnull)
            close(fds[1])
        }
        do {
            let child = try ChildProcess.spawn(["/bin/sh", "-c", waiterScript] + argv, stdin: fds[1], stdout: devnull, stderr: devnull)
            return OwnerDeathGuard(writeEnd: fds[0], child: child)
        } catch {
            close(fds[0])
            throw SandboxError(.setupFailed, "cannot start the sandbox reaper \(argv[0]): \(error.message)")
        }
    }

    /// Tells the reaper the run ended normally and lets it go (its exit is collected off the
    /// caller's path, so the run does not wait for the reaper's start-up).
    public func disarm() {
        var word: [UInt8] = [Self.doneWord, 0x0A]
        _ = send(writeEnd, &word, 2, Int32(MSG_NOSIGNAL))
        close(writeEnd)
        let child = self.child
        try? DedicatedThread.start(stackSize: 64 << 10, name: "sbx-reap-wait") { _ = child.waitBlocking() }
    }
}

import Foundation
import SandboxCore
import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// Runs one runtime process (`crun run` / `crun exec`) to completion: feeds stdin, drains and caps
/// both output streams live, and enforces the wall-clock deadline with a caller-supplied kill.
struct ProcessSupervisor: Sendable {
    struct Outcome: Sendable {
        var termination: Termination
        var stdout: CapturedOutput
        var stderr: CapturedOutput
        var timedOut: Bool
        var spawnWallMs: Double
        var exitedAtMs: Double
    }

    var limits: Limits
    var output: OutputHandler?

    /// Opens the descriptor the process reads as stdin.
    static func openStdin(_ source: ExecRequest.StdinSource, layout: RunLayout) throws(SandboxError) -> (fd: Int32, owned: Bool) {
        switch source {
        case .none:
            return (open("/dev/null", O_RDONLY | O_CLOEXEC), true)
        case .inherit(let fd):
            return (fd, false)
        case .file(let path):
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            if fd < 0 { throw SandboxError(.invalidRequest, "cannot open stdin file \(path): \(String(cString: strerror(errno)))") }
            return (fd, true)
        case .bytes(let bytes):
            try SysFile.create(layout.stdinFile, bytes, mode: 0o600)
            return (open(layout.stdinFile, O_RDONLY | O_CLOEXEC), true)
        }
    }

    func run(argv: [String], stdin: Int32, kill: @escaping @Sendable () -> Void) async throws(SandboxError) -> Outcome {
        let out = try Pipe2()
        let err = try Pipe2()
        let spawnWall = Clock.wallMs()
        let child: ChildProcess
        do {
            child = try ChildProcess.spawn(argv, stdin: stdin, stdout: out.writeEnd, stderr: err.writeEnd)
        } catch {
            out.closeBoth()
            err.closeBoth()
            throw SandboxError(.setupFailed, "cannot start the OCI runtime: \(error.message)")
        }
        out.closeWrite()
        err.closeWrite()
        let handler = output
        async let stdoutCapture = OutputReader(fd: out.readEnd, cap: limits.outputBytes, stream: .stdout, handler: handler).readAll()
        async let stderrCapture = OutputReader(fd: err.readEnd, cap: limits.outputBytes, stream: .stderr, handler: handler).readAll()

        enum Event: Sendable { case exited(Termination), deadline }
        let timeout = limits.timeout
        var timedOut = false
        var termination = Termination.exited(-1)
        await withTaskGroup(of: Event.self) { group in
            group.addTask { .exited(await child.wait()) }
            group.addTask {
                do { try await Task.sleep(for: timeout) } catch { return .exited(.exited(-1)) }
                return .deadline
            }
            while let event = await group.next() {
                switch event {
                case .deadline:
                    timedOut = true
                    kill()
                case .exited(let t) where !Task.isCancelled:
                    termination = t
                    group.cancelAll()
                    return
                case .exited:
                    continue
                }
            }
        }
        let exitedAt = Clock.nowMs()
        let (o, e) = await (stdoutCapture, stderrCapture)
        return Outcome(termination: termination, stdout: o, stderr: e, timedOut: timedOut, spawnWallMs: spawnWall, exitedAtMs: exitedAt)
    }
}

import Foundation
import Logging
import SandboxCore
import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// Runs one ``WasmInvocation`` in a `wasm-worker` child process: its own process group, killed
/// with SIGKILL shortly after the deadline even if the worker's own watchdog cannot stop the guest.
struct WorkerLauncher {
    let executable: String
    let logger: Logger
    /// Extra time after the deadline for the worker to report a timeout itself.
    static let killGrace: Duration = .milliseconds(500)

    func run(_ inv: WasmInvocation, output: OutputHandler?, onToolCall: ToolCallHandler?) async throws -> WasmRunReport {
        let started = ContinuousClock.now
        let scratch = try Workspace.make(in: NSTemporaryDirectory(), id: inv.sandboxId + "-worker")
        defer { scratch.remove() }
        let stdinPath = scratch.path + "/stdin"
        let reportPath = scratch.path + "/report.json"
        _ = FileManager.default.createFile(atPath: stdinPath, contents: Data(inv.stdin))
        var program = WorkerProgram.module(arguments: inv.arguments)
        if inv.arguments.count >= 3, inv.arguments[1] == "-e" {
            // JavaScript (`qjs -e SOURCE args…`): the source goes through a file.
            let codePath = scratch.path + "/main.js"
            _ = FileManager.default.createFile(atPath: codePath, contents: Data(inv.arguments[2].utf8))
            program = .javaScript(file: codePath, arguments: Array(inv.arguments.dropFirst(3)))
        }
        let argv = [executable, "wasm-worker"]
            + WorkerOptions.arguments(for: inv, inputBytes: Int64(max(inv.stdin.count, 1)), report: reportPath, program: program)
        let stdinFD = open(stdinPath, O_RDONLY | O_CLOEXEC)
        guard stdinFD >= 0 else { throw SandboxError(.setupFailed, "cannot open the worker's stdin file") }
        defer { close(stdinFD) }
        let out = try Pipe2()
        let err = try Pipe2()
        let child: ChildProcess
        do {
            // Nothing of the host's environment but the operator's name map (`http.get` decides with it).
            let resolve = ProcessInfo.processInfo.environment["SANDBOXER_RESOLVE"].map { ["SANDBOXER_RESOLVE=" + $0] } ?? []
            child = try ChildProcess.spawn(argv, environment: resolve, stdin: stdinFD, stdout: out.writeEnd, stderr: err.writeEnd)
        } catch {
            out.closeBoth()
            err.closeBoth()
            throw SandboxError(.setupFailed, "cannot start the wasm worker \(executable): \(error.message)")
        }
        out.closeWrite()
        err.closeWrite()
        let pid = child.pid
        let killer = Task.detached {
            try? await Task.sleep(until: started + inv.timeout + Self.killGrace, clock: .continuous)
            if !Task.isCancelled { kill(-pid, SIGKILL) }
        }
        async let o = OutputReader(fd: out.readEnd, cap: inv.outputBytes, stream: .stdout, handler: output).readAll()
        async let e = OutputReader(fd: err.readEnd, cap: inv.outputBytes, stream: .stderr, handler: output).readAll()
        let termination = await child.wait()
        killer.cancel()
        kill(-pid, SIGKILL)  // anything the worker left in its group
        let (stdout, stderr) = await (o, e)

        var report = WasmRunReport(exit: .exited(0))
        report.stdout = stdout
        report.stderr = stderr
        if let data = FileManager.default.contents(atPath: reportPath),
           let worker = try? JSONDecoder().decode(WorkerReport.self, from: data)
        {
            report.exit = worker.wasmExit
            report.memoryDenied = worker.memoryDenied
            report.peakMemoryBytes = worker.peakMemoryBytes
            report.toolCalls = worker.toolCalls
            report.workspace = worker.workspace ?? WorkspaceQuota.Report()
            report.kvStoreError = worker.kvStoreError
            report.cpuMs = worker.cpuMs ?? 0
            report.stdout.truncated = report.stdout.truncated || worker.stdoutTruncated
            report.stderr.truncated = report.stderr.truncated || worker.stderrTruncated
        } else if ContinuousClock.now >= started + inv.timeout {
            report.exit = .timedOut
        } else {
            switch termination {
            case .exited(let c): report.exit = .setupFailed("the wasm worker exited \(c) without a report: \(String(decoding: stderr.bytes.suffix(500), as: UTF8.self))")
            case .signaled(let s): report.exit = .setupFailed("the wasm worker died of signal \(s)")
            }
        }
        for call in report.toolCalls {
            logger.info("tool call", metadata: [
                "sandbox": "\(inv.sandboxId)", "tool": "\(call.tool)", "argument_bytes": "\(call.argumentBytes)",
                "status": "\(call.status.rawValue)", "result_bytes": "\(call.resultBytes)",
            ])
            onToolCall?(inv.sandboxId, call)
        }
        report.wallMs = (ContinuousClock.now - started).milliseconds
        return report
    }
}

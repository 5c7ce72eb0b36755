import ArgumentParser
import Foundation
import Logging
import SandboxCore

/// The `sandboxer` command line: run untrusted code in layered isolation.
public struct SandboxerCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "sandboxer",
        abstract: "Run untrusted, AI-generated code in a sandbox and get back output, files and a full record.",
        subcommands: [
            OneShotCommand.self, DoctorCommand.self, GCCommand.self, ProfilesCommand.self, BenchCommand.self, KeyCommand.self, SecretCommand.self, TenantCommand.self, TemplateCommand.self,
            WasmWorkerCommand.self, ReapCommand.self,
            ServeCommand.self, CreateCommand.self, ExecCommand.self, CopyCommand.self, ListCommand.self, ProcessesCommand.self,
            KillCommand.self, RemoveCommand.self, PauseCommand.self, ResumeCommand.self, HibernateCommand.self,
            SubmitCommand.self, RunsCommand.self, LogsCommand.self, CancelCommand.self, RetryCommand.self, ReplayCommand.self, NetworkCommand.self,
            AuditCommand.self, AgentCommand.self, VersionCommand.self,
        ]
    )
    public init() {}

    /// Entry point used by the executable: bootstraps logging to stderr once.
    public static func runCLI() async {
        let level = ProcessInfo.processInfo.environment["SANDBOXER_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        do {
            var command = try parseAsRoot(ServeConfig.expand(Array(CommandLine.arguments.dropFirst())))
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let problem as APIProblem {
            FileHandle.standardError.write(Data("sandboxer: \(problem.code): \(problem.detail)\n".utf8))
            Foundation.exit(ExitStatus.refused)
        } catch let error as SandboxError {
            FileHandle.standardError.write(Data("sandboxer: \(error.code.rawValue): \(error.message)\n".utf8))
            Foundation.exit(error.cliExitStatus)
        } catch {
            exit(withError: error)
        }
    }
}

extension SandboxError {
    /// CLI exit status for a refused request (2: a limit, a bad request, something missing or busy,
    /// a server's refusal of `run --server`: a bad key, a forbidden setting, a used-up quota)
    /// or a host/setup problem (125).
    public var cliExitStatus: Int32 {
        switch code {
        case .limitExceeded, .invalidRequest, .notFound, .invalidState, .unauthorized, .forbidden, .quotaExceeded: return ExitStatus.refused
        default: return ExitStatus.setupFailed
        }
    }
}

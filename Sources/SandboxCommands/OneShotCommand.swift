import ArgumentParser
import BackendOCI
import BackendWasm
import Foundation
import OneShot
import Logging
import SandboxCore
import Templates
import SandboxLinux
import SandboxManager
import SandboxStore

/// `sandboxer run`: one-shot execution in a fresh sandbox.
struct OneShotCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a command or a piece of code in a fresh sandbox and remove it afterwards.",
        discussion: """
            Exit status: the sandboxed process's own (128+N when signal N ended it); 124 on timeout; \
            123 when the memory limit was hit (oom); 121/122 for the workspace/file-size limit; \
            125 when the sandbox could not be set up; 130/143/129/141 when this command got SIGINT/SIGTERM/SIGHUP \
            or its output pipe closed (the sandbox is removed first); \
            2 when the request was refused (limit exceeded, unknown profile, bad flag). \
            With --server URL the server runs it (a sandbox from its warm pool when it keeps one of the profile, \
            deleted afterwards, also on an interruption; a --profile file is sent inline): the same output, --json and \
            exit statuses; the server's \
            profile sets the limits, so --memory, --pids, --cpus, --output-limit, --workspace, --wasm, --runtime, \
            --data and the egress flags are refused there; -i reads this command's stdin to its end before the run.
            """)

    @Option(name: .long, help: "Profile name (default, bounty, …) or a YAML/JSON profile file.")
    var profile: String = "default"

    @Option(name: .long, help: "Language of --code/--code-file: python, js, sh, bash.")
    var lang: String?

    @Option(name: [.customShort("c"), .long], help: "Source code to run (with --lang).")
    var code: String?

    @Option(name: .long, help: "File holding the source code to run (with --lang).")
    var codeFile: String?

    @Option(name: .long, help: "File fed to the process's stdin.")
    var stdin: String?

    @Flag(name: [.customShort("i"), .long], help: "Forward this command's stdin to the sandbox.")
    var interactive = false

    @Option(name: .long, help: "Wall-clock limit, e.g. 2s, 500ms, 1m.")
    var timeout: String?

    @Option(name: .long, help: "Memory limit, e.g. 128M.")
    var memory: String?

    @Option(name: .long, help: "Maximum number of processes.")
    var pids: Int?

    @Option(name: .long, help: "CPU quota in cores, e.g. 0.5.")
    var cpus: Double?

    @Option(name: .long, help: "Captured output per stream, e.g. 1M.")
    var outputLimit: String?

    @Option(name: [.customShort("e"), .long], help: "Environment variable NAME=value (repeatable).")
    var env: [String] = []

    @Option(name: .long, help: "Host directory copied into /workspace before the run and back after it.")
    var workspace: String?

    @Option(name: .long, help: "How /workspace goes back to --workspace: merge (default; deletions are reported) or mirror (deletions are applied too).")
    var workspaceSync: String = "merge"

    @Option(name: .long, help: "OCI runtime: crun, runc or runsc (default: crun, else runc).")
    var runtime: String?

    @Option(name: .long, help: "Isolation: container, wasm, wasm+container, gvisor (default: the profile's).")
    var isolation: String?

    @Option(name: .long, help: "Template (root filesystem): host, or one from `sandboxer template ls` under --data (default: the profile's).")
    var template: String?

    @Option(name: .long, help: "A WASI preview1 module to run (arguments after --); implies --isolation wasm.")
    var wasm: String?

    @Flag(name: .long, help: "Print one ExecResult as JSON instead of streaming output.")
    var json = false

    @Option(name: .long, help: "A shell command run first in the same sandbox under the profile's setup-phase network (e.g. 'pip install -r requirements.txt'); then the run phase's policy applies.")
    var setup: String?

    @OptionGroup var egress: EgressOptions

    @Option(name: .long, help: "Data directory holding the secrets a profile asks for (default: $SANDBOXER_DATA, else /var/lib/sandboxer).")
    var data: String?

    @Argument(parsing: .captureForPassthrough, help: "Command and arguments (after --).")
    var command: [String] = []

    @Option(name: .long, help: "Run it on this sandboxer server (http://HOST:PORT), in a sandbox from its warm pool when it keeps one of the profile; the sandbox is deleted afterwards.")
    var server: String?

    @Option(name: .long, help: "API key for --server (default: $SANDBOXER_API_KEY).")
    var apiKey: String?

    func run() async throws {
        if let server { return try await runOnServer(server) }
        var prof = try ProfileLoader().load(profile)
        try applyOverrides(&prof.limits)
        if let template { prof.template = template }
        if let isolation {
            prof.isolation = try IsolationLevel.named(isolation)
        } else if wasm != nil {
            prof.isolation = .wasm
        }
        let wasmIsolation = prof.isolation == .wasm || prof.isolation == .wasmContainer
        let request = wasmIsolation ? try makeWasmRequest() : try makeRequest()
        guard let sync = WorkspaceSync(rawValue: workspaceSync) else {
            throw SandboxError(.invalidRequest, "unknown --workspace-sync '\(workspaceSync)'; one of: \(WorkspaceSync.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let signals = OneShotSignals()
        let stream: OutputHandler? = json ? nil : { @Sendable in signals.writeLive($0, $1) }
        let profile = prof
        let workspace = try workspaceDirectory()
        let reaper = [SelfExecutable.pathForRespawn, "reap"]
        let runtime = self.runtime
        // Secrets come from the server's store under --data; their hosts are intercepted with its CA.
        let secretData = profile.secrets.isEmpty ? nil : (data ?? StoreFiles.defaultDirectory())
        let hub = profile.needsEgress || secretData != nil ? try egress.makeHub(dataDirectory: secretData) : nil
        let setupRequest = setup.map { ExecRequest(argv: ["/bin/sh", "-c", $0], timeout: profile.limits.timeout) }
        var options = OneShotRunner.Options(runtime: runtime, reaper: reaper, egress: hub)
        // A template other than the built-in host comes from the image store under --data.
        if profile.template != "host" { options.images = ImageStore(dataDirectory: data ?? StoreFiles.defaultDirectory()) }
        if let secretData { options.secrets = try SecretVault.open(store: try SQLiteStore(directory: secretData), dataDirectory: secretData) }
        let runner = OneShotRunner(options: options)
        let result: ExecResult
        do {
            result = try await signals.run {
                try await runner.run(profile: profile, request: request, workspace: workspace, sync: sync, setup: setupRequest, output: stream)
            }
        } catch {
            await hub?.shutdown()
            throw error
        }
        await hub?.shutdown()
        try finish(result, signals: signals)
    }

    /// Prints what the run's output did not (the JSON result, or a limit's reason and the workspace
    /// report on stderr) and exits with the run's status.
    func finish(_ result: ExecResult, signals: OneShotSignals) throws {
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            FileHandle.standardOutput.write(try enc.encode(result) + Data("\n".utf8))
        } else {
            if result.outcome != .ok && result.outcome != .exitNonzero, let reason = result.reason {
                FileHandle.standardError.write(Data("sandboxer: \(result.outcome.rawValue): \(reason)\n".utf8))
            }
            if let ws = result.workspace { Self.printWorkspaceReport(ws) }
        }
        // Interrupted: the sandbox is gone; exit as shells expect (130 SIGINT, 143 SIGTERM, 141 SIGPIPE).
        if let s = signals.received { throw ExitCode(128 + s) }
        throw ExitCode(result.cliExitStatus)
    }

    /// Tells the operator on stderr what copy-back did not do as asked.
    static func printWorkspaceReport(_ ws: WorkspaceReport) {
        var lines: [String] = []
        for c in ws.conflicts { lines.append("workspace: kept the host's \(c): it changed on the host during the run") }
        if !ws.deleted.isEmpty {
            let what = ws.deletionsApplied ? "deleted on the host" : "deleted in the sandbox, kept on the host (--workspace-sync=mirror applies it)"
            for d in ws.deleted { lines.append("workspace: \(d) \(what)") }
        }
        for s in ws.skipped { lines.append("workspace: \(s.path) not copied back: \(s.reason)") }
        if let l = ws.limitReached { lines.append("workspace: copy-back stopped: \(l)") }
        if !lines.isEmpty { FileHandle.standardError.write(Data((lines.joined(separator: "\n") + "\n").utf8)) }
    }


    /// The WASM isolations take JavaScript (`--lang js`, arguments after -- become `scriptArgs`) or a WASI
    /// module (`--wasm FILE`, arguments after --).
    func makeWasmRequest() throws -> ExecRequest {
        var args = command
        if args.first == "--" { args.removeFirst() }
        let stdinSource = self.stdinSource
        let env = try environment()
        if let wasm {
            guard code == nil && codeFile == nil else { throw SandboxError(.invalidRequest, "give either --wasm or --code/--code-file, not both") }
            let abs = URL(fileURLWithPath: wasm).standardizedFileURL.path
            guard FileManager.default.isReadableFile(atPath: abs) else { throw SandboxError(.notFound, "--wasm \(wasm) cannot be read") }
            return ExecRequest(argv: [abs] + args, stdin: stdinSource, env: env)
        }
        guard let lang, (try Language(name: lang)) == .js else {
            throw SandboxError(.invalidRequest, "isolation wasm and wasm+container run JavaScript (--lang js with --code/--code-file) or a WASI module (--wasm FILE)")
        }
        var bytes: [UInt8]
        if let codeFile {
            guard let d = FileManager.default.contents(atPath: codeFile) else { throw SandboxError(.invalidRequest, "cannot read --code-file \(codeFile)") }
            bytes = Array(d)
        } else if let code {
            bytes = Array(code.utf8)
        } else {
            throw SandboxError(.invalidRequest, "--lang js needs --code or --code-file")
        }
        var request = try ExecRequest.make(cmd: nil, code: bytes, lang: lang, args: args, isolation: .wasm)
        (request.stdin, request.env) = (stdinSource, env)
        return request
    }

    func makeRequest() throws -> ExecRequest {
        var cmd = command
        if cmd.first == "--" { cmd.removeFirst() }
        let env = try environment()
        let stdinSource = self.stdinSource
        if code != nil && codeFile != nil { throw SandboxError(.invalidRequest, "give either --code or --code-file, not both") }
        if code != nil || codeFile != nil {
            guard let lang else { throw SandboxError(.invalidRequest, "--code/--code-file need --lang (python, js, sh, bash)") }
            var bytes: [UInt8]
            if let codeFile {
                guard let d = FileManager.default.contents(atPath: codeFile) else {
                    throw SandboxError(.invalidRequest, "cannot read --code-file \(codeFile)")
                }
                bytes = Array(d)
            } else {
                bytes = Array(code!.utf8)
            }
            var request = try ExecRequest.make(cmd: nil, code: bytes, lang: lang, args: cmd, isolation: .container)
            (request.stdin, request.env) = (stdinSource, env)
            return request
        }
        if lang != nil { throw SandboxError(.invalidRequest, "--lang needs --code or --code-file") }
        guard !cmd.isEmpty else {
            throw SandboxError(.invalidRequest, "nothing to run: give a command after --, or --lang with --code/--code-file")
        }
        var request = try ExecRequest.make(cmd: cmd, code: nil, lang: nil, isolation: .container)
        (request.stdin, request.env) = (stdinSource, env)
        return request
    }

    /// `--env NAME=value` options as a dictionary.
    func environment() throws -> [String: String] {
        try ClientText.pairs(env, flag: "--env")
    }

    /// `--stdin FILE`, else this process's stdin with `-i`, else nothing.
    var stdinSource: ExecRequest.StdinSource {
        stdin.map { .file($0) } ?? (interactive ? .inherit(0) : .none)
    }

    func applyOverrides(_ l: inout Limits) throws {
        if let timeout { l.timeout = try DurationText.parse(timeout, field: "--timeout") }
        if let memory { l.memoryBytes = try ByteSize.parse(memory, field: "--memory") }
        if let pids { l.pids = pids }
        if let cpus { l.cpus = cpus }
        if let outputLimit { l.outputBytes = try ByteSize.parse(outputLimit, field: "--output-limit") }
        try l.validate()
    }

    func workspaceDirectory() throws -> String? {
        guard let workspace else { return nil }
        let abs = URL(fileURLWithPath: workspace).standardizedFileURL.path
        var isDir: ObjCBool = false
        if !FileManager.default.fileExists(atPath: abs, isDirectory: &isDir) {
            try FileManager.default.createDirectory(atPath: abs, withIntermediateDirectories: true)
        } else if !isDir.boolValue {
            throw SandboxError(.invalidRequest, "--workspace \(workspace) is not a directory")
        }
        return abs
    }
}

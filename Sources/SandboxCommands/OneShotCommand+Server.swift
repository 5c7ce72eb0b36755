import ArgumentParser
import Foundation
import SandboxCore

/// `sandboxer run --server URL`: the run goes to a sandboxer server (its warm pool when it keeps
/// sandboxes of the profile), with the same output, `--json` and exit statuses as a local run.
extension OneShotCommand {
    /// The local-only options that are set, by flag name: a server run cannot honour them.
    var localOnlyOptions: [String] {
        var set: [String] = []
        if memory != nil { set.append("--memory") }
        if pids != nil { set.append("--pids") }
        if cpus != nil { set.append("--cpus") }
        if outputLimit != nil { set.append("--output-limit") }
        if workspace != nil { set.append("--workspace") }
        if workspaceSync != "merge" { set.append("--workspace-sync") }
        if runtime != nil { set.append("--runtime") }
        if wasm != nil { set.append("--wasm") }
        if data != nil { set.append("--data") }
        if !egress.resolve.isEmpty { set.append("--resolve") }
        if egress.allowOpenNetwork { set.append("--allow-open-network") }
        if egress.resolveForCidrRules { set.append("--resolve-for-cidr-rules") }
        if egress.upstreamCA != nil { set.append("--upstream-ca") }
        return set
    }

    /// The request for the server, from the same options a local run reads.
    func remoteRequest() throws -> RemoteRun.Request {
        if let first = localOnlyOptions.first {
            throw SandboxError(.invalidRequest, "\(first) cannot be used with --server: \(Self.whyLocalOnly(first))")
        }
        var exec: [String: JSONValue] = [:]
        var args = command
        if args.first == "--" { args.removeFirst() }
        if code != nil && codeFile != nil { throw SandboxError(.invalidRequest, "give either --code or --code-file, not both") }
        if code != nil || codeFile != nil {
            guard let lang else { throw SandboxError(.invalidRequest, "--code/--code-file need --lang (python, js, sh, bash)") }
            var source = code ?? ""
            if let codeFile {
                guard let d = FileManager.default.contents(atPath: codeFile) else { throw SandboxError(.invalidRequest, "cannot read --code-file \(codeFile)") }
                source = String(decoding: d, as: UTF8.self)
            }
            exec["code"] = .string(source)
            exec["lang"] = .string(lang)
            if !args.isEmpty { exec["args"] = .strings(args) }
        } else {
            if lang != nil { throw SandboxError(.invalidRequest, "--lang needs --code or --code-file") }
            guard !args.isEmpty else {
                throw SandboxError(.invalidRequest, "nothing to run: give a command after --, or --lang with --code/--code-file")
            }
            exec["cmd"] = .strings(args)
        }
        let vars = try environment()
        if !vars.isEmpty { exec["env"] = .map(vars) }
        var ttl: String?
        if let timeout {
            let d = try DurationText.parse(timeout, field: "--timeout")
            exec["timeout"] = .string(timeout)
            // A CLI killed with SIGKILL cannot delete its sandbox: the server does, a minute after the limit.
            ttl = "\(DurationText.milliseconds(d) / 1000 + 60)s"
        }
        if let stdin {
            guard let d = FileManager.default.contents(atPath: stdin) else { throw SandboxError(.invalidRequest, "cannot read --stdin \(stdin)") }
            exec["stdin_base64"] = .string(d.base64EncodedString())
        } else if interactive {
            // The exec API takes stdin whole: this command's stdin is read to its end first.
            exec["stdin_base64"] = .string(FileHandle.standardInput.readDataToEndOfFile().base64EncodedString())
        }
        if let isolation, IsolationLevel(rawValue: isolation) == nil {
            throw SandboxError(.invalidRequest, "unknown isolation '\(isolation)'; one of: \(IsolationLevel.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        // A profile file is this host's: it is read here and sent whole (the server checks it as
        // any inline profile); a name is the server's to resolve.
        let loader = ProfileLoader()
        let profileValue: JSONValue = loader.isPath(profile) ? .profile(try loader.loadFile(profile)) : .string(profile)
        return RemoteRun.Request(profile: profileValue, isolation: isolation, exec: exec, ttl: ttl, setup: setup)
    }

    static func whyLocalOnly(_ flag: String) -> String {
        switch flag {
        case "--memory", "--pids", "--cpus", "--output-limit":
            return "the server's profile sets the limits (ask for a --profile the server has with the limit you need)"
        case "--workspace", "--workspace-sync":
            return "a host directory cannot be copied to the server's sandbox (use 'sandboxer create' and 'sandboxer cp')"
        case "--wasm":
            return "the module file is on this host (run it locally, or as JavaScript with --lang js)"
        case "--runtime":
            return "the server chooses the OCI runtime"
        default:
            return "the server's own egress settings and secrets apply ('sandboxer serve' takes these flags)"
        }
    }

    /// Runs on the server at `server`, output streamed; exits like a local run.
    func runOnServer(_ server: String) async throws {
        let request = try remoteRequest()
        let key = apiKey ?? ProcessInfo.processInfo.environment["SANDBOXER_API_KEY"]
        let remote = RemoteRun(api: try APIClient(url: server, apiKey: key), request: request)
        let signals = OneShotSignals()
        let stream: OutputHandler? = json ? nil : { @Sendable in signals.writeLive($0, $1) }
        let result: ExecResult
        do {
            result = try await signals.run { try await remote.run(output: stream) }
        } catch let e as SandboxError where e.code == .setupCommandFailed && signals.received == nil {
            // As locally, a failed --setup ends with the setup command's own status; the server
            // reports it (and the tail of its output) in the problem, printed here.
            FileHandle.standardError.write(Data("sandboxer: \(e.code.rawValue): \(e.message)\n".utf8))
            throw ExitCode(RemoteRun.setupStatus(e.message) ?? ExitStatus.setupFailed)
        } catch {
            // Interrupted: the remote process is killed and its sandbox deleted; exit as shells expect.
            if let s = signals.received { throw ExitCode(128 + s) }
            throw error
        }
        try finish(result, signals: signals)
    }
}

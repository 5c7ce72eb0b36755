import Foundation
import SandboxCore
import SandboxStore

/// A run's replay record (`GET /v1/runs/{id}/record`, openapi.yaml `RunRecord`): what it takes to
/// reproduce the run and what it ran on, with digests instead of its inputs and outputs, and the
/// names of its environment variables — never their values (the profile's `env` values are
/// replaced by ``hiddenValue``). Encoded with ``RunView/encoder``; absent values are null.
public struct RunReplayView: Sendable, Equatable, Encodable {
    /// The template and its digest (null with a note for `host` and the WASM lane).
    public struct Template: Sendable, Equatable, Encodable {
        public var name: String
        public var digest: String?
        public var digestNote: String?
    }

    /// The lane's engines on the node that ran the last attempt.
    public struct Engines: Sendable, Equatable, Encodable {
        public var runtime: String?
        public var runtimeVersion: String?
        public var wasmKit: String?
        public var quickJS: String?
        public var sandboxer: String?
    }

    /// Digests (and lengths) of the last attempt's output as the program produced it.
    public struct Output: Sendable, Equatable, Encodable {
        public var stdoutDigest: String
        public var stdoutBytes: Int64
        public var stderrDigest: String
        public var stderrBytes: Int64
    }

    /// One attempt: how it ended and what it ran on.
    public struct Attempt: Sendable, Equatable, Encodable {
        public var number: Int
        public var outcome: AttemptOutcome?
        public var reason: String?
        public var startedAt: Date
        public var endedAt: Date?
        public var environment: AttemptEnvironment?
    }

    /// What replaces each value of the profile's `env` in the record.
    public static let hiddenValue = "(value not shown)"

    public var runId: String
    public var state: RunState
    public var agentDigest: String?
    public var template: Template
    public var profile: Profile
    public var isolation: IsolationLevel
    public var lang: String?
    public var argv: [String]
    public var cwd: String
    public var envNames: [String]
    public var inputDigest: String
    public var codeDigest: String?
    public var filesDigest: String?
    public var setup: [String]?
    public var engines: Engines
    public var timings: PhaseTimings?
    public var usage: Usage?
    /// The last attempt's outcome (`succeeded`, `failed`, `timed_out`, …).
    public var outcome: AttemptOutcome?
    /// The backend's outcome of the last result (`ok`, `exit_nonzero`, `oom`, …).
    public var resultOutcome: Outcome?
    public var exitCode: Int32?
    public var output: Output?
    public var attempts: [Attempt]
    public var createdAt: Date
    public var endedAt: Date?
    public var replayOf: String?
    public var outputMatches: Bool?
    public var changes: [EnvironmentChange]?

    public init(_ r: RunRecord) {
        let spec = r.spec
        let last = r.attempts.last
        let ran = last?.environment
        runId = r.id
        state = r.state
        agentDigest = spec.agentDigest
        let shown = ran ?? AttemptEnvironment(template: spec.profile.template, templateDigest: nil, isolation: spec.profile.isolation)
        template = Template(name: shown.template, digest: shown.templateDigest,
                            digestNote: ran == nil ? "the run has not run an attempt to its end yet" : shown.templateDigestNote)
        var profile = spec.profile
        profile.env = profile.env.mapValues { _ in Self.hiddenValue }
        self.profile = profile
        isolation = spec.profile.isolation
        lang = spec.lang
        argv = spec.argv
        cwd = spec.cwd ?? "/workspace"
        envNames = Array(Set(spec.env.keys).union(spec.profile.env.keys).union(spec.profile.secrets)).sorted()
        inputDigest = ContentDigest.of(spec.stdin ?? [])
        codeDigest = spec.code.map { ContentDigest.of($0) }
        filesDigest = spec.files.map { ContentDigest.of(files: $0) }
        setup = spec.setup
        engines = Engines(runtime: ran?.runtime, runtimeVersion: ran?.runtimeVersion, wasmKit: ran?.wasmKit, quickJS: ran?.quickJS, sandboxer: ran?.sandboxer)
        timings = r.result?.timings
        usage = r.result?.usage
        outcome = last?.outcome
        resultOutcome = r.result?.outcome
        exitCode = r.result?.exitCode
        output = ran.map { Output(stdoutDigest: $0.stdoutDigest, stdoutBytes: $0.stdoutBytes, stderrDigest: $0.stderrDigest, stderrBytes: $0.stderrBytes) }
        attempts = r.attempts.map {
            Attempt(number: $0.number, outcome: $0.outcome, reason: $0.reason, startedAt: $0.startedAt, endedAt: $0.endedAt, environment: $0.environment)
        }
        createdAt = r.createdAt
        endedAt = r.endedAt
        let view = RunView(r)
        replayOf = view.replayOf
        outputMatches = view.outputMatches
        changes = view.changes
    }

    enum CodingKeys: String, CodingKey {
        case runId = "run_id", state, agentDigest = "agent_digest", template, profile, isolation, lang, argv, cwd, envNames = "env_names"
        case inputDigest = "input_digest", codeDigest = "code_digest", filesDigest = "files_digest", setup, engines, timings, usage
        case outcome, resultOutcome = "result_outcome", exitCode = "exit_code", output, attempts, createdAt = "created_at", endedAt = "ended_at"
        case replayOf = "replay_of", outputMatches = "output_matches", changes
    }

    // Every member is written, absent ones as null.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(runId, forKey: .runId)
        try c.encode(state, forKey: .state)
        try c.encode(agentDigest, forKey: .agentDigest)
        try c.encode(template, forKey: .template)
        try c.encode(profile, forKey: .profile)
        try c.encode(isolation, forKey: .isolation)
        try c.encode(lang, forKey: .lang)
        try c.encode(argv, forKey: .argv)
        try c.encode(cwd, forKey: .cwd)
        try c.encode(envNames, forKey: .envNames)
        try c.encode(inputDigest, forKey: .inputDigest)
        try c.encode(codeDigest, forKey: .codeDigest)
        try c.encode(filesDigest, forKey: .filesDigest)
        try c.encode(setup, forKey: .setup)
        try c.encode(engines, forKey: .engines)
        try c.encode(timings, forKey: .timings)
        try c.encode(usage, forKey: .usage)
        try c.encode(outcome, forKey: .outcome)
        try c.encode(resultOutcome, forKey: .resultOutcome)
        try c.encode(exitCode, forKey: .exitCode)
        try c.encode(output, forKey: .output)
        try c.encode(attempts, forKey: .attempts)
        try c.encode(createdAt, forKey: .createdAt)
        try c.encode(endedAt, forKey: .endedAt)
        try c.encode(replayOf, forKey: .replayOf)
        try c.encode(outputMatches, forKey: .outputMatches)
        try c.encode(changes, forKey: .changes)
    }
}

extension RunReplayView.Template {
    enum CodingKeys: String, CodingKey { case name, digest, digestNote = "digest_note" }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(digest, forKey: .digest)
        try c.encode(digestNote, forKey: .digestNote)
    }
}

extension RunReplayView.Engines {
    enum CodingKeys: String, CodingKey { case runtime, runtimeVersion = "runtime_version", wasmKit = "wasmkit", quickJS = "quickjs", sandboxer }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(runtime, forKey: .runtime)
        try c.encode(runtimeVersion, forKey: .runtimeVersion)
        try c.encode(wasmKit, forKey: .wasmKit)
        try c.encode(quickJS, forKey: .quickJS)
        try c.encode(sandboxer, forKey: .sandboxer)
    }
}

extension RunReplayView.Output {
    enum CodingKeys: String, CodingKey {
        case stdoutDigest = "stdout_digest", stdoutBytes = "stdout_bytes", stderrDigest = "stderr_digest", stderrBytes = "stderr_bytes"
    }
}

extension RunReplayView.Attempt {
    enum CodingKeys: String, CodingKey {
        case number, outcome, reason, startedAt = "started_at", endedAt = "ended_at", environment
    }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(number, forKey: .number)
        try c.encode(outcome, forKey: .outcome)
        try c.encode(reason, forKey: .reason)
        try c.encode(startedAt, forKey: .startedAt)
        try c.encode(endedAt, forKey: .endedAt)
        try c.encode(environment, forKey: .environment)
    }
}

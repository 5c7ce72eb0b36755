import SandboxCore
import SandboxStore

extension RunService {
    /// What an attempt of `spec` that ended with `result` ran on (its replay record): the template
    /// as the backend resolved it, the lane's engines on this node, sandboxer's version, and the
    /// digests of the output the program produced.
    nonisolated func environment(of spec: RunSpec, result: ExecResult, digests: OutputDigests) -> AttemptEnvironment {
        let profile = spec.profile
        let engines = runner.engines(for: profile)
        var environment = AttemptEnvironment(
            template: profile.template, templateDigest: profile.isolation == .wasm ? nil : result.templateDigest, isolation: profile.isolation,
            runtime: engines.runtime, runtimeVersion: engines.runtimeVersion, wasmKit: engines.wasmKit, quickJS: engines.quickJS)
        digests.fill(&environment)
        // A lane that hands back its output only in the result (no live chunks): digest that.
        if environment.stdoutBytes == 0, !result.stdoutBytes.isEmpty {
            environment.stdoutDigest = ContentDigest.of(result.stdoutBytes)
            environment.stdoutBytes = Int64(result.stdoutBytes.count)
        }
        if environment.stderrBytes == 0, !result.stderrBytes.isEmpty {
            environment.stderrDigest = ContentDigest.of(result.stderrBytes)
            environment.stderrBytes = Int64(result.stderrBytes.count)
        }
        return environment
    }
}

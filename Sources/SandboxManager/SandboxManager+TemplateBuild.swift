import BackendOCI
import OneShot
import Templates

extension SandboxManager {
    /// The container backend as a template build's `RUN` step runner (its egress proxy, its image
    /// store); nil on a server without the container backend (a build with `RUN` then fails saying so).
    public nonisolated var templateBuildRunner: (any BuildStepRunner)? {
        (backends[.container] as? OCIBackend).map { BuildSandbox(backend: $0) }
    }
}

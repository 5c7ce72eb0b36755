import Foundation
import SandboxCore

/// One `RUN` step of a template build as the sandbox that runs it sees it.
public struct BuildRunRequest: Sendable {
    /// The image (a name in the store) whose layers are the sandbox's root: the layers so far.
    public var template: String
    public var argv: [String]
    /// `NAME=value` pairs: the image's `ENV` so far.
    public var environment: [String]
    /// The working directory (`WORKDIR` so far, `/` without one).
    public var workingDirectory: String
    /// The user the step runs as (`USER` so far, resolved through the image's `/etc/passwd`); 0 is
    /// the sandbox's root, which is an unprivileged host id outside its user namespace.
    public var uid: UInt32
    public var gid: UInt32
    /// Hosts the step may reach through the egress proxy (the package mirrors and `--allow`).
    public var allow: [String]

    public init(template: String, argv: [String], environment: [String], workingDirectory: String, uid: UInt32, gid: UInt32, allow: [String]) {
        (self.template, self.argv, self.environment, self.workingDirectory) = (template, argv, environment, workingDirectory)
        (self.uid, self.gid, self.allow) = (uid, gid, allow)
    }
}

/// How a `RUN` step ended.
public struct BuildRunResult: Sendable {
    /// The new layer (the step's upper directory), or nil when the command failed.
    public var layer: OCIDescriptor?
    /// Why the command failed ("exit 3", "timeout: …"), nil when it succeeded.
    public var failure: String?

    public init(layer: OCIDescriptor?, failure: String?) {
        (self.layer, self.failure) = (layer, failure)
    }
}

/// Runs a build's `RUN` steps in sandboxes (the container backend implements it, so this module
/// does not depend on a backend): the command runs in a fresh sandbox on the image so far, and
/// when it succeeds the sandbox's upper directory becomes a layer through `capture` (given the
/// upper directory and the host id of the sandbox's root) before the sandbox is removed.
/// Nothing of a step ever runs on the host.
public protocol BuildStepRunner: Sendable {
    func run(_ request: BuildRunRequest, output: @escaping @Sendable ([UInt8]) -> Void,
             capture: @escaping @Sendable (_ upperDirectory: String, _ hostBase: UInt32?) async throws(SandboxError) -> OCIDescriptor) async throws -> BuildRunResult
}

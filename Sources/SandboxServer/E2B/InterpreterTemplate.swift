import Foundation
import Logging
import SandboxManager
import Templates

extension SandboxServer {
    /// Makes the template an E2B create names ready before the sandbox is made: the built-in
    /// `code-interpreter-v1` is copied from the machine cache or, the first time, built in this
    /// server's data directory (a few minutes; later creates find it). Other names are left as they are.
    func ensureE2BTemplate(_ name: String) async throws {
        guard name == CodeInterpreterTemplate.name else { return }
        let store = ImageStore(dataDirectory: manager.configuration.dataDirectory)
        if CodeInterpreterTemplate.isCurrent(in: store) { return }
        let logger = Logger(label: "sandboxer.server")
        logger.info("making the template ready", metadata: ["template": "\(name)"])
        let info = try await CodeInterpreterTemplate.ensure(in: store, runner: manager.templateBuildRunner)
        logger.info("template ready", metadata: ["template": "\(name)", "digest": "\(info.digest)"])
    }
}

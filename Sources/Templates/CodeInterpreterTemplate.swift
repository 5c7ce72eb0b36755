import Crypto
import Foundation
import SandboxCore
import SandboxLinux

/// The built-in template `code-interpreter-v1` (the one E2B's code interpreter SDK creates by
/// default): `debian` plus Jupyter's kernel (ipykernel, jupyter_client), matplotlib, numpy and
/// pandas from PyPI, and the interpreter's driver and JavaScript context
/// (templates/code-interpreter-v1/). Built by sandboxer's own template build the first time it is
/// needed, then kept: in the machine cache when `sandboxer template code-interpreter` made it
/// (copied into each data directory from there), else in the server's data directory.
public enum CodeInterpreterTemplate {
    public static let name = "code-interpreter-v1"
    static let recipeLabel = "org.sandboxer.code-interpreter.recipe"
    /// Where a host's trust bundle is read for the build's pip (hosts whose way to PyPI re-signs TLS).
    static let hostTrustBundle = "/etc/ssl/certs/ca-certificates.crt"

    /// What the template is built from: a digest of its build context (stored as a label; a
    /// template of another recipe, an older sandboxer's, is built again on first use).
    public static let recipe: String = {
        var hash = SHA256()
        for file in files {
            hash.update(data: Data(file.name.utf8 + [0]))
            hash.update(data: Data(file.text.utf8 + [0]))
        }
        return "v1-" + hash.finalize().prefix(12).map { String(format: "%02x", $0) }.joined()
    }()

    /// Whether `store` has a current `code-interpreter-v1`: built from ``recipe``, or not ours at
    /// all (one an operator built or imported under that name is theirs to keep).
    public static func isCurrent(in store: ImageStore) -> Bool {
        guard store.has(name), let image = try? store.image(name) else { return false }
        guard let label = image.config.config?.Labels?[recipeLabel], !label.isEmpty else {
            return image.config.config?.Labels?[recipeLabel] == nil
        }
        return label == recipe && image.manifest.layers.allSatisfy { FileManager.default.fileExists(atPath: store.blobPath($0.digest)) }
    }

    /// The template in `store`: already there, else the machine cache's copied in, else built in
    /// `store` with `runner` (each `RUN` a sandbox of the store's backend; PyPI reached through
    /// the build's egress). Concurrent first uses build once (a lock file of the store).
    public static func ensure(in store: ImageStore, runner: (any BuildStepRunner)?,
                              progress: @escaping @Sendable (BuildEvent) -> Void = { _ in }) async throws(SandboxError) -> TemplateInfo {
        if isCurrent(in: store) { return try store.image(name).info }
        let cache = ImageStore.machineCache
        if !store.isMachineCache, isCurrent(in: cache) { return try await store.adopt(name, from: cache) }
        try await ImageStore.locked((store.layout as NSString).deletingLastPathComponent + "/code-interpreter.lock") { () throws(SandboxError) in
            if isCurrent(in: store) { return }
            _ = try await DebianBase.ensure(in: store)
            try await build(in: store, runner: runner, progress: progress)
        }
        return try store.image(name).info
    }

    /// Copies the machine cache's template into `store` when it is current there and `store`'s is
    /// not (a sandbox's create does this; it never builds).
    static func adoptFromCache(into store: ImageStore) async throws(SandboxError) {
        guard !store.isMachineCache, !isCurrent(in: store), isCurrent(in: ImageStore.machineCache) else { return }
        _ = try await store.adopt(name, from: ImageStore.machineCache)
    }

    /// Builds the template in `store` from the embedded build context.
    static func build(in store: ImageStore, runner: (any BuildStepRunner)?, progress: @escaping @Sendable (BuildEvent) -> Void) async throws(SandboxError) {
        let context = store.buildDirectory + "/code-interpreter-" + UUID().uuidString.prefix(8).lowercased()
        defer { SysFile.removeTree(context) }
        do {
            try FileManager.default.createDirectory(atPath: context, withIntermediateDirectories: true)
            for file in files { try Data(file.text.utf8).write(to: URL(fileURLWithPath: context + "/" + file.name)) }
            let trust = FileManager.default.contents(atPath: hostTrustBundle) ?? Data()
            try trust.write(to: URL(fileURLWithPath: context + "/extra-ca.crt"))
        } catch {
            throw SandboxError(.system, "writing the code interpreter's build context in \(context): \(error)")
        }
        let builder = TemplateBuilder(store: store, runner: runner)
        _ = try await builder.build(name: name, dockerfile: dockerfile, context: context, arguments: ["RECIPE": recipe], progress: progress)
    }
}

import ArgumentParser
import Foundation
import OneShot
import SandboxCore
import SandboxLinux
import Templates

/// `sandboxer template build NAME -f Dockerfile [CONTEXT]`: runs a Dockerfile into a template,
/// each `RUN` in a sandbox, with a layer cache (no server needed).
struct TemplateBuildCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build", abstract: "Build a template from a Dockerfile (each RUN in a sandbox, layers cached).",
        discussion: """
            Instructions: FROM (a template, scratch, debian, oci:DIR, oci-archive:FILE, docker-archive:FILE, docker://…), \
            RUN (shell and exec form), COPY/ADD (from the context, --chown), ENV, ARG, WORKDIR, USER, LABEL, CMD, ENTRYPOINT. \
            RUN steps run in container sandboxes (root of their user namespace, no capabilities) and reach only the \
            package mirrors (--mirror, default deb.debian.org, security.debian.org, pypi.org, files.pythonhosted.org, \
            registry.npmjs.org) and --allow hosts through the egress proxy. A step whose parent and instruction are \
            unchanged comes from the cache.
            """)
    @Argument(help: "The template's name.") var name: String
    @Argument(help: "The build context (COPY sources are relative to it).") var context: String = "."
    @Option(name: [.short, .customLong("file")], help: "The Dockerfile (default: CONTEXT/Dockerfile).") var file: String?
    @Option(name: .customLong("allow"), help: "An extra host RUN steps may reach (repeatable).") var allow: [String] = []
    @Option(name: .customLong("build-arg"), help: "NAME=value for an ARG (repeatable).") var buildArgs: [String] = []
    @Option(name: .customLong("mirror"), help: "A package mirror host RUN steps may reach (repeatable; replaces the default list).") var mirrors: [String] = []
    @Flag(name: .customLong("no-cache"), help: "Run every RUN step again (the cache is still updated).") var noCache = false
    @Option(name: .long, help: "Force an OCI runtime (crun, runc).") var runtime: String?
    @OptionGroup var egress: EgressOptions
    @OptionGroup var data: TemplateStoreOption

    func run() async throws {
        let path = file ?? context + "/Dockerfile"
        guard let bytes = FileManager.default.contents(atPath: path) else {
            throw SandboxError(.invalidRequest, "cannot read the Dockerfile \(path); give it with -f FILE")
        }
        var arguments: [String: String] = [:]
        for a in buildArgs {
            guard let eq = a.firstIndex(of: "="), eq != a.startIndex else { throw SandboxError(.invalidRequest, "--build-arg \(a): give NAME=value") }
            arguments[String(a[..<eq])] = String(a[a.index(after: eq)...])
        }
        let store = data.store
        let hub = try egress.makeHub()
        var options = OneShotRunner.Options(runtime: runtime, reaper: [SelfExecutable.pathForRespawn, "reap"], egress: hub)
        options.images = store
        let backend = try? OneShotRunner(options: options).containerBackend()
        let builder = TemplateBuilder(store: store, runner: backend.map { BuildSandbox(backend: $0) },
                                      mirrors: mirrors.isEmpty ? TemplateBuilder.defaultMirrors : mirrors, allow: allow, noCache: noCache)
        do {
            let info = try await builder.build(name: name, dockerfile: String(decoding: bytes, as: UTF8.self), context: context, arguments: arguments) { event in
                switch event {
                case .step(let index, let of, let instruction, let cached):
                    FileHandle.standardOutput.write(Data("step \(index)/\(of): \(instruction)\(cached ? " (cached)" : "")\n".utf8))
                case .log(let bytes):
                    FileHandle.standardOutput.write(Data(bytes))
                }
            }
            await hub.shutdown()
            print("template \(info.name) \(info.digest)")
        } catch {
            await hub.shutdown()
            throw error
        }
    }
}

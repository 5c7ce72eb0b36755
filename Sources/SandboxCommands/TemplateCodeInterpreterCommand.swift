import ArgumentParser
import Foundation
import OneShot
import SandboxCore
import Templates

/// `sandboxer template code-interpreter`: makes the built-in `code-interpreter-v1` template ready
/// now — built once per machine into the machine cache, then copied into the data directory.
struct TemplateCodeInterpreterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "code-interpreter",
        abstract: "Make the built-in '\(CodeInterpreterTemplate.name)' template ready now (built once per machine).",
        discussion: """
            The template E2B's code interpreter SDK asks for: 'debian' plus Jupyter's Python kernel (ipykernel, \
            jupyter_client), matplotlib, numpy and pandas from PyPI, and the interpreter's driver and JavaScript context \
            (templates/code-interpreter-v1 in the repository). It is built by the template build into the machine cache \
            (\(ImageStore.machineCacheDirectory), $SANDBOXER_CACHE) the first time and copied into each data directory from \
            there; a server that needs it and finds none builds it in its own data directory.
            """)
    @Option(name: .long, help: "Force an OCI runtime (crun, runc).") var runtime: String?
    @OptionGroup var egress: EgressOptions
    @OptionGroup var data: TemplateStoreOption

    func run() async throws {
        let cache = ImageStore.machineCache
        let hub = try egress.makeHub()
        var options = OneShotRunner.Options(runtime: runtime, reaper: [SelfExecutable.pathForRespawn, "reap"], egress: hub)
        options.images = cache
        let backend = try? OneShotRunner(options: options).containerBackend()
        do {
            _ = try await CodeInterpreterTemplate.ensure(in: cache, runner: backend.map { BuildSandbox(backend: $0) }) { event in
                switch event {
                case .step(let index, let of, let instruction, let cached):
                    FileHandle.standardOutput.write(Data("step \(index)/\(of): \(instruction.prefix(120))\(cached ? " (cached)" : "")\n".utf8))
                case .log(let bytes):
                    FileHandle.standardOutput.write(Data(bytes))
                }
            }
            await hub.shutdown()
        } catch {
            await hub.shutdown()
            throw error
        }
        let info = try await CodeInterpreterTemplate.ensure(in: data.store, runner: nil)
        print("template \(info.name) \(info.digest) (\(ByteSize.compact(info.sizeBytes)))")
    }
}

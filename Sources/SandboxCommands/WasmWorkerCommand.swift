import ArgumentParser
import BackendWasm

/// `sandboxer wasm-worker` (hidden): the supervised worker process of the WASM backend. Its options,
/// stdin/stdout contract and exit statuses are documented on ``WasmWorker``.
struct WasmWorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "wasm-worker", abstract: "Internal: the worker process of isolation wasm.", shouldDisplay: false)
    @Argument(parsing: .captureForPassthrough) var arguments: [String] = []
    func run() async throws {
        let status = await WasmWorker.main(arguments: arguments)
        if status != 0 { throw ExitCode(status) }
    }
}

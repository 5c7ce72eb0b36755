import ArgumentParser

/// `sandboxer wasm-worker` (hidden): the supervised worker process of the WASM lane.
struct WasmWorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "wasm-worker", abstract: "Internal: WASM lane worker.", shouldDisplay: false)
    @Argument(parsing: .captureForPassthrough) var arguments: [String] = []
    func run() async throws {}
}

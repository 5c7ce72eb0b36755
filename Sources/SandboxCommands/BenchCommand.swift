import ArgumentParser

/// `sandboxer bench`: start-up latency against the raw tools.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench", abstract: "Measure sandbox start-up against fork/exec, raw crun and bwrap.")
    func run() async throws {}
}

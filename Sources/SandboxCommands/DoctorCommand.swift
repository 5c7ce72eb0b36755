import ArgumentParser
struct DoctorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "doctor", abstract: "Report what this host supports.")
    func run() async throws {}
}

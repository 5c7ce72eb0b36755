import ArgumentParser
import Foundation
import SandboxCore

/// `sandboxer cp LOCAL SBX:/path` and `sandboxer cp SBX:/path LOCAL`: files in and out of a sandbox.
struct CopyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cp", abstract: "Copy a file into (LOCAL SBX:/path) or out of (SBX:/path LOCAL) a sandbox.",
        discussion: "A LOCAL of '-' is stdin/stdout. " + clientExitDiscussion)

    @OptionGroup var client: ClientOptions

    @Argument(help: "Source: a local file or SBX:/path.")
    var source: String

    @Argument(help: "Destination: SBX:/path or a local file.")
    var destination: String

    func run() async throws {
        let api = try client.client()
        switch (ClientText.remote(source), ClientText.remote(destination)) {
        case let (nil, .some(remote)):
            let data: Data
            if source == "-" {
                data = FileHandle.standardInput.readDataToEndOfFile()
            } else {
                guard let d = FileManager.default.contents(atPath: source) else { throw SandboxError(.notFound, "cannot read \(source)") }
                data = d
            }
            var path = remote.path
            if path.hasSuffix("/") { path += (source as NSString).lastPathComponent }
            let reply = try await api.checked(
                "PUT", "/v1/sandboxes/\(ClientText.query(remote.id))/files?path=\(ClientText.query(path))",
                body: Array(data), contentType: "application/octet-stream")
            if client.json { ClientConsole.current.out(reply.body + [10]) }
        case let (.some(remote), nil):
            let reply = try await api.checked("GET", "/v1/sandboxes/\(ClientText.query(remote.id))/files?path=\(ClientText.query(remote.path))")
            if destination == "-" {
                ClientConsole.current.out(reply.body)
            } else {
                var target = destination
                var isDir: ObjCBool = false
                if FileManager.default.fileExists(atPath: target, isDirectory: &isDir), isDir.boolValue {
                    target += "/" + (remote.path as NSString).lastPathComponent
                }
                guard FileManager.default.createFile(atPath: target, contents: Data(reply.body)) else {
                    throw SandboxError(.system, "cannot write \(target)")
                }
            }
        default:
            throw SandboxError(.invalidRequest, "give one local path and one SBX:/path (e.g. sandboxer cp data.csv sbx-…:/workspace/data.csv)")
        }
    }
}

import Foundation
import SandboxCore
import SandboxLinux

/// A PostgreSQL server of one test's own (`scripts/pg-test-server.sh` with `PG_DURABLE=1`: fsync and
/// synchronous_commit on, so an immediate stop loses no acknowledged commit), which the test may
/// crash (`down`: an immediate stop) and start again (`up`). The store-outage tests of the store
/// and the manager both use it.
public struct PrivatePostgres: Sendable {
    public let directory: String
    /// Its store URL, with a password the server does not need (trust) so a test can check that
    /// no message shows it.
    public let url: String
    public static let password = "pw-never-shown"

    static var script: String {
        var dir = (#filePath as NSString).deletingLastPathComponent
        while dir != "/" && !FileManager.default.fileExists(atPath: dir + "/scripts/pg-test-server.sh") {
            dir = (dir as NSString).deletingLastPathComponent
        }
        return dir + "/scripts/pg-test-server.sh"
    }

    public static func start() async throws -> PrivatePostgres {
        let dir = "/tmp/sbx-pg-" + UUID().uuidString.prefix(8).lowercased()
        let plain: String
        do { plain = try await run("start", dir, durable: true).trimmingCharacters(in: .whitespacesAndNewlines) } catch {
            _ = try? await run("stop", dir)  // a start that failed late (its wait ran out) may have left a server
            throw error
        }
        return PrivatePostgres(directory: dir, url: plain.replacingOccurrences(of: "user=postgres", with: "user=postgres&password=\(password)"))
    }

    public func down() async throws { try await Self.run("down", directory) }
    public func up() async throws { try await Self.run("up", directory) }
    public func stop() async { _ = try? await Self.run("stop", directory) }

    /// Runs the script (through SandboxLinux's `ChildProcess`: Foundation's `Process` can miss the
    /// exit of a child in this test binary).
    @discardableResult
    static func run(_ command: String, _ dir: String, durable: Bool = false) async throws -> String {
        let env = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"] + (durable ? ["PG_DURABLE=1"] : [])
        let (status, out, err) = try await ChildProcess.run(["/bin/bash", script, command, dir], environment: env)
        guard case .exited(0) = status else {
            throw SandboxError(.system, "pg-test-server.sh \(command) failed (\(status)): \(err)")
        }
        return out
    }
}

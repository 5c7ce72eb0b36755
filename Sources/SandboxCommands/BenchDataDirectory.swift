import Foundation
import SandboxCore
import SandboxLinux
import SandboxManager

#if canImport(Glibc)
import Glibc
#endif

/// A throw-away data directory for one bench suite (`/tmp/sandboxer-bench-NAME-XXXXXX`), removed
/// with the state directory a manager on it made, however the suite ends.
enum BenchDataDirectory {
    static func with<T>(_ name: String, _ body: (_ data: String) async throws -> T) async throws -> T {
        var template = Array("/tmp/sandboxer-bench-\(name)-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw SandboxError(.system, "cannot make a temporary data directory") }
        let data = String(cString: made)
        defer {
            SysFile.removeTree(SandboxManager.Configuration.stateDirectory(forData: data))
            try? FileManager.default.removeItem(atPath: data)
        }
        return try await body(data)
    }
}

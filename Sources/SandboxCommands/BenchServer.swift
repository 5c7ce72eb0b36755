import Foundation
import NIOHTTP1
import SandboxCore
import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// A `sandboxer serve` of this binary as a child process, for benches that measure the server
/// as deployed (its run workers and background services wired by `serve` itself): a free loopback
/// port, the given data directory, a key of tenant `bench`, no configuration file.
struct BenchServer: Sendable {
    let process: ChildProcess
    let port: Int
    let key: String
    /// The server's stdout and stderr.
    let log: String

    static func start(data: String, workers: Int) async throws -> BenchServer {
        let exe = SelfExecutable.pathForRespawn
        let (made, out, err) = try await ChildProcess.run([exe, "key", "create", "--tenant", "bench", "--data", data], environment: environment)
        let key = out.trimmingCharacters(in: .whitespacesAndNewlines)
        guard made == .exited(0), !key.isEmpty else { throw SandboxError(.system, "sandboxer key create failed: \(err)") }
        let port = try freePort()
        let log = data + "/bench-serve.log"
        let fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Syscall.error("open \(log)", errno: errno) }
        let devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer {
            close(fd)
            close(devnull)
        }
        let process = try ChildProcess.spawn(
            [exe, "serve", "--port", String(port), "--data", data, "--workers", String(workers)],
            environment: environment, stdin: devnull, stdout: fd, stderr: fd)
        let server = BenchServer(process: process, port: port, key: key, log: log)
        let deadline = ContinuousClock.now + .seconds(60)
        while true {
            var status: Int32 = 0
            if waitpid(process.pid, &status, WNOHANG) == process.pid {
                throw SandboxError(.system, "the bench server exited at start; its log:\n" + server.logTail())
            }
            if let ready = try? await BenchConnection.with(port: port, apiKey: key, { c in try await c.send(.GET, "/readyz").status }),
               ready == 200 { return server }
            guard ContinuousClock.now < deadline else {
                await server.stop()
                throw SandboxError(.system, "the bench server was not ready within 60 s; its log:\n" + server.logTail())
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// SIGTERM (a graceful shutdown), SIGKILL if it has not exited 30 s later; waits for it.
    func stop() async {
        kill(process.pid, SIGTERM)
        let pid = process.pid
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                try? await Task.sleep(for: .seconds(30))
                if !Task.isCancelled { kill(pid, SIGKILL) }
            }
            _ = await process.wait()
            group.cancelAll()
        }
    }

    /// The last 3000 bytes of the server's log.
    func logTail() -> String {
        guard let data = FileManager.default.contents(atPath: log) else { return "(no log)" }
        return String(decoding: data.suffix(3000), as: UTF8.self)
    }

    /// The child's environment: a plain PATH, no configuration file, this process's state directory.
    static var environment: [String] {
        var env = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "SANDBOXER_CONFIG="]
        if let state = ProcessInfo.processInfo.environment["SANDBOXER_STATE_DIR"] { env.append("SANDBOXER_STATE_DIR=" + state) }
        return env
    }

    /// A loopback port free at the time of asking (bound to port 0, then released).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Syscall.error("socket", errno: errno) }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        let bound = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw Syscall.error("bind", errno: errno) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { throw Syscall.error("getsockname", errno: errno) }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}

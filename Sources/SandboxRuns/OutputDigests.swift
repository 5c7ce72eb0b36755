import Crypto
import SandboxCore
import SandboxStore
import Synchronization

/// SHA-256 of an attempt's stdout and stderr as the program produces them, fed by the output
/// handler before the run log's cap applies (a capped log still has the whole output's digest).
final class OutputDigests: Sendable {
    private struct Streams {
        var stdout = SHA256()
        var stderr = SHA256()
        var stdoutBytes: Int64 = 0
        var stderrBytes: Int64 = 0
    }
    private let state = Mutex(Streams())

    /// `next`, with every chunk hashed first.
    func wrap(_ next: @escaping OutputHandler) -> OutputHandler {
        { [self] stream, bytes in
            state.withLock { s in
                switch stream {
                case .stdout:
                    s.stdout.update(data: bytes)
                    s.stdoutBytes += Int64(bytes.count)
                case .stderr:
                    s.stderr.update(data: bytes)
                    s.stderrBytes += Int64(bytes.count)
                }
            }
            next(stream, bytes)
        }
    }

    /// The digests so far, into `environment`.
    func fill(_ environment: inout AttemptEnvironment) {
        state.withLock { s in
            environment.stdoutDigest = ContentDigest.text(s.stdout.finalize())
            environment.stderrDigest = ContentDigest.text(s.stderr.finalize())
            environment.stdoutBytes = s.stdoutBytes
            environment.stderrBytes = s.stderrBytes
        }
    }
}

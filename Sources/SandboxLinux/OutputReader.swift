import Foundation
import SandboxCore

#if canImport(Glibc)
import Glibc
#endif

/// What was read from one output stream.
public struct CapturedOutput: Sendable, Equatable {
    /// The kept bytes (at most the cap).
    public var bytes: [UInt8]
    /// More was written than the cap; the rest was read and discarded.
    public var truncated: Bool
    /// Everything written, kept or not.
    public var totalBytes: Int64

    public init(bytes: [UInt8] = [], truncated: Bool = false, totalBytes: Int64 = 0) {
        self.bytes = bytes
        self.truncated = truncated
        self.totalBytes = totalBytes
    }
}

/// Drains one pipe to EOF on its own thread: keeps the first `cap` bytes, forwards them live to a
/// handler, and discards (but keeps reading) the rest so the writer never blocks on a full pipe.
public struct OutputReader: Sendable {
    public let fd: Int32
    public let cap: Int64
    public var stream: StdStream = .stdout
    public var handler: OutputHandler? = nil
    /// Called once, the first time output goes over the cap.
    public var onTruncate: (@Sendable () -> Void)? = nil

    public init(fd: Int32, cap: Int64, stream: StdStream = .stdout, handler: OutputHandler? = nil,
                onTruncate: (@Sendable () -> Void)? = nil) {
        self.fd = fd
        self.cap = cap
        self.stream = stream
        self.handler = handler
        self.onTruncate = onTruncate
    }

    /// Reads until EOF, then closes the descriptor; on a dedicated thread, as EOF comes when the
    /// writing process ends.
    public func readAll() async -> CapturedOutput {
        let me = self
        return await DedicatedThread.run(name: "sbx-output") { me.drain() }
    }

    func drain() -> CapturedOutput {
        defer { close(fd) }
        var kept = [UInt8]()
        var total: Int64 = 0
        var truncated = false
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, 65536) }
            if n < 0 {
                if errno == EINTR { continue }
                break
            }
            if n == 0 { break }
            total += Int64(n)
            let room = Int(max(0, cap - Int64(kept.count)))
            if room > 0 {
                let chunk = Array(buf[0..<min(n, room)])
                kept.append(contentsOf: chunk)
                handler?(stream, chunk)
            }
            if n > room && !truncated {
                truncated = true
                onTruncate?()
            }
        }
        return CapturedOutput(bytes: kept, truncated: truncated, totalBytes: total)
    }
}

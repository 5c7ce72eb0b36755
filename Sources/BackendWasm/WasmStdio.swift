import SandboxCore
import SandboxLinux
import Synchronization
@_spi(WASIPlatform) import WASI

/// Keeps the first `cap` bytes written to one guest stream, forwards them live to the run's
/// ``OutputHandler`` and counts (but drops) the rest, like the container backend's `OutputReader`.
final class OutputSink: Sendable {
    let cap: Int64
    let stream: StdStream
    let handler: OutputHandler?
    let state = Mutex(CapturedOutput())

    init(cap: Int64, stream: StdStream, handler: OutputHandler?) {
        self.cap = cap
        self.stream = stream
        self.handler = handler
    }

    /// Appends one chunk; returns the part that was kept (already forwarded).
    func append(_ bytes: UnsafeRawBufferPointer) {
        let chunk: [UInt8]? = state.withLock { s in
            s.totalBytes += Int64(bytes.count)
            let room = Int(max(0, cap - Int64(s.bytes.count)))
            if bytes.count > room { s.truncated = true }
            guard room > 0, !bytes.isEmpty else { return nil }
            let part = Array(bytes.prefix(room))
            s.bytes.append(contentsOf: part)
            return part
        }
        if let chunk, let handler { handler(stream, chunk) }
    }

    var snapshot: CapturedOutput { state.withLock { $0 } }
}

/// The guest's stdout/stderr: a write-only character device backed by an ``OutputSink``.
struct CaptureFile: WASIFile {
    let sink: OutputSink

    var isBorrowed: Bool { true }
    func attributes() throws -> WASIAbi.Filestat {
        WASIAbi.Filestat(dev: 0, ino: 0, filetype: .CHARACTER_DEVICE, nlink: 0, size: 0, atim: 0, mtim: 0, ctim: 0)
    }
    func fileType() throws -> WASIAbi.FileType { .CHARACTER_DEVICE }
    func status() throws -> WASIAbi.Fdflags { [.APPEND] }
    func setTimes(atim: WASIAbi.Timestamp, mtim: WASIAbi.Timestamp, fstFlags: WASIAbi.FstFlags) throws {
        throw WASIAbi.Errno.ENOTSUP
    }
    func advise(offset: WASIAbi.FileSize, length: WASIAbi.FileSize, advice: WASIAbi.Advice) throws {}
    func close() throws {}
    func fdStat() throws -> WASIAbi.FdStat {
        WASIAbi.FdStat(fsFileType: .CHARACTER_DEVICE, fsFlags: [.APPEND], fsRightsBase: [.FD_WRITE], fsRightsInheriting: [])
    }
    func setFdStatFlags(_ flags: WASIAbi.Fdflags) throws {}
    func setFilestatSize(_ size: WASIAbi.FileSize) throws { throw WASIAbi.Errno.EINVAL }
    func sync() throws {}
    func datasync() throws {}
    func tell() throws -> WASIAbi.FileSize { throw WASIAbi.Errno.ESPIPE }
    func seek(offset: WASIAbi.FileDelta, whence: WASIAbi.Whence) throws -> WASIAbi.FileSize { throw WASIAbi.Errno.ESPIPE }
    func write(vectored buffers: GuestBuffers) throws -> WASIAbi.Size {
        var written = 0
        for i in 0..<buffers.count {
            written += try buffers.withHostBuffer(at: i) { buf in
                sink.append(UnsafeRawBufferPointer(buf))
                return buf.count
            }
        }
        return WASIAbi.Size(written)
    }
    func pwrite(vectored buffers: GuestBuffers, offset: WASIAbi.FileSize) throws -> WASIAbi.Size { throw WASIAbi.Errno.ESPIPE }
    func read(into buffers: GuestBuffers) throws -> WASIAbi.Size { throw WASIAbi.Errno.EBADF }
    func pread(into buffers: GuestBuffers, offset: WASIAbi.FileSize) throws -> WASIAbi.Size { throw WASIAbi.Errno.EBADF }
}

/// The guest's stdin: read-only bytes fixed before the run (empty = `/dev/null`).
final class InputFile: WASIFile {
    let bytes: [UInt8]
    let position = Mutex(0)

    init(bytes: [UInt8]) { self.bytes = bytes }

    var isBorrowed: Bool { true }
    func attributes() throws -> WASIAbi.Filestat {
        WASIAbi.Filestat(dev: 0, ino: 0, filetype: .CHARACTER_DEVICE, nlink: 0, size: 0, atim: 0, mtim: 0, ctim: 0)
    }
    func fileType() throws -> WASIAbi.FileType { .CHARACTER_DEVICE }
    func status() throws -> WASIAbi.Fdflags { [] }
    func setTimes(atim: WASIAbi.Timestamp, mtim: WASIAbi.Timestamp, fstFlags: WASIAbi.FstFlags) throws {
        throw WASIAbi.Errno.ENOTSUP
    }
    func advise(offset: WASIAbi.FileSize, length: WASIAbi.FileSize, advice: WASIAbi.Advice) throws {}
    func close() throws {}
    func fdStat() throws -> WASIAbi.FdStat {
        WASIAbi.FdStat(fsFileType: .CHARACTER_DEVICE, fsFlags: [], fsRightsBase: [.FD_READ], fsRightsInheriting: [])
    }
    func setFdStatFlags(_ flags: WASIAbi.Fdflags) throws {}
    func setFilestatSize(_ size: WASIAbi.FileSize) throws { throw WASIAbi.Errno.EINVAL }
    func sync() throws {}
    func datasync() throws {}
    func tell() throws -> WASIAbi.FileSize { throw WASIAbi.Errno.ESPIPE }
    func seek(offset: WASIAbi.FileDelta, whence: WASIAbi.Whence) throws -> WASIAbi.FileSize { throw WASIAbi.Errno.ESPIPE }
    func write(vectored buffers: GuestBuffers) throws -> WASIAbi.Size { throw WASIAbi.Errno.EBADF }
    func pwrite(vectored buffers: GuestBuffers, offset: WASIAbi.FileSize) throws -> WASIAbi.Size { throw WASIAbi.Errno.EBADF }
    func read(into buffers: GuestBuffers) throws -> WASIAbi.Size {
        try position.withLock { pos in
            var total = 0
            for i in 0..<buffers.count where pos < bytes.count {
                let n = try buffers.withHostBuffer(at: i) { buf in
                    let n = min(buf.count, bytes.count - pos)
                    bytes.withUnsafeBytes { src in
                        buf.baseAddress?.copyMemory(from: src.baseAddress! + pos, byteCount: n)
                    }
                    return n
                }
                pos += n
                total += n
            }
            return WASIAbi.Size(total)
        }
    }
    func pread(into buffers: GuestBuffers, offset: WASIAbi.FileSize) throws -> WASIAbi.Size { throw WASIAbi.Errno.ESPIPE }
}

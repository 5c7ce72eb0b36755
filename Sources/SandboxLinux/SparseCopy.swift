import Foundation
import SandboxCore

#if canImport(Glibc)
import Glibc
#endif

/// Copies a regular file's data between two descriptors and keeps its holes: only the ranges
/// `SEEK_DATA`/`SEEK_HOLE` report as data are read and written, and the apparent size is set with
/// `ftruncate`. A 1 TiB sparse file with one page of data costs one page.
public enum SparseCopy {
    /// Linux's `SEEK_DATA`/`SEEK_HOLE` (behind `_GNU_SOURCE` in the C headers Swift imports).
    static let seekData: Int32 = 3
    static let seekHole: Int32 = 4

    /// Why a copy stopped early.
    public struct Stop: Error, Sendable {
        public var reason: String
        public init(_ reason: String) { self.reason = reason }
    }

    /// Copies `size` bytes of `src` into the empty file `dst`. `charge` is called with every data
    /// chunk's size before it is written and may throw ``Stop`` (a byte budget or a deadline).
    /// Returns the data bytes written.
    public static func copy(from src: Int32, to dst: Int32, size: Int64, charge: (Int64) throws(Stop) -> Void) throws(Stop) -> Int64 {
        var buf = [UInt8](repeating: 0, count: 1 << 20)
        return try copy(from: src, to: dst, size: size, buffer: &buf, charge: charge)
    }

    /// ``copy(from:to:size:charge:)`` through the caller's `buffer` (not empty), for many files in a row.
    public static func copy(from src: Int32, to dst: Int32, size: Int64, buffer buf: inout [UInt8],
                            charge: (Int64) throws(Stop) -> Void) throws(Stop) -> Int64 {
        var written: Int64 = 0
        try forEachRun(of: src, size: size, buffer: &buf, readFailed: { Stop("read failed: \(String(cString: strerror($0)))") }) {
            (pos: Int64, bytes: UnsafeRawBufferPointer) throws(Stop) in
            try charge(Int64(bytes.count))
            let e = writeRun(dst, bytes, at: pos)
            if e != 0 { throw Stop(e == ENOSPC ? "no space left on the destination" : "write failed: \(String(cString: strerror(e)))") }
            written += Int64(bytes.count)
        }
        if ftruncate(dst, off_t(size)) != 0 {
            throw Stop(errno == EFBIG ? "file larger than the destination allows" : "truncate failed: \(String(cString: strerror(errno)))")
        }
        return written
    }

    /// Writes all of `bytes` to `dst` at `offset` (retrying short and interrupted writes); 0, or
    /// the errno of the write that failed.
    public static func writeRun(_ dst: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int64) -> Int32 {
        var done = 0
        while done < bytes.count {
            let w = pwrite(dst, bytes.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done))
            if w < 0 && errno == EINTR { continue }
            if w < 0 { return errno }
            done += w
        }
        return 0
    }

    /// Reads the data of the first `size` bytes of `src` through `buffer` (not empty) and hands
    /// each chunk to `body` with its offset, in order; holes (what `SEEK_DATA` skips) are never
    /// read. `readFailed` turns a read's errno into the caller's error. A file that shrank meanwhile
    /// ends early.
    public static func forEachRun<E: Error>(of src: Int32, size: Int64, buffer buf: inout [UInt8], readFailed: (Int32) -> E,
                                            _ body: (Int64, UnsafeRawBufferPointer) throws(E) -> Void) throws(E) {
        precondition(!buf.isEmpty, "SparseCopy needs a buffer")
        var offset: Int64 = 0
        while offset < size {
            var dataStart = lseek(src, off_t(offset), Self.seekData)
            if dataStart < 0 {
                if errno == ENXIO { break }  // only a hole is left
                dataStart = off_t(offset)  // no SEEK_DATA support: everything is data
            }
            var dataEnd = lseek(src, dataStart, Self.seekHole)
            if dataEnd < 0 { dataEnd = off_t(size) }
            dataEnd = min(dataEnd, off_t(size))
            var pos = Int64(dataStart)
            while pos < Int64(dataEnd) {
                let want = Int(min(Int64(buf.count), Int64(dataEnd) - pos))
                let n = buf.withUnsafeMutableBytes { pread(src, $0.baseAddress, want, off_t(pos)) }
                if n < 0 && errno == EINTR { continue }
                if n < 0 { throw readFailed(errno) }
                if n == 0 { return }  // the file shrank under us
                try buf.withUnsafeBytes { b in Result { () throws(E) in try body(pos, UnsafeRawBufferPointer(rebasing: b[0..<n])) } }.get()
                pos += Int64(n)
            }
            offset = Int64(dataEnd)
        }
    }
}

/// What identifies one version of a file: inode, size and change times. Two equal states mean
/// nobody wrote, replaced, truncated or re-permissioned the file in between.
public struct FileState: Sendable, Equatable {
    public var device: UInt64
    public var inode: UInt64
    public var size: Int64
    public var mtimeNs: Int64
    public var ctimeNs: Int64
    public var mode: UInt32

    public init(_ st: stat) {
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
        size = Int64(st.st_size)
        mtimeNs = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        ctimeNs = Int64(st.st_ctim.tv_sec) * 1_000_000_000 + Int64(st.st_ctim.tv_nsec)
        mode = UInt32(st.st_mode)
    }

    /// The file type bits (`S_IFREG`, `S_IFDIR`, `S_IFLNK`, …).
    public var type: UInt32 { mode & UInt32(S_IFMT) }
}

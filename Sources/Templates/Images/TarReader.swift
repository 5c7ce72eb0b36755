import Foundation
import SandboxCore
import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// One member of a tar archive, with ustar, GNU (long names, base-256 numbers) and pax
/// (`path`, `linkpath`, `size`, `uid`, `gid`, `mtime`) headers already applied.
public struct TarEntry: Sendable, Equatable {
    /// What a member is; anything else (sparse files, volume labels) is `.other` with its type byte.
    public enum Kind: Sendable, Equatable {
        case file, hardLink, symlink, characterDevice, blockDevice, directory, fifo
        case other(UInt8)
    }

    public var path: String
    public var kind: Kind
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var size: Int64
    public var mtime: Int64
    /// A link's target (symlink or hard link).
    public var linkTarget: String
    public var deviceMajor: UInt32
    public var deviceMinor: UInt32
    /// A sparse file (pax `GNU.sparse.major` 1): its real size. Its content is then the sparse
    /// map (``TarSparseMap``) followed by the data of the map's ranges; ``size`` is that content's.
    public var sparseSize: Int64? = nil
}

/// Reads a tar stream from a file descriptor, one member at a time, blocking the calling thread
/// (a dedicated thread: an image layer can take seconds). Every byte read is also given to
/// `observe` (the uncompressed stream's digest is taken from it).
public final class TarReader {
    private let fd: Int32
    private var buffer = [UInt8](repeating: 0, count: 1 << 16)
    private var start = 0
    private var end = 0
    private var eof = false
    /// Bytes of the current member's content not yet read, then its padding to 512.
    private var remaining: Int64 = 0
    private var padding = 0
    private let observe: ([UInt8], Int, Int) -> Void
    /// Where the stream comes from, for messages.
    private let source: String

    public init(fd: Int32, source: String, observe: @escaping ([UInt8], Int, Int) -> Void = { _, _, _ in }) {
        (self.fd, self.source, self.observe) = (fd, source, observe)
    }

    /// Reads a tar archive held in memory (an upload): parsing only, nothing is read from or
    /// written to any file.
    public init(bytes: [UInt8], source: String) {
        (fd, self.source, observe) = (-1, source, { _, _, _ in })
        buffer = bytes
        (start, end, eof) = (0, bytes.count, true)
    }

    /// The next member's header (its content is read with ``read(into:)`` or skipped by the next
    /// call), or nil at the archive's end.
    public func next() throws(SandboxError) -> TarEntry? {
        try skip(remaining + Int64(padding))
        remaining = 0
        padding = 0
        var pax: [String: String] = [:]
        var longName: String?
        var longLink: String?
        while true {
            guard let block = try block() else { return nil }
            if block.allSatisfy({ $0 == 0 }) { return nil }
            try verifyChecksum(block)
            let type = block[156]
            let size = try number(block, 124, 12, "size")
            guard size >= 0 else { throw bad("a member has a negative size") }
            switch type {
            case UInt8(ascii: "x"), UInt8(ascii: "g"):
                let records = try content(size)
                if type == UInt8(ascii: "x") { pax.merge(try Self.paxRecords(records, source: source)) { $1 } }
                continue
            case UInt8(ascii: "L"):
                longName = Self.cString(try content(size)[...])
                continue
            case UInt8(ascii: "K"):
                longLink = Self.cString(try content(size)[...])
                continue
            default:
                break
            }
            var entry = TarEntry(
                path: longName ?? Self.ustarName(block), kind: Self.kind(type), mode: UInt32(truncatingIfNeeded: try number(block, 100, 8, "mode")) & 0o7777,
                uid: UInt32(truncatingIfNeeded: try number(block, 108, 8, "uid")), gid: UInt32(truncatingIfNeeded: try number(block, 116, 8, "gid")),
                size: size, mtime: try number(block, 136, 12, "mtime"), linkTarget: longLink ?? Self.cString(block[157..<257]),
                deviceMajor: UInt32(truncatingIfNeeded: (try? number(block, 329, 8, "devmajor")) ?? 0),
                deviceMinor: UInt32(truncatingIfNeeded: (try? number(block, 337, 8, "devminor")) ?? 0))
            if let p = pax["path"] { entry.path = p }
            if let l = pax["linkpath"] { entry.linkTarget = l }
            if let s = pax["size"] {
                guard let n = Int64(s), n >= 0 else { throw bad("pax size '\(s)' of \(entry.path) is not a size") }
                entry.size = n
            }
            if let u = pax["uid"], let n = UInt32(u) { entry.uid = n }
            if let g = pax["gid"], let n = UInt32(g) { entry.gid = n }
            if let m = pax["mtime"], let n = Double(m) { entry.mtime = Int64(n) }
            if pax["GNU.sparse.major"] == "1", pax["GNU.sparse.minor"] == "0" {
                guard let name = pax["GNU.sparse.name"], let real = pax["GNU.sparse.realsize"].flatMap({ Int64($0) }), real >= 0 else {
                    throw bad("the sparse member \(entry.path) lacks GNU.sparse.name or GNU.sparse.realsize")
                }
                entry.path = name
                entry.sparseSize = real
            } else if pax["GNU.sparse.major"] != nil || pax["GNU.sparse.map"] != nil {
                throw bad("member \(entry.path) is a sparse file in an old GNU format (only pax sparse 1.0 is read); re-create the layer")
            }
            // Regular files (and unknown types, to skip them) carry content; links, directories,
            // devices and FIFOs never do, whatever their size field says.
            switch entry.kind {
            case .file, .other: remaining = entry.size
            default: remaining = 0
            }
            padding = Int((512 - (remaining % 512)) % 512)
            return entry
        }
    }

    /// Reads up to `count` bytes of the current member's content into `out` (cleared first); an
    /// empty result is the member's end.
    public func read(into out: inout [UInt8], count: Int = 1 << 16) throws(SandboxError) {
        out.removeAll(keepingCapacity: true)
        let want = Int(min(Int64(count), remaining))
        guard want > 0 else { return }
        while out.count < want {
            guard try fill() else { throw bad("the stream ends inside a member") }
            let n = min(want - out.count, end - start)
            out.append(contentsOf: buffer[start..<(start + n)])
            start += n
        }
        remaining -= Int64(want)
    }

    /// Reads the rest of the stream (the zero blocks and record padding after the last member), so
    /// `observe` has seen every byte.
    public func drain() throws(SandboxError) {
        while try fill() { start = end }
    }

    // MARK: - Blocks and numbers

    private func block() throws(SandboxError) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(512)
        while out.count < 512 {
            guard try fill() else {
                if out.isEmpty { return nil }  // a stream that ends without the two zero blocks: accepted, as tar does
                throw bad("the stream ends inside a header")
            }
            let n = min(512 - out.count, end - start)
            out.append(contentsOf: buffer[start..<(start + n)])
            start += n
        }
        return out
    }

    private func content(_ size: Int64) throws(SandboxError) -> [UInt8] {
        guard size <= 1 << 20 else { throw bad("an extended header of \(size) bytes (at most 1 MiB)") }
        var out: [UInt8] = []
        var left = Int(size)
        while left > 0 {
            guard try fill() else { throw bad("the stream ends inside an extended header") }
            let n = min(left, end - start)
            out.append(contentsOf: buffer[start..<(start + n)])
            start += n
            left -= n
        }
        try skip(Int64((512 - (Int(size) % 512)) % 512))
        return out
    }

    private func skip(_ count: Int64) throws(SandboxError) {
        var left = count
        while left > 0 {
            guard try fill() else { throw bad("the stream ends inside a member") }
            let n = Int(min(left, Int64(end - start)))
            start += n
            left -= Int64(n)
        }
    }

    /// Makes bytes available; false at the stream's end.
    private func fill() throws(SandboxError) -> Bool {
        if start < end { return true }
        if eof { return false }
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw Syscall.error("reading \(source)", errno: errno) }
            if n == 0 {
                eof = true
                return false
            }
            observe(buffer, 0, n)
            (start, end) = (0, n)
            return true
        }
    }

    private func verifyChecksum(_ block: [UInt8]) throws(SandboxError) {
        let stored = try number(block, 148, 8, "checksum")
        var sum: Int64 = 0
        for (i, b) in block.enumerated() { sum += (148..<156).contains(i) ? 32 : Int64(b) }
        guard sum == stored else { throw bad("a header's checksum is wrong (not a tar stream, or a damaged one)") }
    }

    /// An octal field, or GNU base-256 when its first byte has the high bit set.
    private func number(_ block: [UInt8], _ at: Int, _ width: Int, _ field: String) throws(SandboxError) -> Int64 {
        let bytes = block[at..<(at + width)]
        if let first = bytes.first, first & 0x80 != 0 {
            var value: Int64 = Int64(first & 0x7f)
            for b in bytes.dropFirst() {
                guard value < (Int64.max >> 8) else { throw bad("the \(field) field is too large") }
                value = value << 8 | Int64(b)
            }
            return value
        }
        let text = String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self).trimmingCharacters(in: .whitespaces)
        if text.isEmpty { return 0 }
        guard let value = Int64(text, radix: 8) else { throw bad("the \(field) field '\(text)' is not an octal number") }
        return value
    }

    private func bad(_ what: String) -> SandboxError {
        SandboxError(.invalidRequest, "\(source): \(what)")
    }

    static func kind(_ type: UInt8) -> TarEntry.Kind {
        switch type {
        case 0, UInt8(ascii: "0"), UInt8(ascii: "7"): .file
        case UInt8(ascii: "1"): .hardLink
        case UInt8(ascii: "2"): .symlink
        case UInt8(ascii: "3"): .characterDevice
        case UInt8(ascii: "4"): .blockDevice
        case UInt8(ascii: "5"): .directory
        case UInt8(ascii: "6"): .fifo
        default: .other(type)
        }
    }

    static func cString(_ bytes: ArraySlice<UInt8>) -> String {
        String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
    }

    /// ustar's name, with its prefix field when the magic says ustar.
    static func ustarName(_ block: [UInt8]) -> String {
        let name = cString(block[0..<100])
        let magic = Array(block[257..<263])
        guard magic == Array("ustar\0".utf8) else { return name }
        let prefix = cString(block[345..<500])
        return prefix.isEmpty ? name : prefix + "/" + name
    }

    /// pax records `LEN key=value\n`.
    static func paxRecords(_ bytes: [UInt8], source: String) throws(SandboxError) -> [String: String] {
        var out: [String: String] = [:]
        var i = 0
        while i < bytes.count {
            guard let space = bytes[i...].firstIndex(of: UInt8(ascii: " ")),
                  let length = Int(String(decoding: bytes[i..<space], as: UTF8.self)), length > 0, i + length <= bytes.count
            else { throw SandboxError(.invalidRequest, "\(source): a pax header record is malformed") }
            let record = bytes[(space + 1)..<(i + length - 1)]
            if let eq = record.firstIndex(of: UInt8(ascii: "=")) {
                out[String(decoding: record[record.startIndex..<eq], as: UTF8.self)] = String(decoding: record[(eq + 1)...], as: UTF8.self)
            }
            i += length
        }
        return out
    }
}

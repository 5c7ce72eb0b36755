import Foundation
import SandboxCore

/// A member of a zip archive as its central directory describes it.
struct ZipEntry: Sendable, Equatable {
    var name: String
    /// 0 stored, 8 deflated.
    var method: UInt16
    var flags: UInt16
    var crc: UInt32
    var compressedSize: Int
    var size: Int
    var localHeaderOffset: Int
    /// `st_mode` when the archive was made on Unix (its file type tells links and devices apart).
    var unixMode: UInt32?
    /// Whether any of its sizes or its offset is zip64's marker (0xFFFFFFFF).
    var needsZip64: Bool

    var isEncrypted: Bool { flags & 0x41 != 0 }
    var isDirectory: Bool { name.hasSuffix("/") || unixMode.map { $0 & 0o170000 == 0o040000 } == true }
}

/// Why a zip archive (or one member of it) cannot be read: the scan's finding code and a message.
struct ZipFailure: Error, Sendable {
    var code: AgentScanCode
    var message: String
}

/// Reads a zip archive held in memory through its central directory (APPNOTE 6.3): stored and
/// deflated members; zip64 and multi-disk archives are refused. Nothing is written anywhere, and
/// inflating stops at a given number of bytes (a zip bomb is refused, not expanded).
enum ZipReader {
    /// The central directory's entries.
    static func entries(_ bytes: [UInt8]) throws(ZipFailure) -> [ZipEntry] {
        guard let end = endRecord(bytes) else {
            throw ZipFailure(code: .invalidArchive, message: "the body is not a zip archive (no end of central directory record)")
        }
        if end >= 20, u32(bytes, end - 20) == 0x0706_4B50 {
            throw ZipFailure(code: .zip64Unsupported, message: "the archive is in zip64 form; make a plain zip (a bundle is far below 4 GiB)")
        }
        let disk = u16(bytes, end + 4), cdDisk = u16(bytes, end + 6)
        let count = Int(u16(bytes, end + 10)), cdSize = Int(u32(bytes, end + 12)), cdOffset = Int(u32(bytes, end + 16))
        if count == 0xFFFF || cdSize == 0xFFFF_FFFF || cdOffset == 0xFFFF_FFFF {
            throw ZipFailure(code: .zip64Unsupported, message: "the archive is in zip64 form; make a plain zip (a bundle is far below 4 GiB)")
        }
        guard disk == 0, cdDisk == 0 else {
            throw ZipFailure(code: .invalidArchive, message: "the archive spans several disks; make a single-file zip")
        }
        guard cdOffset + cdSize <= end else {
            throw ZipFailure(code: .invalidArchive, message: "the archive's central directory lies outside it (truncated?)")
        }
        var out: [ZipEntry] = []
        var at = cdOffset
        for _ in 0..<count {
            guard at + 46 <= cdOffset + cdSize, u32(bytes, at) == 0x0201_4B50 else {
                throw ZipFailure(code: .invalidArchive, message: "the archive's central directory is damaged (entry \(out.count + 1) of \(count))")
            }
            let madeBy = u16(bytes, at + 4)
            let nameLength = Int(u16(bytes, at + 28)), extraLength = Int(u16(bytes, at + 30)), commentLength = Int(u16(bytes, at + 32))
            guard at + 46 + nameLength <= cdOffset + cdSize else {
                throw ZipFailure(code: .invalidArchive, message: "the archive's central directory is damaged (a name runs past it)")
            }
            let compressed = u32(bytes, at + 20), size = u32(bytes, at + 24), offset = u32(bytes, at + 42)
            let external = u32(bytes, at + 38)
            out.append(ZipEntry(
                name: String(decoding: bytes[(at + 46)..<(at + 46 + nameLength)], as: UTF8.self), method: u16(bytes, at + 10),
                flags: u16(bytes, at + 8), crc: u32(bytes, at + 16), compressedSize: Int(compressed), size: Int(size),
                localHeaderOffset: Int(offset), unixMode: madeBy >> 8 == 3 ? external >> 16 : nil,
                needsZip64: compressed == 0xFFFF_FFFF || size == 0xFFFF_FFFF || offset == 0xFFFF_FFFF))
            at += 46 + nameLength + extraLength + commentLength
        }
        return out
    }

    /// The content of a stored or deflated entry, at most `limit` bytes: past it, `bundleTooLarge`
    /// (inflating stops there). Its size and CRC-32 are checked.
    static func data(_ entry: ZipEntry, in bytes: [UInt8], limit: Int) throws(ZipFailure) -> [UInt8] {
        let at = entry.localHeaderOffset
        guard at + 30 <= bytes.count, u32(bytes, at) == 0x0403_4B50 else {
            throw ZipFailure(code: .invalidArchive, message: "'\(entry.name)': its local header is missing (a damaged archive)")
        }
        let start = at + 30 + Int(u16(bytes, at + 26)) + Int(u16(bytes, at + 28))
        guard start + entry.compressedSize <= bytes.count else {
            throw ZipFailure(code: .invalidArchive, message: "'\(entry.name)': its data runs past the archive's end (truncated?)")
        }
        let raw = Array(bytes[start..<(start + entry.compressedSize)])
        var out: [UInt8] = []
        switch entry.method {
        case 0:
            guard raw.count <= limit else { throw overLimit(limit) }
            out = raw
        case 8:
            var reader = Gzip.BitReader(raw, at: 0)
            do { try Inflater.inflate(&reader, into: &out, limit: limit) } catch {
                if error.description.hasPrefix(inflatedPastLimit) { throw overLimit(limit) }
                throw ZipFailure(code: .invalidArchive, message: "'\(entry.name)': \(error.description)")
            }
        default:
            throw ZipFailure(code: .unsupportedCompression, message: "'\(entry.name)' is compressed with method \(entry.method); only stored (0) and deflated (8) entries are read")
        }
        guard out.count == entry.size, Gzip.crc32(out) == entry.crc else {
            throw ZipFailure(code: .invalidArchive, message: "'\(entry.name)': its size or CRC-32 does not match its central directory entry (a damaged archive)")
        }
        return out
    }

    /// How ``Inflater`` words the failure of a stream that inflates past its limit.
    static let inflatedPastLimit = "the data inflates to more than"

    static func overLimit(_ limit: Int) -> ZipFailure {
        ZipFailure(code: .bundleTooLarge, message: "the archive's content is more than the \(limit) bytes left under the code limit (inflating stopped there)")
    }

    /// The offset of the end of central directory record: the last signature whose comment ends the file.
    static func endRecord(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 22 else { return nil }
        var at = bytes.count - 22
        let lowest = max(0, bytes.count - 22 - 0xFFFF)
        while at >= lowest {
            if u32(bytes, at) == 0x0605_4B50, at + 22 + Int(u16(bytes, at + 20)) == bytes.count { return at }
            at -= 1
        }
        return nil
    }

    static func u16(_ b: [UInt8], _ at: Int) -> UInt16 { UInt16(b[at]) | UInt16(b[at + 1]) << 8 }
    static func u32(_ b: [UInt8], _ at: Int) -> UInt32 { UInt32(u16(b, at)) | UInt32(u16(b, at + 2)) << 16 }
}

import Foundation
import SandboxCore

#if canImport(Glibc)
import Glibc
#endif

/// The data ranges of a sparse file as a pax sparse 1.0 member carries them (GNU tar's format,
/// read by GNU tar, bsdtar and Go's archive/tar): at the start of the member's content, the
/// count and then each range's offset and length as decimal lines, padded to 512 bytes; the
/// ranges' bytes follow back to back. A file that ends in a hole has a last range of length 0
/// at its size.
public struct TarSparseMap: Sendable, Equatable {
    public struct Range: Sendable, Equatable {
        public var offset: Int64
        public var length: Int64
    }
    public var ranges: [Range]

    /// `SEEK_DATA`/`SEEK_HOLE` of `fd` (`size` bytes); nil when the filesystem cannot say.
    static func of(fd: Int32, size: Int64) -> TarSparseMap? {
        var ranges: [Range] = []
        var offset: Int64 = 0
        while offset < size {
            let data = lseek(fd, off_t(offset), 3)  // SEEK_DATA
            if data < 0 {
                if errno == ENXIO { break }
                return nil
            }
            var hole = lseek(fd, data, 4)  // SEEK_HOLE
            if hole < 0 { return nil }
            hole = min(hole, off_t(size))
            ranges.append(Range(offset: Int64(data), length: Int64(hole - data)))
            offset = Int64(hole)
        }
        if ranges.last.map({ $0.offset + $0.length }) != size { ranges.append(Range(offset: size, length: 0)) }
        return TarSparseMap(ranges: ranges)
    }

    /// The map as the member's content starts with it (padded to 512).
    func encoded() -> [UInt8] {
        var text = "\(ranges.count)\n"
        for r in ranges { text += "\(r.offset)\n\(r.length)\n" }
        var bytes = Array(text.utf8)
        bytes += [UInt8](repeating: 0, count: (512 - bytes.count % 512) % 512)
        return bytes
    }

    /// Reads the map from the start of the current member of `tar` (its 512-byte blocks); the
    /// ranges' data is what the member holds next. `realSize` bounds every range.
    static func read(from tar: TarReader, realSize: Int64, member: String) throws(SandboxError) -> TarSparseMap {
        var numbers: [Int64] = []
        var want: Int?
        var partial = ""
        var block: [UInt8] = []
        while want.map({ numbers.count < 1 + 2 * $0 }) ?? true {
            try tar.read(into: &block, count: 512)
            guard block.count == 512 else { throw SandboxError(.invalidRequest, "sparse member \(member): its map is cut short") }
            for byte in block {
                if want.map({ numbers.count >= 1 + 2 * $0 }) ?? false { break }
                if byte == UInt8(ascii: "\n") {
                    guard let n = Int64(partial), n >= 0 else { throw SandboxError(.invalidRequest, "sparse member \(member): its map has '\(partial)', not a number") }
                    numbers.append(n)
                    partial = ""
                    if numbers.count == 1 {
                        guard n <= 1 << 20 else { throw SandboxError(.invalidRequest, "sparse member \(member): a map of \(n) ranges (at most 1048576)") }
                        want = Int(n)
                    }
                } else {
                    guard partial.count < 20, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else {
                        throw SandboxError(.invalidRequest, "sparse member \(member): its map is malformed")
                    }
                    partial.append(Character(UnicodeScalar(byte)))
                }
            }
        }
        var ranges: [Range] = []
        var end: Int64 = 0
        for i in 0..<(want ?? 0) {
            let r = Range(offset: numbers[1 + 2 * i], length: numbers[2 + 2 * i])
            guard r.offset >= end, r.offset.addingReportingOverflow(r.length).overflow == false, r.offset + r.length <= realSize else {
                throw SandboxError(.invalidRequest, "sparse member \(member): its map's ranges overlap, go backwards or pass its size")
            }
            end = r.offset + r.length
            ranges.append(r)
        }
        return TarSparseMap(ranges: ranges)
    }
}

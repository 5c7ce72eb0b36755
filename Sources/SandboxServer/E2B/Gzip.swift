/// gzip (RFC 1952) over deflate (RFC 1951) for envd's `/files`: `Content-Encoding: gzip`
/// uploads are inflated (every block type, concatenated members, CRC and size checked, output
/// capped), `Accept-Encoding: gzip` downloads deflated with the fixed Huffman code and LZ77
/// matches from a one-candidate hash table (fast, about half of what zlib's best would save).
/// The package's dependencies carry no zlib for the server target, hence this small codec.
enum Gzip {
    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    /// Whether a header value (`Accept-Encoding`) accepts gzip (`gzip`, `gzip;q=0.5`, `*`), not `gzip;q=0`.
    static func accepted(_ header: String?) -> Bool {
        guard let header else { return false }
        for item in header.lowercased().split(separator: ",") {
            let parts = item.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
            guard let coding = parts.first, coding == "gzip" || coding == "x-gzip" || coding == "*" else { continue }
            if parts.dropFirst().contains(where: { $0 == "q=0" || $0 == "q=0.0" || $0 == "q=0.00" || $0 == "q=0.000" }) { continue }
            return true
        }
        return false
    }

    // MARK: CRC-32

    static let crcTable: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func crc32(_ bytes: some Collection<UInt8>) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    // MARK: Decompression

    /// The data of a gzip stream (one or more members), or a failure past `limit` bytes of output.
    static func decompress(_ input: [UInt8], limit: Int) throws(Failure) -> [UInt8] {
        var out: [UInt8] = []
        var pos = 0
        repeat {
            guard input.count - pos >= 18, input[pos] == 0x1F, input[pos + 1] == 0x8B, input[pos + 2] == 8 else {
                throw Failure("the body is not gzip data (no gzip header with the deflate method)")
            }
            let flags = input[pos + 3]
            pos += 10
            if flags & 4 != 0 {
                guard pos + 2 <= input.count else { throw Failure("the gzip header ends early") }
                pos += 2 + Int(input[pos]) + Int(input[pos + 1]) << 8
            }
            for flag in [UInt8(8), 16] where flags & flag != 0 {
                while pos < input.count, input[pos] != 0 { pos += 1 }
                pos += 1
            }
            if flags & 2 != 0 { pos += 2 }
            guard pos < input.count else { throw Failure("the gzip header ends early") }
            let start = out.count
            var reader = BitReader(input, at: pos)
            try Inflater.inflate(&reader, into: &out, limit: limit)
            pos = reader.bytePosition
            guard pos + 8 <= input.count else { throw Failure("the gzip data ends before its CRC and size") }
            let crc = (0..<4).reduce(UInt32(0)) { $0 | UInt32(input[pos + $1]) << (8 * UInt32($1)) }
            let size = (0..<4).reduce(UInt32(0)) { $0 | UInt32(input[pos + 4 + $1]) << (8 * UInt32($1)) }
            guard crc == crc32(out[start...]), size == UInt32(truncatingIfNeeded: out.count - start) else {
                throw Failure("the gzip data is corrupt (its CRC or size does not match)")
            }
            pos += 8
        } while pos < input.count && input[pos] == 0x1F
        return out
    }

    /// Bits of a deflate stream, least significant first.
    struct BitReader {
        let bytes: [UInt8]
        var pos: Int
        var buffer: UInt32 = 0
        var count: UInt32 = 0

        init(_ bytes: [UInt8], at pos: Int) {
            self.bytes = bytes
            self.pos = pos
        }

        mutating func bits(_ n: UInt32) throws(Failure) -> UInt32 {
            while count < n {
                guard pos < bytes.count else { throw Failure("the deflate data ends early") }
                buffer |= UInt32(bytes[pos]) << count
                pos += 1
                count += 8
            }
            let v = buffer & ((1 << n) - 1)
            buffer >>= n
            count -= n
            return v
        }

        mutating func alignToByte() {
            buffer = 0
            count = 0
        }

        /// The first byte not yet consumed (whole bytes of the bit buffer given back).
        var bytePosition: Int { pos - Int(count / 8) }
    }

    // MARK: Compression

    /// `bytes` as one gzip member (fixed-Huffman deflate).
    static func compress(_ bytes: [UInt8]) -> [UInt8] {
        var w = BitWriter()
        w.out = [0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 255]
        Deflater.fixedBlock(bytes, &w)
        w.flush()
        let crc = crc32(bytes), size = UInt32(truncatingIfNeeded: bytes.count)
        for v in [crc, size] { for i in 0..<4 { w.out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(i)))) } }
        return w.out
    }

    struct BitWriter {
        var out: [UInt8] = []
        var buffer: UInt64 = 0
        var count: UInt64 = 0

        mutating func write(_ value: UInt32, _ n: UInt32) {
            buffer |= UInt64(value) << count
            count += UInt64(n)
            while count >= 8 {
                out.append(UInt8(truncatingIfNeeded: buffer))
                buffer >>= 8
                count -= 8
            }
        }

        /// A Huffman code (most significant bit first on the wire).
        mutating func code(_ code: UInt32, _ n: UInt32) {
            var reversed: UInt32 = 0
            for i in 0..<n where code & (1 << i) != 0 { reversed |= 1 << (n - 1 - i) }
            write(reversed, n)
        }

        mutating func flush() {
            if count > 0 { out.append(UInt8(truncatingIfNeeded: buffer)) }
            buffer = 0
            count = 0
        }
    }
}

/// Deflate's tables (RFC 1951 §3.2.5).
enum DeflateTables {
    static let lengthBase: [UInt32] = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258]
    static let lengthExtra: [UInt32] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
    static let distBase: [UInt32] = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073,
                                     4097, 6145, 8193, 12289, 16385, 24577]
    static let distExtra: [UInt32] = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]
    static let codeLengthOrder = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]

    static let fixedLiteralLengths: [UInt8] = (0..<288).map { $0 < 144 ? 8 : $0 < 256 ? 9 : $0 < 280 ? 7 : 8 }
    static let fixedDistanceLengths = [UInt8](repeating: 5, count: 30)
}

/// A canonical Huffman code, decoded bit by bit (counts per length, symbols in code order).
struct Huffman {
    var counts = [UInt16](repeating: 0, count: 16)
    var symbols: [UInt16] = []

    init(lengths: [UInt8]) throws(Gzip.Failure) {
        for l in lengths { counts[Int(l)] += 1 }
        counts[0] = 0
        var left = 1
        for len in 1..<16 {
            left = left * 2 - Int(counts[len])
            guard left >= 0 else { throw Gzip.Failure("the deflate data has an over-subscribed Huffman code") }
        }
        var offsets = [Int](repeating: 0, count: 16)
        for len in 1..<15 { offsets[len + 1] = offsets[len] + Int(counts[len]) }
        symbols = [UInt16](repeating: 0, count: lengths.count)
        for (symbol, l) in lengths.enumerated() where l != 0 {
            symbols[offsets[Int(l)]] = UInt16(symbol)
            offsets[Int(l)] += 1
        }
    }

    func decode(_ r: inout Gzip.BitReader) throws(Gzip.Failure) -> Int {
        var code = 0, first = 0, index = 0
        for len in 1..<16 {
            code |= Int(try r.bits(1))
            let count = Int(counts[len])
            if code - count < first { return Int(symbols[index + (code - first)]) }
            index += count
            first = (first + count) << 1
            code <<= 1
        }
        throw Gzip.Failure("the deflate data holds an invalid Huffman code")
    }
}

/// Deflate decoding: stored, fixed and dynamic blocks.
enum Inflater {
    static func inflate(_ r: inout Gzip.BitReader, into out: inout [UInt8], limit: Int) throws(Gzip.Failure) {
        var final = false
        while !final {
            final = try r.bits(1) == 1
            switch try r.bits(2) {
            case 0:
                r.alignToByte()
                let start = r.bytePosition
                guard start + 4 <= r.bytes.count else { throw Gzip.Failure("the deflate data ends early") }
                let len = Int(r.bytes[start]) | Int(r.bytes[start + 1]) << 8
                let nlen = Int(r.bytes[start + 2]) | Int(r.bytes[start + 3]) << 8
                guard len == ~nlen & 0xFFFF else { throw Gzip.Failure("a stored deflate block has a corrupt length") }
                guard start + 4 + len <= r.bytes.count else { throw Gzip.Failure("the deflate data ends early") }
                guard out.count + len <= limit else { throw Gzip.Failure("the data inflates to more than \(limit) bytes") }
                out.append(contentsOf: r.bytes[(start + 4)..<(start + 4 + len)])
                r.pos = start + 4 + len
            case 1:
                try codes(&r, &out, limit, try Huffman(lengths: DeflateTables.fixedLiteralLengths),
                          try Huffman(lengths: DeflateTables.fixedDistanceLengths))
            case 2:
                let (lit, dist) = try dynamicCodes(&r)
                try codes(&r, &out, limit, lit, dist)
            default:
                throw Gzip.Failure("the deflate data has a block of the reserved type 3")
            }
        }
    }

    static func dynamicCodes(_ r: inout Gzip.BitReader) throws(Gzip.Failure) -> (Huffman, Huffman) {
        let nlen = Int(try r.bits(5)) + 257, ndist = Int(try r.bits(5)) + 1, ncode = Int(try r.bits(4)) + 4
        guard nlen <= 286, ndist <= 30 else { throw Gzip.Failure("the deflate data has too many codes") }
        var codeLengths = [UInt8](repeating: 0, count: 19)
        for i in 0..<ncode { codeLengths[DeflateTables.codeLengthOrder[i]] = UInt8(try r.bits(3)) }
        let lencode = try Huffman(lengths: codeLengths)
        var lengths: [UInt8] = []
        while lengths.count < nlen + ndist {
            let symbol = try lencode.decode(&r)
            switch symbol {
            case 0..<16: lengths.append(UInt8(symbol))
            case 16:
                guard let last = lengths.last else { throw Gzip.Failure("the deflate data repeats a length before the first") }
                lengths += [UInt8](repeating: last, count: 3 + Int(try r.bits(2)))
            case 17: lengths += [UInt8](repeating: 0, count: 3 + Int(try r.bits(3)))
            default: lengths += [UInt8](repeating: 0, count: 11 + Int(try r.bits(7)))
            }
        }
        guard lengths.count == nlen + ndist, lengths[256] != 0 else { throw Gzip.Failure("the deflate data has corrupt code lengths") }
        return (try Huffman(lengths: Array(lengths[0..<nlen])), try Huffman(lengths: Array(lengths[nlen...])))
    }

    static func codes(_ r: inout Gzip.BitReader, _ out: inout [UInt8], _ limit: Int, _ lit: Huffman, _ dist: Huffman) throws(Gzip.Failure) {
        while true {
            let symbol = try lit.decode(&r)
            if symbol < 256 {
                guard out.count < limit else { throw Gzip.Failure("the data inflates to more than \(limit) bytes") }
                out.append(UInt8(symbol))
                continue
            }
            if symbol == 256 { return }
            let li = symbol - 257
            guard li < 29 else { throw Gzip.Failure("the deflate data has an invalid length code") }
            let length = Int(DeflateTables.lengthBase[li] + (try r.bits(DeflateTables.lengthExtra[li])))
            let di = try dist.decode(&r)
            guard di < 30 else { throw Gzip.Failure("the deflate data has an invalid distance code") }
            let distance = Int(DeflateTables.distBase[di] + (try r.bits(DeflateTables.distExtra[di])))
            guard distance <= out.count else { throw Gzip.Failure("the deflate data refers before its start") }
            guard out.count + length <= limit else { throw Gzip.Failure("the data inflates to more than \(limit) bytes") }
            let from = out.count - distance
            for i in 0..<length { out.append(out[from + i]) }
        }
    }
}

/// Deflate encoding in one fixed-Huffman block: greedy LZ77 with a hash of 3-byte prefixes.
enum Deflater {
    static func fixedBlock(_ bytes: [UInt8], _ w: inout Gzip.BitWriter) {
        w.write(1, 1)
        w.write(1, 2)
        // The hash table grows with the input up to 32 Ki slots (a small file does not pay for a big table).
        var slots = 256
        while slots < bytes.count, slots < 1 << 15 { slots <<= 1 }
        var table = [Int](repeating: -1, count: slots)
        var i = 0
        while i < bytes.count {
            var matched = 0, distance = 0
            if i + 3 <= bytes.count {
                let h = (Int(bytes[i]) << 10 ^ Int(bytes[i + 1]) << 5 ^ Int(bytes[i + 2])) & (slots - 1)
                let candidate = table[h]
                table[h] = i
                if candidate >= 0, i - candidate <= 32768 {
                    var n = 0
                    while n < 258, i + n < bytes.count, bytes[candidate + n] == bytes[i + n] { n += 1 }
                    if n >= 3 { matched = n; distance = i - candidate }
                }
            }
            if matched == 0 {
                literal(Int(bytes[i]), &w)
                i += 1
                continue
            }
            var li = DeflateTables.lengthBase.count - 1
            while DeflateTables.lengthBase[li] > UInt32(matched) { li -= 1 }
            literal(257 + li, &w)
            w.write(UInt32(matched) - DeflateTables.lengthBase[li], DeflateTables.lengthExtra[li])
            var di = DeflateTables.distBase.count - 1
            while DeflateTables.distBase[di] > UInt32(distance) { di -= 1 }
            w.code(UInt32(di), 5)
            w.write(UInt32(distance) - DeflateTables.distBase[di], DeflateTables.distExtra[di])
            i += matched
        }
        literal(256, &w)
    }

    /// A literal/length symbol in the fixed code.
    static func literal(_ s: Int, _ w: inout Gzip.BitWriter) {
        switch s {
        case 0..<144: w.code(UInt32(0x30 + s), 8)
        case 144..<256: w.code(UInt32(0x190 + s - 144), 9)
        case 256..<280: w.code(UInt32(s - 256), 7)
        default: w.code(UInt32(0xC0 + s - 280), 8)
        }
    }
}

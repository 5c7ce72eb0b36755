import Foundation

/// Parses and formats byte sizes such as `512K`, `128M`, `1G`, `1.5MiB` (binary multiples).
public enum ByteSize {
    /// Parses a size; a bare number is bytes. Throws `invalidRequest` naming `field` on bad input.
    public static func parse(_ text: String, field: String) throws(SandboxError) -> Int64 {
        let s = text.trimmingCharacters(in: .whitespaces)
        var digits = ""
        var unit = ""
        for ch in s {
            if unit.isEmpty && (ch.isNumber || ch == ".") { digits.append(ch) } else { unit.append(ch) }
        }
        let multipliers: [String: Double] = [
            "": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1_048_576, "mb": 1_048_576, "mib": 1_048_576,
            "g": 1_073_741_824, "gb": 1_073_741_824, "gib": 1_073_741_824,
        ]
        guard let value = Double(digits), value >= 0,
              let mult = multipliers[unit.lowercased().trimmingCharacters(in: .whitespaces)]
        else {
            throw SandboxError(.invalidRequest, "\(field): '\(text)' is not a size; use a number with an optional unit, e.g. 512K, 128M, 1G")
        }
        let bytes = value * mult
        guard bytes.isFinite, bytes < 0x1p62 else {
            throw SandboxError(.invalidRequest, "\(field): '\(text)' is larger than any size sandboxer accepts (4 EiB)")
        }
        return Int64(bytes)
    }

    /// Formats bytes for humans (`512 KiB`, `1.5 MiB`).
    public static func format(_ bytes: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var i = 0
        while value >= 1024 && i < units.count - 1 { value /= 1024; i += 1 }
        if i == 0 { return "\(bytes) B" }
        let rounded = (value * 10).rounded() / 10
        return rounded == rounded.rounded() ? "\(Int(rounded)) \(units[i])" : "\(rounded) \(units[i])"
    }
}

/// Parses durations such as `30s`, `500ms`, `2m`, `1h` (a bare number is seconds).
public enum DurationText {
    public static func parse(_ text: String, field: String) throws(SandboxError) -> Duration {
        let s = text.trimmingCharacters(in: .whitespaces).lowercased()
        let table: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, scale) in table where s.hasSuffix(suffix) {
            let number = String(s.dropLast(suffix.count))
            if let v = Double(number), v >= 0 { return try seconds(v * scale, field: field) }
        }
        if let v = Double(s), v >= 0 { return try seconds(v, field: field) }
        throw SandboxError(.invalidRequest, "\(field): '\(text)' is not a duration; use e.g. 500ms, 30s, 2m (from 0 to \(Int(maximumSeconds)) seconds)")
    }

    /// Longest duration accepted anywhere (100 years): bigger numbers are typos or attacks.
    public static let maximumSeconds: Double = 100 * 365 * 86_400

    /// A number of seconds as a duration, refused (not trapped on) when negative, NaN, infinite or
    /// over ``maximumSeconds``.
    public static func seconds(_ v: Double, field: String) throws(SandboxError) -> Duration {
        guard v.isFinite, v >= 0, v <= maximumSeconds else {
            throw SandboxError(.invalidRequest, "\(field): \(v) s is not a usable duration; give 0 to \(Int(maximumSeconds)) seconds, e.g. 30s or 10m")
        }
        return .milliseconds(Int64((v * 1000).rounded()))
    }

    /// Whole milliseconds of a duration.
    public static func milliseconds(_ d: Duration) -> Int64 {
        let (s, atto) = d.components
        return s * 1000 + atto / 1_000_000_000_000_000
    }
}

extension ByteSize {
    /// The shortest exact text `parse` reads back: `512M`, `64K`, `1G`, or bare bytes (`1000`).
    public static func compact(_ bytes: Int64) -> String {
        guard bytes > 0 else { return "\(bytes)" }
        for (unit, size) in [("G", Int64(1) << 30), ("M", Int64(1) << 20), ("K", Int64(1) << 10)] where bytes % size == 0 {
            return "\(bytes / size)\(unit)"
        }
        return "\(bytes)"
    }
}

extension DurationText {
    /// The shortest exact text `parse` reads back, at its millisecond resolution: `30s`, `10m`,
    /// `1h`, `1500ms`.
    public static func format(_ d: Duration) -> String {
        let ms = milliseconds(d)
        guard ms > 0 else { return "\(ms)ms" }
        for (unit, size) in [("h", Int64(3_600_000)), ("m", Int64(60_000)), ("s", Int64(1000))] where ms % size == 0 {
            return "\(ms / size)\(unit)"
        }
        return "\(ms)ms"
    }
}

extension Duration {
    /// This duration in (fractional) seconds.
    public var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

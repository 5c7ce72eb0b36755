import Foundation
import SandboxCore

/// A Dockerfile as `sandboxer template build` reads it: one base (`FROM`), then the instructions
/// people use — `RUN` (shell and exec form), `COPY`/`ADD` (from the context, `--chown`, no URLs),
/// `ENV`, `ARG`, `WORKDIR`, `USER`, `LABEL`, `CMD`/`ENTRYPOINT` — each with its line. Anything else
/// (another instruction, a second `FROM`, flags such as `--mount` or `--from`) is refused naming
/// the instruction and its line. Variables (`$X`, `${X}`, `${X:-default}`, `${X:+alt}`) from `ARG`
/// and `ENV` are replaced where Docker replaces them (not in `RUN`, whose shell sees them).
public struct Dockerfile: Sendable, Equatable {
    /// A command as `RUN`, `CMD` and `ENTRYPOINT` give it.
    public enum Command: Sendable, Equatable {
        /// `["a", "b"]`: run as is.
        case exec([String])
        /// Text run by `/bin/sh -c`.
        case shell(String)

        /// The argv it runs.
        public var argv: [String] {
            switch self {
            case .exec(let a): a
            case .shell(let s): ["/bin/sh", "-c", s]
            }
        }
    }

    /// One step after the base.
    public enum Step: Sendable, Equatable {
        case run(Command)
        case copy(sources: [String], destination: String, chown: String?)
        case env([(String, String)])
        case workdir(String)
        case user(String)
        case label([(String, String)])
        case cmd(Command)
        case entrypoint(Command)

        public static func == (a: Step, b: Step) -> Bool { a.text == b.text }

        /// The step as one canonical line (a build cache key's instruction part).
        public var text: String {
            func command(_ c: Command) -> String {
                switch c {
                case .exec(let a): "[" + a.map { "\"\($0)\"" }.joined(separator: ",") + "]"
                case .shell(let s): s
                }
            }
            func pairs(_ p: [(String, String)]) -> String { p.map { "\($0.0)=\($0.1)" }.joined(separator: " ") }
            switch self {
            case .run(let c): return "RUN " + command(c)
            case .copy(let s, let d, let o): return "COPY " + (o.map { "--chown=\($0) " } ?? "") + (s + [d]).joined(separator: " ")
            case .env(let p): return "ENV " + pairs(p)
            case .workdir(let w): return "WORKDIR " + w
            case .user(let u): return "USER " + u
            case .label(let p): return "LABEL " + pairs(p)
            case .cmd(let c): return "CMD " + command(c)
            case .entrypoint(let c): return "ENTRYPOINT " + command(c)
            }
        }
    }

    /// The base: another template, `scratch`, or a skopeo source.
    public var from: String
    /// The steps with their line numbers.
    public var steps: [(line: Int, step: Step)]
    /// `ARG`s after `FROM` with their values (`--build-arg` or the default): `RUN` steps after
    /// their line see them as environment variables (an `ENV` of the same name wins), as in Docker.
    public var arguments: [(line: Int, name: String, value: String)] = []

    public static func == (a: Dockerfile, b: Dockerfile) -> Bool {
        a.from == b.from && a.steps.map(\.line) == b.steps.map(\.line) && a.steps.map(\.step) == b.steps.map(\.step)
    }

    /// Parses `text`; `arguments` are `--build-arg NAME=value` values (they override `ARG` defaults).
    public init(_ text: String, arguments: [String: String] = [:]) throws(SandboxError) {
        var vars: [String: String] = [:]  // ARG and ENV values in scope
        var from: String?
        var steps: [(Int, Step)] = []
        var stepArguments: [(line: Int, name: String, value: String)] = []
        for (line, keyword, rest) in try Self.instructions(text) {
            func fail(_ why: String) -> SandboxError {
                SandboxError(.invalidRequest, "Dockerfile line \(line): \(keyword) \(why)")
            }
            func expand(_ s: String) throws(SandboxError) -> String {
                do { return try Self.substitute(s, vars) } catch { throw fail(error.message) }
            }
            if from == nil && keyword != "FROM" && keyword != "ARG" {
                throw fail("comes before FROM; a Dockerfile starts with FROM (ARG may come first)")
            }
            switch keyword {
            case "FROM":
                guard from == nil else { throw fail("again: multi-stage builds are not supported (one FROM per Dockerfile)") }
                let words = rest.split(whereSeparator: \.isWhitespace).map(String.init)
                guard let image = words.first, !image.hasPrefix("--") else { throw fail("needs an image (flags such as --platform are not supported)") }
                guard words.count == 1 || (words.count == 3 && words[1].uppercased() == "AS") else { throw fail("takes one image (and AS NAME)") }
                from = try expand(image)
            case "ARG":
                let (name, value) = Self.pair(rest)
                guard Self.isName(name) else { throw fail("needs a variable name, e.g. ARG VERSION=1") }
                if let given = arguments[name] { vars[name] = given } else if let value { vars[name] = try expand(value) } else if vars[name] == nil { vars[name] = "" }
                if from != nil { stepArguments.append((line, name, vars[name] ?? "")) }
            case "RUN":
                try Self.refuseFlags(rest, keyword, line)
                steps.append((line, .run(try Self.command(rest, line: line, keyword: keyword))))
            case "COPY", "ADD":
                var words = try Self.words(rest, line: line, keyword: keyword)
                var chown: String?
                while let flag = words.first, flag.hasPrefix("--") {
                    if flag.hasPrefix("--chown=") { chown = try expand(String(flag.dropFirst(8))) } else {
                        throw fail("flag \(flag) is not supported (only --chown)")
                    }
                    words.removeFirst()
                }
                guard words.count >= 2 else { throw fail("needs a source and a destination") }
                let expanded = try words.map { (w) throws(SandboxError) in try expand(w) }
                if let url = expanded.dropLast().first(where: { $0.contains("://") }) {
                    throw fail("from a URL (\(url)) is not supported; download it in a RUN step or put it in the context")
                }
                steps.append((line, .copy(sources: Array(expanded.dropLast()), destination: expanded.last!, chown: chown)))
            case "ENV":
                let pairs = try Self.assignments(rest, line: line, keyword: keyword)
                var out: [(String, String)] = []
                for (k, v) in pairs {
                    let value = try expand(v)
                    vars[k] = value
                    out.append((k, value))
                }
                steps.append((line, .env(out)))
            case "LABEL":
                steps.append((line, .label(try Self.assignments(rest, line: line, keyword: keyword).map { (k, v) throws(SandboxError) in (k, try expand(v)) })))
            case "WORKDIR":
                guard !rest.isEmpty else { throw fail("needs a directory") }
                steps.append((line, .workdir(try expand(rest))))
            case "USER":
                guard !rest.isEmpty else { throw fail("needs a user (name or uid, optionally :group)") }
                steps.append((line, .user(try expand(rest))))
            case "CMD":
                steps.append((line, .cmd(try Self.command(rest, line: line, keyword: keyword))))
            case "ENTRYPOINT":
                steps.append((line, .entrypoint(try Self.command(rest, line: line, keyword: keyword))))
            default:
                throw SandboxError(.invalidRequest, "Dockerfile line \(line): \(keyword) is not supported; use FROM, RUN, COPY, ADD, ENV, ARG, WORKDIR, USER, LABEL, CMD or ENTRYPOINT")
            }
        }
        guard let from else { throw SandboxError(.invalidRequest, "the Dockerfile has no FROM; start it with FROM TEMPLATE, FROM scratch or FROM oci-archive:FILE") }
        self.from = from
        self.steps = steps
        self.arguments = stepArguments
    }

    // MARK: - Lexing

    /// Logical lines (continuations joined, comments and blank lines dropped) as (first line, KEYWORD, rest).
    static func instructions(_ text: String) throws(SandboxError) -> [(Int, String, String)] {
        var out: [(Int, String, String)] = []
        var pending = ""
        var start = 0
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = raw.trimmingCharacters(in: .whitespaces)
            if pending.isEmpty && (trimmed.isEmpty || trimmed.hasPrefix("#")) { continue }
            if !pending.isEmpty && trimmed.hasPrefix("#") { continue }  // a comment inside a continued instruction
            if pending.isEmpty { start = i + 1 }
            if trimmed.hasSuffix("\\") {
                pending += trimmed.dropLast() + " "
                continue
            }
            pending += trimmed
            let body = pending.trimmingCharacters(in: .whitespaces)
            pending = ""
            guard !body.isEmpty else { continue }
            let keyword = String(body.prefix { !$0.isWhitespace }).uppercased()
            let rest = body.dropFirst(keyword.count).trimmingCharacters(in: .whitespaces)
            out.append((start, keyword, rest))
        }
        if !pending.isEmpty { throw SandboxError(.invalidRequest, "Dockerfile line \(start): the last instruction ends with a '\\' continuation and nothing after it") }
        return out
    }

    static func refuseFlags(_ rest: String, _ keyword: String, _ line: Int) throws(SandboxError) {
        if rest.hasPrefix("--") {
            let flag = rest.prefix { !$0.isWhitespace }
            throw SandboxError(.invalidRequest, "Dockerfile line \(line): \(keyword) flag \(flag) is not supported")
        }
    }

    /// Exec form (a JSON array of strings) or shell form.
    static func command(_ rest: String, line: Int, keyword: String) throws(SandboxError) -> Command {
        guard !rest.isEmpty else { throw SandboxError(.invalidRequest, "Dockerfile line \(line): \(keyword) needs a command") }
        if rest.hasPrefix("[") {
            guard let array = try? JSONDecoder().decode([String].self, from: Data(rest.utf8)) else {
                throw SandboxError(.invalidRequest, "Dockerfile line \(line): \(keyword) [...] must be a JSON array of strings, e.g. [\"python3\", \"-V\"]")
            }
            guard !array.isEmpty else { throw SandboxError(.invalidRequest, "Dockerfile line \(line): \(keyword) [] is empty") }
            return .exec(array)
        }
        return .shell(rest)
    }

    /// Words of a COPY/ADD line: a JSON array, or whitespace-separated.
    static func words(_ rest: String, line: Int, keyword: String) throws(SandboxError) -> [String] {
        var flags: [String] = []
        var body = Substring(rest)
        while body.hasPrefix("--") {
            let flag = body.prefix { !$0.isWhitespace }
            flags.append(String(flag))
            body = body.dropFirst(flag.count).drop { $0.isWhitespace }
        }
        if body.hasPrefix("[") {
            guard let array = try? JSONDecoder().decode([String].self, from: Data(body.utf8)) else {
                throw SandboxError(.invalidRequest, "Dockerfile line \(line): \(keyword) [...] must be a JSON array of strings")
            }
            return flags + array
        }
        return flags + body.split(whereSeparator: \.isWhitespace).map(String.init)
    }

    /// `K=V K2="V 2"` pairs, or the legacy `K V` form.
    static func assignments(_ rest: String, line: Int, keyword: String) throws(SandboxError) -> [(String, String)] {
        let tokens = try shellWords(rest, line: line, keyword: keyword)
        guard let first = tokens.first else { throw SandboxError(.invalidRequest, "Dockerfile line \(line): \(keyword) needs NAME=value") }
        if !first.contains("=") {
            let value = rest.dropFirst(first.count).trimmingCharacters(in: .whitespaces)
            guard isName(first) else { throw SandboxError(.invalidRequest, "Dockerfile line \(line): \(keyword) '\(first)' is not a name") }
            return [(first, value)]
        }
        var out: [(String, String)] = []
        for t in tokens {
            let (k, v) = pair(t)
            guard let v, !k.isEmpty else { throw SandboxError(.invalidRequest, "Dockerfile line \(line): \(keyword) '\(t)' must look like NAME=value") }
            out.append((k, v))
        }
        return out
    }

    /// Splits on unquoted whitespace; quotes are removed, `\` escapes the next character.
    static func shellWords(_ text: String, line: Int, keyword: String) throws(SandboxError) -> [String] {
        var words: [String] = []
        var current = ""
        var quote: Character?
        var escaped = false
        var inWord = false
        for c in text {
            if escaped { current.append(c); escaped = false; continue }
            if c == "\\" && quote != "'" { escaped = true; inWord = true; continue }
            if let q = quote {
                if c == q { quote = nil } else { current.append(c) }
                continue
            }
            if c == "\"" || c == "'" { quote = c; inWord = true; continue }
            if c.isWhitespace {
                if inWord { words.append(current); current = ""; inWord = false }
                continue
            }
            current.append(c)
            inWord = true
        }
        if quote != nil { throw SandboxError(.invalidRequest, "Dockerfile line \(line): \(keyword) has an unclosed quote") }
        if inWord { words.append(current) }
        return words
    }

    static func pair(_ text: String) -> (String, String?) {
        guard let eq = text.firstIndex(of: "=") else { return (text.trimmingCharacters(in: .whitespaces), nil) }
        return (String(text[..<eq]), String(text[text.index(after: eq)...]))
    }

    static func isName(_ s: String) -> Bool {
        guard let f = s.first, f == "_" || f.isLetter else { return false }
        return s.allSatisfy { $0 == "_" || $0.isLetter || $0.isNumber }
    }

    /// Replaces `$X`, `${X}`, `${X:-default}`, `${X:+alternative}`; `\$` is a literal `$`.
    static func substitute(_ text: String, _ vars: [String: String]) throws(SandboxError) -> String {
        var out = ""
        var i = text.startIndex
        while i < text.endIndex {
            let c = text[i]
            if c == "\\", text.index(after: i) < text.endIndex, text[text.index(after: i)] == "$" {
                out.append("$")
                i = text.index(i, offsetBy: 2)
                continue
            }
            guard c == "$", text.index(after: i) < text.endIndex else {
                out.append(c)
                i = text.index(after: i)
                continue
            }
            var j = text.index(after: i)
            if text[j] == "{" {
                guard let close = text[j...].firstIndex(of: "}") else { throw SandboxError(.invalidRequest, "'${' without a closing '}'") }
                let inner = String(text[text.index(after: j)..<close])
                if let r = inner.range(of: ":-") {
                    let v = vars[String(inner[..<r.lowerBound])] ?? ""
                    out += v.isEmpty ? try substitute(String(inner[r.upperBound...]), vars) : v
                } else if let r = inner.range(of: ":+") {
                    let v = vars[String(inner[..<r.lowerBound])] ?? ""
                    out += v.isEmpty ? "" : try substitute(String(inner[r.upperBound...]), vars)
                } else {
                    guard isName(inner) else { throw SandboxError(.invalidRequest, "'${\(inner)}' is not a variable (${NAME}, ${NAME:-default}, ${NAME:+alt})") }
                    out += vars[inner] ?? ""
                }
                i = text.index(after: close)
                continue
            }
            let start = j
            while j < text.endIndex, text[j] == "_" || text[j].isLetter || text[j].isNumber { j = text.index(after: j) }
            if start == j {
                out.append("$")
                i = start
                continue
            }
            out += vars[String(text[start..<j])] ?? ""
            i = j
        }
        return out
    }
}

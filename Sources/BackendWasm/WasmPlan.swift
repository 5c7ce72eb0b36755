import Foundation
import SandboxCore

#if canImport(Glibc)
import Glibc
#endif

/// What a request means in the WASM backend: which module, with which guest argv.
struct WasmPlan: Sendable {
    var modulePath: String
    var arguments: [String]
    var isJavaScript: Bool

    init(request: ExecRequest, profile: Profile, quickJS: () throws -> String) throws {
        let limits = profile.limits
        let name = request.codeFileName.lowercased()
        if let code = request.code {
            try limits.checkRequest(codeBytes: Int64(code.count), inputBytes: nil)
            guard name.hasSuffix(".js") || name.hasSuffix(".mjs") else {
                throw SandboxError(.invalidRequest, "isolation wasm runs JavaScript code (a code file name ending in .js or .mjs, got \(request.codeFileName)) or a WASI module (argv[0] = a .wasm file)")
            }
            guard !code.contains(0) else { throw SandboxError(.invalidRequest, "JavaScript code must not contain NUL bytes") }
            modulePath = try quickJS()
            // The code goes in as `-e CODE`: no file is written and nothing but /workspace is preopened.
            arguments = ["qjs", "-e", String(decoding: code, as: UTF8.self)] + request.argv
            isJavaScript = true
        } else {
            guard let first = request.argv.first, first.hasSuffix(".wasm") else {
                throw SandboxError(.invalidRequest, "isolation wasm runs JavaScript (code with a .js file name) or a WASI module: argv[0] must be a host path to a .wasm file")
            }
            guard FileManager.default.isReadableFile(atPath: first) else {
                throw SandboxError(.notFound, "WASI module \(first) does not exist or is not readable")
            }
            let size = (try? FileManager.default.attributesOfItem(atPath: first)[.size] as? NSNumber)?.int64Value ?? 0
            try limits.checkRequest(codeBytes: nil, inputBytes: nil)
            if size > 256 << 20 { throw SandboxError.over("module_bytes", limit: 256 << 20, actual: size) }
            modulePath = first
            arguments = [(first as NSString).lastPathComponent] + request.argv.dropFirst()
            isJavaScript = false
        }
    }
}

/// Reads the request's stdin fully before the run (the guest's stdin is an in-memory file).
enum StdinLoader {
    static func load(_ source: ExecRequest.StdinSource, limit: Int64) throws -> [UInt8] {
        switch source {
        case .none:
            return []
        case .bytes(let bytes):
            try Limits(inputBytes: limit).checkRequest(codeBytes: nil, inputBytes: Int64(bytes.count))
            return bytes
        case .file(let path):
            guard let handle = FileHandle(forReadingAtPath: path) else {
                throw SandboxError(.notFound, "stdin file \(path) cannot be opened")
            }
            defer { try? handle.close() }
            let data = (try? handle.read(upToCount: Int(clamping: limit) + 1)) ?? Data()
            try Limits(inputBytes: limit).checkRequest(codeBytes: nil, inputBytes: Int64(data.count))
            return [UInt8](data)
        case .inherit(let fd):
            var out = [UInt8]()
            var buf = [UInt8](repeating: 0, count: 65536)
            while Int64(out.count) <= limit {
                let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, 65536) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                out.append(contentsOf: buf[0..<n])
            }
            if Int64(out.count) > limit { throw SandboxError.over("input_bytes", limit: limit, actual: Int64(out.count)) }
            return out
        }
    }
}

/// The host directory a run sees as `/workspace`.
struct Workspace: Sendable {
    var path: String
    var owned: Bool

    /// Creates `<dir>/<id>-wasm-XXXXXX` (mode 0700).
    static func make(in dir: String, id: String) throws(SandboxError) -> Workspace {
        var template = Array((dir as NSString).appendingPathComponent("\(id)-wasm-XXXXXX").utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard made != nil else {
            throw SandboxError(.setupFailed, "cannot create a workspace under \(dir): \(String(cString: strerror(errno)))")
        }
        return Workspace(path: String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self), owned: true)
    }

    static func isOurs(_ path: String, in dir: String, id: String) -> Bool {
        (path as NSString).deletingLastPathComponent == (dir as NSString).standardizingPath
            && (path as NSString).lastPathComponent.hasPrefix("\(id)-wasm-")
    }

    func remove() {
        if owned { try? FileManager.default.removeItem(atPath: path) }
    }
}

/// Turns an engine report into the backend-independent ``ExecResult``.
enum ResultMapper {
    /// QuickJS driver's exit code for out-of-memory.
    static let quickJSOutOfMemory: Int32 = 3

    /// `workspace_limit` or `file_size_limit` when the guest ran into one (the former first, as
    /// ``Outcome`` orders them), even if it handled the error.
    static func workspaceOutcome(_ r: WasmRunReport) -> (Outcome, String?)? {
        if let why = r.workspace.workspaceLimit { return (.workspaceLimit, why) }
        if let why = r.workspace.fileSizeLimit { return (.fileSizeLimit, why) }
        return nil
    }

    static func map(_ r: WasmRunReport, plan: WasmPlan, spec: SandboxSpec) -> ExecResult {
        let truncated = r.stdout.truncated || r.stderr.truncated
        var outcome: Outcome
        var code: Int32?
        var reason: String?
        switch r.exit {
        case .setupFailed(let why):
            outcome = .setupFailed
            reason = why
        case .timedOut:
            outcome = .timeout
            reason = "wall-clock timeout of \(spec.profile.limits.timeout) reached; the wasm run was stopped"
        case .exited(let c):
            code = c
            if (plan.isJavaScript && c == quickJSOutOfMemory) || (r.memoryDenied && c != 0) {
                outcome = .oom
                reason = "out of memory: linear memory is capped at \(spec.profile.limits.memoryBytes) bytes"
                if c < 0 { code = nil }
            } else if let limit = workspaceOutcome(r) {
                (outcome, reason) = limit
            } else if truncated {
                outcome = .outputTruncated
                reason = "output over \(spec.profile.limits.outputBytes) bytes per stream was discarded"
            } else {
                outcome = c == 0 ? .ok : .exitNonzero
            }
        case .trapped(let trap):
            if r.memoryDenied {
                outcome = .oom
                reason = "out of memory (memory growth denied, then wasm trap: \(trap))"
            } else if let limit = workspaceOutcome(r) {
                (outcome, reason) = limit
                reason = (reason ?? "") + "; then wasm trap: \(trap)"
            } else {
                outcome = .killed
                reason = trap.contains("call stack exhausted")
                    ? "stack overflow: wasm trap: call stack exhausted" : "wasm trap: \(trap)"
            }
        }
        if let why = r.kvStoreError {
            // The guest's kv.set changes of this run are lost: the run did not do all it reported.
            outcome = .setupFailed
            reason = "the kv store could not be saved after the run, so this run's kv.set changes are lost: \(why)"
                + (reason.map { " (the run itself: \($0))" } ?? "")
        }
        return ExecResult(
            sandboxId: spec.id, outcome: outcome, exitCode: code, signal: nil,
            stdoutBytes: r.stdout.bytes, stderrBytes: r.stderr.bytes,
            stdoutTruncated: r.stdout.truncated, stderrTruncated: r.stderr.truncated,
            usage: Usage(wallMs: r.wallMs, cpuMs: r.cpuMs, peakMemoryBytes: Int64(r.peakMemoryBytes)),
            reason: reason)
    }
}

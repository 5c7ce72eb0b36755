import BackendOCI
import BackendWasm
import Foundation
import SandboxCore
import SandboxLinux
import Templates

/// The `wasm+container` isolation: the WASM engine itself (`sandboxer wasm-worker`) runs inside the
/// container backend's sandbox, so a WasmKit bug still lands in namespaces, seccomp and a cgroup.
public struct LayeredWasm: Sendable {
    public let backend: OCIBackend
    public init(backend: OCIBackend) { self.backend = backend }

    /// The running executable, which is also the worker.
    public static var executable: String { SelfExecutable.pathForRespawn }

    /// Directory of the Swift runtime this process loaded, when it is not linked statically.
    static var swiftLibraryDirectory: String? {
        for line in (SysFile.read("/proc/self/maps") ?? "").split(separator: "\n") {
            guard let slash = line.firstIndex(of: "/") else { continue }
            let path = String(line[slash...])
            if path.hasSuffix("/libswiftCore.so") { return (path as NSString).deletingLastPathComponent }
        }
        return nil
    }

    /// Runs JavaScript (`request.code`) or a WASI module (`request.argv[0]`, a host `.wasm`) in a worker
    /// inside a container sandbox with the profile's limits.
    public func run(profile: Profile, request: ExecRequest, workspace: String?, id: String = SandboxSpec.newID(),
                    output: OutputHandler?) async throws -> ExecResult {
        let l = profile.limits
        let exe = Self.executable
        var binds = [BindMount(source: (exe as NSString).deletingLastPathComponent, destination: LayerMountPoints.binary)]
        var env: [String: String] = [:]
        if let lib = Self.swiftLibraryDirectory {
            binds.append(BindMount(source: lib, destination: LayerMountPoints.swiftLibraries))
            env["LD_LIBRARY_PATH"] = LayerMountPoints.swiftLibraries
        }
        let program: WorkerProgram
        let module: String
        var code: [UInt8]?
        if let js = request.code {
            let qjs = try QuickJS.locate()
            binds.append(BindMount(source: (qjs as NSString).deletingLastPathComponent, destination: LayerMountPoints.quickJS))
            module = "\(LayerMountPoints.quickJS)/\((qjs as NSString).lastPathComponent)"
            program = .javaScript(file: "/code/main.js", arguments: request.argv)
            code = js
        } else if let host = request.argv.first, host.hasSuffix(".wasm") {
            binds.append(BindMount(source: (host as NSString).deletingLastPathComponent, destination: LayerMountPoints.module))
            module = "\(LayerMountPoints.module)/\((host as NSString).lastPathComponent)"
            program = .module(arguments: [module] + request.argv.dropFirst())
        } else {
            throw SandboxError(.invalidRequest, "isolation wasm+container runs JavaScript (--lang js) or a WASI module (--wasm FILE)")
        }
        let argv = ["\(LayerMountPoints.binary)/\((exe as NSString).lastPathComponent)", "wasm-worker"]
            + WasmWorker.arguments(
                id: "layered", workspace: "/workspace", module: module, program: program, limits: l,
                memoryBytes: Int(max(16 << 20, l.memoryBytes / 2)), tools: profile.tools, networkAllow: [],
                environment: profile.env.merging(request.env, uniquingKeysWith: { $1 }), report: nil)
        var containerProfile = profile
        containerProfile.isolation = .container
        containerProfile.limits.timeout = l.timeout + .seconds(2)  // the worker reports its own timeout first
        containerProfile.env = [:]
        let spec = SandboxSpec(id: id, profile: containerProfile, workspaceDirectory: workspace, readOnlyBinds: binds)
        var r = try await backend.run(spec, ExecRequest(argv: argv, code: code, codeFileName: "main.js", stdin: request.stdin, env: env, cwd: "/workspace"), output: output)
        if r.outcome == .exitNonzero, let code = r.exitCode {
            switch code {
            case WasmWorker.exitTimeout: r.outcome = .timeout; r.reason = "wall-clock limit of \(DurationText.milliseconds(l.timeout)) ms reached inside the WASM engine"
            case WasmWorker.exitOutOfMemory: r.outcome = .oom; r.reason = "linear memory limit reached inside the WASM engine"
            case WasmWorker.exitTrap: r.outcome = .killed; r.reason = "wasm trap: " + (r.stderr.split(separator: "\n").last.map(String.init) ?? "")
            case WasmWorker.exitWorkspaceLimit: r.outcome = .workspaceLimit; r.reason = "workspace limit (workspace = \(l.workspaceBytes) bytes, workspace_files = \(l.workspaceFiles)) reached inside the WASM engine; the guest got ENOSPC"
            case WasmWorker.exitFileSizeLimit: r.outcome = .fileSizeLimit; r.reason = "file size limit (file_size = \(l.fileSizeBytes) bytes) reached inside the WASM engine; the guest got EFBIG"
            default: break
            }
        }
        return r
    }
}

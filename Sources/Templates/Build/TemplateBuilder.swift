import Crypto
import Foundation
import Logging
import SandboxCore
import SandboxLinux

/// What a build reports while it runs: a line per step, the `RUN` steps' output, the end.
public enum BuildEvent: Sendable, Equatable {
    /// Step `index` of `of` (1 is `FROM`) starts; `cached` when its layer came from the cache.
    case step(index: Int, of: Int, instruction: String, cached: Bool)
    /// Output of a `RUN` step (stdout and stderr as they come).
    case log([UInt8])
}

/// `sandboxer template build` / `POST /v1/templates`: runs a Dockerfile into a template. `FROM`
/// takes a template of the store, `scratch`, the built-in `debian`, or a skopeo source (imported
/// once under an internal name); `COPY`/`ADD` copy from the context into a layer; each `RUN` runs
/// in a sandbox (``BuildStepRunner``) on the layers so far and its upper directory becomes the next
/// layer; `ENV`/`WORKDIR`/`USER`/`LABEL`/`CMD`/`ENTRYPOINT` go into the image's configuration and
/// apply to later steps. Every `RUN` layer is cached by the digest of its parent's key and its
/// instruction (``BuildCache``), `COPY` layers are content-addressed: a rebuild with nothing changed
/// starts no sandbox and gives the same manifest digest. The template's name changes only when
/// every step succeeded; a failed build leaves no image, sandbox, mount or directory behind.
public struct TemplateBuilder: Sendable {
    public var store: ImageStore
    public var runner: (any BuildStepRunner)?
    /// Hosts every `RUN` step may reach (the operator's package mirrors), before `allow`.
    public var mirrors: [String]
    /// Extra hosts for this build's `RUN` steps (`--allow`).
    public var allow: [String]
    /// Ignore cached `RUN` layers (they are still recorded).
    public var noCache: Bool
    let logger: Logger

    /// The package mirrors a build reaches by default.
    public static let defaultMirrors = ["deb.debian.org", "security.debian.org", "pypi.org", "files.pythonhosted.org", "registry.npmjs.org"]
    /// Names of the store's internal images: a build's image so far, a `FROM` source imported.
    static let workingPrefix = "sandboxer-build-"
    static let fromPrefix = "sandboxer-from-"

    public init(store: ImageStore, runner: (any BuildStepRunner)?, mirrors: [String] = TemplateBuilder.defaultMirrors, allow: [String] = [],
                noCache: Bool = false, logger: Logger = Logger(label: "sandboxer.build")) {
        (self.store, self.runner, self.mirrors, self.allow, self.noCache, self.logger) = (store, runner, mirrors, allow, noCache, logger)
    }

    /// The image as the steps so far left it.
    struct State {
        var layers: [OCIDescriptor] = []
        var config: OCIImageConfig
        /// Unpacked layers, topmost first.
        var lowers: [String] = []
        /// The cache key of the steps so far.
        var key: String
        /// The user `RUN` steps run as: root (of the sandbox's user namespace) until this
        /// Dockerfile's own `USER` (the base image's user is what its sandboxes run as, not its build's).
        var runUser = "0"
        /// `NAME=value` of the `ARG`s declared before the step (a `RUN` sees them, and its cache key has them).
        var arguments: [String] = []
    }

    /// Builds `dockerfile` (its text) with the files of `context` as template `name`. `tenant`: the
    /// tenant building over the API, recorded on the template; such a build may replace only a
    /// template the same tenant built (never `debian`, another tenant's or the operator's).
    public func build(name: String, dockerfile text: String, context: String, arguments: [String: String] = [:], tenant: String? = nil,
                      progress: @escaping @Sendable (BuildEvent) -> Void) async throws(SandboxError) -> TemplateInfo {
        try ImageStore.validate(name: name)
        if let tenant { try checkOwner(name, tenant: tenant) }
        let file = try Dockerfile(text, arguments: arguments)
        guard let real = realpath(context, nil) else { throw SandboxError(.invalidRequest, "build context \(context) does not exist") }
        let contextPath = String(cString: real)
        free(real)
        let total = file.steps.count + 1
        // The working image's name carries this process's pid: a build that died with its process is
        // recognised (and its image dropped) by the next build on the data directory.
        let working = Self.workingPrefix + "\(getpid())-" + UUID().uuidString.prefix(8).lowercased()
        try await store.removeAbandonedBuilds()
        progress(.step(index: 1, of: total, instruction: "FROM " + file.from, cached: false))
        var state = try await base(file.from)
        do {
            let (baseLayers, baseConfig, store) = (state.layers, state.config, self.store)
            _ = try await store.locked { () throws(SandboxError) in try store.writer.commit(layers: baseLayers, config: baseConfig, name: working) }
            for (i, (line, step)) in file.steps.enumerated() {
                state.arguments = file.arguments.filter { $0.line < line }.map { "\($0.name)=\($0.value)" }
                try await apply(step, line: line, index: i + 2, of: total, state: &state, context: contextPath, working: working, progress: progress)
            }
            var config = state.config
            config.created = nil
            if let tenant { try checkOwner(name, tenant: tenant) }
            let info = try await store.commit(layers: state.layers, config: config, name: name,
                                              annotations: tenant.map { [ImageStore.tenantAnnotation: $0] } ?? [:])
            try? await store.remove(working)
            logger.info("template built", metadata: ["template": "\(name)", "digest": "\(info.digest)"])
            return info
        } catch {
            try? await store.removeIfPresent(working)
            throw error
        }
    }

    /// A tenant replaces only its own templates: not the built-in names, not one another tenant or the operator made.
    public func checkOwner(_ name: String, tenant: String) throws(SandboxError) {
        if name == DebianBase.name || name == "host" {
            throw SandboxError(.invalidState, "template \(name) is built in; a tenant builds templates under other names")
        }
        guard let annotations = try store.annotations(of: name) else { return }
        guard annotations[ImageStore.tenantAnnotation] == tenant else {
            throw SandboxError(.invalidState, "template \(name) exists and was not built by this tenant (\(annotations[ImageStore.tenantAnnotation] == nil ? "the operator added it" : "another tenant built it")); a tenant replaces only templates it built: pick another name")
        }
    }

    // MARK: - Steps

    private func apply(_ step: Dockerfile.Step, line: Int, index: Int, of total: Int, state: inout State, context: String, working: String,
                       progress: @escaping @Sendable (BuildEvent) -> Void) async throws(SandboxError) {
        let text = step.text
        var run = state.config.config ?? OCIImageConfig.RunConfig()
        var layer: OCIDescriptor?
        var cached = false
        var key = Self.digest(state.key + "\n" + text)
        if case .run = step, !state.arguments.isEmpty { key = Self.digest(key + "\n" + state.arguments.joined(separator: "\n")) }
        switch step {
        case .env(let pairs):
            var env = run.Env ?? []
            for (k, v) in pairs {
                env.removeAll { $0.hasPrefix(k + "=") }
                env.append("\(k)=\(v)")
            }
            run.Env = env
        case .label(let pairs):
            var labels = run.Labels ?? [:]
            for (k, v) in pairs { labels[k] = v }
            run.Labels = labels
        case .user(let u):
            _ = try ImageTree(lowers: state.lowers).resolveUser(u)
            run.User = u
            state.runUser = u
        case .cmd(let c): run.Cmd = c.argv
        case .entrypoint(let c): run.Entrypoint = c.argv
        case .workdir(let w):
            run.WorkingDir = Self.absolute(w, in: run.WorkingDir)
            let tree = ImageTree(lowers: state.lowers)
            let dir = "/" + tree.resolve(ImageTree.components(run.WorkingDir!)).joined(separator: "/")
            if !tree.exists(dir) {
                layer = try await makeLayer(state, working: working) { (directory) throws(SandboxError) in
                    var path = directory
                    for (i, part) in ImageTree.components(dir).enumerated() {
                        path += "/" + part
                        if mkdir(path, 0o755) != 0 && errno != EEXIST { throw Syscall.error("making \(path)", errno: errno) }
                        if let found = tree.lookup(Array(ImageTree.components(dir)[...i])) {
                            chown(path, found.stat.st_uid, found.stat.st_gid)
                            chmod(path, found.stat.st_mode & 0o7777)
                        }
                    }
                }
            }
        case .copy(let sources, let destination, let chown):
            let tree = ImageTree(lowers: state.lowers)
            let owner = try chown.map { (c) throws(SandboxError) in let r = try tree.resolveUser(c); return (r.uid, r.gid) } ?? (UInt32(0), UInt32(0))
            let dest = Self.absolute(destination, in: run.WorkingDir) + (destination.hasSuffix("/") ? "/" : "")
            let copy = BuildCopy(context: context, tree: tree, line: line)
            layer = try await makeLayer(state, working: working) { (directory) throws(SandboxError) in
                try copy.copy(sources: sources, destination: dest, owner: owner, into: directory)
            }
        case .run(let command):
            if !noCache, let hit = try await cachedLayer(key, state, working: working) {
                layer = hit
                cached = true
            } else {
                progress(.step(index: index, of: total, instruction: text, cached: false))
                layer = try await runStep(command, line: line, index: index, of: total, run: run, state: state, working: working, progress: progress)
                try await store.cacheLayer(key, layer!)
            }
        }
        if case .run = step {} else if let layer {
            // COPY/WORKDIR layers are content-addressed: the same files give the same layer; "cached" says a build made it before.
            cached = try await store.cachedLayer(key)?.digest == layer.digest
            if !cached { try await store.cacheLayer(key, layer) }
        }
        if case .run = step, !cached {} else { progress(.step(index: index, of: total, instruction: text, cached: cached)) }
        state.config.config = run
        state.config.history = (state.config.history ?? []) + [.init(created_by: text, empty_layer: layer == nil ? true : nil)]
        if let layer {
            // Later steps' keys follow the layer's content (a COPY of changed files changes them).
            state.key = Self.digest(key + "\n" + layer.digest.text)
            state.layers.append(layer)
            state.config.rootfs.diff_ids.append(layer.digest)
            let (store, lowers) = (self.store, state.lowers)
            let dir = await BlockingPool.shared.run { () -> Result<String, SandboxError> in
                Result { () throws(SandboxError) in try store.unpack(layer, diffID: layer.digest, lowers: lowers, template: "(build)") }
            }
            state.lowers.insert(try dir.get(), at: 0)
        } else {
            state.key = key
        }
    }

    /// Runs a `RUN` step in a sandbox; returns its layer, or fails naming the step and its exit.
    private func runStep(_ command: Dockerfile.Command, line: Int, index: Int, of total: Int, run: OCIImageConfig.RunConfig, state: State,
                         working: String, progress: @escaping @Sendable (BuildEvent) -> Void) async throws(SandboxError) -> OCIDescriptor {
        guard let runner else { throw SandboxError(.hostUnsupported, "step \(index)/\(total) (line \(line)) is a RUN, which needs the container backend (root and crun)") }
        guard !state.layers.isEmpty else { throw SandboxError(.invalidRequest, "Dockerfile line \(line): RUN on an empty image (FROM scratch without files) has no program to run; COPY one in first") }
        let tree = ImageTree(lowers: state.lowers)
        let user = try tree.resolveUser(state.runUser)
        var env = run.Env ?? []
        for a in state.arguments.reversed() where !env.contains(where: { $0.hasPrefix(a.prefix { $0 != "=" } + "=") }) { env.append(a) }
        if !env.contains(where: { $0.hasPrefix("HOME=") }) { env.append("HOME=" + (user.home ?? (user.uid == 0 ? "/root" : "/"))) }
        let request = BuildRunRequest(template: working, argv: command.argv, environment: env, workingDirectory: run.WorkingDir ?? "/",
                                      uid: user.uid, gid: user.gid, allow: mirrors + allow)
        // The mount points a sandbox's root gets (and their parents) are not the step's work.
        var omit: [String: TarWriter.Omittable] = [:]
        for point in HostTemplate.mountPoints + ["etc/resolv.conf", "etc/hosts", "etc/hostname"] {
            let parts = ImageTree.components(point)
            for n in 1...parts.count {
                let path = parts[..<n].joined(separator: "/")
                let found = tree.lookup(Array(parts[..<n]))
                omit[path] = .init(image: found.map { (UInt32($0.stat.st_mode) & 0o7777, $0.stat.st_uid, $0.stat.st_gid) })
            }
        }
        let (omitted, builder) = (omit, self)
        let result: BuildRunResult
        do {
            result = try await runner.run(request, output: { progress(.log($0)) }) { (upper, hostBase) async throws(SandboxError) in
                try await builder.addLayer(state, working: working) { (writer) throws(SandboxError) in
                    try writer.addLayer(from: upper, idBase: hostBase, omit: omitted)
                }
            }
        } catch let e as SandboxError {
            throw SandboxError(e.code, "step \(index)/\(total) (line \(line): \(Self.brief(command))): \(e.message)")
        } catch {
            throw SandboxError(.system, "step \(index)/\(total) (line \(line)): \(error)")
        }
        guard let layer = result.layer else {
            throw SandboxError(.invalidRequest, "step \(index)/\(total) (line \(line): RUN \(Self.brief(command))) failed: \(result.failure ?? "no layer")")
        }
        return layer
    }

    /// Makes a layer from what `fill` puts into a fresh directory (removed afterwards).
    private func makeLayer(_ state: State, working: String, _ fill: @escaping @Sendable (String) throws(SandboxError) -> Void) async throws(SandboxError) -> OCIDescriptor {
        let work = store.buildDirectory + "/copy-" + UUID().uuidString.prefix(8).lowercased()
        return try await addLayer(state, working: working) { (writer) throws(SandboxError) in
            try SysFile.makeDirectory(work, mode: 0o755)
            defer { SysFile.removeTree(work) }
            try fill(work)
            return try writer.addLayer(from: work)
        }
    }

    /// Writes a layer with `write` and names the image so far with it `working`, both under the
    /// store's lock: no garbage collection (another build's, an import's) can take the new blob
    /// before an image refers to it.
    func addLayer(_ state: State, working: String, _ write: @escaping @Sendable (ImageWriter) throws(SandboxError) -> OCIDescriptor) async throws(SandboxError) -> OCIDescriptor {
        let (store, layers, config) = (self.store, state.layers, state.config)
        return try await store.locked { () async throws(SandboxError) -> OCIDescriptor in
            let writer = store.writer
            let layer = try await BlockingPool.shared.run { () -> Result<OCIDescriptor, SandboxError> in
                Result { () throws(SandboxError) in try write(writer) }
            }.get()
            try Self.nameWorking(writer, layers: layers + [layer], config: config, adding: layer, working: working)
            return layer
        }
    }

    /// The cached layer of `key` when its blob is still there, named into `working` at once (under the lock).
    func cachedLayer(_ key: String, _ state: State, working: String) async throws(SandboxError) -> OCIDescriptor? {
        let (store, layers, config) = (self.store, state.layers, state.config)
        return try await store.locked { () throws(SandboxError) -> OCIDescriptor? in
            guard let layer = BuildCache.read(store).steps[key], FileManager.default.fileExists(atPath: store.blobPath(layer.digest)) else { return nil }
            try Self.nameWorking(store.writer, layers: layers + [layer], config: config, adding: layer, working: working)
            return layer
        }
    }

    static func nameWorking(_ writer: ImageWriter, layers: [OCIDescriptor], config: OCIImageConfig, adding layer: OCIDescriptor, working: String) throws(SandboxError) {
        var config = config
        config.rootfs.diff_ids.append(layer.digest)
        config.history = nil
        try writer.commit(layers: layers, config: config, name: working)
    }

    // MARK: - FROM

    /// The image `FROM` names.
    private func base(_ from: String) async throws(SandboxError) -> State {
        let empty = OCIImageConfig(rootfs: .init(diff_ids: []))
        switch from {
        case "scratch":
            return State(config: empty, key: Self.digest("scratch"))
        case "host":
            throw SandboxError(.invalidRequest, "FROM host: the built-in host template is the host's own /usr, not an image; build FROM debian, another template, scratch or an image source (oci-archive:FILE, docker://…)")
        default:
            break
        }
        let name: String
        if from == DebianBase.name {
            name = try await DebianBase.ensure(in: store).name
        } else if ImageStore.importTransports.contains(where: { from.hasPrefix($0) }) {
            name = try await importBase(from)
        } else {
            name = from
        }
        let image = try store.image(name)
        let lowers = try await store.lowerDirectories(name)
        var config = image.config
        config.history = config.history ?? []
        return State(layers: image.manifest.layers, config: config, lowers: lowers, key: Self.digest("from " + image.info.digest.text))
    }

    /// A skopeo source, imported once under a name made from its content (an archive's bytes, an
    /// OCI directory's index) — a registry reference is copied again each build (its tag may move).
    private func importBase(_ source: String) async throws(SandboxError) -> String {
        let rest = String(source.drop { $0 != ":" }.dropFirst())
        var identity = source
        if source.hasPrefix("oci-archive:") || source.hasPrefix("docker-archive:") {
            let path = String(rest.split(separator: ":").first ?? "")
            identity = try await BlockingPool.shared.run { () -> Result<String, SandboxError> in
                Result { () throws(SandboxError) in try Self.fileDigest(path) }
            }.get()
        } else if source.hasPrefix("oci:") {
            let dir = String(rest.split(separator: ":").first ?? "")
            identity = source + (SysFile.read(dir + "/index.json") ?? "")
        }
        let name = Self.fromPrefix + String(Self.digest(identity).prefix(24))
        if !source.hasPrefix("docker://"), (try? store.image(name)) != nil { return name }
        _ = try await store.importImage(from: source, as: name, ownImage: true)
        return name
    }

    static func fileDigest(_ path: String) throws(SandboxError) -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw SandboxError(.invalidRequest, "FROM: \(path) cannot be read") }
        defer { try? handle.close() }
        var hasher = SHA256()
        while let chunk = try? handle.read(upToCount: 1 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
        return ImageDigest(sha256: hasher.finalize()).text
    }

    // MARK: - Helpers

    static func digest(_ text: String) -> String { ImageDigest(sha256: SHA256.hash(data: Data(text.utf8))).hex }

    /// `path` against the working directory (`/` when none).
    static func absolute(_ path: String, in workdir: String?) -> String {
        let joined = path.hasPrefix("/") ? path : (workdir ?? "/") + "/" + path
        return "/" + ImageTree.components(joined).joined(separator: "/")
    }

    static func brief(_ c: Dockerfile.Command) -> String {
        let t = Dockerfile.Step.run(c).text.dropFirst(4)
        return t.count > 60 ? String(t.prefix(57)) + "…" : String(t)
    }
}

import Foundation
import Hummingbird
import SandboxCore
import SandboxLinux
import SandboxManager
import Templates

#if canImport(Glibc)
import Glibc
#endif

extension SandboxServer {
    /// `POST /v1/templates` (a tar of the context with the Dockerfile → a build job, 202),
    /// `GET /v1/templates/builds/{id}` and `GET /v1/templates/builds/{id}/logs` (NDJSON from the
    /// start until the build ends). Any tenant builds; a template it builds records it, and it
    /// replaces only templates it built.
    func addTemplateBuildRoutes(_ routes: RouteRegistry) {
        let manager = self.manager
        let images = ImageStore(dataDirectory: manager.configuration.dataDirectory)
        let builds = templateBuilds

        routes.add(.post, "/v1/templates") { request, context in
            let caller = try context.requireCaller()
            let query = request.uri.queryParameters
            guard let name = query.get("name") else { throw SandboxError(.invalidRequest, "give the template's name: POST /v1/templates?name=NAME") }
            try ImageStore.validate(name: name)
            let dockerfile = query.get("dockerfile") ?? "Dockerfile"
            let allow = query.getAll("allow")
            var arguments: [String: String] = [:]
            for a in query.getAll("build_arg") {
                guard let eq = a.firstIndex(of: "="), eq != a.startIndex else { throw SandboxError(.invalidRequest, "build_arg \(a): give NAME=value") }
                arguments[String(a[..<eq])] = String(a[a.index(after: eq)...])
            }
            let builder = TemplateBuilder(store: images, runner: manager.templateBuildRunner, allow: allow)
            try builder.checkOwner(name, tenant: caller.tenantId)
            try await builds.admit(tenantId: caller.tenantId)
            let id = SandboxSpec.newID(prefix: "bld-")
            let work = images.buildDirectory + "/" + id
            let (tarFile, contextDir) = (work + ".tar", work)
            do {
                try SysFile.makeDirectory(images.buildDirectory, mode: 0o700)
                try await Self.receive(request, into: tarFile)
                try SysFile.makeDirectory(contextDir, mode: 0o755)
                try await BlockingPool.shared.run { () -> Result<Void, SandboxError> in
                    Result { () throws(SandboxError) in try ContextArchive.unpack(file: tarFile, into: contextDir) }
                }.get()
                unlink(tarFile)
            } catch {
                unlink(tarFile)
                SysFile.removeTree(contextDir)
                throw error
            }
            let text: String
            do {
                let parts = try ContextArchive.components(dockerfile, member: dockerfile)
                guard let data = FileManager.default.contents(atPath: ([contextDir] + parts).joined(separator: "/")), !parts.isEmpty,
                      (try? FileManager.default.destinationOfSymbolicLink(atPath: ([contextDir] + parts).joined(separator: "/"))) == nil else {
                    throw SandboxError(.invalidRequest, "the context has no Dockerfile at \(dockerfile); put it in the tar or name it with dockerfile=PATH")
                }
                text = String(decoding: data, as: UTF8.self)
                _ = try Dockerfile(text, arguments: arguments)  // a bad Dockerfile is a 400 now, not a failed job
            } catch {
                SysFile.removeTree(contextDir)
                throw error
            }
            let (tenant, actor, buildArguments) = (caller.tenantId, caller.keyId, arguments)
            let view: TemplateBuilds.View
            do {
                view = try await builds.start(id: id, name: name, tenantId: tenant) { () async in
                    var digest: String?
                    var failure: String?
                    // Progress goes through one stream, so readers see steps and output in order.
                    let (events, sink) = AsyncStream<BuildEvent>.makeStream()
                    async let forwarded: Void = {
                        for await event in events {
                            switch event {
                            case .step(let index, let of, let instruction, let cached):
                                await builds.step(id, index: index, of: of, instruction: instruction, cached: cached)
                            case .log(let bytes):
                                await builds.log(id, bytes)
                            }
                        }
                    }()
                    do {
                        let info = try await builder.build(name: name, dockerfile: text, context: contextDir, arguments: buildArguments, tenant: tenant) {
                            sink.yield($0)
                        }
                        digest = info.digest.text
                    } catch {
                        failure = (error as? SandboxError)?.message ?? "\(error)"
                    }
                    sink.finish()
                    await forwarded
                    SysFile.removeTree(contextDir)
                    var detail: [String: EventValue] = ["name": .string(name), "build": .string(id), "state": .string(failure == nil ? "succeeded" : "failed")]
                    if let digest { detail["digest"] = .string(digest) }
                    if let failure { detail["error"] = .string(failure) }
                    manager.recordTenantEvent(TenantEvent(tenantId: tenant, kind: .templateBuild, actor: actor, detail: detail))
                    await builds.finish(id, digest: digest, error: failure)
                }
            } catch {
                SysFile.removeTree(contextDir)
                throw error
            }
            return try APIJSON.response(view, status: .accepted)
        }

        routes.add(.get, "/v1/templates/builds/{id}") { _, context in
            let caller = try context.requireCaller()
            return try APIJSON.response(try await builds.view(try context.parameters.require("id"), tenantId: caller.tenantId))
        }

        routes.add(.get, "/v1/templates/builds/{id}/logs") { _, context in
            let caller = try context.requireCaller()
            let lines = try await builds.follow(try context.parameters.require("id"), tenantId: caller.tenantId)
            var headers = HTTPFields()
            headers[.contentType] = "application/x-ndjson"
            headers[.cacheControl] = "no-cache"
            return Response(status: .ok, headers: headers, body: ResponseBody { writer in
                for await line in lines { try await writer.write(ByteBuffer(string: line)) }
                try await writer.finish(nil)
            })
        }
    }

    /// Streams the request body (the context tar) to `file`, refusing more than ``ContextArchive/maxBytes`` (413).
    static func receive(_ request: Request, into file: String) async throws {
        let limit = ContextArchive.maxBytes
        if let text = request.headers[.contentLength], let length = Int64(text), length > limit {
            throw Problem.tooLarge("context_bytes", limit: limit, actual: length)
        }
        let fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Syscall.error("creating \(file)", errno: errno) }
        defer { close(fd) }
        var total: Int64 = 0
        for try await buffer in request.body {
            total += Int64(buffer.readableBytes)
            if total > limit { throw Problem.tooLarge("context_bytes", limit: limit, actual: total, atLeast: true) }
            try Syscall.writeAll(fd, Array(buffer.readableBytesView), file)
        }
    }
}

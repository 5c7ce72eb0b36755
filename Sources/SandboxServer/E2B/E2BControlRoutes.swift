import Foundation
import HTTPTypes
import Hummingbird
import SandboxCore
import SandboxLinux
import SandboxManager
import SandboxStore
import Templates

/// E2B's control plane on the API's listener (`E2B_API_URL` = this server): sandboxes created,
/// read, listed, timed out, connected, paused and killed by E2B's unmodified SDKs with an
/// `X-API-KEY` (any key of the tenant; ``E2BControlAuthMiddleware`` checks it). Every call goes
/// through the manager, so the same quotas, limits and audit trails apply as on `/v1`.
extension SandboxServer {
    func addE2BControlRoutes(_ routes: RouteRegistry) {
        // `code-interpreter-v1` (the interpreter SDK's default) is built on its first create.
        let server = self
        var control = E2BControl(manager: manager, images: ImageStore(dataDirectory: manager.configuration.dataDirectory),
                                 maxBodyBytes: configuration.maxJSONBytes)
        control.prepareTemplate = { try await server.ensureE2BTemplate($0) }
        let plane = control

        for path in ["/sandboxes", "/v2/sandboxes"] {
            routes.add(.post, path, action: .sandboxCreate) { request, context in
                await E2BControl.answer { try await plane.create(request, context) }
            }
        }
        routes.add(.get, "/sandboxes") { request, context in
            await E2BControl.answer { try await plane.list(request, context, paged: false) }
        }
        routes.add(.get, "/v2/sandboxes") { request, context in
            await E2BControl.answer { try await plane.list(request, context, paged: true) }
        }
        routes.add(.get, "/sandboxes/{id}") { _, context in
            await E2BControl.answer { try await plane.info(context) }
        }
        routes.add(.delete, "/sandboxes/{id}", action: .sandboxDelete) { _, context in
            await E2BControl.answer { try await plane.kill(context) }
        }
        routes.add(.post, "/sandboxes/{id}/timeout", action: .sandboxTimeout) { request, context in
            await E2BControl.answer { try await plane.setTimeout(request, context) }
        }
        for path in ["/sandboxes/{id}/connect", "/v2/sandboxes/{id}/connect"] {
            routes.add(.post, path, action: .sandboxResume) { request, context in
                await E2BControl.answer { try await plane.connect(request, context) }
            }
        }
        routes.add(.post, "/sandboxes/{id}/pause", action: .sandboxPause) { _, context in
            await E2BControl.answer { try await plane.pause(context) }
        }
    }
}

/// The handlers of E2B's control plane (``SandboxServer/addE2BControlRoutes(_:)``).
struct E2BControl: Sendable {
    let manager: SandboxManager
    let images: ImageStore
    /// The largest JSON body read (the server's `maxJSONBytes`, as on /v1).
    let maxBodyBytes: Int64
    /// Makes a template a create names ready before it is looked up (a built-in one made on first
    /// use); the default leaves every name as it is.
    var prepareTemplate: @Sendable (String) async throws -> Void = { _ in }
    let idempotency = E2BIdempotency()
    /// E2B's own default page size of `GET /v2/sandboxes`.
    static let defaultLimit = 100

    /// Runs a handler and answers its failure in E2B's error shape.
    static func answer(_ body: () async throws -> Response) async -> Response {
        do { return try await body() } catch { return E2BAPIError(error).response }
    }

    func create(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let body = try await decode(E2BNewSandbox.self, request)
        if body.mcp != nil { throw E2BAPIError(status: 400, message: "mcp: MCP gateways are not supported by sandboxer; leave mcp out") }
        if body.volumeMounts != nil { throw E2BAPIError(status: 400, message: "volumeMounts: volumes are not supported by sandboxer; leave volumeMounts out") }
        let key = request.headers[HTTPField.Name("Idempotency-Key")!]
        let token = EnvdAccess.newToken()
        let (id, made) = try await idempotency.sandbox(tenantId: caller.tenantId, key: key) {
            var create = try await self.createRequest(body)
            create.envdAccess?.tokenHashes = [EnvdAccess.hash(token)]
            return try await manager.create(tenantId: caller.tenantId, create, actor: caller.keyId).id
        }
        // A retry with the same Idempotency-Key gets a token of its own for the sandbox made before.
        let record = made ? try await manager.get(tenantId: caller.tenantId, id: id)
                          : try await manager.addEnvdToken(tenantId: caller.tenantId, id: id, hash: EnvdAccess.hash(token))
        context.auditTarget.target = record.id
        return try APIJSON.response(Self.created(record, token: token), status: .created)
    }

    /// The manager's create request for E2B's create body.
    func createRequest(_ body: E2BNewSandbox) async throws -> CreateSandboxRequest {
        var profile = try await profile(template: body.templateID)
        if body.allowInternetAccess == false, profile.needsEgress {
            profile.network = .deny
            profile.phases.setup = nil
            profile.phases.run = nil
        }
        // autoPause: the profile's on_timeout (a pause keeps memory; without it, a hibernation).
        if body.autoPause == true { profile.onTimeout = body.autoPauseMemory == false ? .hibernate : .pause }
        var create = CreateSandboxRequest(profile: .inline(profile), env: body.envVars ?? [:], metadata: body.metadata ?? [:])
        if let timeout = body.timeout {
            guard timeout > 0 else { throw E2BAPIError(status: 400, message: "timeout: must be a positive number of seconds") }
            create.ttl = .seconds(timeout)
        }
        create.envdAccess = EnvdAccess(secure: body.secure ?? false, template: body.templateID)
        return create
    }

    /// The profile a template id names: `base` is the server's default profile; the name of one of
    /// sandboxer's templates is the default profile with that template; anything else is a 404.
    func profile(template name: String) async throws -> Profile {
        var profile = try manager.configuration.profiles.load("default")
        guard name != "base" else { return profile }
        try await prepareTemplate(name)
        guard try await templateExists(name) else {
            throw E2BAPIError(status: 404, message: "template '\(name)' not found: use base, or one of the names GET /v1/templates lists (sandboxer template build NAME makes one)")
        }
        profile.template = name
        return profile
    }

    func templateExists(_ name: String) async throws -> Bool {
        guard name.count <= 128, !name.isEmpty,
              name.unicodeScalars.allSatisfy({ CharacterSet.alphanumerics.contains($0) || "._-".unicodeScalars.contains($0) }),
              !name.hasPrefix(".") else { return false }
        if name == "host" { return true }
        let images = self.images
        let found = await BlockingPool.shared.run { () -> Bool in
            guard let image = try? images.image(name) else { return false }
            return image.info.kind == "template"
        }
        return found
    }

    func list(_ request: Request, _ context: APIRequestContext, paged: Bool) async throws -> Response {
        let caller = try context.requireCaller()
        var query = SandboxQuery(tenantId: caller.tenantId)
        query.states = [.creating, .running, .paused, .hibernated]
        query.limit = paged ? Self.defaultLimit : 1000
        for (name, value) in request.uri.queryParameters {
            let value = String(value)
            switch String(name) {
            case "metadata": query.metadata = try Self.metadataFilter(value)
            case "state" where paged: query.states = try Self.states(value)
            case "limit" where paged:
                guard let n = Int(value), (1...1000).contains(n) else { throw E2BAPIError(status: 400, message: "limit: must be an integer from 1 to 1000") }
                query.limit = n
            case "nextToken" where paged: query.cursor = value
            case "order" where paged:
                guard value == "asc" else { throw E2BAPIError(status: 400, message: "order: sandboxer lists oldest first only; send order=asc or leave order out") }
            default: continue  // startedAfter, template, …: E2B's further filters are not applied
            }
        }
        var items: [E2BSandboxInfo] = []
        var cursor: String?
        repeat {
            let page = try await manager.list(query)
            items += page.items.filter { !$0.state.isFinal }.map { E2BSandboxInfo($0, detail: false) }
            cursor = page.nextCursor
            query.cursor = cursor
        } while !paged && cursor != nil
        var response = try APIJSON.response(items)
        if paged, let cursor { response.headers[HTTPField.Name("x-next-token")!] = cursor }
        return response
    }

    func info(_ context: APIRequestContext) async throws -> Response {
        let record = try await liveRecord(context)
        return try APIJSON.response(E2BSandboxInfo(record, detail: true))
    }

    func kill(_ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let record = try await liveRecord(context)
        _ = try await manager.destroy(tenantId: caller.tenantId, id: record.id, actor: caller.keyId)
        return APIJSON.noContent
    }

    func setTimeout(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let body = try await decode(E2BTimeoutBody.self, request)
        guard body.timeout > 0 else { throw E2BAPIError(status: 400, message: "timeout: must be a positive number of seconds") }
        let record = try await liveRecord(context)
        _ = try await manager.setTimeout(tenantId: caller.tenantId, id: record.id, ttl: .seconds(body.timeout), actor: caller.keyId)
        return APIJSON.noContent
    }

    /// Connect: resumes a paused (or hibernated) sandbox (201) or answers a running one (200),
    /// lengthens its timeout when the one asked for ends later, and hands out a new envd token.
    func connect(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let body = try await decode(E2BConnectBody.self, request)
        let timeout = body.timeout ?? E2BConnectBody.defaultTimeout
        guard timeout > 0 else { throw E2BAPIError(status: 400, message: "timeout: must be a positive number of seconds") }
        var record = try await liveRecord(context)
        var status = HTTPResponse.Status.ok
        if record.state == .paused || record.state == .hibernated {
            if body.memory == false, record.state == .paused {
                throw E2BAPIError(status: 400, message: "memory: false (a cold boot from disk) is not supported by sandboxer; leave memory out to resume the paused sandbox as it was")
            }
            record = try await manager.resume(tenantId: caller.tenantId, id: record.id, actor: caller.keyId)
            status = .created
        }
        let wanted = Date().addingTimeInterval(Double(timeout))
        if let ends = record.expiresAt, ends < wanted {
            record = try await manager.setTimeout(tenantId: caller.tenantId, id: record.id, ttl: .seconds(timeout), actor: caller.keyId)
        }
        let token = EnvdAccess.newToken()
        record = try await manager.addEnvdToken(tenantId: caller.tenantId, id: record.id, hash: EnvdAccess.hash(token))
        return try APIJSON.response(Self.created(record, token: token), status: status)
    }

    func pause(_ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let record = try await liveRecord(context)
        guard record.state == .running else {
            throw E2BAPIError(status: 409, message: "sandbox \(record.id) is \(record.state.rawValue), not running; connect to resume it")
        }
        _ = try await manager.pause(tenantId: caller.tenantId, id: record.id, actor: caller.keyId)
        return APIJSON.noContent
    }

    /// The caller's sandbox `{id}` while it lives; an ended one, or another tenant's, is a 404.
    func liveRecord(_ context: APIRequestContext) async throws -> SandboxRecord {
        let caller = try context.requireCaller()
        let id = try context.parameters.require("id")
        guard let record = try? await manager.get(tenantId: caller.tenantId, id: id), !record.state.isFinal else {
            throw E2BAPIError(status: 404, message: "sandbox \(id) not found")
        }
        return record
    }

    static func created(_ r: SandboxRecord, token: String) -> E2BSandboxCreated {
        let template = templateID(of: r)
        return E2BSandboxCreated(templateID: template, sandboxID: r.id, alias: template, envdAccessToken: token)
    }

    func decode<T: Decodable>(_ type: T.Type, _ request: Request) async throws -> T {
        let bytes = try await BodyReader.collect(request, limit: maxBodyBytes, name: "body")
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes))
        } catch let DecodingError.keyNotFound(key, _) {
            throw E2BAPIError(status: 400, message: "\(key.stringValue): required")
        } catch let DecodingError.typeMismatch(_, c), let DecodingError.valueNotFound(_, c) {
            throw E2BAPIError(status: 400, message: "\(c.codingPath.map(\.stringValue).joined(separator: ".")): wrong type")
        } catch {
            throw E2BAPIError(status: 400, message: "the body must be a JSON object")
        }
    }
}

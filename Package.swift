// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "sandboxer",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "sandboxer", targets: ["sandboxer"]),
        .executable(name: "sandboxer-agent", targets: ["sandboxer-agent"]),
        .library(name: "SandboxCore", targets: ["SandboxCore"]),
        .library(name: "BackendOCI", targets: ["BackendOCI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/swiftwasm/WasmKit", from: "0.4.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.8.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.81.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/vapor/multipart-kit", from: "4.7.1"),
    ],
    targets: [
        /// Value types, the backend protocol, typed errors, profiles.
        .target(name: "SandboxCore", dependencies: [
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Yams", package: "Yams"),
        ]),
        /// The few libc calls Swift cannot make directly (variadic prctl).
        .target(name: "CSandboxLinux"),
        /// Linux mechanics shared by backends: cgroups v1/v2, mounts, processes, seccomp data, host prep.
        .target(name: "SandboxLinux", dependencies: [
            "SandboxCore", "CSandboxLinux",
            .product(name: "Logging", package: "swift-log"),
        ], resources: [.embedInCode("Resources/seccomp.json")]),
        /// Root filesystem templates: `host`, and OCI images in the data directory's image store.
        .target(name: "Templates", dependencies: [
            "SandboxCore", "SandboxLinux",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        /// The versioned frames the host and the in-sandbox agent exchange (no Foundation, no NIO).
        .target(name: "AgentProtocol"),
        /// The few libc calls the agent makes that Swift cannot (fork/exec with uid switch, PTYs).
        .target(name: "CSandboxAgent"),
        /// The in-sandbox agent: pid 1 of every long-lived container sandbox (spawn, stream, files, reap).
        .executableTarget(name: "sandboxer-agent", dependencies: ["AgentProtocol", "CSandboxAgent"], path: "Sources/SandboxAgent",
                          // FoundationEssentials' static archive needs its own dependencies named (JSON coding only).
                          linkerSettings: [.unsafeFlags(["-static-stdlib"]), .linkedLibrary("_FoundationCollections"),
                                           .linkedLibrary("_FoundationCShims"), .linkedLibrary("swiftSynchronization")]),
        /// OCI bundle generation and the crun/runc/runsc driver.
        .target(name: "BackendOCI", dependencies: [
            "SandboxCore", "SandboxLinux", "Templates", "AgentProtocol",
            .product(name: "Logging", package: "swift-log"),
            // One multiplexed connection per sandbox's agent, on NIO's event loops (no thread per call).
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        /// The WASM lane: WASI modules and QuickJS under WasmKit.
        .target(name: "BackendWasm", dependencies: [
            "SandboxCore", "SandboxLinux",
            .product(name: "WasmKit", package: "WasmKit"),
            .product(name: "WasmKitWASI", package: "WasmKit"),
            .product(name: "WAT", package: "WasmKit"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        /// Persistence behind one protocol: tenants, API keys (hashes), sandboxes, execs, logs, audit (SQLite via GRDB).
        .target(name: "SandboxStore", dependencies: [
            "SandboxCore",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        /// The PostgreSQL engine of the store (postgres-nio): one database shared by a fleet of `serve`
        /// processes; claims with FOR UPDATE SKIP LOCKED, wake-ups with LISTEN/NOTIFY.
        .target(name: "SandboxStorePostgres", dependencies: [
            "SandboxCore", "SandboxStore",
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        /// The egress proxy: per-sandbox network namespaces with an HTTP(S) proxy, a resolver and
        /// transparent listeners inside, served from the host; secrets swapped at the edge.
        .target(name: "SandboxEgress", dependencies: [
            "SandboxCore", "SandboxLinux", "EgressTLS",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOTLS", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        /// TLS at the egress proxy: the per-server CA, leaf certificates for secret hosts, the upstream client context.
        .target(name: "EgressTLS", dependencies: [
            "SandboxCore",
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "SwiftASN1", package: "swift-asn1"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        /// The one layer every surface calls: lane routing, sandbox records and their state machine,
        /// TTL/idle reaper, warm pool, start-up reconciliation.
        /// One-shot runs (`sandboxer run`, the run queue's attempts): lane routing, `wasm+container`
        /// layering, the setup phase; backends built once.
        .target(name: "OneShot", dependencies: [
            "SandboxCore", "SandboxLinux", "BackendOCI", "BackendWasm", "Templates",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "SandboxManager", dependencies: [
            "SandboxCore", "SandboxLinux", "BackendOCI", "BackendWasm", "SandboxStore", "Templates", "OneShot",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
        ]),
        /// The execution service: workers that claim queued runs, run them in one-shot sandboxes,
        /// keep their leases alive, take back runs of dead workers, deliver webhooks.
        .target(name: "SandboxRuns", dependencies: [
            "SandboxCore", "SandboxLinux", "SandboxManager", "SandboxStore", "OneShot",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
        ]),
        /// The HTTP API (openapi.yaml) on Hummingbird: auth, problem+json, SSE/WebSocket, metrics, the execution monitor page.
        .target(name: "SandboxServer", dependencies: [
            "SandboxCore", "SandboxManager", "SandboxStore", "SandboxRuns", "Templates", "SandboxLinux",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
            .product(name: "MultipartKit", package: "multipart-kit"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
        ], resources: [.embedInCode("Resources/monitor.js"), .embedInCode("Resources/monitor.css")]),
        /// The CLI commands, as a library so tests can drive them in-process.
        .target(name: "SandboxCommands", dependencies: [
            "SandboxCore", "SandboxLinux", "Templates", "BackendOCI", "BackendWasm",
            "SandboxStore", "SandboxStorePostgres", "SandboxManager", "SandboxServer", "SandboxRuns", "SandboxEgress", "OneShot",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Metrics", package: "swift-metrics"),
        ]),
        .executableTarget(name: "sandboxer", dependencies: ["SandboxCommands"]),

        /// Shared fixtures for the test targets: a prepared backend, host-health checks.
        .target(name: "SandboxTestSupport", dependencies: ["BackendOCI", "SandboxCore", "SandboxLinux"], path: "Tests/SandboxTestSupport"),
        .testTarget(name: "SandboxCoreTests", dependencies: ["SandboxCore"]),
        .testTarget(name: "SandboxEgressTests", dependencies: [
            "SandboxEgress", "SandboxCore", "SandboxLinux", "BackendOCI", "SandboxTestSupport",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
        ]),
        .testTarget(name: "TemplatesTests", dependencies: ["Templates", "SandboxCore", "SandboxLinux", "SandboxTestSupport"]),
        .testTarget(name: "SandboxLinuxTests", dependencies: ["SandboxLinux", "SandboxCore", "SandboxTestSupport"]),
        .testTarget(name: "BackendOCITests", dependencies: ["BackendOCI", "SandboxCore", "SandboxLinux", "Templates", "SandboxTestSupport"]),
        .testTarget(name: "BackendWasmTests", dependencies: ["BackendWasm", "SandboxCore", "SandboxLinux", "SandboxTestSupport"]),
        .testTarget(name: "AgentTests", dependencies: ["AgentProtocol", "BackendOCI", "SandboxCore", "SandboxLinux", "SandboxTestSupport"]),
        /// The run-queue contract every store engine's tests run.
        .target(name: "RunStoreContract", dependencies: ["SandboxStore", "SandboxCore"], path: "Tests/RunStoreContract"),
        .testTarget(name: "SandboxStoreTests", dependencies: ["SandboxStore", "SandboxCore", "SandboxLinux", "RunStoreContract", "SandboxTestSupport", .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "SandboxStorePostgresTests", dependencies: [
            "SandboxStorePostgres", "SandboxStore", "SandboxCore", "SandboxLinux", "RunStoreContract", "SandboxTestSupport",
            .product(name: "PostgresNIO", package: "postgres-nio"),
        ]),
        .testTarget(name: "SandboxManagerTests", dependencies: ["OneShot", 
            "SandboxManager", "SandboxStore", "SandboxStorePostgres", "SandboxCore", "SandboxLinux", "BackendOCI", "SandboxTestSupport",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "ServerTests", dependencies: [
            "SandboxServer", "SandboxManager", "SandboxStore", "SandboxCore", "SandboxCommands", "SandboxTestSupport",
            .product(name: "Yams", package: "Yams"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "SandboxRunsTests", dependencies: ["OneShot", 
            "SandboxRuns", "SandboxManager", "SandboxStore", "SandboxCore", "SandboxTestSupport", "RunStoreContract",
        ]),
        .testTarget(name: "EgressTLSTests", dependencies: [
            "EgressTLS", "SandboxCore",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOTLS", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "X509", package: "swift-certificates"),
        ]),
        .testTarget(name: "IsolationTests", dependencies: ["OneShot", "BackendOCI", "BackendWasm", "SandboxCore", "SandboxLinux", "Templates", "SandboxTestSupport"]),
    ]
)

// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "sandboxer",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "sandboxer", targets: ["sandboxer"]),
        .library(name: "SandboxCore", targets: ["SandboxCore"]),
        .library(name: "BackendOCI", targets: ["BackendOCI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/swiftwasm/WasmKit", from: "0.4.2"),
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
        /// Root filesystem templates (`host`).
        .target(name: "Templates", dependencies: ["SandboxCore", "SandboxLinux"]),
        /// OCI bundle generation and the crun/runc/runsc driver.
        .target(name: "BackendOCI", dependencies: [
            "SandboxCore", "SandboxLinux", "Templates",
            .product(name: "Logging", package: "swift-log"),
        ]),
        /// The WASM lane: WASI modules and QuickJS under WasmKit.
        .target(name: "BackendWasm", dependencies: [
            "SandboxCore", "SandboxLinux",
            .product(name: "WasmKit", package: "WasmKit"),
            .product(name: "WasmKitWASI", package: "WasmKit"),
            .product(name: "WAT", package: "WasmKit"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        /// The CLI commands, as a library so tests can drive them in-process.
        .target(name: "SandboxCommands", dependencies: [
            "SandboxCore", "SandboxLinux", "Templates", "BackendOCI", "BackendWasm",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "sandboxer", dependencies: ["SandboxCommands"]),

        /// Shared fixtures for the test targets: a prepared backend, host-health checks.
        .target(name: "SandboxTestSupport", dependencies: ["BackendOCI", "SandboxCore", "SandboxLinux"], path: "Tests/SandboxTestSupport"),
        .testTarget(name: "SandboxCoreTests", dependencies: ["SandboxCore"]),
        .testTarget(name: "SandboxLinuxTests", dependencies: ["SandboxLinux", "SandboxCore"]),
        .testTarget(name: "BackendOCITests", dependencies: ["BackendOCI", "SandboxCore", "SandboxLinux", "Templates", "SandboxTestSupport"]),
        .testTarget(name: "BackendWasmTests", dependencies: ["BackendWasm", "SandboxCore", "SandboxLinux"]),
        .testTarget(name: "IsolationTests", dependencies: ["BackendOCI", "BackendWasm", "SandboxCore", "SandboxLinux", "Templates", "SandboxTestSupport"]),
    ]
)

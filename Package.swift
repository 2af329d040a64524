// swift-tools-version:6.1
import PackageDescription

// Connector families are selected at build time with package traits (SE-0450).
// The executable is the composition root: only it imports the families.
let package = Package(
    name: "switchyard",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "switchyard", targets: ["switchyard"]),
        .library(name: "SwitchyardCore", targets: ["SwitchyardCore"]),
    ],
    traits: [
        .trait(name: "Builtin", description: "generate source; stdout, file and drop targets (no server needed)"),
        .default(enabledTraits: ["Builtin"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.80.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.1.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.0.0"),
    ],
    targets: [
        .target(
            name: "SwitchyardCore",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "DequeModule", package: "swift-collections"),
            ]
        ),
        .target(
            name: "SwitchyardConfig",
            dependencies: [
                "SwitchyardCore",
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .target(
            name: "SwitchyardRuntime",
            dependencies: [
                "SwitchyardCore",
                "SwitchyardConfig",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .target(
            name: "BuiltinConnectors",
            dependencies: ["SwitchyardCore"],
            path: "connectors/Builtin"
        ),
        .executableTarget(
            name: "switchyard",
            dependencies: [
                "SwitchyardCore",
                "SwitchyardConfig",
                "SwitchyardRuntime",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .target(name: "BuiltinConnectors", condition: .when(traits: ["Builtin"])),
            ]
        ),
        .testTarget(
            name: "SwitchyardCoreTests",
            dependencies: ["SwitchyardCore"]
        ),
        .testTarget(
            name: "SwitchyardConfigTests",
            dependencies: ["SwitchyardConfig", "SwitchyardCore", "BuiltinConnectors"]
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["SwitchyardCore"]
        ),
    ],
    swiftLanguageModes: [.v6]
)

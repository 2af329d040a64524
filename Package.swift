// swift-tools-version:6.1
import PackageDescription
#if canImport(Glibc)
    import Glibc
#endif

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
        .trait(name: "Kafka", description: "kafka source and target on librdkafka"),
        .trait(name: "RabbitMQ", description: "rabbitmq source and target on rabbitmq-c"),
        .trait(name: "Redis", description: "redis target on hiredis"),
        .trait(name: "Postgres", description: "postgres target on libpq"),
        .trait(name: "S3", description: "s3 target on libcurl"),
        .trait(name: "Link", description: "link source and target: runtime to runtime over gRPC"),
        .default(enabledTraits: ["Builtin", "Kafka", "RabbitMQ", "Redis", "Postgres", "S3", "Link"]),
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
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.29.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
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
        // The Kubernetes operator: no connector family; the executable hands it the registry.
        .target(
            name: "SwitchyardOperator",
            dependencies: [
                "SwitchyardCore",
                "SwitchyardConfig",
                "SwitchyardRuntime",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .target(
            name: "BuiltinConnectors",
            dependencies: ["SwitchyardCore"],
            path: "connectors/Builtin"
        ),
        // Connector families: a system library over the Debian package, and the connector module.
        .systemLibrary(name: "CRdKafka", path: "connectors/Kafka/CRdKafka", pkgConfig: "rdkafka", providers: [.apt(["librdkafka-dev"])]),
        .target(name: "KafkaConnector", dependencies: ["SwitchyardCore", "CRdKafka"], path: "connectors/Kafka/KafkaConnector"),
        .systemLibrary(
            name: "CRabbitMQ", path: "connectors/RabbitMQ/CRabbitMQ", pkgConfig: "librabbitmq", providers: [.apt(["librabbitmq-dev"])]),
        .target(name: "RabbitMQConnector", dependencies: ["SwitchyardCore", "CRabbitMQ"], path: "connectors/RabbitMQ/RabbitMQConnector"),
        .systemLibrary(name: "CHiredis", path: "connectors/Redis/CHiredis", pkgConfig: "hiredis", providers: [.apt(["libhiredis-dev"])]),
        .target(name: "RedisConnector", dependencies: ["SwitchyardCore", "CHiredis"], path: "connectors/Redis/RedisConnector"),
        .systemLibrary(name: "CLibPQ", path: "connectors/Postgres/CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .target(name: "PostgresConnector", dependencies: ["SwitchyardCore", "CLibPQ"], path: "connectors/Postgres/PostgresConnector"),
        .systemLibrary(name: "CCurl", path: "connectors/S3/CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CZlib", path: "connectors/S3/CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .target(
            name: "S3Connector",
            dependencies: ["SwitchyardCore", "CCurl", "CZlib", .product(name: "Crypto", package: "swift-crypto")],
            path: "connectors/S3/S3Connector"),
        // The link family: gRPC code generated from connectors/Link/proto by scripts/gen-link-proto.
        .target(
            name: "LinkConnector",
            dependencies: [
                "SwitchyardCore",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "connectors/Link/LinkConnector"
        ),
        .target(name: "CSwitchyardMalloc"),
        .executableTarget(
            name: "switchyard",
            dependencies: [
                "CSwitchyardMalloc",
                "SwitchyardCore",
                "SwitchyardConfig",
                "SwitchyardRuntime",
                "SwitchyardOperator",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .target(name: "BuiltinConnectors", condition: .when(traits: ["Builtin"])),
                .target(name: "KafkaConnector", condition: .when(traits: ["Kafka"])),
                .target(name: "RabbitMQConnector", condition: .when(traits: ["RabbitMQ"])),
                .target(name: "RedisConnector", condition: .when(traits: ["Redis"])),
                .target(name: "PostgresConnector", condition: .when(traits: ["Postgres"])),
                .target(name: "S3Connector", condition: .when(traits: ["S3"])),
                .target(name: "LinkConnector", condition: .when(traits: ["Link"])),
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
        .testTarget(
            name: "OperatorTests",
            dependencies: [
                "SwitchyardOperator", "SwitchyardConfig", "SwitchyardCore", "SwitchyardRuntime", "BuiltinConnectors", "KafkaConnector",
                "RabbitMQConnector",
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "KafkaConnectorTests",
            dependencies: ["KafkaConnector", "SwitchyardCore", "CRdKafka", "TestBedSupport", "SwitchyardOperator"]),
        // Test-bed helpers shared by test modules (a plain target: test targets cannot import each other).
        .target(name: "TestBedSupport", path: "Tests/TestBedSupport"),
        .testTarget(name: "RabbitMQConnectorTests", dependencies: ["RabbitMQConnector", "SwitchyardCore", "CRabbitMQ", "TestBedSupport"]),
        // Bridges between clusters, through the switchyard binary (kafka-mock processes, rabbitmq-server).
        .testTarget(name: "BridgeTests", dependencies: ["TestBedSupport"]),
        .testTarget(name: "LinkTests", dependencies: ["LinkConnector", "SwitchyardCore"]),
        .testTarget(
            name: "StoreConnectorTests",
            dependencies: ["RedisConnector", "PostgresConnector", "S3Connector", "SwitchyardCore", "TestBedSupport"]),
    ],
    swiftLanguageModes: [.v6]
)

// The fuzzing driver (scripts/fuzz, docs/fuzzing.md) exists only when SWITCHYARD_FUZZ is set: it
// links only with -sanitize=fuzzer, which provides its entry point.
if getenv("SWITCHYARD_FUZZ") != nil {
    package.targets.append(
        .executableTarget(
            name: "SwitchyardFuzz",
            dependencies: [
                "SwitchyardCore", "SwitchyardConfig", "SwitchyardRuntime", "BuiltinConnectors", "RedisConnector",
                "RabbitMQConnector", "CRabbitMQ", .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            path: "fuzz/SwitchyardFuzz"))
}

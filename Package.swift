// swift-tools-version: 6.1
import PackageDescription

// Sluice uses the toolchain only: no package dependencies, ever (see README).
let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "Sluice",
    products: [
        .library(name: "SluiceChannels", targets: ["SluiceChannels"]),
        .library(name: "SluiceIO", targets: ["SluiceIO"]),
        .library(name: "SluiceWire", targets: ["SluiceWire"]),
        .library(name: "SluiceBroker", targets: ["SluiceBroker"]),
        .executable(name: "sluiced", targets: ["sluiced"]),
        .executable(name: "sluice-bench", targets: ["sluice-bench"]),
        .library(name: "SluiceClient", targets: ["SluiceClient"]),
        .executable(name: "sluice", targets: ["sluice"]),
    ],
    targets: [
        .target(name: "SluiceChannels", swiftSettings: strictSettings),
        // Pure codec: bytes in, frames out. Sources/SluiceWireFuzz is not a target: .ci/fuzz builds it with
        // swiftc -sanitize=fuzzer,address.
        .target(name: "SluiceWire", swiftSettings: strictSettings),
        .target(name: "CSluiceLinux"),
        .target(
            name: "SluiceIO",
            dependencies: ["CSluiceLinux", "SluiceChannels"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "SluiceBroker",
            dependencies: ["SluiceChannels", "SluiceIO", "SluiceWire"],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "sluiced",
            dependencies: ["SluiceBroker", "SluiceIO"],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "sluice-bench",
            dependencies: ["SluiceChannels", "SluiceIO", "CSluiceLinux", "SluiceWire"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "SluiceClient",
            dependencies: ["SluiceChannels", "SluiceIO", "SluiceWire"],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "sluice",
            dependencies: ["SluiceClient", "SluiceIO", "SluiceWire"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SluiceClientTests",
            dependencies: ["SluiceClient", "SluiceBroker", "SluiceIO", "SluiceWire", "SluiceChannels"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SluiceCLITests",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SluiceIOTests",
            dependencies: ["SluiceIO"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SluiceChannelsTests",
            dependencies: ["SluiceChannels"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SluiceBrokerTests",
            dependencies: ["SluiceBroker", "SluiceIO", "SluiceWire", "SluiceChannels"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SluiceWireTests",
            dependencies: ["SluiceWire"],
            swiftSettings: strictSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)

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
        .executable(name: "sluice-bench", targets: ["sluice-bench"]),
    ],
    targets: [
        .target(name: "SluiceChannels", swiftSettings: strictSettings),
        .executableTarget(
            name: "sluice-bench",
            dependencies: ["SluiceChannels"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SluiceChannelsTests",
            dependencies: ["SluiceChannels"],
            swiftSettings: strictSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)

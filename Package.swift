// swift-tools-version:5.9
import PackageDescription

let package = Package(
    name: "AlexNet",
    products: [
        .library(name: "AlexNet", targets: ["AlexNet"]),
        .executable(name: "alexnet", targets: ["alexnet"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.25.0"),
    ],
    targets: [
        // oneDNN's C API (Debian's libdnnl-dev, 2.6) and the OpenMP runtime it threads with.
        .systemLibrary(name: "CDNNL", path: "Sources/CDNNL"),
        // libjpeg-turbo's TurboJPEG API (Debian's libturbojpeg0-dev).
        .systemLibrary(name: "CTurboJPEG", path: "Sources/CTurboJPEG"),
        // zlib's inflate, for the gzipped IDX files of Fashion-MNIST (Debian's zlib1g-dev).
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        // libpng behind two C functions, since its errors longjmp (Debian's libpng-dev).
        .target(name: "CPNG", path: "Sources/CPNG", linkerSettings: [.linkedLibrary("png16")]),
        // Open MPI's C API (Debian's libopenmpi-dev: headers found through its pkg-config file
        // ompi-c), and the few calls distributed training makes, as plain C functions.
        .systemLibrary(name: "COpenMPI", path: "Sources/COpenMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
        .target(name: "CMPI", dependencies: ["COpenMPI"], path: "Sources/CMPI"),
        // SIMD inner loops (AVX2 where the CPU has it, chosen at run time) for the image resampler.
        .target(name: "CKernels", path: "Sources/CKernels", cSettings: [.unsafeFlags(["-O3"])]),
        .target(
            name: "AlexNet",
            dependencies: [
                "CDNNL", "CTurboJPEG", "CPNG", "CKernels", "CZlib", "CMPI",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            resources: [.copy("Resources/imagenet_classes.tsv"), .copy("Resources/demo.yml")],
            swiftSettings: [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]
        ),
        .executableTarget(
            name: "alexnet",
            dependencies: [
                "AlexNet",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "AlexNetTests", dependencies: ["AlexNet", .product(name: "Logging", package: "swift-log")]),
    ]
)

import AlexNetCore
import AlexNetKernels
import AlexNetTraining
import Foundation
import XCTest

/// Paths the tests need: the repository, its fixtures (everything the tests read is in the
/// clone), and the built `alexnet` binary.
enum Paths {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let fixtures = repository.appendingPathComponent("Tests/Fixtures")
    /// PyTorch's golden files (docs/NUMERICS.md, Tolerance) at small sizes (scripts/make_golden.py;
    /// the command is in its docstring): layers.safetensors, net_small_paper/seed.safetensors,
    /// tencrop.safetensors.
    static let golden = fixtures.appendingPathComponent("golden")
    /// Small `.pt` files written by `torch.save` and PyTorch's results on them
    /// (scripts/make_torch_fixtures.py).
    static let torch = golden.appendingPathComponent("torch")
    /// Sample photos with Pillow's 256×256 results, and odd and broken image files
    /// (scripts/make_image_fixtures.py --photos).
    static let photos = fixtures.appendingPathComponent("photos")
    /// A second golden set with other widths, classes, batch, input size and seed.
    static let goldenAlt = fixtures.appendingPathComponent("golden-alt")

    /// The `alexnet` executable SwiftPM built beside the test bundle.
    static var binary: URL {
        // On Linux the test bundle is an executable in the products folder (.build/<config>/).
        Bundle.main.executableURL!.deletingLastPathComponent().appendingPathComponent("alexnet")
    }

    /// The Python with the PyPI packages the read-back tests use (scripts/test.sh makes it and
    /// sets ALEXNET_TEST_PYTHON): those tests skip without it, and fail under CI.
    static func python(needing packages: String) throws -> URL {
        let env = ProcessInfo.processInfo.environment
        guard let python = env["ALEXNET_TEST_PYTHON"] else {
            if env["CI"] != nil { XCTFail("ALEXNET_TEST_PYTHON is not set: run the tests through scripts/test.sh") }
            throw XCTSkip("set ALEXNET_TEST_PYTHON to a python with \(packages) (scripts/test.sh does)")
        }
        return URL(fileURLWithPath: python)
    }

    /// The folder every test's scratch folder lies in: one per test process, removed when the
    /// process exits, so that runs leave nothing behind in the system's temporary folder.
    static let scratchRoot: URL = {
        atexit { try? FileManager.default.removeItem(at: Paths.scratchRootPath) }
        return scratchRootPath
    }()
    private static var scratchRootPath: URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("alexnet-tests-\(getpid())")
    }

    /// A fresh, empty folder for `name` (by default the calling test's) under `scratchRoot`.
    static func temporaryDirectory(_ name: String = #function) throws -> URL {
        let url = scratchRoot.appendingPathComponent(name.filter(\.isLetter))
        try? FileManager.default.removeItem(at: url)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// Runs a program and returns (exit status, stdout, stderr).
func runProcess(_ executable: URL, _ arguments: [String], environment: [String: String]? = nil) throws -> (Int32, String, String) {
    let p = Process()
    p.executableURL = executable
    p.arguments = arguments
    if let environment { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    // Read before waiting so a full pipe cannot block the child.
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

/// Asserts ‖a − b‖/‖b‖ ≤ tolerance.
func assertClose(_ a: Tensor, _ b: Tensor, _ tolerance: Double = 1e-5, _ what: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.shape, b.shape, "\(what): shape", file: file, line: line)
    guard a.shape == b.shape else { return }
    let e = Tensor.relativeError(a.data, b.data)
    XCTAssertLessThanOrEqual(e, tolerance, "\(what): relative error \(e)", file: file, line: line)
}

let sharedEngine: Engine = try! Engine()

/// The targets Package.swift declares, read from its text: each library and executable target's
/// name, source folder and direct dependencies (a product's module is its name).
enum PackageManifest {
    struct Target { var name: String; var path: String; var dependencies: Set<String> }

    static func targets() throws -> [Target] {
        let manifest = try String(contentsOf: Paths.repository.appendingPathComponent("Package.swift"), encoding: .utf8)
        // Quoted names, leaving out the package a product comes from.
        func names(_ text: Substring) -> Set<String> {
            let quoted = try! NSRegularExpression(pattern: #"(?<!package: )"([\w-]+)""#)
            let s = String(text)
            return Set(quoted.matches(in: s, range: NSRange(s.startIndex..., in: s)).map { String(s[Range($0.range(at: 1), in: s)!]) })
        }
        // `let library: [Target.Dependency] = [...]` is spliced into some dependency lists, and
        // `swiftProtobuf` names SwiftProtobuf's product.
        guard let library = manifest.firstMatch(of: #/let library: \[Target.Dependency\] = \[[^\]]*\]/#) else {
            throw CocoaError(.fileReadCorruptFile, userInfo: [NSLocalizedDescriptionKey: "Package.swift has no `let library` list"])
        }
        let libraryNames = names(library.0)
        var found: [Target] = []
        let starts = manifest.ranges(of: #/\.(target|executableTarget)\(/#)
        for (i, start) in starts.enumerated() {
            let end = i + 1 < starts.count ? starts[i + 1].lowerBound : manifest.endIndex
            let block = manifest[start.upperBound..<end]
            guard let name = block.firstMatch(of: #/name: "(\w+)"/#)?.1 else { continue }
            let path = block.firstMatch(of: #/path: "([^"]+)"/#)?.1 ?? "Sources/\(name)"
            var dependencies = Set<String>()
            if let list = block.firstMatch(of: #/dependencies: (library \+ )?\[([^\]]*)\]/#) {
                dependencies = names(list.2)
                if list.1 != nil { dependencies.formUnion(libraryNames) }
            }
            if block.contains("swiftProtobuf") { dependencies.insert("SwiftProtobuf") }
            found.append(Target(name: String(name), path: String(path), dependencies: dependencies))
        }
        return found
    }

    /// The source folders of the library's targets (AlexNet…, generated protos left out).
    static func librarySources() throws -> [String] {
        try targets().filter { $0.name.hasPrefix("AlexNet") && $0.name != "AlexNetProtos" }.map(\.path)
    }
}

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

    static func temporaryDirectory(_ name: String = #function) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("alexnet-tests-\(getpid())-\(name.filter(\.isLetter))")
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

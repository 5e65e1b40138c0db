import AlexNetCore
import AlexNetInterop
import AlexNetKernels
import AlexNetTools
import AlexNetTraining
import Foundation
import XCTest

/// Every error reaches the user as its own message: each error type of the library describes
/// itself, also through `localizedDescription`, and Foundation's errors are reworded with the
/// system's reason.
final class ErrorDescriptionTests: XCTestCase {
    /// Scans the library's sources for error types: each must conform to DescribedError (which
    /// gives it a description and makes `localizedDescription` say the same).
    func testEveryErrorTypeDescribesItself() throws {
        let declaration = try NSRegularExpression(pattern: #"^\s*(public\s+|package\s+)?(final\s+)?(struct|enum|class)\s+(\w+)\s*:([^{]*)\{"#,
                                                  options: [.anchorsMatchLines])
        var found: [String] = []
        let folders = try PackageManifest.librarySources()
        XCTAssertEqual(folders.count, 7, "the library's targets: \(folders)")
        for folder in folders {
            let root = Paths.repository.appendingPathComponent(folder)
            for case let f as String in try XCTUnwrap(FileManager.default.enumerator(atPath: root.path)) where f.hasSuffix(".swift") && !f.hasSuffix(".pb.swift") {
                let text = try String(contentsOf: root.appendingPathComponent(f), encoding: .utf8)
                for m in declaration.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                    let name = String(text[Range(m.range(at: 4), in: text)!]), conformances = String(text[Range(m.range(at: 5), in: text)!])
                    let protocols = conformances.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                    guard protocols.contains(where: { ["Error", "LocalizedError", "DescribedError"].contains($0) }),
                          m.range(at: 1).location != NSNotFound else { continue }
                    found.append(name)
                    XCTAssertTrue(protocols.contains("DescribedError"), "\(folder)/\(f): \(name) is an Error but not a DescribedError")
                }
            }
        }
        XCTAssertTrue(["SafetensorsError", "Failure", "LayerError", "DNNLError", "GoldenFileError", "LimitError"].allSatisfy(found.contains), "\(found)")
        XCTAssertGreaterThanOrEqual(found.count, 27)
    }

    func testLocalizedDescriptionIsTheMessage() {
        var errors: [Error] = []
        func collect(_ body: () throws -> Void) { do { try body() } catch { errors.append(error) } }
        collect { _ = try SafetensorsFile(path: "/nonexistent/a.safetensors") }
        collect { _ = try GoldenVerifier.files(in: ["/nonexistent/golden"]) }
        collect { try Limits.check(threads: 0) }
        collect { try OutputRule().check("/nonexistent/x") }
        XCTAssertEqual(errors.map { "\(type(of: $0))" }, ["SafetensorsError", "GoldenFileError", "LimitError", "Failure"])
        for e in errors {
            XCTAssertEqual(e.localizedDescription, "\(e)")
            XCTAssertFalse(e.localizedDescription.contains("could not be completed"))
        }
    }

    func testFoundationErrorsAreReworded() throws {
        XCTAssertThrowsError(try Data(contentsOf: URL(fileURLWithPath: "/nonexistent/file"))) { error in
            XCTAssertEqual(FileIO.describe(error), "No such file or directory")
            XCTAssertEqual(FileIO.describe(error, path: true), "/nonexistent/file: No such file or directory")
        }
        XCTAssertThrowsError(try JSONSerialization.jsonObject(with: Data("{oops".utf8))) { error in
            XCTAssertFalse(FileIO.describe(error).contains("could not be completed"), FileIO.describe(error))
        }
    }
}

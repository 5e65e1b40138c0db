import AlexNetTraining
import Foundation
import XCTest

/// The layering of docs/DESIGN.md (Layout), held by the build: each library target depends only on
/// the targets below it, so the compiler refuses a layer that reaches up (Model into Training,
/// Data into Model) or a second door to oneDNN. SwiftPM lets a module import the modules of its
/// dependencies' dependencies too, which would hide a missing edge until someone builds the target
/// alone; this test closes that gap by checking every `import` against Package.swift.
final class LayeringTests: XCTestCase {
    /// Modules every target may import: the toolchain's.
    static let system: Set<String> = ["Foundation", "FoundationEssentials", "Dispatch", "Glibc", "Musl", "Darwin", "XCTest"]

    func targets() throws -> [PackageManifest.Target] { try PackageManifest.targets() }

    func imports(under folder: String) throws -> [(file: String, module: String)] {
        let root = Paths.repository.appendingPathComponent(folder)
        var result: [(String, String)] = []
        for case let f as String in try XCTUnwrap(FileManager.default.enumerator(atPath: root.path)) where f.hasSuffix(".swift") {
            let text = try String(contentsOf: root.appendingPathComponent(f), encoding: .utf8)
            for m in text.matches(of: #/(?m)^\s*(?:@\w+\s+)?import\s+(\w+)/#) { result.append(("\(folder)/\(f)", String(m.1))) }
        }
        return result
    }

    func testEveryImportIsADeclaredDependency() throws {
        let all = try targets()
        let swiftTargets = all.filter { !$0.name.hasPrefix("C") }
        XCTAssertEqual(Set(swiftTargets.map(\.name)), ["AlexNetProtos", "AlexNetCore", "AlexNetInterop", "AlexNetKernels",
                                                        "AlexNetData", "AlexNetModel", "AlexNetTraining", "AlexNetTools", "alexnet"])
        var wrong: [String] = []
        var seen = 0
        for target in swiftTargets {
            for (file, module) in try imports(under: target.path) {
                seen += 1
                if !Self.system.contains(module) && !target.dependencies.contains(module) {
                    wrong.append("\(file) imports \(module), not a dependency of \(target.name)")
                }
            }
        }
        XCTAssertGreaterThan(seen, 100, "the scan must see the sources")
        XCTAssertEqual(wrong, [], wrong.joined(separator: "\n"))
    }

    /// The walls themselves: only the kernels reach oneDNN and the C kernels; the layers know
    /// nothing of data or training; data knows nothing of the network; formats nothing above them.
    func testTheWallsAreInThePackage() throws {
        let byName = Dictionary(uniqueKeysWithValues: try targets().map { ($0.name, $0.dependencies) })
        let users = { (module: String) in Set(byName.filter { $0.value.contains(module) }.keys) }
        XCTAssertEqual(users("CDNNL"), ["AlexNetKernels"])
        XCTAssertEqual(users("CKernels"), ["AlexNetKernels"])
        XCTAssertFalse(try XCTUnwrap(byName["AlexNetModel"]).contains("AlexNetData"))
        XCTAssertFalse(try XCTUnwrap(byName["AlexNetModel"]).contains("AlexNetTraining"))
        XCTAssertFalse(try XCTUnwrap(byName["AlexNetData"]).contains("AlexNetModel"))
        XCTAssertFalse(try XCTUnwrap(byName["AlexNetData"]).contains("AlexNetKernels"))
        XCTAssertEqual(Set(try XCTUnwrap(byName["AlexNetInterop"]).filter { $0.hasPrefix("AlexNet") }), Set(["AlexNetCore", "AlexNetProtos"]))
        XCTAssertEqual(try XCTUnwrap(byName["AlexNetCore"]), [])
    }

    /// The scan finds a forbidden import when there is one (a test that cannot fail is a defect).
    func testTheScanSeesImports() throws {
        let kernels = try imports(under: "Sources/Kernels").map(\.module)
        XCTAssertTrue(kernels.contains("CDNNL"))
        let model = try XCTUnwrap(try targets().first { $0.name == "AlexNetModel" })
        XCTAssertFalse(model.dependencies.contains("CDNNL"), "a Model file importing CDNNL would be reported")
    }
}

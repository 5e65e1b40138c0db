import AlexNetTraining
import Foundation
import XCTest

/// The layering of docs/DESIGN.md (Layout), held by the build: each library target depends only on
/// the targets below it, so the compiler refuses a layer that reaches up (Model into Training,
/// Data into Model) or a second door to oneDNN. SwiftPM lets a module import the modules of its
/// dependencies' dependencies too, which would hide a missing edge until someone builds the target
/// alone; this test closes that gap by checking every `import` against Package.swift.
final class LayeringTests: XCTestCase {
    struct Target { var name: String; var path: String; var dependencies: Set<String> }

    /// Modules every target may import: the toolchain's.
    static let system: Set<String> = ["Foundation", "FoundationEssentials", "Dispatch", "Glibc", "Musl", "Darwin", "XCTest"]

    /// The library and executable targets of Package.swift, with their declared dependencies
    /// (a product's module is its name).
    func targets() throws -> [Target] {
        let manifest = try String(contentsOf: Paths.repository.appendingPathComponent("Package.swift"), encoding: .utf8)
        func names(_ text: Substring) -> Set<String> {
            let quoted = try! NSRegularExpression(pattern: #""(\w+)""#)
            let s = String(text)
            return Set(quoted.matches(in: s, range: NSRange(s.startIndex..., in: s)).map { String(s[Range($0.range(at: 1), in: s)!]) })
        }
        // `let library: [Target.Dependency] = [...]` is spliced into some dependency lists.
        let library = try XCTUnwrap(manifest.range(of: #"let library: \[Target.Dependency\] = \[[^\]]*\]"#, options: .regularExpression))
        let libraryNames = names(manifest[library])
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
                dependencies.remove("swift-log"); dependencies.remove("swift-protobuf")
                dependencies.remove("swift-argument-parser"); dependencies.remove("Yams")
                if list.2.contains("package: \"Yams\"") { dependencies.insert("Yams") }
            }
            if block.contains("swiftProtobuf") { dependencies.insert("SwiftProtobuf") }
            found.append(Target(name: String(name), path: String(path), dependencies: dependencies))
        }
        return found
    }

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

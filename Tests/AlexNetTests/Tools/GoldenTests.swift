import AlexNetTools
import AlexNetTraining
import Foundation
import XCTest

/// Every golden tensor (PyTorch, float64) within 1e-4, through the library API.
final class GoldenTests: XCTestCase {
    func verify(_ folder: URL) throws -> [GoldenVerifier.Row] {
        let verifier = try GoldenVerifier(engine: sharedEngine)
        var rows: [GoldenVerifier.Row] = []
        for file in try GoldenVerifier.files(in: [folder.path]) { try verifier.verify(file: file) { rows.append($0) } }
        return rows
    }

    func testGoldenSet() throws {
        let rows = try verify(Paths.golden)
        let checked = rows
        XCTAssertGreaterThanOrEqual(checked.count, 168, "every layer case, both networks' steps and the ten-crop windows")
        for r in checked { XCTAssertLessThanOrEqual(r.error, 1e-4, "\(r.file) \(r.caseName) \(r.tensor)") }
        XCTAssertTrue(checked.contains { $0.file == "tencrop.safetensors" && $0.error == 0 }, "ten-crop is exact")
        for name in ["net_small_paper.safetensors", "net_small_seed.safetensors"] {
            XCTAssertTrue(checked.contains { $0.file == name && $0.tensor == "step2.after.conv1.weight" }, name)
        }
    }

    /// A second set from scripts/make_golden.py: other widths, classes (7), batch (3), input (195) and seed.
    func testOtherConfigurationGoldenSet() throws {
        let rows = try verify(Paths.goldenAlt)
        XCTAssertGreaterThanOrEqual(rows.count, 160)
        for r in rows { XCTAssertLessThanOrEqual(r.error, 1e-4, "\(r.file) \(r.caseName) \(r.tensor)") }
    }

    func testNetworkConfigFromMetadata() throws {
        let (config, batch, sgd) = try GoldenVerifier.networkConfig(
            #"{"variant": "seed", "widths": [1, 2, 3, 4, 5], "hidden": 6, "classes": 7, "batch": 8, "lrn": {"torch_alpha": 0.25}, "sgd": {"lr": 0.5}}"#,
            inputSize: 99, path: "x")
        XCTAssertEqual(config.variant, .seed)
        XCTAssertEqual(config.widths, [1, 2, 3, 4, 5])
        XCTAssertEqual(config.lrn.alpha, 0.25)
        XCTAssertEqual(config.inputSize, 99)
        XCTAssertEqual(batch, 8)
        XCTAssertEqual(sgd["lr"], 0.5)
        XCTAssertThrowsError(try GoldenVerifier.networkConfig(#"{"variant": "other"}"#, inputSize: 1, path: "f.safetensors")) {
            XCTAssertTrue("\($0)".contains("f.safetensors"))
        }
    }
}

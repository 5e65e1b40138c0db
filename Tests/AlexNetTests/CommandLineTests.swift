import AlexNet
import Foundation
import XCTest

/// The real `alexnet` binary: output and exit codes.
final class CommandLineTests: XCTestCase {
    func alexnet(_ args: String...) throws -> (Int32, String, String) { try runProcess(Paths.binary, args) }

    func testVerifyPassesOnTheSharedGoldenSet() throws {
        let (status, out, _) = try alexnet("verify", Paths.golden.path)
        XCTAssertEqual(status, 0, out)
        XCTAssertTrue(out.contains("conv1       dw"), out)
        XCTAssertTrue(out.contains("step2.after.fc8.bias"), out)
        XCTAssertTrue(out.contains(" 0 over 1e-04"), out)
    }

    /// A golden file with one tensor perturbed must fail the run and name the tensor.
    func testVerifyFailsOnAWrongReference() throws {
        let source = try SafetensorsFile(path: Paths.goldenAlt.appendingPathComponent("net_paper.safetensors").path)
        var writer = SafetensorsWriter(metadata: source.metadata)
        for name in source.names {
            if source.tensors[name]!.dtype == .i64 {
                writer.add(name, integers: try source.integers(name), shape: source.tensors[name]!.shape)
                continue
            }
            var t = try source.tensor(name)
            if name == "step1.grad.fc7.weight" { t.data[0] += 0.1 * (t.data.map(abs).max() ?? 1) }
            writer.add(name, t)
        }
        let path = try Paths.temporaryDirectory().appendingPathComponent("net_paper.safetensors").path
        try writer.write(to: path)
        let (status, out, _) = try alexnet("verify", "--quiet", path)
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(out.contains("step1.grad.fc7.weight") && out.contains("FAIL"), out)
        XCTAssertFalse(out.contains("step1.grad.fc6.weight"), "--quiet prints failing rows only")
    }

    func testVerifyReportsMissingAndBrokenFiles() throws {
        var (status, _, err) = try alexnet("verify", "/nonexistent/golden")
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(err.contains("/nonexistent/golden"), err)
        let bad = try Paths.temporaryDirectory().appendingPathComponent("bad.safetensors")
        try Data("not a safetensors file at all".utf8).write(to: bad)
        (status, _, err) = try alexnet("verify", bad.path)
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(err.contains(bad.path), err)
    }

    func testBenchJSON() throws {
        let (status, out, err) = try alexnet("bench", "--batch", "2", "--iters", "1", "--warmup", "0", "--json", "--layers")
        XCTAssertEqual(status, 0, err)
        let last = out.split(separator: "\n").last.map(String.init) ?? ""
        let json = try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any]
        for key in ["train_images_per_second", "inference_images_per_second", "latency_ms_batch1", "train_gflops_per_second",
                    "peak_rss_bytes", "threads", "batch"] {
            XCTAssertNotNil(json?[key], "missing \(key) in \(last)")
        }
        XCTAssertEqual(json?["batch"] as? Int, 2)
        XCTAssertGreaterThan(json?["train_images_per_second"] as? Double ?? 0, 0)
        XCTAssertTrue(out.contains("conv2") && out.contains("SGD update"), "--layers prints the per-layer table")
    }

    func testBadFlagsAreRejectedWithAMessage() throws {
        var (status, _, err) = try alexnet("bench", "--batch", "0")
        XCTAssertEqual(status, 64)
        XCTAssertTrue(err.contains("--batch"), err)
        (status, _, err) = try alexnet("bench", "--variant", "resnet")
        XCTAssertEqual(status, 64)
        XCTAssertTrue(err.contains("resnet"), err)
        (status, _, err) = try alexnet("verify", "--threads", "0", Paths.golden.path)
        XCTAssertEqual(status, 64)
        XCTAssertTrue(err.contains("--threads"), err)
    }

    func testHelpExplainsEveryCommand() throws {
        let (status, out, _) = try alexnet("--help")
        XCTAssertEqual(status, 0)
        XCTAssertTrue(out.contains("verify") && out.contains("bench"), out)
    }
}

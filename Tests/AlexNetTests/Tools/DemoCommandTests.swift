import AlexNetTraining
import CZlib
import Foundation
import XCTest

/// `alexnet demo` end to end on a tiny Fashion-MNIST look-alike (the real one is the README's
/// quick start; CI runs this instead): every step, and the JSON on the last line.
final class DemoCommandTests: XCTestCase {
    func testDemoRunsEveryStepAndEndsWithJSON() throws {
        let dir = try Paths.temporaryDirectory()
        let source = dir.appendingPathComponent("idx")
        try FileManager.default.createDirectory(at: source, withIntermediateDirectories: true)
        _ = try IDXFixture(source, name: "train", count: 60, rows: 28, columns: 28, classes: 10, gzip: true, seed: 11)
        _ = try IDXFixture(source, name: "t10k", count: 20, rows: 28, columns: 28, classes: 10, gzip: true, seed: 12)
        let work = dir.appendingPathComponent("work").path
        let (status, out, err) = try runProcess(Paths.binary, [
            "demo", "--source", source.path, "--work", work,
            "--set", "training.epochs=1", "--set", "model.widths=[4,8,8,8,8]", "--set", "model.hidden=16",
            "--set", "training.batch_size=16", "--set", "training.eval_batch_size=8",
            "--set", "path.log_dir=\(work)/runs", "--set", "path.checkpoint_dir=\(work)/checkpoints",
        ])
        XCTAssertEqual(status, 0, err)
        for step in 1...6 { XCTAssertTrue(err.contains("demo \(step)/6"), "step \(step): \(err)") }
        let last = out.split(separator: "\n").last.map(String.init) ?? ""
        let json = try JSONSerialization.jsonObject(with: Data(last.utf8)) as! [String: Any]
        XCTAssertEqual(Set(json.keys), ["top1_error", "top5_error", "seconds", "log_dir", "checkpoint"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: json["checkpoint"] as! String))
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(work)/fashion-mnist-55/stats.safetensors"))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: "\(work)/fashion-mnist-55/val").count, 10)
        XCTAssertTrue(out.contains("ten-crop: top-1 error") && out.contains("TensorBoard: tensorboard --logdir"), out)
    }
}

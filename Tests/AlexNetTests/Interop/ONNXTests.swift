import AlexNetCore
import AlexNetInterop
import AlexNetModel
import AlexNetTraining
import Foundation
import XCTest

/// `alexnet export --onnx`: the graph passes onnx.checker's full check, and onnxruntime's logits on
/// it equal PyTorch's (the seed's and torchvision's files) or this project's network (the paper
/// variant's LRN; torchvision's adaptive pool as an AveragePool) within 1e-4, at a fixed and a
/// dynamic batch. The ONNX side is scripts/check_onnx.py, run with the test Python (onnx and
/// onnxruntime from PyPI).
final class ONNXTests: XCTestCase {
    let torch = Paths.torch

    /// Exports `weights` with `flags`, runs the model on `inputs` and returns (its report, the logits by input name).
    private func export(_ weights: String, _ flags: [String], inputs: [String: Tensor], in dir: URL,
                        file: StaticString = #filePath, line: UInt = #line) throws -> ([String: Any], [String: Tensor]) {
        let python = try Paths.python(needing: "onnx, onnxruntime and safetensors")
        let name = URL(fileURLWithPath: weights).deletingPathExtension().lastPathComponent + flags.joined().filter(\.isLetter)
        let model = dir.appendingPathComponent(name + ".onnx").path
        let (status, out, err) = try runProcess(Paths.binary, ["export", "--onnx", model, "-w", weights] + flags)
        XCTAssertEqual(status, 0, out + err, file: file, line: line)
        XCTAssertTrue(out.contains("opset 13"), out, file: file, line: line)
        var w = SafetensorsWriter()
        for (k, t) in inputs { w.add(k, t) }
        let inPath = dir.appendingPathComponent(name + "-in.safetensors").path, outPath = dir.appendingPathComponent(name + "-out.safetensors").path
        try w.write(to: inPath)
        let (code, json, pyErr) = try runProcess(python, [Paths.repository.appendingPathComponent("scripts/check_onnx.py").path, model, inPath, outPath])
        XCTAssertEqual(code, 0, pyErr, file: file, line: line)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any], json, file: file, line: line)
        let outputs = try SafetensorsFile(path: outPath)
        return (report, try Dictionary(uniqueKeysWithValues: inputs.keys.map { ($0, try outputs.tensor($0)) }))
    }

    private func rows(_ t: Tensor, _ range: Range<Int>) -> Tensor {
        let row = t.count / t.shape[0]
        return Tensor(shape: [range.count] + t.shape.dropFirst(), data: Array(t.data[(range.lowerBound * row)..<(range.upperBound * row)]))
    }

    func testSeedAndTorchvisionFilesGivePyTorchsLogitsInONNXRuntime() throws {
        let dir = try Paths.temporaryDirectory()
        let expected = try SafetensorsFile(path: torch.appendingPathComponent("expected.safetensors").path)
        let x = try expected.tensor("x")
        for name in ["seed_small", "torchvision_small"] {
            let want = try expected.tensor(name + ".logits")
            let path = torch.appendingPathComponent(name + ".pt").path
            let (fixed, fixedOut) = try export(path, ["--batch", "2"], inputs: ["x": x], in: dir)
            XCTAssertEqual(fixed["input"] as? [Int], [2, 3, 224, 224], name)
            XCTAssertEqual(fixed["output"] as? [Int], [2, 10], name)
            XCTAssertEqual(fixed["opset"] as? [Int], [13], name)
            XCTAssertEqual(fixed["initializers"] as? Int, 16, name)
            let ops = try XCTUnwrap(fixed["ops"] as? [String])
            XCTAssertFalse(ops.contains("Dropout"), "dropout is left out at inference")
            XCTAssertEqual(ops.filter { $0 == "Conv" }.count, 5)
            XCTAssertEqual(ops.filter { $0 == "Gemm" }.count, 3)
            if name == "seed_small" {
                XCTAssertEqual(ops.filter { $0 == "LRN" }.count, 2)
                XCTAssertEqual(ops.last, "Relu", "the seed's ReLU after fc8")
            } else {
                XCTAssertFalse(ops.contains("LRN"))
                XCTAssertFalse(ops.contains("AveragePool"), "6×6 maps at 224: the adaptive pool is the identity")
                XCTAssertEqual(ops.last, "Gemm")
                let metadata = try XCTUnwrap(fixed["metadata"] as? [String: String])
                XCTAssertEqual(metadata["variant"], "torchvision")
                XCTAssertNotNil(metadata["channel_std"], "torchvision's normalisation travels with the graph")
            }
            assertClose(try XCTUnwrap(fixedOut["x"]), want, 1e-4, "\(name), batch 2")

            let (dynamic, dynamicOut) = try export(path, ["--dynamic-batch"], inputs: ["all": x, "one": rows(x, 1..<2)], in: dir)
            XCTAssertEqual(dynamic["input"] as? [AnyHashable], ["batch", 3, 224, 224], name)
            assertClose(try XCTUnwrap(dynamicOut["all"]), want, 1e-4, "\(name), dynamic batch of 2")
            assertClose(try XCTUnwrap(dynamicOut["one"]), rows(want, 1..<2), 1e-4, "\(name), dynamic batch of 1")
        }
    }

    /// The paper variant's LRN (ONNX alpha = PyTorch's); and torchvision's adaptive pool where
    /// it is not the identity: 12×12 maps to 6×6 (an AveragePool), 2×2 to 6×6 (a nearest
    /// Resize), or 4×4 to 6×6, which cannot be expressed and is refused with the reason.
    func testPaperLRNAndAdaptivePoolMatchThisNetwork() throws {
        let dir = try Paths.temporaryDirectory()
        let cases: [(NetworkConfig, String)] = [
            (NetworkConfig(widths: [8, 16, 16, 16, 8], hidden: 32, classes: 5, inputSize: 67), "LRN"),
            (NetworkConfig(variant: .torchvision, widths: [4, 8, 8, 8, 8], hidden: 16, classes: 3, inputSize: 415, conv1Padding: 2), "AveragePool"),
            (NetworkConfig(variant: .torchvision, widths: [4, 8, 8, 8, 8], hidden: 16, classes: 3, inputSize: 100, conv1Padding: 2), "Resize"),
        ]
        for (i, (config, op)) in cases.enumerated() {
            let params = try Network.makeParameters(config)
            Initialization.pytorch.apply(to: params, seed: UInt64(i + 1))
            let weights = dir.appendingPathComponent("net\(i).safetensors").path
            var w = SafetensorsWriter(metadata: ["variant": config.variant.rawValue, "input_size": "\(config.inputSize)",
                                                 "conv1_stride": "\(config.conv1Stride)", "conv1_padding": "\(config.conv1Padding)"])
            for e in params.entries { w.add(e.name, try params.tensor(e.name)) }
            try w.write(to: weights)
            let x = Tensor(randomNormal: [2, 3, config.inputSize, config.inputSize], std: 60, seed: UInt64(10 + i))
            let net = try Network(config: config, batch: 2, mode: .inference, parameters: params, engine: sharedEngine)
            try net.setInput(x)
            try net.forward()
            let (report, out) = try export(weights, ["--batch", "2"], inputs: ["x": x], in: dir)
            XCTAssertTrue((report["ops"] as? [String] ?? []).contains(op), "\(report)")
            assertClose(try XCTUnwrap(out["x"]), net.logitsTensor(), 1e-4, "\(config.variant) with \(op)")
        }

        let odd = NetworkConfig(variant: .torchvision, widths: [4, 8, 8, 8, 8], hidden: 16, classes: 3, inputSize: 159, conv1Padding: 2)
        XCTAssertEqual(try odd.shapes().first { $0.spec.name == "avgpool" }?.input, [8, 4, 4])
        XCTAssertThrowsError(try ONNXExport.model(network: odd, parameters: try Network.makeParameters(odd), batch: .fixed(1))) {
            XCTAssertTrue("\($0)".contains("4×4 maps to 6×6"), "\($0)")
        }
        let (status, _, err) = try runProcess(Paths.binary, ["export", "--onnx", dir.appendingPathComponent("x.onnx").path,
                                                             "-w", torch.appendingPathComponent("seed_small.pt").path, "--batch", "2", "--dynamic-batch"])
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(err.contains("exclude each other"), err)
    }
}

import AlexNetCore
import AlexNetKernels
import AlexNetModel
import AlexNetTools
import Foundation
import XCTest

/// Each error names its real cause with its own type: a bad hyperparameter is not a shape error, a
/// label out of range names the label, a shape mismatch is not oneDNN's, a missing file is a file
/// error naming the path.
final class LayerErrorTests: XCTestCase {
    let engine = sharedEngine

    /// Asserts `body` throws an `E` whose description contains every one of `words`.
    func assertThrows<E: Error>(_ type: E.Type, _ words: [String], file: StaticString = #filePath, line: UInt = #line,
                                _ body: () throws -> Void) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertTrue(error is E, "\(Swift.type(of: error)) instead of \(E.self): \(error)", file: file, line: line)
            for w in words { XCTAssertTrue("\(error)".contains(w), "'\(error)' does not name \(w)", file: file, line: line) }
        }
    }

    func testDropoutProbabilityIsAHyperparameterError() throws {
        let input = try TensorLayout.plain([2, 8])
        for p: Float in [1, -0.25, 1.5] {
            assertThrows(HyperparameterError.self, ["dropout6", "probability", "\(p)", "[0, 1)"]) {
                _ = try Dropout(name: "dropout6", probability: p, input: input, engine: engine)
            }
        }
    }

    func testLabelOutOfRangeNamesLabelIndexAndClassCount() throws {
        let loss = try SoftmaxCrossEntropy(batch: 5, classes: 13, engine: engine)
        let logits = [Float](repeating: 0, count: 65)
        for (labels, bad, index) in [([0, 1, 2, 3, 13], 13, 4), ([0, -1, 2, 3, 4], -1, 1)] {
            XCTAssertThrowsError(try logits.withUnsafeBufferPointer { try loss.forward(logits: $0.baseAddress!, labels: labels) }) {
                guard let e = $0 as? LabelError else { return XCTFail("\(type(of: $0)) instead of LabelError: \($0)") }
                XCTAssertEqual([e.label, e.index, e.classes], [bad, index, 13])
                XCTAssertTrue("\(e)".contains("label \(bad)") && "\(e)".contains("sample \(index)") && "\(e)".contains("13 classes"), "\(e)")
            }
        }
        assertThrows(ShapeError.self, ["labels", "[4]", "[5]"]) {
            _ = try logits.withUnsafeBufferPointer { try loss.forward(logits: $0.baseAddress!, labels: [0, 1, 2, 3]) }
        }
    }

    func testShapeMismatchesAreShapeErrorsNotOneDNNs() throws {
        let tensor = try DeviceTensor.plain([2, 3], engine: engine)
        assertThrows(ShapeError.self, ["[3, 2]", "[2, 3]"]) { try tensor.write(Tensor(zeros: [3, 2])) }
        assertThrows(ShapeError.self, ["[2, 2, 2, 2, 2, 2, 2]", "rank"]) { _ = try TensorLayout.plain([2, 2, 2, 2, 2, 2, 2]) }
        assertThrows(ShapeError.self, ["[0, 3]"]) { _ = try TensorLayout.plain([0, 3]) }

        let config = NetworkConfig(widths: [8, 8, 8, 8, 8], hidden: 16, classes: 3, inputSize: 67)
        let net = try Network(config: config, batch: 2, mode: .inference, parameters: try Network.makeParameters(config), engine: engine)
        assertThrows(ShapeError.self, ["network input", "[1, 3, 67, 67]", "[2, 3, 67, 67]"]) {
            try net.setInput(Tensor(zeros: [1, 3, 67, 67]))
        }
    }

    func testLayersRejectInputsOfTheWrongShape() throws {
        let params = ParameterStore([("c.weight", [4, 3, 3, 3]), ("c.bias", [4]), ("fc.weight", [5, 7]), ("fc.bias", [5])])
        let g = Conv2d.Geometry(inChannels: 3, outChannels: 4, kernel: 3)
        assertThrows(ShapeError.self, ["conv1 input", "[1, 2, 5, 5]", "(N, 3, H, W)"]) {
            _ = try Conv2d(name: "conv1", geometry: g, input: TensorLayout.plain([1, 2, 5, 5]), fusedReLU: false, mode: .training,
                           parameters: params, engine: engine)
        }
        assertThrows(ShapeError.self, ["conv1 input", "[1, 3, 2, 5]"]) {
            _ = try Conv2d(name: "conv1", geometry: g, input: TensorLayout.plain([1, 3, 2, 5]), fusedReLU: false, mode: .training,
                           parameters: params, engine: engine)
        }
        assertThrows(ShapeError.self, ["fc input", "[2, 6]", "(N, 7)"]) {
            _ = try Linear(name: "fc", inFeatures: 7, outFeatures: 5, input: TensorLayout.plain([2, 6]), fusedReLU: false,
                           mode: .training, parameters: params, engine: engine)
        }
        assertThrows(ShapeError.self, ["pool input", "[1, 4, 2, 9]"]) {
            _ = try MaxPool(name: "pool", input: TensorLayout.plain([1, 4, 2, 9]), mode: .training, engine: engine)
        }
        assertThrows(ShapeError.self, ["pool input", "[4, 9]"]) {
            _ = try MaxPool(name: "pool", input: TensorLayout.plain([4, 9]), mode: .training, engine: engine)
        }
        assertThrows(ShapeError.self, ["lrn input", "[4, 9]"]) {
            _ = try LocalResponseNorm(name: "lrn", constants: .paper, input: TensorLayout.plain([4, 9]), mode: .training, engine: engine)
        }
        assertThrows(ShapeError.self, ["flatten input", "[4, 9]"]) {
            _ = try Flatten(input: TensorLayout.plain([4, 9]), mode: .training, engine: engine)
        }
        assertThrows(ShapeError.self, ["d input", "[1, 4, 2, 9]", "(N, F)"]) {
            _ = try Dropout(name: "d", input: TensorLayout.plain([1, 4, 2, 9]), engine: engine)
        }
        let dropout = try Dropout(name: "d", input: TensorLayout.plain([3, 11]), engine: engine)
        assertThrows(ShapeError.self, ["d mask", "[11, 3]", "[3, 11]"]) { try dropout.setMask(Tensor(zeros: [11, 3])) }
        assertThrows(ShapeError.self, ["d input", "[2, 11]", "[3, 11]"]) {
            try dropout.forward(try DeviceTensor.plain([2, 11], engine: self.engine))
        }
    }

    /// Impossible hyperparameters are refused by name before any arithmetic uses them (a stride of
    /// 0 would divide by zero).
    func testImpossibleHyperparametersNameTheValue() throws {
        let input = try TensorLayout.plain([1, 3, 9, 9])
        for (g, words) in [(Conv2d.Geometry(inChannels: 3, outChannels: 4, kernel: 3, stride: 0), ["stride", "0"]),
                           (Conv2d.Geometry(inChannels: 3, outChannels: 4, kernel: 0), ["kernel size", "0"]),
                           (Conv2d.Geometry(inChannels: 3, outChannels: 0, kernel: 3), ["output channel count", "0"]),
                           (Conv2d.Geometry(inChannels: 3, outChannels: 4, kernel: 3, padding: -1), ["padding", "-1"]),
                           (Conv2d.Geometry(inChannels: 3, outChannels: 4, kernel: 3, padding: 3), ["padding", "3", "0..<3"])] {
            let params = ParameterStore([("c.weight", [max(g.outChannels, 1), 3, max(g.kernel, 1), max(g.kernel, 1)]), ("c.bias", [4])])
            assertThrows(HyperparameterError.self, ["c:"] + words) {
                _ = try Conv2d(name: "c", geometry: g, input: input, fusedReLU: false, mode: .training, parameters: params, engine: engine)
            }
        }
        assertThrows(HyperparameterError.self, ["pool", "stride", "0"]) {
            _ = try MaxPool(name: "pool", stride: 0, input: input, mode: .training, engine: engine)
        }
        assertThrows(HyperparameterError.self, ["lrn", "size", "4"]) {
            _ = try LocalResponseNorm(name: "lrn", constants: .init(size: 4, alpha: 1e-4), input: input, mode: .training, engine: engine)
        }
        let params = ParameterStore([("fc.weight", [5, 7]), ("fc.bias", [5])])
        assertThrows(HyperparameterError.self, ["fc", "output feature count", "0"]) {
            _ = try Linear(name: "fc", inFeatures: 7, outFeatures: 0, input: TensorLayout.plain([2, 7]), fusedReLU: false,
                           mode: .training, parameters: params, engine: engine)
        }
    }

    func testInferenceNetworkRefusesTheLossByName() throws {
        let config = NetworkConfig(widths: [8, 8, 8, 8, 8], hidden: 16, classes: 3, inputSize: 67)
        let net = try Network(config: config, batch: 1, mode: .inference, parameters: try Network.makeParameters(config), engine: engine)
        assertThrows(LayerError.self, ["network", "inference"]) { _ = try net.loss(labels: [0]) }
        assertThrows(LayerError.self, ["network", "inference"]) { try net.backward() }
    }

    func testMissingGoldenPathIsAFileError() throws {
        let path = "/nonexistent/golden-\(getpid())"
        assertThrows(GoldenFileError.self, [path, "no such file"]) { _ = try GoldenVerifier.files(in: [path]) }
    }

    func testPlainFloatsOnlyForPlainTensors() throws {
        let plain = try DeviceTensor.plain([2, 5], engine: engine)
        XCTAssertEqual(try plain.plainFloats().count, 10)
        try plain.write(Tensor(shape: [2, 5], data: (0..<10).map(Float.init)))
        XCTAssertEqual(Array(try plain.plainFloats()), (0..<10).map(Float.init))
        XCTAssertEqual(try plain.read().data, (0..<10).map(Float.init))
    }
}

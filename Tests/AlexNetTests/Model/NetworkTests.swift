import AlexNetCore
import AlexNetKernels
import AlexNetModel
import AlexNetTraining
import XCTest

final class InitializationTests: XCTestCase {
    func stats(_ t: Tensor) -> (mean: Double, std: Double, min: Float, max: Float) {
        let n = Double(t.count)
        let mean = t.data.reduce(0.0) { $0 + Double($1) } / n
        let variance = t.data.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / n
        return (mean, variance.squareRoot(), t.data.min()!, t.data.max()!)
    }

    func testPaperInitialisation() throws {
        let params = try Network.makeParameters(NetworkConfig())
        Initialization.paper.apply(to: params, seed: 3)
        for name in ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"] {
            let s = stats(try params.tensor("\(name).weight"))
            // N(0, 0.01²): conv1 has 34 848 samples, so the sample std is within 1 % and the mean within 1e-4.
            XCTAssertEqual(s.std, 0.01, accuracy: 1e-4, "\(name).weight std")
            XCTAssertEqual(s.mean, 0, accuracy: 2e-4, "\(name).weight mean")
            let bias = try params.tensor("\(name).bias")
            let expected: Float = ["conv2", "conv4", "conv5", "fc6", "fc7"].contains(name) ? 1 : 0
            XCTAssertTrue(bias.data.allSatisfy { $0 == expected }, "\(name).bias must be all \(expected) (paper section 5)")
        }
    }

    func testPyTorchInitialisation() throws {
        let config = NetworkConfig(variant: .seed)
        let params = try Network.makeParameters(config)
        Initialization.pytorch.apply(to: params, seed: 4)
        for e in params.entries {
            let layer = String(e.name.split(separator: ".")[0])
            let fanIn = try params.entry("\(layer).weight").shape.dropFirst().reduce(1, *)
            let bound = 1 / Double(fanIn).squareRoot()
            let s = stats(try params.tensor(e.name))
            // Float rounding of a draw next to the bound may cross it by half an ulp.
            XCTAssertLessThanOrEqual(Double(s.max), bound * (1 + 1e-7), e.name)
            XCTAssertGreaterThanOrEqual(Double(s.min), -bound * (1 + 1e-7), e.name)
            if e.count >= 10_000 {
                // U(−b, b) has std b/√3.
                XCTAssertEqual(s.std, bound / 3.0.squareRoot(), accuracy: 0.02 * bound, "\(e.name) std")
                XCTAssertEqual(s.mean, 0, accuracy: 0.02 * bound, "\(e.name) mean")
                XCTAssertGreaterThan(Double(s.max), 0.99 * bound, "\(e.name) should reach its bound")
            }
        }
    }

    func testInitialisationIsSeeded() throws {
        let a = try Network.makeParameters(NetworkConfig(widths: [4, 8, 8, 8, 8], hidden: 16, classes: 3))
        let b = try Network.makeParameters(NetworkConfig(widths: [4, 8, 8, 8, 8], hidden: 16, classes: 3))
        Initialization.paper.apply(to: a, seed: 9)
        Initialization.paper.apply(to: b, seed: 9)
        XCTAssertEqual(try a.tensor("conv3.weight"), try b.tensor("conv3.weight"))
        Initialization.paper.apply(to: b, seed: 10)
        XCTAssertNotEqual(try a.tensor("conv3.weight"), try b.tensor("conv3.weight"))
    }
}

final class NetworkTests: XCTestCase {
    let engine = sharedEngine

    func testFullSizeShapesAndParameterCount() throws {
        let config = NetworkConfig()
        let shapes = try config.shapes()
        XCTAssertEqual(shapes.first { $0.spec.name == "pool5" }?.output, [256, 6, 6])
        XCTAssertEqual(config.flatFeatures, 9216)
        // One tower: 62 378 344 parameters (torchvision's AlexNet has 61.1 M with its narrower trunk).
        XCTAssertEqual(try Network.makeParameters(config).parameterCount, 62_378_344)
        XCTAssertEqual(config.parameterCount, 62_378_344)
        // The cost model of docs/DESIGN.md, layer by layer (millions of multiply-accumulates per image), and about 1.139 G in all.
        let macs = Dictionary(uniqueKeysWithValues: shapes.map { ($0.spec.name, $0.spec.multiplyAccumulates(output: $0.output) / 1e6) })
        for (layer, want) in [("conv1", 109.3), ("conv2", 447.9), ("conv3", 149.5), ("conv4", 224.3), ("conv5", 149.5),
                              ("fc6", 37.7), ("fc7", 16.8), ("fc8", 4.1)] {
            XCTAssertEqual(macs[layer]!, want, accuracy: 0.05, layer)
        }
        XCTAssertEqual(config.forwardMACs / 1e9, 1.139, accuracy: 0.001)
        XCTAssertEqual(macs.values.filter { $0 > 0 }.count, 8, "only the convolutions and linear layers count")
    }

    /// The seed's and torchvision's module paths, derived from their layer lists, are those of the
    /// name tables in docs/DESIGN.md, Files.
    func testNameTablesAreTheDesignDocs() {
        XCTAssertEqual(ParameterNaming.layers, ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"])
        XCTAssertEqual(ParameterNaming.seed.modules, ["block1.0", "block2.0", "block3.0", "block4.0", "block5.0", "head.2", "head.5", "head.7"])
        XCTAssertEqual(ParameterNaming.torchvision.modules, ["features.0", "features.3", "features.6", "features.8", "features.10",
                                                             "classifier.1", "classifier.4", "classifier.6"])
    }

    func testTorchvisionArchitecture() throws {
        let config = NetworkConfig.torchvision()
        XCTAssertEqual(config.layers.map(\.name), ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "conv3", "relu3", "conv4", "relu4",
                                                   "conv5", "relu5", "pool5", "avgpool", "flatten", "dropout5", "fc6", "relu6",
                                                   "dropout6", "fc7", "relu7", "fc8"])
        // torchvision's alexnet: 61 100 840 parameters.
        XCTAssertEqual(try Network.makeParameters(config).parameterCount, 61_100_840)
        XCTAssertEqual(config.flatFeatures, 9216)
        // Any input size reaches fc6 as 6×6 maps: at 100 pixels pool5 is 2×2 and the pool repeats it.
        var small = NetworkConfig(variant: .torchvision, widths: [8, 8, 16, 16, 8], hidden: 16, classes: 3, inputSize: 100, conv1Padding: 2)
        XCTAssertEqual(try small.shapes().first { $0.spec.name == "avgpool" }?.input, [8, 2, 2])
        XCTAssertEqual(small.flatFeatures, 8 * 36)
        let params = try Network.makeParameters(small)
        Initialization.pytorch.apply(to: params, seed: 3)
        let net = try Network(config: small, batch: 2, mode: .training, parameters: params, engine: engine)
        XCTAssertTrue(net.layers.contains { $0 is AdaptiveAveragePool })
        XCTAssertFalse(net.layers.contains { $0 is LocalResponseNorm })
        try net.setInput(Tensor(randomNormal: [2, 3, 100, 100], std: 50, seed: 4))
        try net.forward()
        XCTAssertTrue(try net.loss(labels: [0, 2]).isFinite)
        try net.backward()
        XCTAssertGreaterThan(try params.tensor("conv1.weight", grad: true).data.map(abs).max()!, 0, "gradients reach conv1 through the pool")
        small.inputSize = 224
        let full = try Network(config: small, batch: 1, mode: .inference, parameters: try Network.makeParameters(small), engine: engine)
        XCTAssertFalse(full.layers.contains { $0 is AdaptiveAveragePool }, "6×6 maps: the pool is the identity and left out")
    }

    func testLayerOrderFollowsTheVariant() throws {
        let small = NetworkConfig(widths: [4, 8, 8, 8, 8], hidden: 16, classes: 5, inputSize: 67)
        let params = try Network.makeParameters(small)
        var seed = small
        seed.variant = .seed
        let paperNet = try Network(config: small, batch: 2, mode: .training, parameters: params, engine: engine)
        let seedNet = try Network(config: seed, batch: 2, mode: .training, parameters: params, engine: engine)
        XCTAssertEqual(paperNet.layers.suffix(5).map(\.name), ["fc6", "dropout6", "fc7", "dropout7", "fc8"])
        XCTAssertEqual(seedNet.layers.suffix(6).map(\.name), ["flatten", "dropout5", "fc6", "dropout6", "fc7", "fc8"])
        let inference = try Network(config: small, batch: 2, mode: .inference, parameters: params, engine: engine)
        XCTAssertFalse(inference.layers.contains { $0 is Dropout }, "dropout is the identity at evaluation")
    }

    func testSeedVariantEndsInReLU() throws {
        let config = NetworkConfig(widths: [4, 8, 8, 8, 8], hidden: 16, classes: 50, inputSize: 67)
        let params = try Network.makeParameters(config)
        Initialization.pytorch.apply(to: params, seed: 1)
        let x = Tensor(randomNormal: [3, 3, 67, 67], std: 50, seed: 2)
        func logits(_ variant: Variant) throws -> [Float] {
            var c = config
            c.variant = variant
            let net = try Network(config: c, batch: 3, mode: .inference, parameters: params, engine: engine)
            try net.setInput(x)
            try net.forward()
            return net.logitsTensor().data
        }
        XCTAssertTrue(try logits(.seed).allSatisfy { $0 >= 0 })
        XCTAssertTrue(try logits(.paper).contains { $0 < 0 }, "the paper's logits are not rectified")
    }

    /// oneDNN may pick other kernels for other batch sizes; each image's logits must not depend on it.
    func testFullSizeLogitsDoNotDependOnBatchSize() throws {
        let config = NetworkConfig()
        let params = try Network.makeParameters(config)
        Initialization.pytorch.apply(to: params, seed: 5)
        let x = Tensor(randomNormal: [16, 3, 224, 224], std: 50, seed: 6)
        let batch = try Network(config: config, batch: 16, mode: .inference, parameters: params, engine: engine)
        try batch.setInput(x)
        try batch.forward()
        let single = try Network(config: config, batch: 1, mode: .inference, parameters: params, engine: engine)
        for i in [0, 15] {
            try single.setInput(Tensor(shape: [1, 3, 224, 224], data: Array(x.data[(i * 150_528)..<((i + 1) * 150_528)])))
            try single.forward()
            let all = batch.logitsTensor()
            assertClose(single.logitsTensor(), Tensor(shape: [1, 1000], data: Array(all.data[(i * 1000)..<((i + 1) * 1000)])),
                        1e-5, "image \(i)")
        }
    }

    func testTrainingReducesTheLossOnAFixedBatch() throws {
        // No dropout, so that 8 images can be memorised in a few dozen steps.
        let config = NetworkConfig(widths: [8, 16, 16, 16, 16], hidden: 32, classes: 4, inputSize: 67, dropout: 0)
        let params = try Network.makeParameters(config)
        Initialization.pytorch.apply(to: params, seed: 7)
        let net = try Network(config: config, batch: 8, mode: .training, parameters: params, engine: engine)
        try net.setInput(Tensor(randomNormal: [8, 3, 67, 67], std: 20, seed: 8))
        let labels = [0, 1, 2, 3, 0, 1, 2, 3]
        let sgd = SGD(for: params, learningRate: 0.01)
        var losses: [Float] = []
        for step in 0..<60 {
            net.drawDropoutMasks(seed: 9, epoch: step, samples: Array(0..<8))
            try net.forward()
            losses.append(try net.loss(labels: labels))
            try net.backward()
            sgd.step(params)
        }
        XCTAssertLessThan(losses.suffix(5).reduce(0, +) / 5, 0.85 * losses[0], "losses: \(losses)")
    }

    func testBadConfigurationsAreRejected() throws {
        XCTAssertThrowsError(try NetworkConfig(widths: [1, 2, 3]).validate())
        XCTAssertThrowsError(try NetworkConfig(classes: 1).validate())
        XCTAssertThrowsError(try NetworkConfig(inputSize: 30).validate())
        // Values a file or configuration may hold that used to divide by zero, overflow or exhaust memory.
        func rejected(_ c: NetworkConfig, _ word: String, line: UInt = #line) {
            XCTAssertThrowsError(try c.validate(), line: line) { XCTAssertTrue("\($0)".contains(word), "\($0)", line: line) }
        }
        rejected(NetworkConfig(conv1Stride: 0), "stride")
        rejected(NetworkConfig(conv1Kernel: 0), "kernel")
        rejected(NetworkConfig(conv1Padding: -1), "padding")
        rejected(NetworkConfig(hidden: -5), "hidden")
        rejected(NetworkConfig(hidden: 1 << 40), "hidden")
        rejected(NetworkConfig(widths: [96, 256, 384, 384, Int.max]), "widths")
        rejected(NetworkConfig(classes: 1 << 62), "class")
        rejected(NetworkConfig(inputSize: Int.max), "input size")
        rejected(NetworkConfig(dropout: .nan), "dropout")
        rejected(NetworkConfig(lrnAlpha: .infinity), "alpha")
        rejected(NetworkConfig(widths: [65536, 65536, 65536, 65536, 65536], hidden: 1 << 20), "parameters")
        XCTAssertNoThrow(try NetworkConfig().validate())
        XCTAssertThrowsError(try Network(config: NetworkConfig(), batch: 0, mode: .inference,
                                         parameters: try Network.makeParameters(NetworkConfig()), engine: engine))
        // The parameters' memory is counted for the use: 4 bytes each for inference, 12 for fp32
        // training (value, gradient, momentum), 8 for bf16 (bfloat16 gradient and momentum).
        let budget = Int(ProcessInfo.processInfo.physicalMemory / 2)
        for (count, inference, bf16, fp32) in [(budget / 6, true, false, false), (budget / 10, true, true, false), (budget / 13, true, true, true)] {
            for (use, fits) in [(nil, inference), (Precision.bf16, bf16), (Precision.fp32, fp32)] {
                let what = "\(count) parameters, \(use?.rawValue ?? "inference")"
                if fits {
                    XCTAssertNoThrow(try NetworkConfig.checkParameterMemory(count: count, training: use), what)
                } else {
                    XCTAssertThrowsError(try NetworkConfig.checkParameterMemory(count: count, training: use), what) {
                        XCTAssertTrue("\($0)".contains("\(count) parameters") && "\($0)".contains("GB"), "\($0)")
                    }
                }
            }
        }
        let wrong = ParameterStore([("conv1.weight", [1])])
        XCTAssertThrowsError(try Network(config: NetworkConfig(), batch: 1, mode: .inference, parameters: wrong, engine: engine)) {
            XCTAssertTrue("\($0)".contains("conv1.weight"), "\($0)")
        }
    }
}

import AlexNetCore
import AlexNetData
import AlexNetInterop
import AlexNetKernels
import AlexNetModel
import AlexNetTools
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
        let params = Network.makeParameters(NetworkConfig())
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
        let params = Network.makeParameters(config)
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
        let a = Network.makeParameters(NetworkConfig(widths: [4, 8, 8, 8, 8], hidden: 16, classes: 3))
        let b = Network.makeParameters(NetworkConfig(widths: [4, 8, 8, 8, 8], hidden: 16, classes: 3))
        Initialization.paper.apply(to: a, seed: 9)
        Initialization.paper.apply(to: b, seed: 9)
        XCTAssertEqual(try a.tensor("conv3.weight"), try b.tensor("conv3.weight"))
        Initialization.paper.apply(to: b, seed: 10)
        XCTAssertNotEqual(try a.tensor("conv3.weight"), try b.tensor("conv3.weight"))
    }
}

final class SGDTests: XCTestCase {
    /// Sets every element of every parameter (or gradient) through the store's own layout, so that
    /// the tests do not depend on how it pads tensors: element k of the flattened list of
    /// parameters gets `value(k)`.
    func fill(_ store: ParameterStore, grad: Bool = false, _ value: (Int) -> Float) {
        var k = 0
        for e in store.entries {
            let base = (grad ? store.grads : store.values).pointer + e.offset
            for i in 0..<e.count { base[i] = value(k); k += 1 }
        }
    }

    /// Every parameter's elements, in the store's order.
    func flat(_ store: ParameterStore) -> [Float] { store.names.flatMap { (try? store.tensor($0).data) ?? [] } }

    /// Runs SGD on a fixed sequence of gradients with the given learning rates.
    func run(_ rule: UpdateRule, rates: [Float]) -> [Float] {
        let store = ParameterStore([("w", [3]), ("b", [2])])
        let start: [Float] = [0.5, -1, 2, 0.1, 0.2]
        fill(store) { start[$0] }
        let sgd = SGD(for: store, learningRate: rates[0], momentum: 0.9, weightDecay: 5e-4, rule: rule)
        for (t, lr) in rates.enumerated() {
            fill(store, grad: true) { Float($0 % 5) * 0.3 - 0.5 + Float(t) * 0.1 }
            sgd.learningRate = lr
            sgd.step(store)
        }
        return flat(store)
    }

    /// The two update rules (docs/DESIGN.md, Optimiser) in float64, written from the formulas
    /// alone: the reference the float32 optimiser is checked against (the golden files hold
    /// PyTorch's rule only, so the paper's was otherwise compared with nothing but itself).
    func reference(_ rule: UpdateRule, w0: [Double], grads: (Int) -> [Double], rates: [Double],
                   momentum mu: Double, weightDecay wd: Double) -> [Double] {
        var w = w0, v = [Double](repeating: 0, count: w0.count)
        for (t, lr) in rates.enumerated() {
            let g = grads(t)
            for i in w.indices {
                switch rule {
                case .pytorch:
                    let d = g[i] + wd * w[i]
                    v[i] = t == 0 ? d : mu * v[i] + d
                    w[i] -= lr * v[i]
                case .paper:
                    v[i] = mu * v[i] - wd * lr * w[i] - lr * g[i]
                    w[i] += v[i]
                }
            }
        }
        return w
    }

    /// Both rules against the float64 reference, over steps whose learning rate changes twice
    /// (where the rules differ), on a store of several tensors split across workers.
    func testRulesMatchAFloat64Reference() throws {
        let store = ParameterStore([("a.weight", [37, 41]), ("a.bias", [37]), ("b.weight", [300, 201]), ("b.bias", [3])])
        let n = store.parameterCount
        var rng = RandomGenerator(seed: 11)
        let w0 = (0..<n).map { _ in Double(rng.normal()) * 0.05 }
        let gradients = (0..<6).map { _ in (0..<n).map { _ in Double(rng.normal()) * 0.01 } }
        let rates: [Double] = [0.01, 0.01, 0.001, 0.001, 0.0001, 0.0001]
        for rule in UpdateRule.allCases {
            fill(store) { Float(w0[$0]) }
            let sgd = SGD(for: store, learningRate: 0.01, momentum: 0.9, weightDecay: 5e-4, rule: rule, workers: 3)
            for (t, lr) in rates.enumerated() {
                fill(store, grad: true) { Float(gradients[t][$0]) }
                sgd.learningRate = Float(lr)
                sgd.step(store)
            }
            // The float32 inputs, so that the comparison measures the update's arithmetic only.
            let expected = reference(rule, w0: w0.map { Double(Float($0)) }, grads: { gradients[$0].map { Double(Float($0)) } },
                                     rates: rates.map { Double(Float($0)) }, momentum: Double(Float(0.9)), weightDecay: Double(Float(5e-4)))
            let ours = flat(store)
            var num = 0.0, den = 0.0, moved = 0.0
            for i in 0..<n {
                num += (Double(ours[i]) - expected[i]) * (Double(ours[i]) - expected[i])
                den += expected[i] * expected[i]
                moved += (expected[i] - w0[i]) * (expected[i] - w0[i])
            }
            XCTAssertLessThan((num / den).squareRoot(), 1e-6, "\(rule): relative error against float64")
            // The error is small next to how far the weights moved, not only next to the weights.
            XCTAssertLessThan((num / moved).squareRoot(), 1e-3, "\(rule): error relative to the update")
        }
    }

    func testRulesAgreeWhileLearningRateIsConstant() {
        let a = run(.pytorch, rates: [0.01, 0.01, 0.01, 0.01])
        let b = run(.paper, rates: [0.01, 0.01, 0.01, 0.01])
        XCTAssertLessThan(Tensor.relativeError(a, b), 1e-6)
    }

    func testRulesDifferAfterTheLearningRateChanges() {
        let a = run(.pytorch, rates: [0.01, 0.01, 0.001, 0.001])
        let b = run(.paper, rates: [0.01, 0.01, 0.001, 0.001])
        XCTAssertGreaterThan(Tensor.relativeError(a, b), 1e-4)
    }

    func testPyTorchRuleByHand() {
        // w = 0.5, g = −0.5 (+0.1 on step 2), wd = 5e-4, μ = 0.9, lr = 0.01.
        let w0: Float = 0.5
        let g1 = -0.5 + 5e-4 * w0
        let w1 = w0 - 0.01 * g1
        let g2 = -0.4 + 5e-4 * w1
        let v2 = 0.9 * g1 + g2
        let w2 = w1 - 0.01 * v2
        XCTAssertEqual(run(.pytorch, rates: [0.01, 0.01])[0], w2, accuracy: 1e-7)
    }

    /// Momentum saved to a safetensors file and restored gives the same next update as never stopping.
    func testMomentumStateRoundTripsThroughAFile() throws {
        func store() -> ParameterStore {
            let s = ParameterStore([("w", [4]), ("b", [2])])
            let start: [Float] = [0.5, -1, 2, 3, 0.1, 0.2]
            fill(s) { start[$0] }
            return s
        }
        func setGrads(_ s: ParameterStore, _ t: Float) { fill(s, grad: true) { Float($0 % 3) - 1 + t } }
        let a = store()
        let original = SGD(for: a, learningRate: 0.1)
        setGrads(a, 0); original.step(a)
        var writer = SafetensorsWriter(metadata: ["sgd_steps": "\(original.steps)"])
        for (name, t) in original.state(a) { writer.add(name, t) }
        for e in a.entries { writer.add(e.name, try a.tensor(e.name)) }
        let path = try Paths.temporaryDirectory().appendingPathComponent("ckpt.safetensors").path
        try writer.write(to: path)

        let file = try SafetensorsFile(path: path)
        let b = store()
        for e in b.entries { try b.set(e.name, try file.tensor(e.name)) }
        let resumed = SGD(for: b, learningRate: 0.1)
        let momentum = Dictionary(uniqueKeysWithValues: try file.names.filter { $0.hasPrefix("momentum.") }.map { ($0, try file.tensor($0)) })
        try resumed.restore(momentum, steps: Int(file.metadata["sgd_steps"]!)!, parameters: b)

        setGrads(a, 0.5); original.step(a)
        setGrads(b, 0.5); resumed.step(b)
        XCTAssertEqual(try a.tensor("w"), try b.tensor("w"))
        XCTAssertEqual(try a.tensor("b"), try b.tensor("b"))
        // A fresh optimiser (no momentum) would have moved differently.
        let c = store()
        let fresh = SGD(for: c, learningRate: 0.1)
        setGrads(c, 0); fresh.step(c)
        let restarted = SGD(for: c, learningRate: 0.1)
        setGrads(c, 0.5); restarted.step(c)
        XCTAssertNotEqual(try a.tensor("w"), try c.tensor("w"))

        XCTAssertThrowsError(try resumed.restore([:], steps: 1, parameters: b)) { XCTAssertTrue("\($0)".contains("momentum.w")) }
        XCTAssertThrowsError(try resumed.restore(["momentum.w": Tensor(zeros: [3]), "momentum.b": Tensor(zeros: [2])], steps: 1, parameters: b))
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
        XCTAssertEqual(Network.makeParameters(config).parameterCount, 62_378_344)
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
    func testNameTablesAreSPECs() {
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
        XCTAssertEqual(Network.makeParameters(config).parameterCount, 61_100_840)
        XCTAssertEqual(config.flatFeatures, 9216)
        // Any input size reaches fc6 as 6×6 maps: at 100 pixels pool5 is 2×2 and the pool repeats it.
        var small = NetworkConfig(variant: .torchvision, widths: [8, 8, 16, 16, 8], hidden: 16, classes: 3, inputSize: 100, conv1Padding: 2)
        XCTAssertEqual(try small.shapes().first { $0.spec.name == "avgpool" }?.input, [8, 2, 2])
        XCTAssertEqual(small.flatFeatures, 8 * 36)
        let params = Network.makeParameters(small)
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
        let full = try Network(config: small, batch: 1, mode: .inference, parameters: Network.makeParameters(small), engine: engine)
        XCTAssertFalse(full.layers.contains { $0 is AdaptiveAveragePool }, "6×6 maps: the pool is the identity and left out")
    }

    func testLayerOrderFollowsTheVariant() throws {
        let small = NetworkConfig(widths: [4, 8, 8, 8, 8], hidden: 16, classes: 5, inputSize: 67)
        let params = Network.makeParameters(small)
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
        let params = Network.makeParameters(config)
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
        let params = Network.makeParameters(config)
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
        let params = Network.makeParameters(config)
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
                                         parameters: Network.makeParameters(NetworkConfig()), engine: engine))
        let wrong = ParameterStore([("conv1.weight", [1])])
        XCTAssertThrowsError(try Network(config: NetworkConfig(), batch: 1, mode: .inference, parameters: wrong, engine: engine)) {
            XCTAssertTrue("\($0)".contains("conv1.weight"), "\($0)")
        }
    }
}

import AlexNetCore
import AlexNetKernels
import AlexNetModel
import XCTest

/// Each oneDNN-backed layer against its plain-Swift reference on small random shapes beyond the
/// golden cases: odd sizes, stride 2, padding 0 and 2, batch > 1.
final class LayerTests: XCTestCase {
    let engine = sharedEngine

    /// Runs `layer` forward on x and backward on dy; returns (y, dx) as plain tensors.
    func run(_ layer: Layer, input: DeviceTensor, x: Tensor, dy: Tensor, engine: Engine? = nil) throws -> (Tensor, Tensor?) {
        try input.write(x)
        try layer.forward(input)
        let y = try layer.output.read()
        let dOut = try DeviceTensor(layer.output.layout, engine: engine ?? self.engine)
        try dOut.write(dy)
        try layer.backward(input: input, dOutput: dOut)
        return (y, try layer.dInput?.read())
    }

    func plainInput(_ shape: [Int]) throws -> DeviceTensor {
        // The layers take any layout; tests feed plain NCHW, as the network's first layer sees.
        try DeviceTensor.plain(shape, engine: engine)
    }

    /// `winograd`: the algorithm every pass must run where the activations are in nChw8c or
    /// nChw16c (what oneDNN's AVX2 and AVX-512 kernels choose); nil: oneDNN's kernels must run there.
    typealias ConvolutionCase = (n: Int, c: Int, h: Int, w: Int, k: Int, kernel: Int, stride: Int, padding: Int, relu: Bool,
                                 winograd: String?)

    static let convolutionCases: [ConvolutionCase] = [
        (2, 3, 13, 11, 5, 3, 2, 0, false, nil),
        (3, 4, 9, 10, 6, 5, 1, 2, false, nil),
        (1, 5, 17, 15, 8, 11, 4, 5, true, nil),
        // 8 input channels: on AVX2 every pass has a JIT kernel once the input is padded
        // beforehand (ConvolutionKernel), so ∂x comes from the padded buffer's interior.
        (2, 8, 23, 19, 8, 11, 4, 5, false, nil),
        // 3×3, stride 1, pad 1 at a batch of 8, channel-blocked: Winograd for every pass
        // (WinogradKernel: y, ∂x, ∂w and ∂b). F(3×3, 3×3) on sizes 3 does not divide (the
        // last tiles overhang) and on conv4's 13×13; F(2×2, 3×3) on 4×4 and 6×4, where it
        // does fewer multiplies (2.25× fewer than direct, F(3×3, 3×3) 1.44× and 2.16×).
        (8, 64, 7, 8, 64, 3, 1, 1, true, "ours:winograd_3x3_3x3"),
        (8, 64, 13, 13, 96, 3, 1, 1, true, "ours:winograd_3x3_3x3"),
        (8, 64, 4, 4, 64, 3, 1, 1, false, "ours:winograd_2x2_3x3"),
        (4, 64, 6, 4, 96, 3, 1, 1, true, "ours:winograd_2x2_3x3"),
        // 5×5, pad 2: F(4×4, 5×5) on sizes 4 does not divide, and on conv2's 27×27 (from 4
        // images: the smallest batch for Winograd); F(3×3, 5×5) on 9×9, where it does fewer
        // multiplies (4.6× fewer than direct, F(4×4, 5×5) 3.5×).
        (8, 64, 9, 7, 64, 5, 1, 2, true, "ours:winograd_4x4_5x5"),
        (4, 48, 27, 27, 96, 5, 1, 2, true, "ours:winograd_4x4_5x5"),
        (4, 64, 9, 9, 64, 5, 1, 2, true, "ours:winograd_3x3_5x5"),
        // Too few channels for the transforms to pay (C·K / (C + K) = 9.6, below 32).
        (8, 16, 9, 7, 24, 5, 1, 2, true, nil),
        // Below Winograd's smallest batch, and 9 output channels: oneDNN's kernels.
        (2, 16, 7, 7, 9, 3, 1, 1, true, nil),
        (2, 3, 8, 12, 4, 1, 2, 0, false, nil),
    ]

    /// Each case in the layouts oneDNN chooses on this CPU.
    func testConvolutionMatchesReference() throws {
        for (i, t) in Self.convolutionCases.enumerated() { try checkConvolution(t, seed: i, engine: engine) }
    }

    /// The Winograd cases in nChw8c, nChw16c and nhwc, whichever of them oneDNN would choose on
    /// this CPU (an engine with an activation layout takes its activations in it): each
    /// algorithm's y, ∂x, ∂w and ∂b in each. 56 channels, a multiple of 8 but not of 16, take
    /// Winograd in nChw8c and nhwc only.
    func testWinogradOnEachLayoutMatchesReference() throws {
        for layout in Engine.ActivationLayout.allCases {
            let laidOut = try Engine(activationLayout: layout)
            for (i, t) in Self.convolutionCases.enumerated() where t.winograd != nil {
                try checkConvolution(t, seed: i, engine: laidOut, what: "\(layout) case \(i)")
            }
            let narrow: ConvolutionCase = (8, 56, 7, 7, 120, 3, 1, 1, true, layout == .nChw16c ? nil : "ours:winograd_3x3_3x3")
            try checkConvolution(narrow, seed: 200, engine: laidOut, what: "\(layout), 56 channels")
        }
    }

    /// Winograd's tiles through a scratch memory of room for 2 images: the batch of 7 goes
    /// through in chunks of 2, 2, 2 and 1, and ∂w sums over them, for each algorithm (m outputs
    /// per tile side from α inputs), in each layout.
    func testWinogradInChunksMatchesReference() throws {
        let cases: [(ConvolutionCase, m: Int, alpha: Int)] = [((7, 64, 9, 9, 64, 5, 1, 2, true, "ours:winograd_3x3_5x5"), 3, 7),
                                                              ((7, 64, 9, 7, 64, 5, 1, 2, true, "ours:winograd_4x4_5x5"), 4, 8),
                                                              ((7, 64, 9, 7, 64, 3, 1, 1, false, "ours:winograd_3x3_3x3"), 3, 5),
                                                              ((7, 64, 4, 4, 64, 3, 1, 1, false, "ours:winograd_2x2_3x3"), 2, 4)]
        for (i, (t, m, alpha)) in cases.enumerated() {
            let tiles = ((t.h + m - 1) / m) * ((t.w + m - 1) / m)
            for layout in Engine.ActivationLayout.allCases {
                let small = try Engine(scratchLimit: alpha * alpha * tiles * (t.c + t.k) * MemoryLayout<Float>.size * 2,
                                       activationLayout: layout)
                try checkConvolution(t, seed: 100 + i, engine: small, what: "\(layout) chunked case \(i)")
            }
        }
    }

    /// A convolution's y, ∂x, ∂w and ∂b against the plain-Swift reference at 1e-5, and y of the
    /// same convolution built for inference (for which oneDNN may choose another layout); and
    /// which implementation ran, where the activations are in a layout Winograd takes (the
    /// engine's, or oneDNN's choice on AVX2 and AVX-512).
    func checkConvolution(_ t: ConvolutionCase, seed i: Int, engine: Engine, what: String? = nil) throws {
        let what = what ?? "case \(i)"
        let g = Conv2d.Geometry(inChannels: t.c, outChannels: t.k, kernel: t.kernel, stride: t.stride, padding: t.padding)
        let x = Tensor(randomNormal: [t.n, t.c, t.h, t.w], seed: UInt64(10 + i))
        let w = Tensor(randomNormal: g.weightShape, std: 0.2, seed: UInt64(20 + i))
        let b = Tensor(randomNormal: [t.k], std: 0.2, seed: UInt64(30 + i))
        let params = ParameterStore([("c.weight", w.shape), ("c.bias", b.shape)])
        try params.set("c.weight", w)
        try params.set("c.bias", b)
        let input = try DeviceTensor.plain(x.shape, engine: engine)
        let conv = try Conv2d(name: "c", geometry: g, input: input.layout, fusedReLU: t.relu, mode: .training,
                              parameters: params, engine: engine)
        let inference = try Conv2d(name: "c", geometry: g, input: input.layout, fusedReLU: t.relu, mode: .inference,
                                   parameters: params, engine: engine)
        if engine.activationLayout != nil || ["avx2", "avx512_core"].contains(where: CPUCapabilities.isa.hasPrefix) {
            for pass in conv.implementations + inference.implementations.map({ (pass: "inference \($0.pass)", implementation: $0.implementation) }) {
                if let winograd = t.winograd {
                    XCTAssertEqual(pass.implementation, winograd, "\(what) \(pass.pass)")
                } else {
                    XCTAssertFalse(pass.implementation.contains("winograd"), "\(what) \(pass.pass): \(pass.implementation)")
                }
            }
        }
        try input.write(x)
        try inference.forward(input)
        let yInference = try inference.output.read()
        let dy = Tensor(randomNormal: [t.n, t.k, g.outputSize(t.h), g.outputSize(t.w)], seed: UInt64(40 + i))
        let (y, dInput) = try run(conv, input: input, x: x, dy: dy, engine: engine)
        let dx = try XCTUnwrap(dInput)
        var yRef = Conv2d.referenceForward(x: x, weight: w, bias: b, stride: t.stride, padding: t.padding)
        var dyPre = dy
        if t.relu {
            yRef = ReLU.referenceForward(yRef)
            dyPre = ReLU.referenceBackward(y: yRef, dy: dy)
        }
        let ref = Conv2d.referenceBackward(x: x, weight: w, dy: dyPre, stride: t.stride, padding: t.padding)
        assertClose(y, yRef, 1e-5, "\(what) y")
        assertClose(yInference, yRef, 1e-5, "\(what) inference y")
        assertClose(dx, ref.dx, 1e-5, "\(what) dx")
        assertClose(try params.tensor("c.weight", grad: true), ref.dWeight, 1e-5, "\(what) dw")
        assertClose(try params.tensor("c.bias", grad: true), ref.dBias, 1e-5, "\(what) db")
    }

    func testFirstLayerSkipsInputGradient() throws {
        let g = Conv2d.Geometry(inChannels: 3, outChannels: 4, kernel: 3)
        let params = ParameterStore([("c.weight", g.weightShape), ("c.bias", [4])])
        let input = try plainInput([1, 3, 5, 5])
        let conv = try Conv2d(name: "c", geometry: g, input: input.layout, fusedReLU: true, mode: .training,
                              inputGradient: false, parameters: params, engine: engine)
        XCTAssertNil(conv.dInput)
    }

    func testReLUMatchesReference() throws {
        let x = Tensor(randomNormal: [2, 3, 5, 7], seed: 1)
        let dy = Tensor(randomNormal: x.shape, seed: 2)
        let input = try plainInput(x.shape)
        let (y, dx) = try run(try ReLU(input: input.layout, mode: .training, engine: engine), input: input, x: x, dy: dy)
        let yRef = ReLU.referenceForward(x)
        XCTAssertEqual(y, yRef)
        XCTAssertEqual(dx, ReLU.referenceBackward(y: yRef, dy: dy))
        XCTAssertTrue(yRef.data.contains(0) && yRef.data.contains { $0 > 0 }, "the test data must exercise both sides")
    }

    func testLocalResponseNormMatchesReferenceForBothVariants() throws {
        for (i, constants) in [LocalResponseNorm.Constants.paper, .seed].enumerated() {
            for shape in [[2, 7, 5, 3], [1, 16, 4, 4], [3, 3, 6, 5]] {
                let x = Tensor(randomNormal: shape, std: 30, seed: UInt64(50 + i))
                let dy = Tensor(randomNormal: shape, seed: UInt64(60 + i))
                let input = try plainInput(shape)
                let lrn = try LocalResponseNorm(name: "lrn", constants: constants, input: input.layout, mode: .training, engine: engine)
                let (y, dx) = try run(lrn, input: input, x: x, dy: dy)
                assertClose(y, LocalResponseNorm.referenceForward(x, constants), 1e-5, "lrn \(constants.alpha) \(shape) y")
                assertClose(dx!, LocalResponseNorm.referenceBackward(x: x, dy: dy, constants), 1e-5, "lrn \(constants.alpha) \(shape) dx")
            }
        }
        XCTAssertEqual(LocalResponseNorm.Constants.paper.alpha, 5e-4)
        XCTAssertEqual(LocalResponseNorm.Constants.seed.alpha, 1e-3)
    }

    func testMaxPoolMatchesReference() throws {
        for (i, shape) in [[2, 3, 7, 9], [1, 5, 13, 13], [2, 2, 3, 4], [1, 8, 55, 55]].enumerated() {
            let x = Tensor(randomNormal: shape, seed: UInt64(70 + i))
            let ref = MaxPool.referenceForward(x)
            let dy = Tensor(randomNormal: ref.y.shape, seed: UInt64(80 + i))
            let input = try plainInput(shape)
            let (y, dx) = try run(try MaxPool(name: "pool", input: input.layout, mode: .training, engine: engine), input: input, x: x, dy: dy)
            XCTAssertEqual(y, ref.y, "pool \(shape)")
            assertClose(dx!, MaxPool.referenceBackward(x: x, dy: dy), 1e-6, "pool \(shape) dx")
        }
    }

    /// torchvision's adaptive average pool against PyTorch's `adaptive_avg_pool2d` (values
    /// printed by PyTorch 2.15): overlapping windows (5 → 3, 4 → 3) and repeated ones (2 → 3); x is
    /// 0.5·i − 3, ∂y is i + 1.
    func testAdaptiveAveragePoolMatchesPyTorch() throws {
        let cases: [(h: Int, w: Int, y: [Float], dx: [Float])] = [
            (5, 4, [-1.75, -1.25, -0.75, 1.25, 1.75, 2.25, 4.25, 4.75, 5.25, 8.25, 8.75, 9.25, 11.25, 11.75, 12.25, 14.25, 14.75, 15.25],
             [0.25, 0.75, 1.25, 0.75, 0.916667, 2.25, 3.083333, 1.75, 0.666667, 1.5, 1.833333, 1.0, 2.416667, 5.25, 6.083333, 3.25,
              1.75, 3.75, 4.25, 2.25, 2.5, 5.25, 5.75, 3.0, 4.666667, 9.75, 10.583333, 5.5, 2.166667, 4.5, 4.833333, 2.5,
              6.166667, 12.75, 13.583333, 7.0, 4.0, 8.25, 8.75, 4.5]),
            (2, 2, [-3.0, -2.75, -2.5, -2.5, -2.25, -2.0, -2.0, -1.75, -1.5, -1.0, -0.75, -0.5, -0.5, -0.25, 0.0, 0.0, 0.25, 0.5],
             [5.25, 8.25, 14.25, 17.25, 25.5, 28.5, 34.5, 37.5]),
        ]
        for t in cases {
            let x = Tensor(shape: [1, 2, t.h, t.w], data: (0..<(2 * t.h * t.w)).map { Float($0) * 0.5 - 3 })
            let dy = Tensor(shape: [1, 2, 3, 3], data: (0..<18).map { Float($0 + 1) })
            let input = try plainInput(x.shape)
            let pool = try AdaptiveAveragePool(name: "avgpool", size: 3, input: input.layout, mode: .training, engine: engine)
            let (y, dx) = try run(pool, input: input, x: x, dy: dy)
            assertClose(y, Tensor(shape: [1, 2, 3, 3], data: t.y), 1e-6, "\(t.h)×\(t.w) y")
            assertClose(dx!, Tensor(shape: x.shape, data: t.dx), 1e-6, "\(t.h)×\(t.w) dx")
        }
        // From the blocked layout a convolution writes (pool5's, in the network): the same values.
        let g = Conv2d.Geometry(inChannels: 16, outChannels: 16, kernel: 1)
        let params = ParameterStore([("c.weight", g.weightShape), ("c.bias", [16])])
        let blocked = try Conv2d(name: "c", geometry: g, input: try plainInput([2, 16, 5, 4]).layout, fusedReLU: false,
                                 mode: .inference, parameters: params, engine: engine).output.layout
        XCTAssertFalse(blocked.isPlain, "the test needs a blocked layout")
        let x = Tensor(randomNormal: [2, 16, 5, 4], seed: 7), dy = Tensor(randomNormal: [2, 16, 3, 3], seed: 8)
        let plainRun = try run(AdaptiveAveragePool(name: "p", size: 3, input: try plainInput(x.shape).layout, mode: .training, engine: engine),
                               input: try plainInput(x.shape), x: x, dy: dy)
        let blockedInput = try DeviceTensor(blocked, engine: engine)
        let blockedRun = try run(AdaptiveAveragePool(name: "b", size: 3, input: blocked, mode: .training, engine: engine),
                                 input: blockedInput, x: x, dy: dy)
        assertClose(blockedRun.0, plainRun.0, 0, "y from a blocked input")
        assertClose(blockedRun.1!, plainRun.1!, 0, "dx into a blocked input")
    }

    func testLinearMatchesReference() throws {
        for (i, t) in [(n: 3, i: 17, o: 5, relu: false), (n: 1, i: 8, o: 33, relu: true), (n: 7, i: 64, o: 10, relu: true)].enumerated() {
            let x = Tensor(randomNormal: [t.n, t.i], seed: UInt64(90 + i))
            let w = Tensor(randomNormal: [t.o, t.i], std: 0.3, seed: UInt64(91 + i))
            let b = Tensor(randomNormal: [t.o], std: 0.3, seed: UInt64(92 + i))
            let dy = Tensor(randomNormal: [t.n, t.o], seed: UInt64(93 + i))
            let params = ParameterStore([("fc.weight", w.shape), ("fc.bias", b.shape)])
            try params.set("fc.weight", w)
            try params.set("fc.bias", b)
            let input = try plainInput(x.shape)
            let fc = try Linear(name: "fc", inFeatures: t.i, outFeatures: t.o, input: input.layout, fusedReLU: t.relu, mode: .training,
                                parameters: params, engine: engine)
            let (y, dx) = try run(fc, input: input, x: x, dy: dy)
            var yRef = Linear.referenceForward(x: x, weight: w, bias: b)
            var dyPre = dy
            if t.relu { yRef = ReLU.referenceForward(yRef); dyPre = ReLU.referenceBackward(y: yRef, dy: dy) }
            let ref = Linear.referenceBackward(x: x, weight: w, dy: dyPre)
            assertClose(y, yRef, 1e-5, "linear \(i) y")
            assertClose(dx!, ref.dx, 1e-5, "linear \(i) dx")
            assertClose(try params.tensor("fc.weight", grad: true), ref.dWeight, 1e-5, "linear \(i) dw")
            assertClose(try params.tensor("fc.bias", grad: true), ref.dBias, 1e-5, "linear \(i) db")
        }
    }

    func testDropoutWithGivenMaskMatchesReference() throws {
        let x = Tensor(randomNormal: [3, 11], seed: 5)
        var rng = RandomGenerator(seed: 6)
        let mask = Tensor(shape: x.shape, data: x.data.map { _ in rng.uniform() < 0.5 ? 0 : 2 })
        let dy = Tensor(randomNormal: x.shape, seed: 7)
        let input = try plainInput(x.shape)
        let d = try Dropout(name: "d", input: input.layout, engine: engine)
        try d.setMask(mask)
        let (y, dx) = try run(d, input: input, x: x, dy: dy)
        XCTAssertEqual(y, Dropout.referenceForward(x, mask: mask))
        XCTAssertEqual(dx, Dropout.referenceForward(dy, mask: mask))
        XCTAssertThrowsError(try d.setMask(Tensor(zeros: [2, 11])))
    }

    func testDropoutMasksAreSeededPerSampleAndScaled() throws {
        let input = try plainInput([64, 500])
        let d = try Dropout(name: "d", probability: 0.5, input: input.layout, engine: engine)
        let samples = Array(1000..<1064)
        d.drawMask(seed: 42, epoch: 3, samples: samples, layer: 0); let m1 = d.currentMask
        d.drawMask(seed: 42, epoch: 3, samples: samples, layer: 0); let m2 = d.currentMask
        d.drawMask(seed: 43, epoch: 3, samples: samples, layer: 0); let m3 = d.currentMask
        XCTAssertEqual(m1, m2, "same seed, same mask")
        XCTAssertNotEqual(m1, m3, "another seed, another mask")
        d.drawMask(seed: 42, epoch: 4, samples: samples, layer: 0)
        XCTAssertNotEqual(m1, d.currentMask, "another epoch, another mask")
        d.drawMask(seed: 42, epoch: 3, samples: samples, layer: 1)
        XCTAssertNotEqual(m1, d.currentMask, "another layer, another mask")
        XCTAssertTrue(m1.data.allSatisfy { $0 == 0 || $0 == 2 }, "inverted dropout keeps units scaled by 1/(1-p)")
        let kept = Double(m1.data.filter { $0 > 0 }.count) / Double(m1.count)
        XCTAssertEqual(kept, 0.5, accuracy: 0.01)   // 32 000 draws: σ ≈ 0.003
        // A sample's row is the same whichever batch row it lands in, and whatever else is in the batch.
        let moved = [1063, 7, 1000] + Array(2000..<2061)
        d.drawMask(seed: 42, epoch: 3, samples: moved, layer: 0)
        let m4 = d.currentMask
        XCTAssertEqual(Array(m4.data[0..<500]), Array(m1.data[(63 * 500)..<(64 * 500)]))
        XCTAssertEqual(Array(m4.data[1000..<1500]), Array(m1.data[0..<500]))
        // A short batch fills only its rows.
        let small = try Dropout(name: "d", probability: 0.5, input: input.layout, engine: engine)
        small.drawMask(seed: 42, epoch: 3, samples: [1001], layer: 0)
        XCTAssertEqual(Array(small.currentMask.data[0..<500]), Array(m1.data[500..<1000]))
    }

    func testSoftmaxCrossEntropyMatchesReference() throws {
        let logits = Tensor(randomNormal: [5, 13], std: 4, seed: 8)
        let labels = [0, 12, 3, 3, 7]
        let loss = try SoftmaxCrossEntropy(batch: 5, classes: 13, engine: engine)
        let value = try logits.data.withUnsafeBufferPointer { try loss.forward(logits: $0.baseAddress!, labels: labels) }
        loss.backward()
        let ref = SoftmaxCrossEntropy.reference(logits: logits, labels: labels)
        XCTAssertEqual(Double(value), ref.loss, accuracy: 1e-5 * ref.loss)
        assertClose(Tensor(shape: [5, 13], data: loss.probabilities.array), ref.probabilities, 1e-6, "probabilities")
        assertClose(try loss.dLogits.read(), ref.dLogits, 1e-6, "dlogits")
        XCTAssertThrowsError(try logits.data.withUnsafeBufferPointer { try loss.forward(logits: $0.baseAddress!, labels: [0, 1, 2, 3, 13]) })
    }

    func testInferenceLayersRefuseBackward() throws {
        let input = try plainInput([1, 4, 5, 5])
        let pool = try MaxPool(name: "pool", input: input.layout, mode: .inference, engine: engine)
        XCTAssertNil(pool.dInput)
        XCTAssertThrowsError(try pool.backward(input: input, dOutput: pool.output))
    }
}

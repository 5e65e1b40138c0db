import AlexNetCore
import AlexNetInterop
import AlexNetKernels
import AlexNetModel
import AlexNetTools
import AlexNetTraining
import Foundation
import XCTest

/// Mixed precision: bf16 is refused, naming the reason, where the CPU has no native bf16
/// instructions; where it has them, the golden files verify at the bf16 tolerance and a bf16
/// training run tracks the fp32 one. The refusal is checked on every CPU (with oneDNN limited to
/// AVX2 on those that do have bf16); the other two need the instructions and skip elsewhere, saying
/// so.
final class PrecisionTests: XCTestCase {
    /// Every command that runs the network refuses `--precision bf16` under an AVX2 limit, before
    /// it reads any data, with the instruction sets it needs and the one oneDNN reported.
    func testBF16IsRefusedWithoutNativeInstructions() throws {
        let dir = try Paths.temporaryDirectory()
        let config = dir.appendingPathComponent("tiny.yml").path
        try "path:\n  dataset: \(dir.appendingPathComponent("no-such-dataset").path)\nmodel:\n  input_size: 67\n  classes: 3\naugmentations:\n  mean: channel\n"
            .write(toFile: config, atomically: true, encoding: .utf8)
        let photo = Paths.photos.path
        let image = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: photo).sorted().first { $0.hasSuffix(".jpg") })
        let demoWork = dir.appendingPathComponent("demo-work")
        let commands: [[String]] = [
            ["bench", "--peak-gflops", "100"],
            ["verify", Paths.golden.path],
            ["train", "-c", config],
            ["evaluate", "-w", dir.appendingPathComponent("none.safetensors").path, "--data", dir.path],
            ["classify", "-w", dir.appendingPathComponent("none.safetensors").path, "-i", "\(photo)/\(image)"],
            ["demo", "--work", demoWork.path, "--source", dir.appendingPathComponent("no-idx").path],
        ]
        for command in commands {
            let (status, out, err) = try runProcess(Paths.binary, command + ["--precision", "bf16"],
                                                    environment: ["ONEDNN_MAX_CPU_ISA": "AVX2"])
            let what = command.joined(separator: " ")
            XCTAssertNotEqual(status, 0, "\(what) --precision bf16 ran: \(out)")
            XCTAssertTrue(err.contains("AVX-512 BF16 or AMX"), "\(what): \(err)")
            XCTAssertTrue(err.contains("reports avx2"), "\(what): \(err)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: demoWork.path), "the demo refused before importing anything")
        // The same configuration in fp32 gets past the precision check to the missing dataset.
        let (status, _, err) = try runProcess(Paths.binary, ["train", "-c", config], environment: ["ONEDNN_MAX_CPU_ISA": "AVX2"])
        XCTAssertNotEqual(status, 0)
        XCTAssertFalse(err.contains("AVX-512 BF16"), err)
        XCTAssertTrue(err.contains("no-such-dataset"), err)
    }

    /// The configuration key: bf16 and fp32 parse, anything else names what is allowed.
    func testPrecisionKey() throws {
        var config = TrainingConfig()
        XCTAssertEqual(config.training.precision, .fp32, "the default is the paper's float32")
        try config.override("training.precision=bf16")
        XCTAssertEqual(config.training.precision, .bf16)
        XCTAssertTrue(config.yaml().contains("precision: bf16"), config.yaml())
        XCTAssertThrowsError(try config.override("training.precision=fp16")) { error in
            XCTAssertTrue("\(error)".contains("one of fp32, bf16"), "\(error)")
        }
    }

    /// In process, a bf16 network, convolution or linear layer is refused unless the CPU has the
    /// instructions (the check sits in the kernels that would create bf16 primitives).
    func testNetworkRefusesBF16WithoutNativeInstructions() throws {
        guard !CPUCapabilities.hasNativeBF16 else {
            throw XCTSkip("this CPU has native bf16 (\(CPUCapabilities.isa)); testBF16IsRefusedWithoutNativeInstructions covers the refusal")
        }
        let config = NetworkConfig(widths: [8, 8, 8, 8, 8], hidden: 16, classes: 3, inputSize: 67)
        XCTAssertThrowsError(try Network(config: config, batch: 2, mode: .inference, precision: .bf16,
                                         parameters: try Network.makeParameters(config), engine: sharedEngine)) { error in
            XCTAssertTrue(error is PrecisionError, "\(error)")
        }
        let params = ParameterStore([("c.weight", [4, 3, 3, 3]), ("c.bias", [4]), ("l.weight", [2, 6]), ("l.bias", [2])])
        let g = Conv2d.Geometry(inChannels: 3, outChannels: 4, kernel: 3)
        XCTAssertThrowsError(try Conv2d(name: "c", geometry: g, input: try .plain([1, 3, 8, 8]), fusedReLU: false, mode: .training,
                                        precision: .bf16, parameters: params, engine: sharedEngine)) { XCTAssertTrue($0 is PrecisionError, "\($0)") }
        XCTAssertThrowsError(try Linear(name: "l", inFeatures: 6, outFeatures: 2, input: try .plain([1, 6]), fusedReLU: false, mode: .training,
                                        precision: .bf16, parameters: params, engine: sharedEngine)) { XCTAssertTrue($0 is PrecisionError, "\($0)") }
    }

    static func requireNativeBF16() throws {
        guard CPUCapabilities.hasNativeBF16 else {
            throw XCTSkip("this CPU has no AVX-512 BF16 or AMX (oneDNN reports \(CPUCapabilities.isa)): bf16 cannot run here")
        }
    }

    /// `verify --precision bf16`: every golden tensor within the bf16 tolerance, bf16 really ran
    /// (the errors are bf16's, not float32's), and no pass runs oneDNN's reference kernels.
    func testGoldenFilesVerifyInBF16() throws {
        try Self.requireNativeBF16()
        let verifier = try GoldenVerifier(engine: sharedEngine, precision: .bf16)
        XCTAssertEqual(verifier.tolerances, .bf16)
        var summary = GoldenVerifier.Summary()
        var failures: [String] = []
        for file in try GoldenVerifier.files(in: [Paths.golden.path]) {
            try verifier.verify(file: file) { row in
                summary.add(row)
                if !row.passed { failures.append("\(row.file) \(row.caseName) \(row.tensor): \(row.error)") }
            }
        }
        XCTAssertGreaterThan(summary.checked, 100)
        XCTAssertEqual(failures, [])
        XCTAssertGreaterThan(summary.worst, 1e-3, "errors of float32 size: the layers did not compute in bf16")

        let config = NetworkConfig(widths: [16, 16, 16, 16, 16], hidden: 32, classes: 3, inputSize: 67)
        let net = try Network(config: config, batch: 2, mode: .training, precision: .bf16,
                              parameters: try Network.makeParameters(config), engine: sharedEngine)
        // oneDNN's reference kernels are the slow emulation that bf16 is refused to avoid.
        for (layer, pass, implementation) in net.implementations {
            XCTAssertFalse(implementation.hasPrefix("ref"), "\(layer) \(pass) runs \(implementation)")
        }
    }

    /// The same tiny training run (8 epochs of 96 images, 4 classes) in fp32 and in bf16, from the
    /// same initialisation, order, augmentation and dropout masks: the fp32 run learns, and every
    /// epoch's training and validation loss of the bf16 run lies close to the fp32 one. The bf16
    /// run's checkpoint is float32 and evaluates in fp32 to the loss its own validation found.
    func testBF16TrainingTracksFP32() throws {
        try Self.requireNativeBF16()
        let data = try makeTrainingDataset(try Paths.temporaryDirectory("precision-data"), classes: 4, train: 24, val: 6)
        var bf16Checkpoint = ""
        func losses(_ precision: Precision) throws -> [(train: Double, val: Double)] {
            var c = tinyConfig(data, run: "track-\(precision.rawValue)")
            c.model = NetworkConfig(widths: [16, 32, 32, 32, 32], hidden: 64, classes: 4, inputSize: 64)
            c.initialization = .pytorch
            (c.training.epochs, c.training.evaluateBeforeTraining, c.training.precision) = (8, false, precision)
            c.scheduler.name = .manual
            let summary = try Trainer(config: c, logger: quietLogger, stop: StopRequest()).run()
            if precision == .bf16 { bf16Checkpoint = summary.lastCheckpoint }
            return summary.history.filter { $0.epoch > 0 }.map { ($0.trainLoss ?? .nan, $0.validation?.loss ?? .nan) }
        }
        let fp32 = try losses(.fp32), bf16 = try losses(.bf16)
        let f = { (l: [(train: Double, val: Double)]) in l.map { String(format: "%.3f/%.3f", $0.train, $0.val) }.joined(separator: " ") }
        print("training and validation loss per epoch, fp32: \(f(fp32))\n                                      bf16: \(f(bf16))")
        XCTAssertEqual(fp32.count, 8)
        XCTAssertEqual(bf16.count, 8)
        XCTAssertLessThan(fp32.last!.val, 0.5 * fp32.first!.val, "the fp32 run learns: \(fp32)")
        for (epoch, (a, b)) in zip(fp32, bf16).enumerated() {
            XCTAssertEqual(b.train, a.train, accuracy: 0.1 * a.train + 0.02, "epoch \(epoch + 1): fp32 \(fp32), bf16 \(bf16)")
            XCTAssertEqual(b.val, a.val, accuracy: 0.1 * a.val + 0.02, "epoch \(epoch + 1): fp32 \(fp32), bf16 \(bf16)")
        }
        let file = try SafetensorsFile(path: bf16Checkpoint)
        XCTAssertEqual(try file.info("conv1.weight").dtype.rawValue, "F32")
        let weights = try LoadedWeights(path: bf16Checkpoint)
        let inFP32 = try EvaluationJob(weights: weights, config: nil, data: data.root.path)
            .run(engine: sharedEngine, batchSize: 5, threads: 2, precision: .fp32)
        XCTAssertEqual(inFP32.loss, bf16.last!.val, accuracy: 0.05 * bf16.last!.val + 0.01)
    }

    /// A bf16 5×5 layer wide enough for Winograd runs it (float32 transforms and products on
    /// its bfloat16 activations) and matches the float64 reference within bf16's
    /// bound in y, ∂x, ∂w and ∂b; a bf16 3×3 layer runs it in training and oneDNN's bf16 kernel
    /// in inference.
    func testBF16WinogradOn5x5MatchesReference() throws {
        try Self.requireNativeBF16()
        let g = Conv2d.Geometry(inChannels: 64, outChannels: 64, kernel: 5, padding: 2)
        let x = Tensor(randomNormal: [5, 64, 9, 7], seed: 41)
        let w = Tensor(randomNormal: g.weightShape, std: 0.05, seed: 42)
        let b = Tensor(randomNormal: [64], std: 0.2, seed: 43)
        let dy = Tensor(randomNormal: [5, 64, 9, 7], seed: 44)
        let params = ParameterStore([("c.weight", w.shape), ("c.bias", b.shape)])
        try params.set("c.weight", w)
        try params.set("c.bias", b)
        let input = try DeviceTensor.plain(x.shape, engine: sharedEngine)
        let conv = try Conv2d(name: "c", geometry: g, input: input.layout, fusedReLU: false, mode: .training, precision: .bf16,
                              parameters: params, engine: sharedEngine)
        XCTAssertEqual(Set(conv.implementations.map(\.implementation)), ["ours:winograd_4x4_5x5"])
        try input.write(x)
        try conv.forward(input)
        let dOut = try DeviceTensor(conv.output.layout, engine: sharedEngine)
        try dOut.write(dy)
        try conv.backward(input: input, dOutput: dOut)
        let y = Conv2d.referenceForward(x: x, weight: w, bias: b, stride: 1, padding: 2)
        let r = Conv2d.referenceBackward(x: x, weight: w, dy: dy, stride: 1, padding: 2)
        func relative(_ a: Tensor, _ b: Tensor) -> Double {
            let d = zip(a.data, b.data).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
            return (d / b.data.reduce(0.0) { $0 + Double($1) * Double($1) }).squareRoot()
        }
        XCTAssertLessThan(relative(try conv.output.read(), y), 1e-2)
        XCTAssertLessThan(relative(try XCTUnwrap(conv.dInput).read(), r.dx), 1e-2)
        XCTAssertLessThan(relative(try params.tensor("c.weight", grad: true), r.dWeight), 1e-2)
        XCTAssertLessThan(relative(try params.tensor("c.bias", grad: true), r.dBias), 1e-2)
        // bf16, not float32: the input and output went through bfloat16.
        XCTAssertGreaterThan(relative(try conv.output.read(), y), 1e-5)

        let g3 = Conv2d.Geometry(inChannels: 64, outChannels: 64, kernel: 3, padding: 1)
        let p3 = ParameterStore([("c.weight", g3.weightShape), ("c.bias", [64])])
        let conv3 = try Conv2d(name: "c", geometry: g3, input: input.layout, fusedReLU: false, mode: .training, precision: .bf16,
                               parameters: p3, engine: sharedEngine)
        XCTAssertEqual(Set(conv3.implementations.map(\.implementation)), ["ours:winograd_3x3_3x3"])
        let inference3 = try Conv2d(name: "c", geometry: g3, input: input.layout, fusedReLU: false, mode: .inference,
                                    precision: .bf16, parameters: p3, engine: sharedEngine)
        XCTAssertFalse(inference3.implementations.contains { $0.implementation.contains("winograd") }, "\(inference3.implementations)")
    }

    /// Winograd on bfloat16 activations is Winograd on float32 ones with the activations rounded
    /// where they are stored: on inputs and ∂outputs that bfloat16 holds exactly, a bf16 layer's
    /// ∂w and ∂b equal the fp32 layer's bit for bit, and its y and ∂x are the fp32 layer's
    /// rounded to the nearest bfloat16 (ties to even), as oneDNN's conversions round.
    func testBF16WinogradRoundsLikeOneDNN() throws {
        try Self.requireNativeBF16()
        /// `t` with every value rounded to bfloat16 (to nearest, ties to even).
        func rounded(_ t: Tensor) -> Tensor {
            var r = t
            for i in r.data.indices {
                let u = r.data[i].bitPattern
                r.data[i] = Float(bitPattern: ((u &+ 0x7fff &+ ((u >> 16) & 1)) >> 16) << 16)
            }
            return r
        }
        let g = Conv2d.Geometry(inChannels: 64, outChannels: 64, kernel: 5, padding: 2)
        let x = rounded(Tensor(randomNormal: [5, 64, 9, 7], seed: 51))
        let dy = rounded(Tensor(randomNormal: [5, 64, 9, 7], seed: 54))
        var results: [Precision: (y: Tensor, dx: Tensor, dw: Tensor, db: Tensor)] = [:]
        for precision in [Precision.fp32, .bf16] {
            let params = ParameterStore([("c.weight", g.weightShape), ("c.bias", [64])])
            try params.set("c.weight", Tensor(randomNormal: g.weightShape, std: 0.05, seed: 52))
            try params.set("c.bias", Tensor(randomNormal: [64], std: 0.2, seed: 53))
            let input = try DeviceTensor.plain(x.shape, engine: sharedEngine)
            let conv = try Conv2d(name: "c", geometry: g, input: input.layout, fusedReLU: true, mode: .training,
                                  precision: precision, parameters: params, engine: sharedEngine)
            XCTAssertEqual(Set(conv.implementations.map(\.implementation)), ["ours:winograd_4x4_5x5"], "\(precision)")
            try input.write(x)
            try conv.forward(input)
            let dOut = try DeviceTensor(conv.output.layout, engine: sharedEngine)
            try dOut.write(dy)
            try conv.backward(input: input, dOutput: dOut)
            results[precision] = (try conv.output.read(), try XCTUnwrap(conv.dInput).read(),
                                  try params.tensor("c.weight", grad: true), try params.tensor("c.bias", grad: true))
        }
        let (f, h) = (try XCTUnwrap(results[.fp32]), try XCTUnwrap(results[.bf16]))
        XCTAssertEqual(h.dw.data, f.dw.data, "∂w")
        XCTAssertEqual(h.db.data, f.db.data, "∂b")
        XCTAssertEqual(h.y.data, rounded(f.y).data, "y")
        XCTAssertEqual(h.dx.data, rounded(f.dx).data, "∂x")
        XCTAssertNotEqual(h.y.data, f.y.data, "y went through bfloat16")
    }

    /// A bf16 run keeps its weight gradients in bfloat16: each layer kind (oneDNN's direct
    /// convolution, Winograd, a linear layer in one block and one large enough to run in row
    /// blocks) writes the float32 gradients it would write into a float32 store, rounded to
    /// nearest even, and nothing past them.
    func testBFloat16GradientsAreTheFloat32OnesRounded() throws {
        try Self.requireNativeBF16()
        struct Case { let name: String; let input: [Int]; let make: (ParameterStore, TensorLayout) throws -> any Layer; let shapes: [(name: String, shape: [Int])] }
        let conv1 = Conv2d.Geometry(inChannels: 3, outChannels: 16, kernel: 11, stride: 4, padding: 2)
        let conv5 = Conv2d.Geometry(inChannels: 64, outChannels: 64, kernel: 5, padding: 2)
        let cases = [
            Case(name: "direct", input: [4, 3, 35, 35], make: { p, l in
                try Conv2d(name: "c", geometry: conv1, input: l, fusedReLU: true, mode: .training, precision: .bf16, parameters: p, engine: sharedEngine)
            }, shapes: [("c.weight", conv1.weightShape), ("c.bias", [16])]),
            Case(name: "winograd", input: [5, 64, 9, 7], make: { p, l in
                try Conv2d(name: "c", geometry: conv5, input: l, fusedReLU: false, mode: .training, precision: .bf16, parameters: p, engine: sharedEngine)
            }, shapes: [("c.weight", conv5.weightShape), ("c.bias", [64])]),
            Case(name: "linear", input: [6, 40], make: { p, l in
                try Linear(name: "c", inFeatures: 40, outFeatures: 24, input: l, fusedReLU: true, mode: .training, precision: .bf16, parameters: p, engine: sharedEngine)
            }, shapes: [("c.weight", [24, 40]), ("c.bias", [24])]),
            // 1100 × 4096 float32 is 18 MB: two blocks of 550 rows.
            Case(name: "linear in blocks", input: [8, 4096], make: { p, l in
                try Linear(name: "c", inFeatures: 4096, outFeatures: 1100, input: l, fusedReLU: false, mode: .training, precision: .bf16, parameters: p, engine: sharedEngine)
            }, shapes: [("c.weight", [1100, 4096]), ("c.bias", [1100])]),
        ]
        for c in cases {
            var gradients: [NumberFormat: [Float]] = [:]
            for format in [NumberFormat.float32, .bfloat16] {
                // Guard elements after the gradients: a write past them shows.
                let params = ParameterStore(c.shapes + [("guard", [64])], gradientFormat: format)
                for (i, e) in c.shapes.enumerated() { try params.set(e.name, Tensor(randomNormal: e.shape, std: 0.05, seed: UInt64(60 + i))) }
                let guardOffset = try params.entry("guard").offset
                [Float](repeating: 7, count: 64).withUnsafeBufferPointer { params.grads.write($0, at: guardOffset) }
                let input = try DeviceTensor.plain(c.input, engine: sharedEngine)
                let layer = try c.make(params, input.layout)
                try input.write(Tensor(randomNormal: c.input, seed: 70))
                try layer.forward(input)
                let dOut = try DeviceTensor(layer.output.layout, engine: sharedEngine)
                try dOut.write(Tensor(randomNormal: layer.output.dims, seed: 71))
                try layer.backward(input: input, dOutput: dOut)
                gradients[format] = try c.shapes.flatMap { try params.tensor($0.name, grad: true).data }
                XCTAssertEqual(try params.tensor("guard", grad: true).data, [Float](repeating: 7, count: 64), "\(c.name) \(format): past the gradients")
            }
            let (f, h) = (try XCTUnwrap(gradients[.float32]), try XCTUnwrap(gradients[.bfloat16]))
            XCTAssertTrue(f.contains { $0 != 0 }, c.name)
            let rounded = f.map { float(bfloat16: bfloat16Bits($0)) }
            XCTAssertNotEqual(h, f, "\(c.name): kept in bfloat16")
            if c.name == "linear in blocks" {
                // Blocks of rows may add the batch in another order: within one bfloat16 step.
                for i in h.indices where abs(h[i] - rounded[i]) > abs(rounded[i]) * 0x1p-7 + 1e-30 {
                    XCTFail("\(c.name): gradient \(i) is \(h[i]), float32 rounded \(rounded[i])"); break
                }
            } else {
                XCTAssertEqual(h, rounded, c.name)
            }
        }
    }
}

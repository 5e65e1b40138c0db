import AlexNetCore
import AlexNetKernels
import AlexNetModel
import AlexNetTraining
import XCTest

/// The buffer plan behind a network's arena: the planner never puts two buffers that are live
/// at the same step on shared bytes, the check catches a plan that does, and a network built on
/// its arena computes exactly what one with a buffer per tensor computes.
final class MemoryPlanTests: XCTestCase {
    func testPlannerKeepsLiveBuffersApartAndReusesDeadOnes() throws {
        var rng = RandomGenerator(seed: 11)
        var requests: [BufferPlan.Request] = []
        for i in 0..<80 {
            let a = Int(rng.next() % 40), length = Int(rng.next() % 8)
            var steps = [a...(a + length)]
            // Some buffers live in two separate ranges, as a layer's scratch does.
            if i % 5 == 0 { let b = a + length + 2 + Int(rng.next() % 10); steps.append(b...b) }
            requests.append(.init(name: "b\(i)", bytes: 1 + Int(rng.next() % 100_000), steps: steps))
        }
        let plan = BufferPlan(requests)
        XCTAssertNoThrow(try plan.validate())
        XCTAssertLessThan(plan.size, plan.unplannedBytes)
        XCTAssertGreaterThanOrEqual(plan.size, plan.liveBytesLowerBound)
    }

    func testValidationFailsWhenTwoLiveBuffersShareBytes() {
        let a = BufferPlan.Request(name: "a", bytes: 128, steps: [0...2])
        let b = BufferPlan.Request(name: "b", bytes: 128, steps: [2...3])
        let c = BufferPlan.Request(name: "c", bytes: 128, steps: [4...5])
        // a and b are both live at step 2.
        XCTAssertThrowsError(try BufferPlan(requests: [a, b], offsets: [0, 64], size: 192).validate())
        XCTAssertNoThrow(try BufferPlan(requests: [a, b], offsets: [0, 128], size: 256).validate())
        // a and c never are, so they may share.
        XCTAssertNoThrow(try BufferPlan(requests: [a, c], offsets: [0, 0], size: 128).validate())
        // Past the arena's end, or misaligned.
        XCTAssertThrowsError(try BufferPlan(requests: [a, c], offsets: [0, 64], size: 128).validate())
        XCTAssertThrowsError(try BufferPlan(requests: [a, c], offsets: [0, 4], size: 256).validate())
        // The planner: a scratch buffer live at steps 1 and 5 leaves its bytes to one live at 2–4.
        let s = BufferPlan.Request(name: "s", bytes: 128, steps: [1...1, 5...5])
        let d = BufferPlan.Request(name: "d", bytes: 128, steps: [2...4])
        XCTAssertEqual(BufferPlan([s, d]).size, 128)
        XCTAssertEqual(BufferPlan([s, c]).size, 256)
        XCTAssertEqual(BufferPlan([a, b, c]).size, 256)
    }

    /// Two SGD steps and an inference pass of width-reduced networks, with the arena and with
    /// a buffer per tensor: the same logits, losses, gradients and weights, bit for bit. The
    /// arena's buffers are filled with NaN whenever their declared lifetimes say their contents
    /// no longer matter (`poisonsDeadBuffers`), so a lifetime declared too short fails here even
    /// where the planner happened not to give its bytes to another buffer. Widths
    /// and input size make conv3–conv5 run by Winograd (scratch in the arena), conv1 padded
    /// beforehand (a copy with its own memory), and torchvision's adaptive pool (pool5's 3×3 maps
    /// to 6×6) keeps its copies in the arena.
    func testPlannedNetworkComputesWhatSeparateBuffersCompute() throws {
        var precisions: [Precision] = [.fp32]
        if CPUCapabilities.hasNativeBF16 { precisions.append(.bf16) }
        for variant in [Variant.paper, .seed, .torchvision] {
            for precision in precisions {
                let config = NetworkConfig(variant: variant, widths: [16, 64, 64, 64, 64], hidden: 32, classes: 5, inputSize: 131)
                let planned = try run(config, precision, planned: true)
                let separate = try run(config, precision, planned: false)
                let what = "\(variant) \(precision)"
                XCTAssertTrue(planned.losses == separate.losses, "\(what): the losses differ")
                XCTAssertTrue(planned.logits == separate.logits, "\(what): the logits differ")
                XCTAssertTrue(planned.gradients == separate.gradients, "\(what): the gradients differ")
                XCTAssertTrue(planned.weights == separate.weights, "\(what): the weights differ")
                XCTAssertTrue(planned.inference == separate.inference, "\(what): the inference differ")
                XCTAssertTrue(planned.winograd || precision == .bf16, "\(what): no layer ran by Winograd")
                let plan = try XCTUnwrap(planned.plan)
                XCTAssertNoThrow(try plan.validate())
                XCTAssertLessThan(plan.size, plan.unplannedBytes, what)
            }
        }
    }

    private struct Run {
        var losses: [Float] = [], logits: [[Float]] = [], gradients: [[Float]] = [], weights: [Float] = [], inference: [Float] = []
        var winograd = false
        var plan: BufferPlan?
    }

    private func run(_ config: NetworkConfig, _ precision: Precision, planned: Bool) throws -> Run {
        let engine = try Engine()
        let parameters = try Network.makeParameters(config, training: precision)
        Initialization.pytorch.apply(to: parameters, seed: 5)
        let batch = 4
        let net = try Network(config: config, batch: batch, mode: .training, precision: precision, parameters: parameters,
                              engine: engine, plannedMemory: planned)
        net.poisonsDeadBuffers = planned
        let sgd = SGD(for: parameters, workers: engine.threads)
        var result = Run()
        result.plan = net.memoryPlan
        result.winograd = net.implementations.contains { $0.implementation.contains("winograd") }
        for step in 0..<2 {
            try net.setInput(Tensor(randomNormal: net.input.dims, std: 50, seed: UInt64(20 + step)))
            net.drawDropoutMasks(seed: 3, epoch: step, samples: Array(0..<batch))
            try net.forward()
            result.losses.append(try net.loss(labels: [0, 1, 2, 4]))
            result.logits.append(net.logitsTensor().data)
            try net.backward()
            result.gradients.append(parameters.grads.read(0, parameters.grads.count))
            _ = sgd.step(parameters)
        }
        result.weights = parameters.values.array
        let eval = try Network(config: config, batch: batch, mode: .inference, precision: precision, parameters: parameters,
                               engine: engine, plannedMemory: planned)
        eval.poisonsDeadBuffers = planned
        try eval.setInput(Tensor(randomNormal: eval.input.dims, std: 50, seed: 30))
        try eval.forward()
        // Twice: the input and weights persist between passes, the activations need not.
        try eval.forward()
        result.inference = eval.logitsTensor().data
        // The poison reaches the buffers: conv1's output is dead once conv2 (or lrn1) has read it.
        let conv1 = try eval.layers[0].output.read().data
        XCTAssertEqual(planned, conv1.allSatisfy(\.isNaN), "\(config.variant) \(precision): conv1's output after the pass")
        return result
    }
}

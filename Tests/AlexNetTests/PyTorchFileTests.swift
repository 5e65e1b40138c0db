import AlexNet
import Foundation
import XCTest

/// PyTorch files read natively (interop issue, item 3): ../shared/golden/torch's files, written
/// by `torch.save`, give PyTorch's logits and (for the full checkpoint) its momentum buffers,
/// epoch and scheduler state.
final class PyTorchFileTests: XCTestCase {
    let torch = Paths.shared.appendingPathComponent("golden/torch")

    private func expected() throws -> SafetensorsFile { try SafetensorsFile(path: torch.appendingPathComponent("expected.safetensors").path) }

    /// The logits of `weights` on the expected file's `x`, one forward pass.
    private func logits(_ weights: LoadedWeights, _ x: Tensor) throws -> Tensor {
        let networks = InferenceNetworks(config: weights.network, parameters: weights.parameters, engine: sharedEngine)
        var input = x.data
        let out = try input.withUnsafeMutableBufferPointer {
            try networks.averagedOutputs(images: $0.baseAddress!, count: x.shape[0], crops: 1)
        }
        return Tensor(shape: [x.shape[0], weights.network.classes], data: out.map(Float.init))
    }

    func testSeedStateDictAndFullCheckpointGivePyTorchsLogits() throws {
        let reference = try expected()
        let x = try reference.tensor("x")
        for name in ["seed_small", "seed_small_full"] {
            let weights = try LoadedWeights(path: torch.appendingPathComponent(name + ".pt").path)
            XCTAssertEqual(weights.network.variant, .seed, name)
            XCTAssertEqual(weights.network.widths, [24, 64, 96, 96, 64], name)
            XCTAssertEqual([weights.network.hidden, weights.network.classes, weights.network.inputSize], [256, 10, 224], name)
            assertClose(try logits(weights, x), try reference.tensor(name + ".logits"), 1e-4, name)
        }
    }

    func testFullCheckpointCarriesMomentumEpochAndScheduler() throws {
        let reference = try expected()
        let file = try PyTorchWeights(path: torch.appendingPathComponent("seed_small_full.pt").path)
        XCTAssertEqual(file.naming, .seed)
        XCTAssertEqual(file.epoch, 3)
        let optimizer = try XCTUnwrap(file.optimizer)
        XCTAssertEqual([optimizer.lr, optimizer.momentum, optimizer.weightDecay], [0.01, 0.9, 0.0005])
        XCTAssertEqual(optimizer.buffers.count, 16)
        let state = try XCTUnwrap(file.scheduler), settings = try XCTUnwrap(file.schedulerSettings)
        XCTAssertEqual(state.lr, 0.01)
        XCTAssertEqual(state.best, 0.9)
        XCTAssertEqual([state.badEpochs, state.cooldownCounter, state.epochs], [0, 0, 1])
        XCTAssertEqual([settings.factor, settings.threshold], [0.1, 1e-4])
        XCTAssertEqual(settings.patience, 10)
        // momentum.<i> is the buffer of the i-th parameter in the state dict's order.
        for (i, name) in ParameterNaming.layers.flatMap({ [$0 + ".weight", $0 + ".bias"] }).enumerated() {
            let ref = try reference.tensor("seed_small_full.momentum.\(i)")
            var out = [Float](repeating: .nan, count: ref.data.count)
            try out.withUnsafeMutableBufferPointer { try file.copyMomentum(name, shape: ref.shape, into: $0.baseAddress!) }
            assertClose(Tensor(shape: ref.shape, data: out), ref, 0, name)
        }
    }
}

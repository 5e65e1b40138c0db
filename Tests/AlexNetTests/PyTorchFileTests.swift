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

/// `alexnet convert` (interop issue, item 4): what it writes, read back by Python without
/// PyTorch (CI cannot install it: scripts/check_torch_file.py reads the zip and pickle with the
/// globals torch.load(weights_only=True) allows) and by this project.
final class ConvertTests: XCTestCase {
    func python() throws -> URL {
        let env = ProcessInfo.processInfo.environment
        guard let python = env["ALEXNET_TEST_PYTHON"] else {
            if env["CI"] != nil { XCTFail("ALEXNET_TEST_PYTHON is not set: run the tests through scripts/test.sh") }
            throw XCTSkip("set ALEXNET_TEST_PYTHON to a python with numpy and safetensors (scripts/test.sh does)")
        }
        return URL(fileURLWithPath: python)
    }

    func testConvertWritesStateDictsPythonReadsAndRoundTrips() throws {
        let python = try python()
        let dir = try Paths.temporaryDirectory()
        let source = Paths.shared.appendingPathComponent("golden/torch/seed_small_full.pt").path
        let original = try LoadedWeights(path: source)
        let names = original.parameters.entries.map(\.name)
        for (naming, ext) in [(ParameterNaming.seed, "pt"), (.torchvision, "pth"), (.native, "safetensors")] {
            let out = dir.appendingPathComponent("w-\(naming.rawValue).\(ext)").path
            let (status, stdout, stderr) = try runProcess(Paths.binary, ["convert", source, out, "--names", naming.rawValue])
            XCTAssertEqual(status, 0, stdout + stderr)
            let script = ext == "safetensors"
                ? ["-c", "import json,sys; from safetensors.numpy import load_file; d=load_file(sys.argv[1]); print(json.dumps({'tensors': {k: [list(v.shape), float(v.astype('float64').sum()), float((v.astype('float64')**2).sum())] for k, v in d.items()}}))", out]
                : [Paths.repository.appendingPathComponent("scripts/check_torch_file.py").path, out]
            let (code, json, err) = try runProcess(python, script)
            XCTAssertEqual(code, 0, err)
            let parsed = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
            let tensors = try XCTUnwrap(parsed?["tensors"] as? [String: [Any]], json)
            XCTAssertEqual(Set(tensors.keys), Set(names.map { naming.foreignName($0)! }))
            if ext != "safetensors" { XCTAssertEqual(parsed?["aligned"] as? Bool, true, "storages 64-byte aligned") }
            for e in original.parameters.entries {
                let values = UnsafeBufferPointer(start: original.parameters.values.pointer + e.offset, count: e.count)
                let entry = try XCTUnwrap(tensors[naming.foreignName(e.name)!])
                XCTAssertEqual(entry[0] as? [Int], e.shape, e.name)
                XCTAssertEqual(entry[1] as? Double ?? .nan, values.reduce(0.0) { $0 + Double($1) }, accuracy: 1e-9, e.name)
                XCTAssertEqual(entry[2] as? Double ?? .nan, values.reduce(0.0) { $0 + Double($1) * Double($1) }, accuracy: 1e-9, e.name)
            }
            if naming != .torchvision {
                let back = try LoadedWeights(path: out)
                XCTAssertEqual(back.network, original.network, "\(naming): read back as the same network")
for (a, b) in zip(back.parameters.entries, original.parameters.entries) {
                    XCTAssertEqual(Array(UnsafeBufferPointer(start: back.parameters.values.pointer + a.offset, count: a.count)),
                                   Array(UnsafeBufferPointer(start: original.parameters.values.pointer + b.offset, count: b.count)),
                                   "\(naming) \(a.name): bit for bit")
                }
            }
        }
    }
}

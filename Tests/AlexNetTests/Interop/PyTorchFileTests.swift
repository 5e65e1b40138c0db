import AlexNetCore
import AlexNetInterop
import AlexNetModel
import AlexNetTraining
import Foundation
import XCTest

/// PyTorch files read natively: the small files in Tests/Fixtures/golden/torch, written by
/// `torch.save` (scripts/make_torch_fixtures.py), give PyTorch's logits and (for the full
/// checkpoint) its momentum buffers, epoch and scheduler state.
final class PyTorchFileTests: XCTestCase {
    let torch = Paths.torch

    private func expected() throws -> SafetensorsFile { try SafetensorsFile(path: torch.appendingPathComponent("expected.safetensors").path) }

    /// The logits of `weights` on the expected file's `x`, one forward pass.
    private func logits(_ weights: LoadedWeights, _ x: Tensor) throws -> Tensor {
        let net = try Network(config: weights.network, batch: x.shape[0], mode: .inference, parameters: weights.parameters, engine: sharedEngine)
        try net.setInput(x)
        try net.forward()
        return net.logitsTensor()
    }

    func testSeedStateDictAndFullCheckpointGivePyTorchsLogits() throws {
        let reference = try expected()
        let x = try reference.tensor("x")
        for name in ["seed_small", "seed_small_full"] {
            let weights = try LoadedWeights(path: torch.appendingPathComponent(name + ".pt").path)
            XCTAssertEqual(weights.network.variant, .seed, name)
            XCTAssertEqual(weights.network.widths, [8, 16, 24, 24, 16], name)
            XCTAssertEqual([weights.network.hidden, weights.network.classes, weights.network.inputSize], [32, 10, 224], name)
            assertClose(try logits(weights, x), try reference.tensor(name + ".logits"), 1e-4, name)
        }
    }

    func testTorchvisionStateDictGivesPyTorchsLogits() throws {
        let reference = try expected()
        let weights = try LoadedWeights(path: torch.appendingPathComponent("torchvision_small.pt").path)
        XCTAssertEqual(weights.network.variant, .torchvision)
        XCTAssertEqual(weights.network.widths, [8, 16, 24, 16, 16])
        XCTAssertEqual([weights.network.hidden, weights.network.classes, weights.network.inputSize, weights.network.conv1Stride,
                        weights.network.conv1Padding], [32, 10, 224, 4, 2])
        XCTAssertEqual(weights.channelStd, [0.229, 0.224, 0.225].map { $0 * 255 }, "torchvision's normalisation")
        assertClose(try logits(weights, try reference.tensor("x")), try reference.tensor("torchvision_small.logits"), 1e-4, "torchvision_small")
        XCTAssertThrowsError(try LoadedWeights(path: torch.appendingPathComponent("torchvision_small.pt").path, variant: .paper)) {
            XCTAssertTrue("\($0)".contains("torchvision"), "\($0)")
        }
    }

    /// `classify` with the seed's and torchvision's `.pt` on the photos, each with its own
    /// normalisation: PyTorch's top 5, probabilities within 1e-4.
    func testClassifyWithPyTorchFilesGivesPyTorchsTopFive() throws {
        let expected = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: torch.appendingPathComponent("images_expected.json")))
            as? [String: [String: [[Double]]]])
        let photos = expected.keys.sorted()
        for file in ["seed_small.pt", "torchvision_small.pt"] {
            let args = ["classify", "-w", torch.appendingPathComponent(file).path, "-k", "5", "--json"]
                + photos.flatMap { ["-i", Paths.photos.appendingPathComponent($0).path] }
            let (status, out, err) = try runProcess(Paths.binary, args)
            XCTAssertEqual(status, 0, err)
            let last = try XCTUnwrap(out.split(separator: "\n").last)
            let lists = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(last.utf8)) as? [[[String: Any]]], String(last))
            XCTAssertEqual(lists.count, photos.count, file)
            for (photo, predictions) in zip(photos, lists) {
                let reference = try XCTUnwrap(expected[photo]?[file])
                XCTAssertEqual(predictions.map { $0["index"] as? Int }, reference.map { Int($0[0]) }, "\(file) \(photo)")
                for (p, r) in zip(predictions, reference) {
                    XCTAssertEqual(p["probability"] as? Double ?? .nan, r[1], accuracy: 1e-4, "\(file) \(photo)")
                }
            }
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

/// `alexnet convert`: what it writes, read back by Python without PyTorch (CI cannot install it:
/// scripts/check_torch_file.py reads the zip and pickle with the globals
/// torch.load(weights_only=True) allows) and by this project.
final class ConvertTests: XCTestCase {
    func testConvertWritesStateDictsPythonReadsAndRoundTrips() throws {
        let python = try Paths.python(needing: "numpy and safetensors")
        let dir = try Paths.temporaryDirectory()
        let source = Paths.torch.appendingPathComponent("seed_small_full.pt").path
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

/// Malformed PyTorch files: each gives an error naming the problem, and mutated archives and
/// pickles never crash or hang the reader.
final class PyTorchMalformedTests: XCTestCase {
    /// A `.pt` with `pickle` as data.pkl and the given storages.
    private func file(_ dir: URL, _ name: String, pickle: [UInt8], storages: [Data] = []) throws -> String {
        var zip = ZipWriter()
        try zip.add("a/data.pkl", Data(pickle))
        try zip.add("a/byteorder", Data("little".utf8))
        for (i, s) in storages.enumerated() { try zip.add("a/data/\(i)", s) }
        let path = dir.appendingPathComponent(name).path
        try zip.finish().write(to: URL(fileURLWithPath: path))
        return path
    }

    private func stateDict(_ entries: [(String, [Int])], count: ((Int) -> Int)? = nil) -> [UInt8] {
        var p = Pickler()
        p.write(.dict(entries.enumerated().map { i, e in
            (.string(e.0), .tensor(storageKey: "\(i)", count: count?(i) ?? e.1.reduce(1, *), shape: e.1))
        }, ordered: true))
        return p.finish()
    }

    private func assertFails(_ path: String, _ says: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try LoadedWeights(path: path), file: file, line: line) { error in
            XCTAssertTrue("\(error)".contains(says), "\(error)", file: file, line: line)
        }
    }

    private let seedShapes: [(String, [Int])] = {
        let c = NetworkConfig(variant: .seed, widths: [8, 16, 16, 16, 8], hidden: 32, classes: 5, inputSize: 67)
        return c.parameterShapes.map { (ParameterNaming.seed.foreignName($0.name)!, $0.shape) }
    }()

    private func floats(_ shapes: [(String, [Int])]) -> [Data] {
        shapes.map { Data(count: 4 * $0.1.reduce(1, *)) }
    }

    func testEachMalformedInputIsNamed() throws {
        let dir = try Paths.temporaryDirectory()
        let good = try file(dir, "good.pt", pickle: stateDict(seedShapes), storages: floats(seedShapes))
        XCTAssertNoThrow(try LoadedWeights(path: good))
        let bytes = try Data(contentsOf: URL(fileURLWithPath: good))

        let truncated = dir.appendingPathComponent("truncated.pt").path
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: truncated))
        assertFails(truncated, "truncated")

        // A global that would construct an object: os.system, the classic.
        var evil = Pickler()
        evil.write(.string("x"))
        var evilBytes = Array(evil.finish().dropLast())
        evilBytes += [0x63] + Array("os\nsystem\n".utf8) + [0x28, 0x58, 2, 0, 0, 0] + Array("id".utf8) + [0x74, 0x52, 0x2E]
        assertFails(try file(dir, "global.pt", pickle: evilBytes), "refuses the global os.system")

        assertFails(try file(dir, "opcode.pt", pickle: [0x80, 0x02, 0x69, 0x2E]), "opcode 0x69 is not read")

        let short = try file(dir, "short.pt", pickle: stateDict(seedShapes, count: { $0 == 2 ? 10 : self.seedShapes[$0].1.reduce(1, *) }),
                             storages: floats(seedShapes))
        assertFails(short, "reaches element")
        var shortStorage = floats(seedShapes)
        shortStorage[3] = Data(count: 8)
        assertFails(try file(dir, "short-storage.pt", pickle: stateDict(seedShapes), storages: shortStorage), "shorter than its")

        var renamed = seedShapes
        renamed[4].0 = "block3.1.weight"
        assertFails(try file(dir, "name.pt", pickle: stateDict(renamed), storages: floats(renamed)), "'block3.1.weight' maps to no AlexNet parameter")

        var misfit = seedShapes
        misfit[10].1 = [32, 7]   // fc6 over 7 features: no input size gives conv5's 8 channels that
        assertFails(try file(dir, "misfit.pt", pickle: stateDict(misfit), storages: floats(misfit)), "fit no input size")

        let legacy = dir.appendingPathComponent("legacy.pt").path
        try Data([0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19, 0x2E]).write(to: URL(fileURLWithPath: legacy))
        assertFails(legacy, "legacy format")

        // pickle.dump's output (protocol 4: PROTO, FRAME, an empty dict) is no torch.save file.
        let raw = dir.appendingPathComponent("raw.pt").path
        try Data([0x80, 0x04, 0x95, 1, 0, 0, 0, 0, 0, 0, 0, 0x7D, 0x94, 0x2E]).write(to: URL(fileURLWithPath: raw))
        assertFails(raw, "a raw pickle, not a torch.save zip file")
    }

    /// Bit flips, truncations and byte runs in a real `.pt` (archive and pickle): each read either
    /// succeeds or throws; none crashes or hangs (bounded in time).
    func testMutatedFilesNeverCrash() throws {
        let dir = try Paths.temporaryDirectory()
        let original = try Data(contentsOf: Paths.torch.appendingPathComponent("seed_small.pt"))
        let pickleOffset = original.range(of: Data("seed_small/data.pkl".utf8))!.upperBound
        var rng = RandomGenerator(seed: 2026, stream: 9)
        let start = Date()
        var cases = 0, failures = 0
        let path = dir.appendingPathComponent("m.pt").path
        while cases < 400 && Date().timeIntervalSince(start) < 20 {
            var b = [UInt8](original)
            switch cases % 4 {
            case 0:   // flips in the pickle's first bytes (after the local header)
                for _ in 0..<1 + Int(rng.next() % 4) { b[pickleOffset + 4 + Int(rng.next() % 2000)] ^= UInt8(1 << (rng.next() % 8)) }
            case 1:   // flips anywhere, the central directory included
                for _ in 0..<1 + Int(rng.next() % 8) { b[Int(rng.next() % UInt64(b.count))] ^= UInt8(1 << (rng.next() % 8)) }
            case 2: b = Array(b.prefix(Int(rng.next() % UInt64(b.count))))
            default:   // a run of one byte value
                let at = Int(rng.next() % UInt64(b.count)), n = min(b.count - at, 1 + Int(rng.next() % 64)), v = UInt8(rng.next() % 256)
                for i in at..<(at + n) { b[i] = v }
            }
            try Data(b).write(to: URL(fileURLWithPath: path))
            do { _ = try LoadedWeights(path: path) } catch { failures += 1 }
            cases += 1
        }
        XCTAssertGreaterThan(cases, 40)
        XCTAssertGreaterThan(failures, cases / 4, "most mutations are caught")
    }
}

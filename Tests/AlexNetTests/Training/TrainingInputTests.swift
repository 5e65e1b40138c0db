import AlexNetCore
import AlexNetData
import AlexNetInterop
import AlexNetKernels
import AlexNetTraining
import Foundation
import XCTest

/// What training, evaluation and classification read is checked before use, and a run never
/// writes over another: run folders, resume state, a checkpoint's metadata and embedded paths,
/// non-finite values, statistics that do not fit, and memory a batch cannot have.
final class TrainingInputTests: XCTestCase {
    static let data: (root: URL, stats: String) = try! makeTrainingDataset(try! Paths.temporaryDirectory("input-data"))

    func train(_ config: TrainingConfig) throws -> TrainingSummary {
        try Trainer(config: config, logger: quietLogger).run()
    }

    func oneEpoch(_ run: String) -> TrainingConfig {
        var c = tinyConfig(Self.data, run: run)
        c.training.epochs = 1
        c.training.evaluateBeforeTraining = false
        return c
    }

    /// A copy of the safetensors file at `path` with `edit` applied to its metadata and tensors.
    func rewritten(_ path: String, as name: String, metadata edit: (inout [String: String]) -> Void = { _ in },
                   tensors change: (String, inout Tensor) -> Void = { _, _ in }) throws -> String {
        let source = try SafetensorsFile(path: path)
        var metadata = source.metadata
        edit(&metadata)
        var w = SafetensorsWriter(metadata: metadata)
        for n in source.names {
            if (source.tensors[n]?.dtype ?? .f32) == .f64 {
                w.add(n, doubles: try source.doubles(n), shape: source.tensors[n]!.shape)
            } else {
                var t = try source.tensor(n)
                change(n, &t)
                w.add(n, t)
            }
        }
        let out = try Paths.temporaryDirectory("rewritten").appendingPathComponent(name).path
        try w.write(to: out)
        return out
    }

    // MARK: run folders

    func testARunNameIsNotReusedWithoutResume() throws {
        let first = try train(oneEpoch("taken"))
        let before = try Data(contentsOf: URL(fileURLWithPath: first.lastCheckpoint))
        XCTAssertThrowsError(try train(oneEpoch("taken"))) {
            XCTAssertTrue("\($0)".contains("already has files") && "\($0)".contains("--resume"), "\($0)")
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: first.lastCheckpoint)), before, "the first run's checkpoint is untouched")
        // Generated names never land on an existing run.
        var c = oneEpoch("")
        c.path.runName = ""
        let names = Set(try (0..<2).map { _ in try train(c).runName })
        XCTAssertEqual(names.count, 2)
    }

    func testASecondProcessCannotTrainTheSameRunAndLeftoversAreRemoved() throws {
        let c = oneEpoch("locked")
        let folder = Self.data.root.appendingPathComponent("checkpoints/locked").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let leftover = folder + "/.last.safetensors.tmp-99999"
        try Data("half a checkpoint".utf8).write(to: URL(fileURLWithPath: leftover))
        // Another holder of the run's lock (flock(2) locks belong to an open file, so a second
        // open in this process stands for another process).
        let fd = open(folder + "/.lock", O_RDWR | O_CREAT, 0o644)
        XCTAssertEqual(flock(fd, LOCK_EX | LOCK_NB), 0)
        XCTAssertThrowsError(try train(c)) { XCTAssertTrue("\($0)".contains("another process is training run 'locked'"), "\($0)") }
        close(fd)
        _ = try train(c)
        XCTAssertFalse(FileManager.default.fileExists(atPath: leftover), "a killed run's temporary file is removed")
    }

    func testRunFoldersMayNotLieInsideTheDatasetSplits() throws {
        var c = oneEpoch("inside")
        c.path.checkpointDir = Self.data.root.appendingPathComponent("train/class0").path
        XCTAssertThrowsError(try train(c)) { XCTAssertTrue("\($0)".contains("path.checkpoint_dir is inside"), "\($0)") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: c.path.checkpointDir + "/inside"))
    }

    // MARK: resume state

    func testResumeStateOutOfRangeIsRefused() throws {
        let last = try train(oneEpoch("state")).lastCheckpoint
        let saved = try Checkpoint.read(last)
        func withState(_ name: String, _ change: (inout TrainingState) -> Void) throws -> String {
            var state = saved.state
            change(&state)
            let json = String(decoding: try JSONEncoder().encode(state), as: UTF8.self)
            return try rewritten(last, as: name) { $0["state"] = json }
        }
        let cases: [(String, (inout TrainingState) -> Void, String)] = [
            ("negative", { $0.epoch = -7 }, "epoch"),
            ("huge", { $0.epoch = 1 << 62 }, "more than training.epochs"),
            ("batch", { $0.batch = -1 }, "batch"),
            ("lr", { $0.schedule.state.lr = 0 }, "learning rate"),
        ]
        for (name, change, words) in cases {
            var c = oneEpoch("state")
            c.training.resumeFrom = try withState(name + ".safetensors", change)
            c.training.epochs = 3
            XCTAssertThrowsError(try train(c), name) { XCTAssertTrue("\($0)".contains(words), "\(name): \($0)") }
        }
        // Through the binary: one line, a usage error.
        let file = try withState("neg.safetensors") { $0.epoch = -7 }
        let root = Self.data.root.path
        let (status, _, err) = try runProcess(Paths.binary, ["train", "--resume", file, "--set", "training.epochs=3",
                                                            "--set", "path.dataset=\(root)", "--set", "path.log_dir=\(root)/runs",
                                                            "--set", "path.checkpoint_dir=\(root)/checkpoints",
                                                            "--set", "augmentations.statistics=\(Self.data.stats)"])
        XCTAssertTrue((1...127).contains(status), err)
        XCTAssertTrue(err.contains("epoch") && err.split(separator: "\n").count == 1, err)
    }

    func testNonFiniteWeightsAndMomentumAreRefused() throws {
        let last = try train(oneEpoch("poison")).lastCheckpoint
        for (tensor, what) in [("fc7.weight", "weights"), ("momentum.conv2.bias", "momentum")] {
            let bad = try rewritten(last, as: "\(what).safetensors", tensors: { n, t in if n == tensor { t.data[3] = .nan } })
            var c = oneEpoch("poison")
            c.training.resumeFrom = bad
            c.training.epochs = 2
            XCTAssertThrowsError(try train(c), what) { XCTAssertTrue("\($0)".contains(what) && "\($0)".contains("NaN"), "\($0)") }
        }
        // evaluate, classify, export and training.start_from read weights through one loader.
        let bad = try rewritten(last, as: "inf.safetensors", tensors: { n, t in if n == "conv1.bias" { t.data[0] = .infinity } })
        XCTAssertThrowsError(try LoadedWeights(path: bad)) { XCTAssertTrue("\($0)".contains("conv1.bias"), "\($0)") }
    }

    func testConfigRangesForMomentumAndFactor() throws {
        var c = TrainingConfig()
        for bad in ["optimizer.momentum=1", "scheduler.plateau.factor=1", "optimizer.lr=.nan", "optimizer.weight_decay=-1"] {
            XCTAssertThrowsError(try c.override(bad), bad)
        }
        XCTAssertNoThrow(try c.override("optimizer.momentum=0.99"))
    }

    // MARK: a checkpoint's metadata and paths

    func testBrokenCheckpointMetadataIsAnErrorNotPlainWeights() throws {
        let last = try train(oneEpoch("meta")).lastCheckpoint
        let truncated = try rewritten(last, as: "truncated.safetensors") { $0["classes"] = String($0["classes"]!.dropLast(5)) }
        XCTAssertThrowsError(try LoadedWeights(path: truncated)) { XCTAssertTrue("\($0)".contains("metadata 'classes'"), "\($0)") }
        let (status, _, err) = try runProcess(Paths.binary, ["evaluate", "-w", truncated, "--data", Self.data.root.path])
        XCTAssertTrue((1...127).contains(status), err)
        XCTAssertTrue(err.contains("classes"), err)
        let fewer = try rewritten(last, as: "fewer.safetensors") { $0["classes"] = "[\"a\"]" }
        XCTAssertThrowsError(try LoadedWeights(path: fewer)) { XCTAssertTrue("\($0)".contains("1 classes"), "\($0)") }
        let mean = try rewritten(last, as: "mean.safetensors") { $0["mean"] = "median" }
        XCTAssertThrowsError(try LoadedWeights(path: mean)) { XCTAssertTrue("\($0)".contains("'mean'"), "\($0)") }
    }

    func testStatisticsThatDoNotFitAreRefusedBeforeUse() throws {
        let last = try train(oneEpoch("stats")).lastCheckpoint
        // A 1-D mean image: once resized every image to 60 000 pixels a side.
        let flat = try rewritten(last, as: "flat.safetensors", tensors: { n, t in
            if n == "statistics.mean_image" { t = Tensor(shape: [60_000], data: [Float](repeating: 100, count: 60_000)) }
        })
        XCTAssertThrowsError(try LoadedWeights(path: flat)) { XCTAssertTrue("\($0)".contains("expected (S, S, 3)"), "\($0)") }
        let image = Self.data.root.appendingPathComponent("val/class1/000.png").path
        let (status, _, err) = try runProcess(Paths.binary, ["classify", "-i", image, "-w", flat])
        XCTAssertTrue((1...127).contains(status), err)
        XCTAssertTrue(err.contains("mean_image"), err)
        // A mean image smaller than the crop fails in classify as it does in evaluate.
        let small = try rewritten(last, as: "small.safetensors", tensors: { n, t in
            if n == "statistics.mean_image" { t = Tensor(shape: [8, 8, 3], data: [Float](repeating: 100, count: 192)) }
        })
        let weights = try LoadedWeights(path: small)
        XCTAssertThrowsError(try Classifier(weights: weights, engine: try Engine(threads: 1))) {
            XCTAssertTrue("\($0)".contains("smaller than"), "\($0)")
        }
        // NaN in a statistics file.
        let nan = try rewritten(Self.data.stats, as: "nan-stats.safetensors", tensors: { n, t in if n == "mean_image" { t.data[7] = .nan } })
        XCTAssertThrowsError(try DatasetStatistics(file: nan)) { XCTAssertTrue("\($0)".contains("mean_image"), "\($0)") }
    }

    func testACheckpointsOwnPathsStayInsideTheCurrentFolder() throws {
        let last = try train(oneEpoch("paths")).lastCheckpoint
        // tinyConfig's paths are absolute (a temporary folder): resuming from the checkpoint's own
        // configuration refuses them until the command line gives them.
        XCTAssertThrowsError(try TrainingConfig.resolve(file: nil, overrides: [], resume: last)) {
            XCTAssertTrue("\($0)".contains("path.dataset") && "\($0)".contains("outside the current folder"), "\($0)")
        }
        XCTAssertThrowsError(try TrainingConfig.resolve(file: nil, overrides: ["path.dataset=\(Self.data.root.path)"], resume: last)) {
            XCTAssertTrue("\($0)".contains("path.log_dir"), "the next key is checked: \($0)")
        }
        let c = try TrainingConfig.resolve(file: nil, overrides: [
            "path.dataset=\(Self.data.root.path)", "path.log_dir=\(Self.data.root.path)/runs",
            "path.checkpoint_dir=\(Self.data.root.path)/checkpoints", "augmentations.statistics=\(Self.data.stats)",
        ], resume: last)
        XCTAssertEqual(c.path.dataset, Self.data.root.path)
    }

    // MARK: memory

    /// A model section for `bench -c` with the paper's network on `size`-pixel inputs.
    func inputSizeConfig(_ size: Int) throws -> String {
        let file = try Paths.temporaryDirectory("input-size").appendingPathComponent("model.yml")
        try "model:\n  input_size: \(size)\n".write(to: file, atomically: true, encoding: .utf8)
        return file.path
    }

    /// 512-pixel inputs at batch 4096 need about 185 GB of activations: refused on any machine
    /// this runs on, before a kernel is made.
    func testABatchTooLargeForMemoryIsAnErrorNamingTheSize() throws {
        let (status, out, err) = try runProcess(Paths.binary, ["bench", "-c", try inputSizeConfig(512), "--batch", "4096",
                                                               "--iters", "1", "--warmup", "0"])
        XCTAssertTrue((1...127).contains(status), out + err)
        XCTAssertTrue(err.contains("GB") && err.contains("lower the batch size"), err)
    }

    /// A model too large is refused, naming the layer, before its parameters are allocated (not
    /// killed by the out-of-memory killer while they are initialised).
    func testAModelTooLargeIsRefusedBeforeItsParametersAreMade() throws {
        let (status, out, err) = try runProcess(Paths.binary, ["bench", "-c", try inputSizeConfig(2048), "--batch", "1",
                                                               "--iters", "1", "--warmup", "0"])
        XCTAssertEqual(status, 1, out + err)
        XCTAssertTrue(err.contains("parameters") && err.contains("fc6.weight"), err)
    }

    /// Classify goes through in batches: more images than one batch holds give the same answers
    /// as one image at a time.
    func testClassifyInBatchesMatchesOneAtATime() throws {
        let weights = try LoadedWeights(path: try train(oneEpoch("classify")).lastCheckpoint)
        let classifier = try Classifier(weights: weights, engine: try Engine(threads: 2))
        let split = try DatasetSplit.open(Self.data.root.appendingPathComponent("val").path)
        let files = (0..<(Classifier.cropsPerBatch / 10 + 1)).map { split.path($0 % split.count) }
        let together = try classifier.classify(files: files, top: 2, tenCrop: true)
        XCTAssertEqual(together.count, files.count)
        for (file, expected) in zip(files, together) {
            let alone = try classifier.classify(files: [file], top: 2, tenCrop: true)[0]
            XCTAssertEqual(alone.map(\.index), expected.map(\.index), file)
            for (a, b) in zip(alone, expected) { XCTAssertEqual(a.probability, b.probability, accuracy: 1e-5, file) }
        }
    }
}

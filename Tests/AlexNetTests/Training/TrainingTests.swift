import AlexNetCore
import AlexNetData
import AlexNetInterop
import AlexNetModel
import AlexNetTraining
import Foundation
import Logging
import XCTest

/// A small ImageFolder dataset of 73×73 PNGs (the evaluation size for 64 crops): each class a
/// colour and a stripe direction, plus noise, so a tiny network can learn something.
func makeTrainingDataset(_ root: URL, classes: Int = 4, train: Int = 10, val: Int = 3) throws -> (root: URL, stats: String) {
    let codec = ImageCodec()
    for (split, count) in [("train", train), ("val", val)] {
        for c in 0..<classes {
            let folder = root.appendingPathComponent("\(split)/class\(c)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            for k in 0..<count {
                var rng = RandomGenerator(seed: UInt64(c * 1000 + k + (split == "val" ? 500 : 0)))
                var image = RGBImage(width: 73, height: 73)
                for y in 0..<73 { for x in 0..<73 {
                    let stripe = ((c % 2 == 0 ? x : y) / (3 + c)) % 2 == 0 ? 60 : 0
                    for ch in 0..<3 {
                        let base = ch == c % 3 ? 160 : 60
                        image.pixels[(y * 73 + x) * 3 + ch] = UInt8(clamping: base + stripe + Int(rng.next() % 40))
                    }
                } }
                try codec.encodePNG(image).write(to: folder.appendingPathComponent(String(format: "%03d.png", k)))
            }
        }
    }
    let stats = root.appendingPathComponent("stats.safetensors").path
    try DatasetStatistics.compute(try DatasetSplit.open(root.appendingPathComponent("train").path), size: 73, threads: 2)
        .write(to: stats, source: "test")
    return (root, stats)
}

/// A configuration that trains in about a second: 40 images in batches of 16 (the last one short).
func tinyConfig(_ data: (root: URL, stats: String), run: String) -> TrainingConfig {
    var c = TrainingConfig()
    c.path.dataset = data.root.path
    c.path.runName = run
    c.path.logDir = data.root.appendingPathComponent("runs").path
    c.path.checkpointDir = data.root.appendingPathComponent("checkpoints").path
    c.model = NetworkConfig(widths: [4, 8, 8, 8, 8], hidden: 16, classes: 4, inputSize: 64)
    c.training.epochs = 2
    c.training.batchSize = 16
    c.training.evalBatchSize = 5
    c.training.threads = 2
    c.training.seed = 5
    c.training.checkpointEveryMinutes = 0
    c.training.printFreq = 1
    c.optimizer.lr = 0.02
    // Plateau with patience 0 changes the rate at once, so the schedule's state matters on resume.
    c.scheduler.name = .plateau
    c.scheduler.metric = .loss
    c.scheduler.plateau.patience = 0
    c.scheduler.plateau.threshold = 10
    c.augmentations.statistics = data.stats
    return c
}

/// Writes `config` as YAML to `folder/name` for the command-line tests, and returns its path.
func writeConfig(_ config: TrainingConfig, in folder: URL, named name: String) throws -> String {
    let path = folder.appendingPathComponent(name).path
    try config.yaml().write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

let quietLogger: Logger = {
    var l = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
    l.logLevel = .critical
    return l
}()

/// Asserts that two checkpoints hold bit-identical parameters and momentum buffers, and the same
/// training history.
func assertSameTrajectory(_ a: String, _ b: String, file: StaticString = #filePath, line: UInt = #line) throws {
    let x = try Checkpoint.read(a), y = try Checkpoint.read(b)
    let names = x.file.names.filter { !$0.hasPrefix("epoch_start.") }
    XCTAssertEqual(names, y.file.names.filter { !$0.hasPrefix("epoch_start.") }, file: file, line: line)
    for name in names where !name.hasPrefix("statistics.") {
        let (p, q) = (try x.file.tensor(name), try y.file.tensor(name))
        XCTAssertTrue(p.data.map(\.bitPattern) == q.data.map(\.bitPattern), "\(name) differs", file: file, line: line)
    }
    XCTAssertEqual(x.state.epoch, y.state.epoch, file: file, line: line)
    XCTAssertEqual(x.state.sgdSteps, y.state.sgdSteps, file: file, line: line)
    XCTAssertEqual(x.state.schedule.state, y.state.schedule.state, file: file, line: line)
    XCTAssertEqual(x.state.history.map(\.trainLoss), y.state.history.map(\.trainLoss), file: file, line: line)
    XCTAssertEqual(x.state.history.map(\.validation), y.state.history.map(\.validation), file: file, line: line)
}

final class TrainingTests: XCTestCase {
    static let data: (root: URL, stats: String) = try! makeTrainingDataset(try! Paths.temporaryDirectory("training-data"))

    func train(_ config: TrainingConfig, stopAt: (epoch: Int, batch: Int)? = nil,
               afterStep: ((Int, Int) -> Void)? = nil) throws -> TrainingSummary {
        let stop = StopRequest()
        let trainer = Trainer(config: config, logger: quietLogger, stop: stop)
        trainer.afterStep = { epoch, batch in
            afterStep?(epoch, batch)
            if let s = stopAt, s == (epoch, batch) { stop.request(SIGINT) }
        }
        return try trainer.run()
    }

    func checkpoint(_ run: String, _ name: String = "last.safetensors") -> String {
        Self.data.root.appendingPathComponent("checkpoints/\(run)/\(name)").path
    }

    func testAnEpochTrainsEveryImageAndTheLastShortBatch() throws {
        var c = tinyConfig(Self.data, run: "count")
        c.training.epochs = 1
        let summary = try train(c)
        let saved = try Checkpoint.read(summary.lastCheckpoint)
        XCTAssertEqual(saved.state.sgdSteps, 3, "40 images in batches of 16: 16 + 16 + 8")
        XCTAssertEqual(saved.state.epoch, 1)
        XCTAssertEqual(saved.state.batch, 0)
        XCTAssertEqual(summary.history.map(\.epoch), [0, 1], "the untrained network is evaluated first")
        XCTAssertEqual(summary.history[0].validation?.images, 12)
        XCTAssertNil(summary.history[0].trainLoss)
        XCTAssertNotNil(summary.history[1].trainLoss)
        XCTAssertEqual(saved.classes, ["class0", "class1", "class2", "class3"])
        XCTAssertEqual(saved.network, c.model)
        XCTAssertNotNil(saved.statistics, "the normalisation travels with the weights")
        XCTAssertNil(saved.file.tensors["epoch_start.conv1.weight"], "an epoch-end checkpoint needs no epoch-start weights")
        XCTAssertTrue(FileManager.default.fileExists(atPath: checkpoint("count", "epoch-0001.safetensors")))
        XCTAssertTrue(FileManager.default.fileExists(atPath: checkpoint("count", "best.safetensors")))
    }

    func testValidationEveryNEpochsAndAfterTheLast() throws {
        var c = tinyConfig(Self.data, run: "every2")
        c.training.epochs = 3
        c.training.validateEveryEpochs = 2
        let summary = try train(c)
        XCTAssertEqual(summary.history.map(\.epoch), [0, 1, 2, 3])
        XCTAssertEqual(summary.history.map { $0.validation != nil }, [true, false, true, true])
        XCTAssertNotNil(summary.history[1].trainLoss)
        let best = try Checkpoint.read(checkpoint("every2", "best.safetensors"))
        XCTAssertTrue([2, 3].contains(best.state.bestEpoch ?? 0), "only validated epochs can be best")
    }

    /// 2 epochs straight = 1 epoch, then a resumed run for the second (bit for bit).
    func testResumeAtAnEpochBoundaryContinuesTheSameTrajectory() throws {
        let straight = try train(tinyConfig(Self.data, run: "straight"))
        var first = tinyConfig(Self.data, run: "split")
        first.training.epochs = 1
        _ = try train(first)
        var second = tinyConfig(Self.data, run: "ignored")
        second.training.resumeFrom = checkpoint("split")
        let resumed = try train(second)
        XCTAssertEqual(resumed.runName, "split", "a resumed run keeps its name, folders and TensorBoard log")
        XCTAssertNotEqual(try Checkpoint.read(straight.lastCheckpoint).state.schedule.state.lr, 0.02, "the schedule acted")
        try assertSameTrajectory(straight.lastCheckpoint, resumed.lastCheckpoint)
    }

    /// Stopped mid-epoch (as Ctrl-C does, or a periodic checkpoint), then resumed: the same as straight.
    func testResumeMidEpochContinuesTheSameTrajectory() throws {
        let straight = try train(tinyConfig(Self.data, run: "straight-mid"))
        var c = tinyConfig(Self.data, run: "stopped")
        c.training.checkpointEveryMinutes = 1e-9   // a checkpoint after every step
        let periodic = Self.data.root.appendingPathComponent("periodic.safetensors").path
        XCTAssertThrowsError(try train(c, stopAt: (2, 2), afterStep: { epoch, batch in
            // The time-based checkpoint after epoch 1's first batch, kept aside.
            if (epoch, batch) == (1, 2) { try? FileManager.default.removeItem(atPath: periodic); try! FileManager.default.copyItem(atPath: self.checkpoint("stopped"), toPath: periodic) }
        })) { error in
            guard case let TrainingError.interrupted(signal, file, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(signal, SIGINT)
            XCTAssertEqual(file, self.checkpoint("stopped"))
            XCTAssertEqual((error as! TrainingError).exitCode, 130)
        }
        let stopped = try Checkpoint.read(checkpoint("stopped"))
        XCTAssertEqual(stopped.state.epoch, 1)
        XCTAssertEqual(stopped.state.batch, 2)
        XCTAssertNotNil(stopped.file.tensors["epoch_start.conv1.weight"])
        XCTAssertEqual(try Checkpoint.read(periodic).state.batch, 1)

        var resume = tinyConfig(Self.data, run: "stopped")
        resume.training.resumeFrom = checkpoint("stopped")
        try assertSameTrajectory(straight.lastCheckpoint, try train(resume).lastCheckpoint)

        var fromPeriodic = tinyConfig(Self.data, run: "stopped")
        fromPeriodic.training.resumeFrom = periodic
        try assertSameTrajectory(straight.lastCheckpoint, try train(fromPeriodic).lastCheckpoint)
    }

    /// A diverging run stops at the first non-finite loss, naming epoch and batch, and leaves
    /// the last good checkpoint as it was.
    func testANonFiniteLossStopsAndKeepsTheLastGoodCheckpoint() throws {
        var good = tinyConfig(Self.data, run: "diverge")
        good.training.epochs = 1
        _ = try train(good)
        let before = try Data(contentsOf: URL(fileURLWithPath: checkpoint("diverge")))
        var bad = tinyConfig(Self.data, run: "diverge")
        bad.training.resumeFrom = checkpoint("diverge")
        bad.training.epochs = 3
        bad.optimizer.lr = 1e12
        bad.scheduler.name = .step
        XCTAssertThrowsError(try train(bad)) { error in
            guard case let TrainingError.nonFinite(epoch, batch, _, last) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(epoch, 2)
            XCTAssertGreaterThan(batch, 1)
            XCTAssertEqual(last, self.checkpoint("diverge"))
            XCTAssertTrue("\(error)".contains("epoch 2, batch \(batch)"), "\(error)")
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: checkpoint("diverge"))), before)
    }

    /// A safetensors file of `model`'s initial weights with `poison` applied, for training.start_from.
    func weightsFile(_ model: NetworkConfig, named name: String, poison: (ParameterStore) throws -> Void) throws -> String {
        let parameters = try Network.makeParameters(model)
        Initialization.paper.apply(to: parameters, seed: 3)
        try poison(parameters)
        var w = SafetensorsWriter(metadata: ["variant": model.variant.rawValue, "input_size": "\(model.inputSize)",
                                             "conv1_stride": "\(model.conv1Stride)", "conv1_padding": "\(model.conv1Padding)"])
        for e in parameters.entries { w.add(e.name, try parameters.tensor(e.name)) }
        let path = try Paths.temporaryDirectory().appendingPathComponent(name).path
        try w.write(to: path)
        return path
    }

    /// Files in the run's own checkpoint folder, hidden ones (its lock) aside.
    func checkpointFiles(_ run: String) -> [String] {
        let folder = Self.data.root.appendingPathComponent("checkpoints/\(run)").path
        return ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { !$0.hasPrefix(".") }
    }

    /// The seed variant's final ReLU turns NaN logits into zeros, so the loss stays finite: weights
    /// that overflow during training (a learning rate far too large) are caught by the update's
    /// own check, naming the parameter, and no checkpoint is written. A NaN already in the
    /// starting weights is refused when they are read; outputs that overflow in the validation
    /// before training (the paper's logits keep them) stop the run as clearly.
    func testNonFiniteWeightsStopTheRunWithoutACheckpoint() throws {
        var seed = tinyConfig(Self.data, run: "overflowing-seed")
        seed.model.variant = .seed
        seed.optimizer.lr = 1e38
        seed.training.evaluateBeforeTraining = false
        XCTAssertThrowsError(try train(seed)) { error in
            guard case TrainingError.nonFiniteState = error else { return XCTFail("\(error)") }
            XCTAssertTrue("\(error)".contains("after the update at epoch 1, batch ") && "\(error)".contains("is not finite (NaN or infinite); learning rate 1e+38"),
                          "\(error)")
            XCTAssertTrue("\(error)".contains("No checkpoint had been written yet"), "\(error)")
        }
        XCTAssertEqual(checkpointFiles("overflowing-seed"), [])

        var poisoned = tinyConfig(Self.data, run: "poisoned-seed")
        poisoned.model.variant = .seed
        poisoned.training.startFrom = try weightsFile(poisoned.model, named: "seed.safetensors") { p in
            var t = try p.tensor("fc8.weight")
            t.data[3] = .nan
            try p.set("fc8.weight", t)
        }
        XCTAssertThrowsError(try train(poisoned)) { XCTAssertTrue("\($0)".contains("fc8.weight holds a NaN or infinite value"), "\($0)") }
        XCTAssertEqual(checkpointFiles("poisoned-seed"), [])

        var paper = tinyConfig(Self.data, run: "poisoned-paper")
        paper.training.startFrom = try weightsFile(paper.model, named: "paper.safetensors") { p in
            let shape = try p.tensor("fc8.weight").shape
            try p.set("fc8.weight", Tensor(shape: shape, data: [Float](repeating: 3e38, count: shape.reduce(1, *))))
        }
        XCTAssertThrowsError(try train(paper)) { error in
            XCTAssertTrue("\(error)".contains("before training: validation: the network's outputs are not finite (NaN or infinite) for 5 images, first "),
                          "\(error)")
        }
        XCTAssertEqual(checkpointFiles("poisoned-paper"), [])
    }

    /// The seed's full checkpoint with a learning rate of NaN, resumed through the real binary
    /// (it once trained to all-NaN weights, the seed's final ReLU keeping the loss finite, and
    /// exited 0): refused when read, in one line naming the file and the rate, and neither
    /// last.safetensors nor best.safetensors is written.
    func testResumingWithALearningRateOfNaNStops() throws {
        var c = tinyConfig(Self.data, run: "nan-lr")
        c.model.variant = .seed
        c.training.epochs = 3
        let parameters = try Network.makeParameters(c.model)
        Initialization.paper.apply(to: parameters, seed: 3)
        let entries = parameters.entries
        let stateDict = Pickler.Value.dict(entries.enumerated().map { i, e in
            (.string(ParameterNaming.seed.foreignName(e.name)!), .tensor(storageKey: "\(i)", count: e.count, shape: e.shape))
        }, ordered: true)
        let group = Pickler.Value.dict([(.string("lr"), .float(.nan)), (.string("momentum"), .float(0.9)), (.string("weight_decay"), .float(5e-4)),
                                        (.string("params"), .list(entries.indices.map { .int($0) }))], ordered: false)
        let checkpoint = Pickler.Value.dict([
            (.string("epoch"), .int(1)), (.string("model"), stateDict),
            (.string("optimizer"), .dict([(.string("state"), .dict([], ordered: false)), (.string("param_groups"), .list([group]))], ordered: false)),
        ], ordered: false)
        let dir = try Paths.temporaryDirectory()
        c.training.resumeFrom = dir.appendingPathComponent("alexnet_1_nan_full.pt").path
        try PyTorchFile.write(checkpoint, tensors: entries.map { try! parameters.tensor($0.name).data }, to: c.training.resumeFrom)
        let (status, out, err) = try runProcess(Paths.binary, ["train", "-c", try writeConfig(c, in: dir, named: "nan.yml")])
        XCTAssertTrue((1...127).contains(status), out + err)
        let last = err.split(separator: "\n").last.map(String.init) ?? ""
        XCTAssertTrue(last.contains("alexnet_1_nan_full.pt") && last.contains("learning rate is nan"), err)
        XCTAssertEqual(checkpointFiles("nan-lr"), [], "no checkpoint from NaN weights")
        XCTAssertFalse(out.contains("error 0.00"), out)
    }

    /// A TensorBoard write that fails (here past the file-size limit, SIGXFSZ ignored) is
    /// reported once, by the error that stops the run, not again when the writer closes.
    func testATensorBoardWriteErrorIsReportedOnce() throws {
        var c = tinyConfig(Self.data, run: "tensorboard-full")
        c.training.epochs = 1
        c.training.evaluateBeforeTraining = false
        let config = try writeConfig(c, in: try Paths.temporaryDirectory(), named: "tb.yml")
        let (status, out, err) = try runProcess(URL(fileURLWithPath: "/bin/bash"),
                                                ["-c", "trap '' XFSZ; ulimit -f 4; exec \"$0\" train -c \"$1\"", Paths.binary.path, config])
        XCTAssertEqual(status, 1, out + err)
        XCTAssertTrue(err.contains("cannot write (File too large)"), err)
        XCTAssertEqual(err.components(separatedBy: "events.out.tfevents").count - 1, 1, err)
    }

    /// A checkpoint write that dies half-way (here: an error after the first bytes) leaves the
    /// previous file whole and no temporary file behind.
    func testAnInterruptedCheckpointWriteKeepsThePreviousFile() throws {
        let dir = try Paths.temporaryDirectory()
        let path = dir.appendingPathComponent("last.safetensors").path
        try FileIO.writeDurably(to: path) { write in try Data("old checkpoint".utf8).withUnsafeBytes(write) }
        struct Crash: Error {}
        XCTAssertThrowsError(try FileIO.writeDurably(to: path) { write in
            try Data("new, half".utf8).withUnsafeBytes(write)
            throw Crash()
        })
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "old checkpoint")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["last.safetensors"])
    }

    /// The seed's full checkpoint resumes: its weights, its epoch, where its plateau schedule
    /// stood, and its momentum buffers, which the paper's update rule takes as −lr·v: one step from
    /// the file under either rule gives the same weights and momenta. A state dict starts a run
    /// instead (training.start_from) and cannot be resumed.
    func testResumeFromTheSeedsFullCheckpoint() throws {
        let torch = Paths.torch
        let full = torch.appendingPathComponent("seed_small_full.pt").path
        let data = try makeTrainingDataset(try Paths.temporaryDirectory("seed-resume"), classes: 10, train: 2, val: 1)
        func config(_ run: String, _ rule: UpdateRule) -> TrainingConfig {
            var c = tinyConfig(data, run: run)
            c.model = NetworkConfig(variant: .seed, widths: [8, 16, 24, 24, 16], hidden: 32, classes: 10)
            c.augmentations.mean = .channel   // the 73×73 mean image is smaller than the 224 crops
            c.training.epochs = 5
            c.optimizer.updateRule = rule
            c.scheduler.plateau.patience = 10
            c.scheduler.plateau.threshold = 1e-4
            c.training.resumeFrom = full
            return c
        }
        func stopped(_ run: String, _ c: TrainingConfig) throws -> Checkpoint.Contents {
            XCTAssertThrowsError(try train(c, stopAt: (4, 1))) { XCTAssertTrue($0 is TrainingError, "\($0)") }
            return try Checkpoint.read(data.root.appendingPathComponent("checkpoints/\(run)/last.safetensors").path)
        }
        let torchRule = try stopped("torch", config("torch", .pytorch))
        XCTAssertEqual([torchRule.state.epoch, torchRule.state.batch], [3, 1], "the file's 3 epochs done, one step into the 4th")
        XCTAssertEqual(torchRule.state.schedule.state.lr, 0.01)
        XCTAssertEqual(torchRule.state.schedule.state.best, 0.9)
        XCTAssertEqual(torchRule.state.schedule.state.badEpochs, 0)
        let file = try LoadedWeights(path: full)
        for e in file.parameters.entries {
            let start = try torchRule.file.tensor("epoch_start." + e.name)
            XCTAssertEqual(start.data, Array(UnsafeBufferPointer(start: file.parameters.values.pointer + e.offset, count: e.count)),
                           "\(e.name): the epoch starts from the file's weights")
        }
        // Without momentum the same step gives v′ = ∇ + wd·w, so v − v′ = 0.9 · the file's buffer.
        var still = config("still", .pytorch)
        still.optimizer.momentum = 0
        let stillRule = try stopped("still", still)
        let torchFile = try PyTorchWeights(path: full)
        for e in file.parameters.entries {
            var buffer = [Float](repeating: .nan, count: e.count)
            try buffer.withUnsafeMutableBufferPointer { try torchFile.copyMomentum(e.name, shape: e.shape, into: $0.baseAddress!) }
            let v = try torchRule.file.tensor("momentum." + e.name).data, v0 = try stillRule.file.tensor("momentum." + e.name).data
            assertClose(Tensor(shape: e.shape, data: zip(v, v0).map { ($0 - $1) / 0.9 }), Tensor(shape: e.shape, data: buffer), 1e-4,
                        "momentum.\(e.name) continues the file's")
        }
        let paperRule = try stopped("paper", config("paper", .paper))
        for e in file.parameters.entries {
            assertClose(try paperRule.file.tensor(e.name), try torchRule.file.tensor(e.name), 1e-5, e.name)
            let v = try torchRule.file.tensor("momentum." + e.name)
            assertClose(try paperRule.file.tensor("momentum." + e.name), Tensor(shape: v.shape, data: v.data.map { -0.01 * $0 }), 1e-5,
                        "momentum.\(e.name): −lr·v")
        }

        var stateDict = config("dict", .pytorch)
        stateDict.training.resumeFrom = torch.appendingPathComponent("seed_small.pt").path
        XCTAssertThrowsError(try train(stateDict)) { XCTAssertTrue("\($0)".contains("training.start_from"), "\($0)") }
        stateDict.training.resumeFrom = ""
        stateDict.training.startFrom = torch.appendingPathComponent("seed_small.pt").path
        XCTAssertThrowsError(try train(stateDict, stopAt: (1, 1)))
        let started = try Checkpoint.read(data.root.appendingPathComponent("checkpoints/dict/last.safetensors").path)
        XCTAssertEqual([started.state.epoch, started.state.batch], [0, 1])
        let dict = try LoadedWeights(path: stateDict.training.startFrom)
        XCTAssertEqual(try started.file.tensor("epoch_start.fc8.weight"), try dict.parameters.tensor("fc8.weight"))
        var wrong = config("wrong", .pytorch)
        wrong.model.hidden = 128
        XCTAssertThrowsError(try train(wrong)) { XCTAssertTrue("\($0)".contains("hidden 32"), "\($0)") }
    }

    func testResumeRefusesACheckpointOfAnotherNetwork() throws {
        var c = tinyConfig(Self.data, run: "other")
        c.training.epochs = 1
        _ = try train(c)
        c.training.resumeFrom = checkpoint("other")
        c.model.hidden = 32
        XCTAssertThrowsError(try train(c)) { XCTAssertTrue("\($0)".contains("model") && "\($0)".contains("hidden 32"), "\($0)") }
    }

    /// The event files, read back by TensorBoard's own reader: the seed's tags, one step per epoch.
    func testTensorBoardLogsReadBackWithTensorBoard() throws {
        let python = try Paths.python(needing: "tensorboard").path
        let summary = try train(tinyConfig(Self.data, run: "tensorboard"))
        let script = """
        import json, sys
        from tensorboard.backend.event_processing import event_accumulator as ea
        acc = ea.EventAccumulator(sys.argv[1], size_guidance={ea.SCALARS: 0, ea.HISTOGRAMS: 0})
        acc.Reload()
        tags = acc.Tags()
        print(json.dumps({"scalars": {t: [[e.step, e.value] for e in acc.Scalars(t)] for t in tags["scalars"]},
                          "histograms": {t: [[e.step, e.histogram_value.num] for e in acc.Histograms(t)] for t in tags["histograms"]}}))
        """
        let (status, out, err) = try runProcess(URL(fileURLWithPath: python), ["-c", script, summary.logDirectory])
        XCTAssertEqual(status, 0, err)
        let json = try JSONSerialization.jsonObject(with: Data(out.utf8)) as! [String: [String: [[Double]]]]
        let scalars = json["scalars"]!, histograms = json["histograms"]!
        let history = summary.history
        func series(_ tag: String) -> [[Double]] { scalars[tag] ?? [] }
        XCTAssertEqual(series("Metrics/val_error_rate@1").map { $0[0] }, [0, 1, 2])
        XCTAssertEqual(series("Metrics/val_error_rate@1").map { Float($0[1]) }, history.map { Float($0.validation!.top1Error) })
        XCTAssertEqual(series("Metrics/val_error_rate@5").map { Float($0[1]) }, history.map { Float($0.validation!.top5Error) })
        XCTAssertEqual(series("Losses/val_loss").map { Float($0[1]) }, history.map { Float($0.validation!.loss) })
        XCTAssertEqual(series("Losses/train_loss").map { $0[0] }, [1, 2])
        XCTAssertEqual(series("Losses/train_loss").map { Float($0[1]) }, history.dropFirst().map { Float($0.trainLoss!) })
        XCTAssertEqual(series("Metrics/paper_error_rate@1").map { Float($0[1]) }, [0.407, 0.407, 0.407])
        XCTAssertEqual(series("Metrics/paper_error_rate@5").map { Float($0[1]) }, [0.182, 0.182, 0.182])
        XCTAssertEqual(series("Optimizer/Group0_lr").map { Float($0[1]) }, history.map { Float($0.lr) })
        XCTAssertEqual(series("Diff/fc8.weight").map { $0[0] }, [1, 2])
        XCTAssertTrue(series("Diff/fc8.weight").allSatisfy { $0[1] > 0 }, "the weights moved")
        let conv1Count = Double(4 * 3 * 11 * 11)
        XCTAssertEqual(histograms["Weights/conv1"] ?? [], [[0, conv1Count], [1, conv1Count], [2, conv1Count]])
        XCTAssertEqual(histograms["Biases/fc7"]?.map { $0[1] }, [16, 16, 16])
        XCTAssertEqual(histograms["Gradients/fc6.weight"]?.map { $0[0] }, [1, 2])
    }
}

/// The real binary: `train`, `evaluate`, exit codes and Ctrl-C.
final class TrainingCommandTests: XCTestCase {
    func writeConfig(_ config: TrainingConfig, _ name: String) throws -> String {
        try AlexNetTests.writeConfig(config, in: TrainingTests.data.root, named: name)
    }

    func lastJSON(_ out: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data((out.split(separator: "\n").last.map(String.init) ?? "").utf8)) as! [String: Any]
    }

    func testTrainThenEvaluateAndClassifyTheCheckpoint() throws {
        var c = tinyConfig(TrainingTests.data, run: "cli")
        c.training.epochs = 1
        let file = try writeConfig(c, "cli.yml")
        var (status, out, err) = try runProcess(Paths.binary, ["train", "-c", file, "--json"])
        XCTAssertEqual(status, 0, err)
        let summary = try lastJSON(out)
        let checkpoint = summary["checkpoint"] as! String
        XCTAssertEqual(summary["epochs"] as? Int, 1)
        XCTAssertTrue(err.contains("epoch 1/1"), err)
        XCTAssertTrue(err.contains("waiting for data"), "the data time is shown apart: \(err)")
        XCTAssertTrue(out.contains("tensorboard --logdir"), out)

        // The checkpoint evaluates to what training reported, from the configuration or the folder.
        for args in [["-c", file], ["--data", TrainingTests.data.root.path]] {
            (status, out, err) = try runProcess(Paths.binary, ["evaluate", "-w", checkpoint, "--json"] + args)
            XCTAssertEqual(status, 0, err)
            let e = try lastJSON(out)
            XCTAssertEqual(Set(e.keys), ["loss", "top1_error", "top5_error", "images"])
            XCTAssertEqual(e["images"] as? Int, 12)
            XCTAssertEqual(e["top1_error"] as? Double, summary["top1_error"] as? Double)
            XCTAssertEqual(e["loss"] as! Double, summary["loss"] as! Double, accuracy: 1e-6)
        }
        let image = TrainingTests.data.root.appendingPathComponent("val/class2/000.png").path
        (status, out, err) = try runProcess(Paths.binary, ["classify", "-i", image, "-w", checkpoint, "-k", "2", "--json"])
        XCTAssertEqual(status, 0, err)
        let top = try JSONSerialization.jsonObject(with: Data(out.split(separator: "\n").last!.utf8)) as! [[String: Any]]
        XCTAssertEqual(top.count, 2)
        XCTAssertTrue(top.allSatisfy { ($0["class"] as! String).hasPrefix("class") }, "class names come from the checkpoint: \(top)")
    }

    func testConfigurationErrorsStopBeforeAnyWork() throws {
        let bad = TrainingTests.data.root.appendingPathComponent("bad.yml")
        try "training:\n  epocs: 3\n".write(to: bad, atomically: true, encoding: .utf8)
        var (status, _, err) = try runProcess(Paths.binary, ["train", "-c", bad.path])
        XCTAssertEqual(status, 64)
        XCTAssertTrue(err.contains("bad.yml:2") && err.contains("training.epocs"), err)
        XCTAssertFalse(err.contains("Usage"), "the message alone: \(err)")
        let file = try writeConfig(tinyConfig(TrainingTests.data, run: "never"), "never.yml")
        (status, _, err) = try runProcess(Paths.binary, ["train", "-c", file, "--set", "model.classes=7"])
        XCTAssertEqual(status, 64)
        XCTAssertTrue(err.contains("model.classes") && err.contains("4 classes"), err)
        (status, _, err) = try runProcess(Paths.binary, ["train", "-c", file, "--set", "optimizer.momentum=2"])
        XCTAssertEqual(status, 64)
        XCTAssertTrue(err.contains("optimizer.momentum"), err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: TrainingTests.data.root.appendingPathComponent("checkpoints/never").path))
        (status, _, err) = try runProcess(Paths.binary, ["train"])
        XCTAssertEqual(status, 64)
        XCTAssertTrue(err.contains("-c FILE"), err)
        let (printed, text, _) = try runProcess(Paths.binary, ["train", "--print-config", "--set", "training.epochs=7"])
        XCTAssertEqual(printed, 0)
        XCTAssertTrue(text.contains("epochs: 7") && text.contains("milestones: []"), text)
    }

    /// SIGINT finishes the step, saves last.safetensors and exits 130; --resume continues from it.
    func testInterruptSavesACheckpointAndResumeContinues() throws {
        var c = tinyConfig(TrainingTests.data, run: "sigint")
        c.training.epochs = 100_000
        c.training.evaluateBeforeTraining = false
        let file = try writeConfig(c, "sigint.yml")
        let last = TrainingTests.data.root.appendingPathComponent("checkpoints/sigint/last.safetensors").path
        try? FileManager.default.removeItem(atPath: last)
        let p = Process()
        p.executableURL = Paths.binary
        p.arguments = ["train", "-c", file]
        let errPipe = Pipe()
        p.standardError = errPipe
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let deadline = Date().addingTimeInterval(60)
        while !FileManager.default.fileExists(atPath: last) && Date() < deadline { usleep(20_000) }
        kill(p.processIdentifier, SIGINT)
        let err = String(decoding: errPipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 130, err)
        XCTAssertTrue(err.contains("alexnet train --resume \(last)"), err)
        let stopped = try Checkpoint.read(last)
        XCTAssertGreaterThanOrEqual(stopped.state.epoch, 1)
        // The command the message gives, which names the configuration's paths outside the
        // current folder (a checkpoint's own may not), continues the run.
        let flags = c.pathsOutsideTheCurrentFolder.flatMap { ["--set", "\($0.key)=\($0.value)"] }
        XCTAssertTrue(err.contains(c.pathsOutsideTheCurrentFolder.map(\.flag).joined(separator: " ")), err)
        let (status, out, err2) = try runProcess(Paths.binary, ["train", "--resume", last, "--set", "training.epochs=\(stopped.state.epoch + 1)", "--json"] + flags)
        XCTAssertEqual(status, 0, err2)
        XCTAssertTrue(err2.contains("resuming"), err2)
        XCTAssertEqual(try lastJSON(out)["epochs"] as? Int, stopped.state.epoch + 1)
        XCTAssertEqual(try Checkpoint.read(last).state.epoch, stopped.state.epoch + 1)
    }
}

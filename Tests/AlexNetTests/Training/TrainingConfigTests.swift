import AlexNetCore
import AlexNetModel
import AlexNetTools
import AlexNetTraining
import Foundation
import XCTest

/// The YAML configuration: defaults, the shipped files, `--set`, and errors that name the key.
final class TrainingConfigTests: XCTestCase {
    func config(_ yaml: String) throws -> TrainingConfig {
        var c = TrainingConfig()
        try c.apply(yaml: yaml, source: "test.yml")
        return c
    }

    func assertError(_ yaml: String, contains parts: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try config(yaml), file: file, line: line) { error in
            for p in parts { XCTAssertTrue("\(error)".contains(p), "'\(p)' not in: \(error)", file: file, line: line) }
        }
    }

    func testDefaultsAreThePapers() {
        let c = TrainingConfig()
        XCTAssertEqual(c.model, NetworkConfig())
        XCTAssertEqual(c.model.variant, .paper)
        XCTAssertEqual(c.initialization, .paper)
        XCTAssertEqual(c.training.epochs, 90)
        XCTAssertEqual(c.training.batchSize, 128)
        XCTAssertEqual(c.optimizer.lr, 0.01)
        XCTAssertEqual(c.optimizer.momentum, 0.9)
        XCTAssertEqual(c.optimizer.weightDecay, 5e-4)
        XCTAssertEqual(c.optimizer.updateRule, .paper)
        XCTAssertEqual(c.scheduler.name, .manual)
        XCTAssertEqual(c.scheduler.manual.maxDrops, 3)
        XCTAssertEqual(c.augmentations.crop, .paper)
        XCTAssertEqual(c.augmentations.mean, .pixel)
        XCTAssertTrue(c.augmentations.lighting && c.augmentations.flip)
        XCTAssertEqual(c.scheduler.plateau.patience, 10, "PyTorch's ReduceLROnPlateau defaults for the plateau option")
        XCTAssertEqual(c.scheduler.plateau.threshold, 1e-4)
    }

    func testShippedConfigurationsLoad() throws {
        let dir = Paths.repository.appendingPathComponent("configs")
        let paper = try TrainingConfig.load(file: dir.appendingPathComponent("paper.yml").path)
        var expected = TrainingConfig()
        expected.path.dataset = "data/imagenet"
        expected.augmentations.statistics = "data/imagenet/stats.safetensors"
        expected.training.printFreq = 100
        XCTAssertEqual(paper, expected, "paper.yml spells out the defaults")
        let seed = try TrainingConfig.load(file: dir.appendingPathComponent("seed.yml").path)
        XCTAssertEqual(seed.model.variant, .seed)
        XCTAssertEqual(seed.initialization, .pytorch)
        XCTAssertEqual(seed.optimizer.updateRule, .pytorch)
        XCTAssertEqual(seed.scheduler.name, .plateau)
        XCTAssertEqual(seed.augmentations.crop, .randomResized)
        XCTAssertEqual(seed.augmentations.mean, .channel)
        let demo = try TrainingConfig.load(file: dir.appendingPathComponent("demo.yml").path)
        XCTAssertEqual(demo.model.classes, 10)
        XCTAssertEqual(try String(contentsOfFile: Demo.configPath, encoding: .utf8),
                       try String(contentsOf: dir.appendingPathComponent("demo.yml"), encoding: .utf8), "configs/demo.yml is the demo's resource")
    }

    func testKeysOverrideDefaults() throws {
        let c = try config("""
            model:
              widths: [8, 16, 24, 24, 16]
              variant: seed
            training:
              epochs: 3
              seed: 42
            scheduler:
              name: plateau
              plateau:
                patience: 2
                threshold_mode: abs
              manual:
                milestones: [[30, 0.001], [60, 0.0001]]
            """)
        XCTAssertEqual(c.model.widths, [8, 16, 24, 24, 16])
        XCTAssertEqual(c.model.variant, .seed)
        XCTAssertEqual(c.training.epochs, 3)
        XCTAssertEqual(c.training.seed, 42)
        XCTAssertEqual(c.scheduler.plateau.patience, 2)
        XCTAssertEqual(c.scheduler.plateau.thresholdMode, .abs)
        XCTAssertEqual(c.scheduler.manual.milestones, [.init(epoch: 30, lr: 0.001), .init(epoch: 60, lr: 0.0001)])
        XCTAssertEqual(c.training.batchSize, 128, "untouched keys keep their defaults")
        XCTAssertEqual(try config(""), TrainingConfig(), "an empty file is all defaults")
    }

    func testErrorsNameTheKeyAndWhatIsAllowed() {
        assertError("training:\n  epocs: 10\n", contains: ["test.yml:2", "training.epocs", "unknown key", "epochs"])
        assertError("trainig:\n  epochs: 10\n", contains: ["trainig", "path, model, training, optimizer, scheduler, augmentations"])
        assertError("training:\n  epochs: ten\n", contains: ["training.epochs", "an integer ≥ 1", "'ten'"])
        assertError("training:\n  batch_size: 0\n", contains: ["training.batch_size", "≥ 1"])
        assertError("optimizer:\n  momentum: 1.5\n", contains: ["optimizer.momentum", "< 1.0", "'1.5'"])
        assertError("optimizer:\n  lr: 0\n", contains: ["optimizer.lr", "> 0.0"])
        assertError("model:\n  widths: [1, 2]\n", contains: ["model.widths", "5 integers"])
        assertError("model:\n  variant: resnet\n", contains: ["model.variant", "paper, seed", "'resnet'"])
        assertError("model: 3\n", contains: ["model", "must be a section"])
        assertError("augmentations:\n  flip: maybe\n", contains: ["augmentations.flip", "true or false"])
        assertError("scheduler:\n  manual:\n    milestones: [[60, 0.001], [30, 0.01]]\n", contains: ["scheduler.manual.milestones", "increasing"])
        assertError("model:\n  dropout: 1\n", contains: ["model.dropout", "< 1"])
        assertError("- a\n- b\n", contains: ["top level must be a mapping"])
        assertError("training: [1\n", contains: ["not valid YAML"])
    }

    func testCrossKeyChecksRunBeforeAnyWork() throws {
        var c = TrainingConfig()
        XCTAssertThrowsError(try c.validate(source: "x.yml")) { XCTAssertTrue("\($0)".contains("path.dataset"), "\($0)") }
        c.path.dataset = "/data"
        XCTAssertThrowsError(try c.validate(source: "x.yml")) {
            XCTAssertTrue("\($0)".contains("augmentations.mean") && "\($0)".contains("alexnet stats"), "\($0)")
        }
        c.augmentations.mean = .channel
        try c.validate(source: "x.yml")
        c.model.inputSize = 20
        XCTAssertThrowsError(try c.validate(source: "x.yml")) { XCTAssertTrue("\($0)".contains("model") && "\($0)".contains("too small"), "\($0)") }
        c.model.inputSize = 224
        c.training.resumeFrom = "/nonexistent.safetensors"
        XCTAssertThrowsError(try c.validate(source: "x.yml")) { XCTAssertTrue("\($0)".contains("training.resume_from"), "\($0)") }
        c.training.resumeFrom = ""
        c.path.runName = "a/b"
        XCTAssertThrowsError(try c.validate(source: "x.yml")) { XCTAssertTrue("\($0)".contains("path.run_name"), "\($0)") }
    }

    func testSetOverridesAnyKey() throws {
        var c = TrainingConfig()
        try c.override("training.epochs=7")
        try c.override("model.widths=[8,16,24,24,16]")
        try c.override("path.run_name=brisk-otter")
        try c.override("scheduler.manual.milestones=[[2, 0.001]]")
        XCTAssertEqual(c.training.epochs, 7)
        XCTAssertEqual(c.model.widths, [8, 16, 24, 24, 16])
        XCTAssertEqual(c.path.runName, "brisk-otter")
        XCTAssertEqual(c.scheduler.manual.milestones.first?.epoch, 2)
        XCTAssertThrowsError(try c.override("training.epocs=7")) { XCTAssertTrue("\($0)".contains("training.epochs"), "suggests the keys: \($0)") }
        XCTAssertThrowsError(try c.override("training.epochs=-1")) { XCTAssertTrue("\($0)".contains("--set") && "\($0)".contains("training.epochs"), "\($0)") }
        XCTAssertThrowsError(try c.override("training.epochs")) { XCTAssertTrue("\($0)".contains("key.path=value"), "\($0)") }
    }

    /// `yaml()` (what --print-config prints and a checkpoint keeps) reads back to the same configuration.
    func testYAMLRoundTrip() throws {
        var c = TrainingConfig()
        c.path.dataset = "/data/with \"quotes\" and \\ backslash"
        c.model.variant = .seed
        c.model.dropout = 0.25
        c.training.seed = 123_456_789_012
        c.optimizer.weightDecay = 1e-5
        c.scheduler.manual.milestones = [.init(epoch: 3, lr: 1e-3)]
        c.scheduler.plateau.eps = 1e-8
        for comments in [true, false] {
            var back = TrainingConfig()
            try back.apply(yaml: c.yaml(comments: comments), source: "round trip")
            XCTAssertEqual(back, c)
        }
        let text = TrainingConfig().yaml()
        for f in TrainingConfig.fields { XCTAssertTrue(text.contains(String(f.path.split(separator: ".").last!) + ": "), f.path) }
    }

    func testRunNamesAreTwoWords() {
        var rng = RandomGenerator(seed: 3)
        let names = (0..<50).map { _ in RunName.generate(using: &rng) }
        XCTAssertTrue(names.allSatisfy { $0.split(separator: "-").count == 2 }, "\(names)")
        XCTAssertGreaterThan(Set(names).count, 40)
    }
}

/// The learning-rate schedules against PyTorch's semantics.
final class ScheduleTests: XCTestCase {
    /// torch.optim.lr_scheduler.ReduceLROnPlateau(factor=0.1, patience=2, threshold=0.1, cooldown=1)
    /// on these metrics gives these rates (worked through its step() by hand).
    func testPlateauFollowsReduceLROnPlateau() {
        var p = LearningRateSchedule.Plateau()
        (p.patience, p.threshold, p.cooldown) = (2, 0.1, 1)
        var s = LearningRateSchedule(kind: .plateau, baseLR: 1, plateau: p)
        // best 10; 9.5 is not 10 % better (bad 1), 9.2 (bad 2), 9.1 (bad 3 > 2: reduce, cooldown 1),
        // 9.0 (cooldown: bad reset), 8.0 is better (best 8), 7.9, 7.9, 7.9 (bad 3: reduce).
        let metrics = [10, 9.5, 9.2, 9.1, 9.0, 8.0, 7.9, 7.9, 7.9]
        let rates = metrics.map { s.step(metric: $0) }
        XCTAssertEqual(rates.map { ($0 * 1e6).rounded() / 1e6 }, [1, 1, 1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.01])
        XCTAssertEqual(s.state.best, 8.0)
        var m = LearningRateSchedule.Plateau()
        (m.mode, m.patience, m.minLR) = (.max, 0, 0.05)
        var up = LearningRateSchedule(kind: .plateau, baseLR: 1, plateau: m)
        XCTAssertEqual([1, 2, 2, 1].map { up.step(metric: $0) }, [1, 1, 0.1, 0.05], "mode max, and min_lr bounds the rate")
        XCTAssertTrue(s.needsMetric)
    }

    func testManualRuleDividesByTenAtMostThreeTimes() {
        var manual = LearningRateSchedule.Manual()
        manual.patience = 2
        var s = LearningRateSchedule(kind: .manual, baseLR: 0.01, manual: manual)
        let rates = [5.0, 4, 4, 4, 3.9, 3.9, 3.9, 3.9, 3.9, 3.9, 3.9, 3.9].map { s.step(metric: $0) }
        XCTAssertEqual(rates.map { ($0 * 1e9).rounded() / 1e9 },
                       [0.01, 0.01, 0.01, 0.001, 0.001, 0.001, 0.0001, 0.0001, 0.0001, 0.00001, 0.00001, 0.00001])
        XCTAssertEqual(s.state.drops, 3)
    }

    func testMilestonesAndStep() {
        var manual = LearningRateSchedule.Manual()
        manual.milestones = [.init(epoch: 3, lr: 0.001), .init(epoch: 5, lr: 0.0001)]
        var s = LearningRateSchedule(kind: .manual, baseLR: 0.01, manual: manual)
        XCTAssertFalse(s.needsMetric)
        XCTAssertEqual(s.learningRate, 0.01, "epoch 1")
        XCTAssertEqual((2...6).map { _ in s.step(metric: nil) }, [0.01, 0.001, 0.001, 0.0001, 0.0001], "epochs 2…6")
        var step = LearningRateSchedule.Step()
        (step.stepSize, step.gamma) = (2, 0.5)
        var t = LearningRateSchedule(kind: .step, baseLR: 1, step: step)
        XCTAssertEqual((2...6).map { _ in t.step(metric: nil) }, [1, 0.5, 0.5, 0.25, 0.25], "StepLR: lr·γ^⌊(epoch − 1)/s⌋")
    }
}

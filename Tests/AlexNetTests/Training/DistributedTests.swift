import AlexNetModel
import AlexNetTraining
import Foundation
import XCTest

/// `mpirun -np N alexnet train`: the weights after several steps with dropout and augmentation on
/// equal one process's with the same global batch, every validation image counts once, and a killed
/// rank ends the job with the last checkpoint intact. Open MPI comes from scripts/setup.sh; the
/// tests skip where mpirun is missing, and fail under CI.
final class DistributedTests: XCTestCase {
    static let data: (root: URL, stats: String) = try! makeTrainingDataset(try! Paths.temporaryDirectory("distributed-data"))

    private func mpirun() throws -> URL {
        for folder in ["/usr/bin", "/usr/local/bin"] {
            let url = URL(fileURLWithPath: folder).appendingPathComponent("mpirun")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        if ProcessInfo.processInfo.environment["CI"] != nil { XCTFail("mpirun not found: scripts/setup.sh installs openmpi-bin") }
        throw XCTSkip("mpirun not found (apt-get install openmpi-bin)")
    }

    private func launcher(_ ranks: Int) throws -> (URL, [String]) {
        (try mpirun(), ["--allow-run-as-root", "--oversubscribe", "-np", "\(ranks)", Paths.binary.path])
    }

    private func writeConfig(_ c: TrainingConfig, _ name: String) throws -> String {
        try AlexNetTests.writeConfig(c, in: Self.data.root, named: name + ".yml")
    }

    private func config(_ run: String, batch: Int, epochs: Int = 1) -> TrainingConfig {
        var c = tinyConfig(Self.data, run: run)
        c.training.batchSize = batch
        c.training.epochs = epochs
        c.training.threads = 0
        c.model.dropout = 0.5
        return c
    }

    /// Trains `c` on `ranks` processes (1: without mpirun) and returns the last checkpoint.
    private func train(_ c: TrainingConfig, ranks: Int) throws -> Checkpoint.Contents {
        let file = try writeConfig(c, c.path.runName)
        let (program, prefix) = ranks == 1 ? (Paths.binary, []) : try launcher(ranks)
        let (status, out, err) = try runProcess(program, prefix + ["train", "-c", file])
        XCTAssertEqual(status, 0, out + err)
        if ranks > 1 {
            XCTAssertTrue(err.contains("on \(ranks) ranks: compute"), "the per-epoch split of compute and communication: " + err)
            XCTAssertEqual(out.components(separatedBy: "run \(c.path.runName):").count - 1, 1, "rank 0 alone prints the summary: " + out)
        }
        return try Checkpoint.read(Self.data.root.appendingPathComponent("checkpoints/\(c.path.runName)/last.safetensors").path)
    }

    private func assertSameWeights(_ a: Checkpoint.Contents, _ b: Checkpoint.Contents, _ what: String) throws {
        for name in ParameterNaming.layers.flatMap({ [$0 + ".weight", $0 + ".bias"] }) {
            assertClose(try a.file.tensor(name), try b.file.tensor(name), 1e-5, "\(what): \(name)")
            assertClose(try a.file.tensor("momentum." + name), try b.file.tensor("momentum." + name), 1e-5, "\(what): momentum.\(name)")
        }
    }

    /// 40 images in global batches of 16 (16, 16, 8) on 2 ranks, and of 15 (15, 15, 10: parts of
    /// 3, 3 and 4 images) on 3, two epochs, dropout and augmentation on: the weights and momenta
    /// equal one process's.
    func testRanksFollowTheSingleProcessTrajectory() throws {
        _ = try mpirun()
        for (ranks, batch) in [(2, 16), (3, 15)] {
            let single = try train(config("single-\(batch)", batch: batch, epochs: 2), ranks: 1)
            let distributed = try train(config("ranks\(ranks)-\(batch)", batch: batch, epochs: 2), ranks: ranks)
            XCTAssertEqual(distributed.state.sgdSteps, single.state.sgdSteps)
            XCTAssertEqual(distributed.state.sgdSteps, 6)
            try assertSameWeights(single, distributed, "\(ranks) ranks, batch \(batch)")
            for (a, b) in zip(single.state.history, distributed.state.history) {
                XCTAssertEqual(a.trainLoss == nil, b.trainLoss == nil)
                if let x = a.trainLoss, let y = b.trainLoss { XCTAssertEqual(x, y, accuracy: 1e-5, "epoch \(a.epoch)'s training loss") }
                XCTAssertEqual(a.validation?.top1Error, b.validation?.top1Error, "epoch \(a.epoch)")
            }
        }
    }

    /// bf16 on 2 ranks: each rank's bfloat16 gradients are summed over the ranks (in float32,
    /// rounded to bfloat16) and the weights and momenta follow one bf16 process's within
    /// bfloat16's rounding; one rank's gradients alone (about half the sum) would be far off.
    func testBF16RanksSumTheirBFloat16Gradients() throws {
        _ = try mpirun()
        try PrecisionTests.requireNativeBF16()
        var runs: [Checkpoint.Contents] = []
        for ranks in [1, 2] {
            var c = config("bf16-ranks\(ranks)", batch: 16, epochs: 1)
            c.training.precision = .bf16
            runs.append(try train(c, ranks: ranks))
        }
        for name in ParameterNaming.layers.flatMap({ [$0 + ".weight", $0 + ".bias"] }) {
            assertClose(try runs[0].file.tensor(name), try runs[1].file.tensor(name), 3e-2, "bf16, 2 ranks: \(name)")
            assertClose(try runs[0].file.tensor("momentum." + name), try runs[1].file.tensor("momentum." + name), 3e-2,
                        "bf16, 2 ranks: momentum.\(name)")
        }
    }

    /// A checkpoint written by 2 ranks resumes on 3 with the same global batch and continues the
    /// same trajectory: epoch 1 on 2 ranks and epoch 2 on 3 give one process's two epochs.
    func testACheckpointOfTwoRanksResumesOnThree() throws {
        let (program, prefix3) = try launcher(3)
        let single = try train(config("resume-single", batch: 16, epochs: 2), ranks: 1)
        let first = try train(config("resume-2to3", batch: 16, epochs: 1), ranks: 2)
        XCTAssertEqual(first.state.epoch, 1)
        let last = Self.data.root.appendingPathComponent("checkpoints/resume-2to3/last.safetensors").path
        let flags = config("resume-2to3", batch: 16, epochs: 1).pathsOutsideTheCurrentFolder.flatMap { ["--set", "\($0.key)=\($0.value)"] }
        let (status, out, err) = try runProcess(program, prefix3 + ["train", "--resume", last, "--set", "training.epochs=2"] + flags)
        XCTAssertEqual(status, 0, out + err)
        let resumed = try Checkpoint.read(last)
        XCTAssertEqual(resumed.state.epoch, 2)
        XCTAssertEqual(resumed.state.sgdSteps, single.state.sgdSteps)
        try assertSameWeights(single, resumed, "2 ranks, then 3")
    }

    /// 2 ranks on 7 validation images (batches of 3: parts of 1 and 2, and of 0 and 1) count each
    /// image once: the same error rates and loss as one process.
    func testValidationCountsEveryImageOnce() throws {
        _ = try mpirun()
        let seven = try makeTrainingDataset(try Paths.temporaryDirectory("seven"), classes: 7, train: 2, val: 1)
        var c = tinyConfig(seven, run: "seven")
        c.model.classes = 7
        c.training.epochs = 1
        c.training.evalBatchSize = 3
        c.training.threads = 0
        var results: [EvaluationResult] = []
        for ranks in [1, 2] {
            c.path.runName = "seven-\(ranks)"
            let file = try AlexNetTests.writeConfig(c, in: seven.root, named: "seven-\(ranks).yml")
            let (program, prefix) = ranks == 1 ? (Paths.binary, []) : try launcher(ranks)
            let (status, out, err) = try runProcess(program, prefix + ["train", "-c", file])
            XCTAssertEqual(status, 0, out + err)
            let saved = try Checkpoint.read(seven.root.appendingPathComponent("checkpoints/seven-\(ranks)/last.safetensors").path)
            results += saved.state.history.compactMap(\.validation)
        }
        XCTAssertEqual(results.count, 4, "before training and after the epoch, on 1 and on 2 ranks")
        for (one, two) in [(results[0], results[2]), (results[1], results[3])] {
            XCTAssertEqual(two.images, 7)
            XCTAssertEqual(one.images, 7)
            XCTAssertEqual(two.top1Error, one.top1Error)
            XCTAssertEqual(two.top5Error, one.top5Error)
            XCTAssertEqual(two.loss, one.loss, accuracy: 1e-5 * abs(one.loss))
        }
    }

    /// A rank that fails (here: it meets an image that cannot be decoded) ends the whole job at
    /// once, naming its rank and the cause.
    func testARankThatFailsEndsTheJobNamingRankAndCause() throws {
        let (program, prefix) = try launcher(2)
        let broken = try makeTrainingDataset(try Paths.temporaryDirectory("broken"), classes: 2, train: 4, val: 1)
        let bad = broken.root.appendingPathComponent("train/class1/002.png")
        try Data("not a PNG".utf8).write(to: bad)
        var c = tinyConfig(broken, run: "broken")
        c.model.classes = 2
        c.training.batchSize = 8
        c.training.threads = 0
        let file = try AlexNetTests.writeConfig(c, in: broken.root, named: "broken.yml")
        let start = Date()
        let (status, out, err) = try runProcess(program, prefix + ["train", "-c", file])
        XCTAssertNotEqual(status, 0, out + err)
        XCTAssertLessThan(Date().timeIntervalSince(start), 30)
        XCTAssertTrue(err.range(of: "rank [01] of 2: ", options: .regularExpression) != nil, err)
        XCTAssertTrue(err.contains("002.png"), "the cause names the file: " + err)
    }

    /// A rank killed mid-run ends the job (non-zero, within 30 s, naming the failure), and the
    /// last checkpoint resumes.
    func testAKilledRankEndsTheJobAndTheCheckpointResumes() throws {
        let (program, prefix) = try launcher(2)
        var c = config("killed", batch: 8, epochs: 200)
        c.training.checkpointEveryEpochs = 1
        c.training.validateEveryEpochs = 1000
        let file = try writeConfig(c, "killed")
        let checkpoint = Self.data.root.appendingPathComponent("checkpoints/killed/last.safetensors").path
        try? FileManager.default.removeItem(atPath: checkpoint)

        let job = Process()
        job.executableURL = program
        job.arguments = prefix + ["train", "-c", file]
        let err = Pipe()
        (job.standardOutput, job.standardError) = (FileHandle.nullDevice, err)
        try job.run()
        // Wait for a complete checkpoint, then kill the rank that is not rank 0.
        let start = Date()
        while (try? Checkpoint.read(checkpoint)) == nil {
            guard Date().timeIntervalSince(start) < 120, job.isRunning else { job.terminate(); return XCTFail("no checkpoint appeared") }
            usleep(50_000)
        }
        let (_, ps, _) = try runProcess(URL(fileURLWithPath: "/usr/bin/pgrep"), ["-f", "-P", "\(job.processIdentifier)", "alexnet"])
        let ranks = ps.split(separator: "\n").compactMap { Int32($0) }
        XCTAssertEqual(ranks.count, 2, ps)
        let victim = try XCTUnwrap(ranks.max())
        let killedAt = Date()
        kill(victim, SIGKILL)
        while job.isRunning && Date().timeIntervalSince(killedAt) < 30 { usleep(100_000) }
        let ended = !job.isRunning
        if !ended { job.terminate() }
        XCTAssertTrue(ended, "the job ends within 30 s of a rank's death")
        job.waitUntilExit()
        XCTAssertNotEqual(job.terminationStatus, 0)
        _ = err.fileHandleForReading.readDataToEndOfFile()

        let saved = try Checkpoint.read(checkpoint)
        XCTAssertGreaterThanOrEqual(saved.state.epoch, 1)
        let flags = c.pathsOutsideTheCurrentFolder.flatMap { ["--set", "\($0.key)=\($0.value)"] }
        let (status, out, stderr) = try runProcess(Paths.binary, ["train", "--resume", checkpoint, "--set", "training.epochs=\(saved.state.epoch + 1)"] + flags)
        XCTAssertEqual(status, 0, out + stderr)
        XCTAssertEqual(try Checkpoint.read(checkpoint).state.epoch, saved.state.epoch + 1)
    }
}

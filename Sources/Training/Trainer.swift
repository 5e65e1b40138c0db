import AlexNetCore
import AlexNetData
import AlexNetInterop
import AlexNetKernels
import AlexNetModel
import Foundation
import Logging

/// What a finished (or already finished) run reports.
public struct TrainingSummary: Sendable {
    public var runName: String
    public var checkpointDirectory: String
    public var logDirectory: String
    public var lastCheckpoint: String
    public var bestCheckpoint: String?
    /// The epoch best.safetensors holds, if any.
    public var bestEpoch: Int?
    public var history: [EpochRecord]
    public var seconds: Double
    /// The last validation, if any.
    public var final: EvaluationResult? { history.last(where: { $0.validation != nil })?.validation }
}

public enum TrainingError: DescribedError {
    case nonFinite(epoch: Int, batch: Int, loss: Float, checkpoint: String?)
    /// Weights, gradients or validation outputs became NaN or infinite: what and where.
    case nonFiniteState(String, checkpoint: String?)
    /// `resumeFlags`: what `--resume` needs besides the checkpoint (its paths outside the
    /// current folder, which a checkpoint's own configuration may not name).
    case interrupted(signal: Int32, checkpoint: String, resumeFlags: [String])
    case setup(String)

    public var description: String {
        switch self {
        case let .nonFinite(epoch, batch, loss, checkpoint):
            return "the training loss became \(loss) at epoch \(epoch), batch \(batch); stopped without saving this state. "
                + (checkpoint.map { "The last good checkpoint is \($0)." } ?? "No checkpoint had been written yet.")
                + " A lower optimizer.lr usually helps."
        case let .nonFiniteState(what, checkpoint):
            return "\(what); stopped without saving this state. "
                + (checkpoint.map { "The last good checkpoint is \($0)." } ?? "No checkpoint had been written yet.")
        case let .interrupted(signal, checkpoint, flags):
            return "stopped by signal \(signal) (\(signal == SIGINT ? "SIGINT" : signal == SIGTERM ? "SIGTERM" : "signal")); "
                + "the state is saved in \(checkpoint); continue with: alexnet train --resume \(checkpoint)"
                + flags.map { " " + $0 }.joined()
        case let .setup(message): return message
        }
    }

    /// The exit status a command should end with: 128 + signal for interruptions, 1 otherwise.
    public var exitCode: Int32 {
        if case let .interrupted(signal, _, _) = self { return 128 + signal }
        return 1
    }
}

/// `alexnet train`: the paper's training loop (section 5) around the network, the loader and SGD.
///
///   per epoch e (counted from 0; the paper's epochs are e + 1):
///     batches in the shuffled order of (seed, e), from batch `state.batch` on
///       bind the loader's buffer as the input → dropout masks per sample → forward → loss
///       → backward → SGD step; every M minutes and on Ctrl-C a mid-epoch checkpoint
///     ten-crop validation → schedule step on the watched metric → TensorBoard
///     → last.safetensors (+ epoch-NNN, + best) written durably
///
/// All state that a resumed run needs is in `state` (and the three flat buffers), so a
/// checkpoint at any step boundary continues the same trajectory bit for bit.
public final class Trainer {
    public let config: TrainingConfig
    public let logger: Logger
    public let stop: StopRequest
    /// Called after every training step with (epoch counted from 1, batches done): tests stop a
    /// run at a chosen batch through `stop`.
    public var afterStep: ((_ epoch: Int, _ batch: Int) -> Void)?
    /// This process's place in a distributed run (`Communicator.single()` alone). Every rank
    /// trains its part of each global batch; rank 0 alone writes checkpoints and TensorBoard.
    public let communicator: Communicator

    public init(config: TrainingConfig, logger: Logger, stop: StopRequest = StopRequest(), communicator: Communicator = .single()) {
        (self.config, self.logger, self.stop, self.communicator) = (config, logger, stop, communicator)
    }

    /// The paper's reference error rates, logged beside ours as the seed does.
    static let paperTop1Error = 0.407, paperTop5Error = 0.182

    // MARK: the run

    /// Where a run stands between steps: the state a checkpoint saves, and what the loop keeps.
    private final class Run {
        let s: Session
        var state: TrainingState
        /// The last checkpoint written (or resumed from), which an error names.
        var lastCheckpoint: String?
        var lastCheckpointTime = DispatchTime.now().uptimeNanoseconds
        /// Training networks by batch size: a short last batch gets one of its own.
        var networks: [Int: Network] = [:]
        init(_ s: Session, _ state: TrainingState, lastCheckpoint: String?) {
            (self.s, self.state, self.lastCheckpoint) = (s, state, lastCheckpoint)
        }
        /// A file of the checkpoint folder.
        func path(_ name: String) -> String { (s.checkpointDirectory as NSString).appendingPathComponent(name) }
        var last: String { path("last.safetensors") }
        var best: String { path("best.safetensors") }
    }

    /// What one epoch's pass over the training set measured.
    private struct EpochPass {
        let epoch: Int
        let started: UInt64
        let loss: Double
        let images: Int
        let seconds: Double
    }

    public func run() throws -> TrainingSummary {
        let started = DispatchTime.now().uptimeNanoseconds
        var (state, resumed) = try initialState()
        let s = try prepare(&state, resumed: resumed)
        defer { s.tensorboard?.close() }
        let r = Run(s, state, lastCheckpoint: resumed == nil ? nil : config.training.resumeFrom)
        logger.info("run \(state.runName): \(s.dataset.train.count) training and \(s.val.count) validation images in \(s.classes.count) classes; \(Self.describe(config.model)); \(s.engine.threads) threads for oneDNN, \(s.loaderThreads) for the loader")
        logger.info("checkpoints in \(s.checkpointDirectory), TensorBoard logs in \(s.logDirectory)")
        if resumed != nil { logger.info("resuming \(config.training.resumeFrom) at epoch \(state.epoch + 1), batch \(state.batch)") }

        if state.epoch == 0 && state.batch == 0 && state.history.isEmpty && config.training.evaluateBeforeTraining {
            try validateBeforeTraining(r)
        }
        while r.state.epoch < config.training.epochs {
            let pass = try trainOneEpoch(r)
            try finishEpoch(r, pass)
        }
        if r.lastCheckpoint == nil { try save(r, r.last, midEpoch: false) }
        try s.tensorboard?.flush()
        return TrainingSummary(runName: r.state.runName, checkpointDirectory: s.checkpointDirectory, logDirectory: s.logDirectory,
                               lastCheckpoint: r.last, bestCheckpoint: r.state.bestEpoch == nil ? nil : r.best, bestEpoch: r.state.bestEpoch,
                               history: r.state.history, seconds: Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9)
    }

    /// One pass over this rank's share of the training set, from `state.batch` on, with a
    /// mid-epoch checkpoint every `checkpoint_every_minutes` and on Ctrl-C.
    private func trainOneEpoch(_ r: Run) throws -> EpochPass {
        let s = r.s, epoch = r.state.epoch + 1
        let t0 = DispatchTime.now().uptimeNanoseconds
        s.sgd.learningRate = Float(r.state.schedule.learningRate)
        if r.state.batch == 0 { s.epochStart.pointer.update(from: s.parameters.values.pointer, count: s.epochStart.count) }
        let loader = try BatchLoader(split: s.dataset.train, labels: s.trainLabels, kind: .training, augmentation: s.augmentation,
                                     batchSize: config.training.batchSize, seed: config.training.seed, epoch: r.state.epoch,
                                     threads: s.loaderThreads, startBatch: r.state.batch,
                                     shard: BatchLoader.Shard(rank: communicator.rank, ranks: communicator.size))
        defer { loader.stop() }
        s.reducer?.resetTimes()
        var stepSeconds = 0.0
        let batchesPerEpoch = (s.dataset.train.count + config.training.batchSize - 1) / config.training.batchSize
        let progress = TrainingProgress(label: "epoch \(epoch)/\(config.training.epochs)", batches: batchesPerEpoch,
                                        startingAt: r.state.batch, printFrequency: config.training.printFreq, logger: logger)
        while true {
            let w0 = DispatchTime.now().uptimeNanoseconds
            guard let batch = loader.next() else { break }
            let wait = Double(DispatchTime.now().uptimeNanoseconds - w0) / 1e9
            if let failure = loader.failures.first {
                throw TrainingError.setup("cannot read a training image: \(failure) (alexnet dataset-info --decode lists every broken file)")
            }
            let s0 = DispatchTime.now().uptimeNanoseconds
            // The global batch's size: this rank's part is `batch.count` of it.
            let images = min(s.dataset.train.count, (batch.index + 1) * config.training.batchSize) - batch.index * config.training.batchSize
            let loss = try trainStep(r, batch, images: images, epoch: epoch)
            stepSeconds += Double(DispatchTime.now().uptimeNanoseconds - s0) / 1e9
            r.state.batch = batch.index + 1
            r.state.sgdSteps += 1
            r.state.epochLossSum += Double(loss) * Double(images)
            r.state.epochImages += images
            progress.batch(batch.index, count: images, loss: Double(loss), dataWait: wait)
            afterStep?(epoch, r.state.batch)
            if let signal = stop.signal { progress.finish(); try interrupted(r, signal) }
            let minutes = config.training.checkpointEveryMinutes
            if minutes > 0 && Double(DispatchTime.now().uptimeNanoseconds - r.lastCheckpointTime) / 6e10 >= minutes && r.state.batch < batchesPerEpoch {
                try save(r, r.last, midEpoch: true)
            }
        }
        progress.finish()
        let seconds = progress.seconds
        let loss = r.state.epochLossSum / Double(max(r.state.epochImages, 1))
        logger.info("epoch \(epoch)/\(config.training.epochs): train loss \(fixed(loss, 4)), \(fixed(Double(progress.images) / max(seconds, 1e-9), 1)) img/s, \(fixed(seconds, 1)) s, of which \(fixed(100 * progress.dataSeconds / max(seconds, 1e-9), 1)) % waiting for data")
        if let reducer = s.reducer {
            // The overlap made visible: time in the steps split into computing, MPI calls that
            // start and progress the sums, and waiting for them.
            logger.info("epoch \(epoch)/\(config.training.epochs) on \(communicator.size) ranks: compute \(fixed(stepSeconds - reducer.communicationSeconds - reducer.waitSeconds, 1)) s, communication \(fixed(reducer.communicationSeconds, 2)) s, waiting for communication \(fixed(reducer.waitSeconds, 2)) s")
        }
        return EpochPass(epoch: epoch, started: t0, loss: loss, images: progress.images, seconds: seconds)
    }

    /// One step (the paper's section 5): this rank's part of a global batch of `images` forward,
    /// the loss, backward (its gradients summed over the ranks in buckets as layers finish), and
    /// the SGD update. Returns the global batch's mean loss.
    private func trainStep(_ r: Run, _ batch: BatchLoader.Batch, images: Int, epoch: Int) throws -> Float {
        let s = r.s
        var loss: Float = 0
        if batch.count > 0 {
            let net = try network(r, batch: batch.count)
            try net.bindInput(batch.images)
            net.drawDropoutMasks(seed: config.training.seed, epoch: r.state.epoch, samples: batch.samples)
            try net.forward()
            loss = try net.loss(labels: batch.labels)
            if let reducer = s.reducer {
                net.criterion?.normalizer = images
                reducer.begin()
                try net.backward { try reducer.layerDone($0.name) }
            } else {
                try net.backward()
            }
        } else {
            // An empty part of a short last batch adds nothing to the sum.
            s.parameters.grads.zero()
            s.reducer?.begin()
        }
        if communicator.size > 1 {
            try s.reducer?.finish()
            // The global batch's mean loss, and whether any rank was asked to stop, agreed by all.
            var totals = [Double(loss) * Double(batch.count), stop.signal == nil ? 0 : 1]
            try communicator.sum(&totals, what: "the loss")
            loss = Float(totals[0] / Double(images))
            if totals[1] > 0 && stop.signal == nil { stop.request(SIGTERM) }
        }
        guard loss.isFinite else {
            throw TrainingError.nonFinite(epoch: epoch, batch: batch.index + 1, loss: loss, checkpoint: r.lastCheckpoint)
        }
        // The seed's final ReLU turns NaN logits into zeros and a finite loss, so the updated
        // weights are checked too (in the update's own pass).
        guard s.sgd.step(s.parameters) else {
            let culprit = s.parameters.nonFiniteOrigin()
            let what = culprit.map { $0.gradient ? "the gradient of \($0.name)" : "\($0.name)" } ?? "a weight"
            throw TrainingError.nonFiniteState(
                "after the update at epoch \(epoch), batch \(batch.index + 1), \(what) is not finite (NaN or infinite); "
                    + "learning rate \(s.sgd.learningRate), loss \(loss)", checkpoint: r.lastCheckpoint)
        }
        return loss
    }

    /// The training network for batches of `count`, built on first use.
    private func network(_ r: Run, batch count: Int) throws -> Network {
        if let net = r.networks[count] { return net }
        let net = try Network(config: config.model, batch: count, mode: .training, precision: config.training.precision,
                              parameters: r.s.parameters, engine: r.s.engine)
        r.networks[count] = net
        return net
    }

    /// After an epoch's pass: validation, the schedule's step on the watched metric, the logs,
    /// and the checkpoints (last, epoch-NNNN, best).
    private func finishEpoch(_ r: Run, _ pass: EpochPass) throws {
        let epoch = pass.epoch
        let validated = epoch % config.training.validateEveryEpochs == 0 || epoch == config.training.epochs
        let result = validated ? try validate(r, label: "epoch \(epoch)/\(config.training.epochs)") : nil
        let lr = r.state.schedule.learningRate
        let metric = result?.value(config.scheduler.metric)
        let improved = metric.map { m in r.state.best.map { m < $0 } ?? true } ?? false
        if improved { (r.state.best, r.state.bestEpoch) = (metric, epoch) }
        let next = r.state.schedule.step(metric: metric)
        if next != lr { logger.info("learning rate \(lr) → \(next) (scheduler \(config.scheduler.name.rawValue) on \(config.scheduler.metric.rawValue))") }
        let record = EpochRecord(epoch: epoch, trainLoss: pass.loss, validation: result, lr: lr,
                                 seconds: Double(DispatchTime.now().uptimeNanoseconds - pass.started) / 1e9,
                                 imagesPerSecond: Double(pass.images) / max(pass.seconds, 1e-9))
        r.state.history.append(record)
        try log(record, r.s, epochStartAvailable: true)
        (r.state.epoch, r.state.batch, r.state.epochLossSum, r.state.epochImages) = (epoch, 0, 0, 0)

        try save(r, r.last, midEpoch: false)
        if config.training.checkpointEveryEpochs > 0 && epoch % config.training.checkpointEveryEpochs == 0 {
            try link(r.last, to: r.path(String(format: "epoch-%04d.safetensors", epoch)))
        }
        if improved {
            try link(r.last, to: r.best)
            logger.info("best \(config.scheduler.metric.rawValue) so far: \(fixed(metric ?? 0, 4)) → \(r.best)")
        }
        if let signal = stop.signal { throw TrainingError.interrupted(signal: signal, checkpoint: r.last, resumeFlags: config.pathsOutsideTheCurrentFolder.map(\.flag)) }
    }

    /// The untrained network's validation, logged as epoch 0.
    private func validateBeforeTraining(_ r: Run) throws {
        let t0 = DispatchTime.now().uptimeNanoseconds
        let result = try validate(r, label: "before training")
        let record = EpochRecord(epoch: 0, trainLoss: nil, validation: result, lr: r.state.schedule.learningRate,
                                 seconds: Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9, imagesPerSecond: nil)
        r.state.history.append(record)
        try log(record, r.s, epochStartAvailable: false)
    }

    /// Ten-crop validation (the paper's section 6) on the validation split.
    private func validate(_ r: Run, label: String) throws -> EvaluationResult {
        let s = r.s, t0 = DispatchTime.now().uptimeNanoseconds
        let result: EvaluationResult
        do {
            result = try s.inference.evaluate(split: s.val, labels: s.valLabels, augmentation: s.augmentation,
                                              batchSize: config.training.evalBatchSize, threads: s.loaderThreads,
                                              communicator: communicator) { _, _ in
                // Several ranks agree on stopping at a training step, not inside a collective.
                if self.communicator.size == 1, let signal = self.stop.signal { try self.interrupted(r, signal) }
            }
        } catch let e as NonFiniteOutputError {
            throw TrainingError.nonFiniteState("\(label): \(e)", checkpoint: r.lastCheckpoint)
        }
        // Finite outputs give a finite loss; this keeps any other way out of the checkpoint's
        // history, which JSON cannot hold.
        guard result.loss.isFinite else {
            throw TrainingError.nonFiniteState("\(label): the validation loss is \(result.loss)", checkpoint: r.lastCheckpoint)
        }
        logger.info("\(label): val loss \(fixed(result.loss, 4)), top-1 error \(fixed(100 * result.top1Error, 2)) %, top-5 error \(fixed(100 * result.top5Error, 2)) % (\(result.images) images, ten-crop, \(fixed(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9, 1)) s)")
        return result
    }

    /// Writes the state where it stands to `file` (rank 0 alone: the ranks hold the same weights).
    private func save(_ r: Run, _ file: String, midEpoch: Bool) throws {
        let s = r.s
        if communicator.isRoot {
            try Checkpoint.write(to: file, state: r.state, network: config.model, configYAML: config.yaml(comments: false), classes: s.classes,
                                 statistics: s.statistics, mean: config.augmentations.mean, parameters: s.parameters,
                                 momentum: s.sgd.velocity, epochStart: midEpoch ? s.epochStart : nil)
        }
        r.lastCheckpoint = file
        r.lastCheckpointTime = DispatchTime.now().uptimeNanoseconds
    }

    /// Saves the state where it stands and reports the interruption.
    private func interrupted(_ r: Run, _ signal: Int32) throws -> Never {
        try save(r, r.last, midEpoch: true)
        throw TrainingError.interrupted(signal: signal, checkpoint: r.last, resumeFlags: config.pathsOutsideTheCurrentFolder.map(\.flag))
    }

    /// Gives `source`'s complete file a second name, atomically and durably (see
    /// `FileIO.linkDurably`), so epoch-NNN and best cost no second write.
    private func link(_ source: String, to destination: String) throws {
        guard communicator.isRoot else { return }
        do { try FileIO.linkDurably(source, to: destination) } catch {
            throw TrainingError.setup("cannot save \(destination): \(error)")
        }
    }

    // MARK: TensorBoard

    /// One epoch's scalars (the seed's tags) and histograms; `epoch` 0 is the untrained network.
    private func log(_ record: EpochRecord, _ s: Session, epochStartAvailable: Bool) throws {
        guard let tb = s.tensorboard else { return }
        let step = record.epoch
        if let v = record.validation {
            try tb.scalar("Metrics/val_error_rate@1", v.top1Error, step: step)
            try tb.scalar("Metrics/val_error_rate@5", v.top5Error, step: step)
            try tb.scalar("Metrics/paper_error_rate@1", Self.paperTop1Error, step: step)
            try tb.scalar("Metrics/paper_error_rate@5", Self.paperTop5Error, step: step)
            try tb.scalar("Losses/val_loss", v.loss, step: step)
        }
        if let loss = record.trainLoss { try tb.scalar("Losses/train_loss", loss, step: step) }
        try tb.scalar("Optimizer/Group0_lr", record.lr, step: step)
        try tb.scalar("Optimizer/Group0_weight_decay", config.optimizer.weightDecay, step: step)
        if let ips = record.imagesPerSecond { try tb.scalar("Speed/train_images_per_second", ips, step: step) }
        let p = s.parameters
        for e in p.entries {
            let layer = String(e.name.split(separator: ".")[0])
            let values = UnsafeBufferPointer(start: p.values.pointer + e.offset, count: e.count)
            try tb.histogram((e.name.hasSuffix(".bias") ? "Biases/" : "Weights/") + layer, values, step: step)
            guard epochStartAvailable else { continue }
            // The gradients of the epoch's last step, and how far the epoch moved the weights.
            try p.grads.read(e.offset, e.count).withUnsafeBufferPointer { try tb.histogram("Gradients/\(e.name)", $0, step: step) }
            var change = 0.0
            let before = s.epochStart.pointer + e.offset
            for i in 0..<e.count { let d = Double(values[i] - before[i]); change += d * d }
            try tb.scalar("Diff/\(e.name)", change.squareRoot(), step: step)
        }
        try tb.flush()
    }
}

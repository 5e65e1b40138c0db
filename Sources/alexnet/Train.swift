import AlexNetTraining
import ArgumentParser
import Foundation

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train AlexNet from a YAML configuration (the seed's train.py + config.yml).",
        discussion: """
        The configuration has the seed's sections (path, model, training, optimizer, scheduler, \
        augmentations); every key has the paper's default, and `--print-config` lists them all \
        with what each accepts. configs/paper.yml is the paper exactly, configs/seed.yml the \
        seed's choices, configs/demo.yml the Fashion-MNIST demo.

        Each epoch: shuffled batches with the paper's augmentation, SGD with momentum, ten-crop \
        validation (loss, top-1 and top-5 error), the learning-rate schedule stepped on the \
        watched metric, TensorBoard scalars and histograms in <log_dir>/<run_name>, and \
        <checkpoint_dir>/<run_name>/last.safetensors (plus epoch-NNN every N epochs and \
        best.safetensors when the watched metric improves), each written to a temporary file, \
        flushed and renamed. Ctrl-C (or SIGTERM) finishes the current step, saves \
        last.safetensors and exits with 130 (143); `--resume` continues bit for bit. A NaN or \
        infinite loss stops the run, keeping the last good checkpoint. --threads N is the same as \
        --set training.threads=N, --precision P as --set training.precision=P.
        """
    )

    @Option(name: .shortAndLong, help: "YAML configuration file (optional with --resume: the checkpoint keeps its own).")
    var config: String?

    @Option(name: .customLong("set"), parsing: .singleValue,
            help: ArgumentHelp("Override one key, e.g. --set training.epochs=10 or --set model.widths=[8,16,24,24,16] (repeatable; the value is read as YAML).",
                               valueName: "key.path=value"))
    var overrides: [String] = []

    @Option(help: "Continue this checkpoint exactly (same as --set training.resume_from=PATH).")
    var resume: String?

    /// --threads N is the same as --set training.threads=N.
    @OptionGroup var compute: ComputeOptions

    /// --precision P is the same as --set training.precision=P.
    @OptionGroup var precision: PrecisionOptions

    @Flag(help: "Print the resolved configuration (every key, its value and what it accepts) and exit.")
    var printConfig = false

    @Flag(help: "Print one JSON object on the last line: run, checkpoint, best_checkpoint, log_dir, epochs, loss, top1_error, top5_error, seconds.")
    var json = false

    func validate() throws {
        if config == nil && resume == nil && !printConfig {
            throw ValidationError("give a configuration with -c FILE (e.g. configs/paper.yml), or --resume CHECKPOINT")
        }
    }

    func run() throws {
        var overrides = overrides
        if let threads = compute.threads { overrides.append("training.threads=\(threads)") }
        if let p = precision.precision { overrides.append("training.precision=\(p.rawValue)") }
        let resolved: TrainingConfig
        do {
            if printConfig {
                var c = try config.map { try TrainingConfig.load(file: $0) } ?? TrainingConfig()
                for o in overrides { try c.override(o) }
                print(c.yaml(), terminator: "")
                return
            }
            resolved = try TrainingConfig.resolve(file: config, overrides: overrides, resume: resume)
        } catch let e as ConfigurationError {
            throw usageError(e)
        }
        // Under mpirun, one of several ranks (docs/DESIGN.md, Many processes); alone otherwise.
        let communicator = try Communicator.join(timeout: resolved.training.collectiveTimeout)
        var logger = ConsoleLogHandler.logger(communicator.size > 1 ? "train[\(communicator.rank)]" : "train")
        if !communicator.isRoot { logger.logLevel = .error }
        let stop = StopRequest()
        stop.installSignalHandlers { [logger] signal in
            logger.warning("signal \(signal): stopping after this step and saving a checkpoint (again to quit at once)")
        }
        let trainer = Trainer(config: resolved, logger: logger, stop: stop, communicator: communicator)
        let summary: TrainingSummary
        do { summary = try trainer.run() } catch {
            let code: Int32
            switch error {
            case let e as TrainingError: code = e.exitCode
            case is ConfigurationError: code = 64
            default: code = 1
            }
            if communicator.size > 1 {
                // One rank's failure ends the whole job at once, naming the rank and the cause,
                // rather than leaving the others waiting in a collective.
                if case TrainingError.interrupted = error { communicator.finalize(); throw ExitCode(code) }
                FileHandle.standardError.write(Data("alexnet train: rank \(communicator.rank) of \(communicator.size): \(describe(error))\n".utf8))
                communicator.abort(code: code)
            }
            if let e = error as? ConfigurationError { throw usageError(e) }
            if let e = error as? TrainingError { logger.error("\(e)"); throw ExitCode(e.exitCode) }
            throw error
        }
        communicator.finalize()
        guard communicator.isRoot else { return }
        let final = summary.final
        print("run \(summary.runName): \(summary.history.filter { $0.epoch > 0 }.count) epochs"
              + (final.map { String(format: ", val loss %.4f, top-1 error %.2f %%, top-5 error %.2f %%", $0.loss, 100 * $0.top1Error, 100 * $0.top5Error) } ?? "")
              + String(format: " in %.1f s", summary.seconds))
        print("checkpoint: \(summary.lastCheckpoint)" + (summary.bestCheckpoint.map { ", best: \($0)" } ?? ""))
        print("TensorBoard: tensorboard --logdir \(summary.logDirectory)")
        if json {
            print(jsonLine(TrainingJSON(summary)))
        }
    }
}

/// `train --json`: every key present, null where there is no value (no validation yet, no best checkpoint).
private struct TrainingJSON: Encodable {
    let run, checkpoint, log_dir: String
    let best_checkpoint: JSONNullable<String>
    let epochs: Int
    let loss, top1_error, top5_error, seconds: JSONNullable<Double>
    init(_ s: TrainingSummary) {
        (run, checkpoint, log_dir, best_checkpoint) = (s.runName, s.lastCheckpoint, s.logDirectory, JSONNullable(s.bestCheckpoint))
        epochs = s.history.filter { $0.epoch > 0 }.count
        (loss, top1_error, top5_error) = (JSONNullable(s.final?.loss), JSONNullable(s.final?.top1Error), JSONNullable(s.final?.top5Error))
        seconds = JSONNullable(s.seconds)
    }
}

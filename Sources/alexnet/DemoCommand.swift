import AlexNetCore
import AlexNetData
import AlexNetTools
import AlexNetTraining
import ArgumentParser
import Foundation

struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "The main job in one command: AlexNet trained and evaluated on Fashion-MNIST.",
        discussion: """
        Imports Fashion-MNIST from Debian's dataset-fashion-mnist (scripts/setup.sh installs \
        it), preprocesses it, computes the training set's statistics, trains the paper's \
        architecture and recipe at reduced widths and resolution (configs/demo.yml) through the \
        same code as alexnet train, evaluates the best checkpoint with ten-crop on the 10 000 \
        test images, and classifies a few of them. Rerunning reuses the imported and \
        preprocessed images. The last line is one JSON object: top1_error, top5_error, seconds \
        (the whole demo), log_dir, checkpoint.
        """
    )

    @Option(help: "Folder with Fashion-MNIST's four IDX files.")
    var source = IDXImporter.fashionMNISTDefaultFolder

    @Option(help: "Where the imported and preprocessed images go.")
    var work = "data"

    @Option(name: .shortAndLong, help: "A training configuration instead of the shipped configs/demo.yml.")
    var config: String?

    @Option(name: .customLong("set"), parsing: .singleValue,
            help: ArgumentHelp("Override one configuration key, as for alexnet train (repeatable).", valueName: "key.path=value"))
    var overrides: [String] = []

    @OptionGroup var compute: ComputeOptions

    /// --precision P is the same as --set training.precision=P.
    @OptionGroup var precision: PrecisionOptions

    func run() throws {
        var options = Demo.Options()
        (options.source, options.work, options.configFile, options.overrides, options.threads) = (source, work, config, overrides, compute.threads)
        if let p = precision.precision { options.overrides.append("training.precision=\(p.rawValue)") }
        let logger = ConsoleLogHandler.logger("demo")
        let stop = StopRequest()
        stop.installSignalHandlers { _ in logger.warning("stopping after this step and saving a checkpoint (again to quit at once)") }
        let result: Demo.Result
        do { result = try Demo(options: options).run(logger: logger, stop: stop) } catch let e as TrainingError {
            logger.error("\(e)")
            throw ExitCode(e.exitCode)
        } catch let e as ConfigurationError {
            throw usageError(e)
        }
        let e = result.evaluation
        print(String(format: "Fashion-MNIST test set, ten-crop: top-1 error %.2f %%, top-5 error %.2f %% (%d images), loss %.4f",
                     100 * e.top1Error, 100 * e.top5Error, e.images, e.loss))
        for p in result.predictions {
            let guesses = p.top.map { FileIO.display($0.name) + String(format: " %.1f %%", 100 * $0.probability) }.joined(separator: ", ")
            print("  \(FileIO.display(p.file)) (\(FileIO.display(p.label))): \(guesses)")
        }
        print("checkpoints: \(result.training.checkpointDirectory) (best: \(result.checkpoint))")
        print("TensorBoard: tensorboard --logdir \(result.training.logDirectory)")
        print(String(format: "demo finished in %.1f s", result.seconds))
        print(jsonLine(DemoJSON(result)))
    }
}

/// The demo's closing JSON line.
private struct DemoJSON: Encodable {
    let top1_error, top5_error, seconds: JSONNullable<Double>
    let log_dir, checkpoint: String
    init(_ r: Demo.Result) {
        (top1_error, top5_error, seconds) = (JSONNullable(r.evaluation.top1Error), JSONNullable(r.evaluation.top5Error), JSONNullable(r.seconds))
        (log_dir, checkpoint) = (r.training.logDirectory, r.checkpoint)
    }
}

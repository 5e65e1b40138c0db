import AlexNetCore
import AlexNetData
import AlexNetInterop
import AlexNetKernels
import AlexNetModel
import AlexNetTools
import AlexNetTraining
import Foundation
import XCTest

/// The real `alexnet` binary: output and exit codes.
final class CommandLineTests: XCTestCase {
    func alexnet(_ args: String...) throws -> (Int32, String, String) { try runProcess(Paths.binary, args) }

    func testVerifyPassesOnTheGoldenSet() throws {
        let (status, out, _) = try alexnet("verify", Paths.golden.path)
        XCTAssertEqual(status, 0, out)
        XCTAssertTrue(out.contains("conv1       dw"), out)
        XCTAssertTrue(out.contains("step2.after.fc8.bias"), out)
        XCTAssertTrue(out.contains(" 0 over 1e-04"), out)
    }

    /// A golden file with one tensor perturbed must fail the run and name the tensor.
    func testVerifyFailsOnAWrongReference() throws {
        let source = try SafetensorsFile(path: Paths.goldenAlt.appendingPathComponent("net_paper.safetensors").path)
        var writer = SafetensorsWriter(metadata: source.metadata)
        for name in source.names {
            if source.tensors[name]!.dtype == .i64 {
                writer.add(name, integers: try source.integers(name), shape: source.tensors[name]!.shape)
                continue
            }
            var t = try source.tensor(name)
            if name == "step1.grad.fc7.weight" { t.data[0] += 0.1 * (t.data.map(abs).max() ?? 1) }
            writer.add(name, t)
        }
        let path = try Paths.temporaryDirectory().appendingPathComponent("net_paper.safetensors").path
        try writer.write(to: path)
        let (status, out, _) = try alexnet("verify", "--quiet", path)
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(out.contains("step1.grad.fc7.weight") && out.contains("FAIL"), out)
        XCTAssertFalse(out.contains("step1.grad.fc6.weight"), "--quiet prints failing rows only")
    }

    func testVerifyReportsMissingAndBrokenFiles() throws {
        var (status, _, err) = try alexnet("verify", "/nonexistent/golden")
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(err.contains("/nonexistent/golden"), err)
        let bad = try Paths.temporaryDirectory().appendingPathComponent("bad.safetensors")
        try Data("not a safetensors file at all".utf8).write(to: bad)
        (status, _, err) = try alexnet("verify", bad.path)
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(err.contains(bad.path), err)
    }

    func testBenchJSON() throws {
        let (status, out, err) = try alexnet("bench", "--batch", "2", "--iters", "1", "--warmup", "0", "--json", "--layers")
        XCTAssertEqual(status, 0, err)
        let last = out.split(separator: "\n").last.map(String.init) ?? ""
        let json = try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any]
        for key in ["train_images_per_second", "inference_images_per_second", "latency_ms_batch1", "train_gflops_per_second",
                    "peak_rss_bytes", "threads", "batch"] {
            XCTAssertNotNil(json?[key], "missing \(key) in \(last)")
        }
        XCTAssertEqual(json?["batch"] as? Int, 2)
        for key in ["peak_gflops", "fma_peak_gflops", "matmul_peak_gflops", "fma_kernel"] { XCTAssertNotNil(json?[key], "missing \(key) in \(last)") }
        XCTAssertTrue(out.contains("peak ") && out.contains("FMA kernel"), "the measured peak is printed: \(out)")
        XCTAssertGreaterThan(json?["train_images_per_second"] as? Double ?? 0, 0)
        XCTAssertTrue(out.contains("conv2") && out.contains("SGD update"), "--layers prints the per-layer table")
        XCTAssertTrue(out.contains("memory of the training network"), "--layers prints the memory plan: \(out)")
        // Each precision's peak comes from a child process of its own: smaller than this
        // process's, which also ran the machine's peak (a child reporting its parent's peak,
        // as getrusage would after exec, fails here).
        let fp32 = try XCTUnwrap(json?["peak_rss_bytes_fp32"] as? Int, "missing peak_rss_bytes_fp32 in \(last)")
        XCTAssertGreaterThan(fp32, 0)
        XCTAssertLessThan(fp32, json?["peak_rss_bytes"] as? Int ?? 0)
        XCTAssertTrue(out.contains("peak memory per precision"), out)
        if CPUCapabilities.hasNativeBF16 {
            XCTAssertGreaterThan(json?["peak_rss_bytes_bf16"] as? Int ?? 0, 0, last)
        } else {
            XCTAssertNil(json?["peak_rss_bytes_bf16"], last)
            XCTAssertTrue(out.contains("bf16 skipped"), out)
        }
    }

    func testBadFlagsAreRejectedWithAMessage() throws {
        var (status, _, err) = try alexnet("bench", "--batch", "0")
        XCTAssertEqual(status, 64)
        XCTAssertTrue(err.contains("--batch"), err)
        (status, _, err) = try alexnet("bench", "--variant", "resnet")
        XCTAssertEqual(status, 64)
        XCTAssertTrue(err.contains("resnet"), err)
        (status, _, err) = try alexnet("verify", "--threads", "0", Paths.golden.path)
        XCTAssertEqual(status, 64)
        XCTAssertTrue(err.contains("--threads"), err)
    }

    /// Each says its real cause in one line: a negative -k or --tolerance (not "Missing value"),
    /// a device or a folder given as the configuration (not "Permission denied"); a FIFO, as the
    /// shell's -c <(…) gives, is read.
    func testMessagesSayTheRealCause() throws {
        let weights = Paths.repository.appendingPathComponent("Tests/Fixtures/eval/paper.safetensors").path
        let cat = Paths.photos.appendingPathComponent("chelsea.jpg").path
        var (status, _, err) = try alexnet("classify", "-k", "-1", "-i", cat, "-w", weights)
        XCTAssertEqual(status, 64)
        XCTAssertTrue(err.contains("-k must be at least 1, got -1"), err)
        (status, _, err) = try alexnet("verify", "--tolerance", "-1", Paths.golden.path)
        XCTAssertEqual(status, 64)
        XCTAssertTrue(err.contains("--tolerance must be a positive number, got -1.0"), err)
        for args in [["train", "-c", "/dev/null"], ["evaluate", "-c", "/dev/null", "-w", weights]] {
            (status, _, err) = try runProcess(Paths.binary, args)
            XCTAssertEqual(status, 64, "\(args): \(err)")
            XCTAssertEqual(err, "Error: /dev/null: a device, not a configuration file\n", "\(args)")
        }
        (status, _, err) = try alexnet("train", "-c", try Paths.temporaryDirectory().path)
        XCTAssertEqual(status, 64)
        XCTAssertTrue(err.contains(": a folder, not a configuration file"), err)
        let out: String
        (status, out, err) = try runProcess(URL(fileURLWithPath: "/bin/bash"),
                                            ["-c", "\"$0\" train -c <(printf 'training:\\n  epochs: 7\\n') --print-config", Paths.binary.path])
        XCTAssertEqual(status, 0, err)
        XCTAssertTrue(out.contains("epochs: 7"), out)
    }

    /// Class names come from folder names and checkpoints: classify prints their control
    /// characters escaped, never raw to the terminal.
    func testClassNamesAreEscapedWhenPrinted() throws {
        let model = NetworkConfig(widths: [4, 8, 8, 8, 8], hidden: 16, classes: 4, inputSize: 64)
        let parameters = try Network.makeParameters(model)
        Initialization.paper.apply(to: parameters, seed: 1)
        var config = TrainingConfig()
        config.model = model
        let path = try Paths.temporaryDirectory().appendingPathComponent("names.safetensors").path
        try Checkpoint.write(to: path, state: TrainingState(runName: "names", seed: 1, schedule: config.makeSchedule()), network: model,
                             configYAML: config.yaml(comments: false), classes: ["red\u{1B}[31m", "tab\there", "del\u{7F}", "csi\u{9B}2J"],
                             statistics: nil, mean: .channel, parameters: parameters, momentum: NumberBuffer(count: parameters.values.count, format: .float32),
                             epochStart: nil)
        let (status, out, err) = try alexnet("classify", "-i", Paths.photos.appendingPathComponent("chelsea.jpg").path, "-w", path, "-k", "4")
        XCTAssertEqual(status, 0, err)
        XCTAssertFalse(out.unicodeScalars.contains { ($0.value < 0x20 && $0 != "\n") || (0x7F...0x9F).contains($0.value) }, out)
        for escaped in ["red\\x1b[31m", "tab\\there", "del\\x7f", "csi\\u{9b}2J"] { XCTAssertTrue(out.contains(escaped), "\(escaped): \(out)") }

        // dataset-info lists the class folders of a split by name.
        let root = try Paths.temporaryDirectory("names-dataset")
        for name in ["red\u{1B}[31m", "del\u{7F}"] {
            let folder = root.appendingPathComponent("train/\(name)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try ImageCodec().encodePNG(syntheticImage(width: 8, height: 8, seed: 1)).write(to: folder.appendingPathComponent("a.png"))
        }
        let (_, listed, _) = try alexnet("dataset-info", root.path)
        XCTAssertTrue(listed.contains("  red\\x1b[31m\t1\n") && listed.contains("  del\\x7f\t1\n"), listed)
        XCTAssertFalse(listed.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x7F }, listed)
    }

    /// Every command's --help exits 0 and lists each of its flags; every command takes --threads
    /// (declared once) and lists the choices of its enumerations. The commands come from the
    /// parser's own description (--experimental-dump-help), checked against the expected list so
    /// that a command dropped from the tool fails too.
    func testHelpExplainsEveryCommand() throws {
        let (status, out, _) = try alexnet("--help")
        XCTAssertEqual(status, 0)
        let (dumpStatus, dump, dumpErr) = try alexnet("--experimental-dump-help")
        XCTAssertEqual(dumpStatus, 0, dumpErr)
        let root = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(dump.utf8)) as? [String: Any])["command"] as? [String: Any]
        var commands: [(path: [String], info: [String: Any])] = []
        func walk(_ c: [String: Any], _ path: [String]) {
            let subs = c["subcommands"] as? [[String: Any]] ?? []
            if subs.isEmpty, !path.isEmpty { commands.append((path, c)) }
            for s in subs { walk(s, path + [s["commandName"] as? String ?? "?"]) }
        }
        walk(try XCTUnwrap(root), [])
        let names = commands.map { $0.path.joined(separator: " ") }.filter { $0 != "help" }
        XCTAssertEqual(Set(names), ["preprocess", "stats", "dataset-info", "verify", "bench", "import fashion-mnist", "import idx",
                                    "train", "evaluate", "classify", "demo", "convert", "export"])
        for name in ["preprocess", "stats", "dataset-info", "verify", "bench", "import", "train", "evaluate", "classify", "demo", "convert",
                     "export"] {
            XCTAssertTrue(out.contains("  \(name) "), "alexnet --help lists \(name)")
        }
        for (path, info) in commands where path != ["help"] {
            let (status, help, err) = try runProcess(Paths.binary, path + ["--help"])
            let command = path.joined(separator: " ")
            XCTAssertEqual(status, 0, "\(command) --help: \(err)")
            var flags: [String] = []
            for argument in info["arguments"] as? [[String: Any]] ?? [] {
                guard let spellings = argument["names"] as? [[String: String]], argument["shouldDisplay"] as? Bool != false else { continue }
                let spelled = spellings.map { ($0["kind"] == "short" ? "-" : "--") + ($0["name"] ?? "") }
                flags += spelled
                for flag in spelled { XCTAssertTrue(help.contains(flag), "\(command) --help lists \(flag)") }
            }
            // convert and export copy tensors and compute nothing: no thread budget to set.
            if command != "convert" && command != "export" { XCTAssertTrue(flags.contains("--threads"), "\(command) takes --threads") }
            XCTAssertTrue(flags.contains("--help"), "\(command)")
        }
        for (command, values) in [(["bench"], "values: paper, seed"), (["preprocess"], "values: jpeg, png"),
                                  (["dataset-info"], "values: hf, imagefolder"), (["import", "idx"], "values: train, val")] {
            let (_, help, _) = try runProcess(Paths.binary, command + ["--help"])
            // The help wraps lines: compare with its whitespace collapsed.
            let text = help.split(whereSeparator: \.isWhitespace).joined(separator: " ")
            XCTAssertTrue(text.contains(values), "\(command) --help: \(values)\n\(help)")
        }
    }

    /// `alexnet help NAME` for a NAME that is no command is a usage error (it printed the top-level
    /// help and exited 0); known names still work.
    func testHelpOnAnUnknownCommandFails() throws {
        var (status, _, err) = try alexnet("help", "nosuch")
        XCTAssertEqual(status, 64)
        XCTAssertTrue(err.contains("nosuch") && err.contains("verify"), err)
        (status, _, err) = try alexnet("help", "import", "nosuch")
        XCTAssertEqual(status, 64)
        XCTAssertTrue(err.contains("'alexnet import' has no command 'nosuch'"), err)
        var out: String
        (status, out, _) = try alexnet("help", "import", "idx")
        XCTAssertEqual(status, 0)
        XCTAssertTrue(out.contains("--split"), out)
    }

    /// Counts and sizes are bounded, with an error naming the flag, before any work (unbounded,
    /// these exhaust memory or trap on an allocation).
    func testCountsAndSizesAreBounded() throws {
        let images = Paths.repository.appendingPathComponent("Tests/Fixtures/images").path
        let cases: [([String], String)] = [
            (["stats", "-s", images, "--threads", "100000"], "--threads"),
            (["stats", "-s", images, "-z", "100000"], "-z/--size"),
            (["preprocess", "-s", images, "-d", "/tmp/never", "-z", "65000"], "-z/--size"),
            (["bench", "--data", images, "--threads", "100000"], "--threads"),
            (["bench", "--batch", "1000000"], "--batch"),
            (["dataset-info", images, "--threads", "100000"], "--threads"),
            (["evaluate", "--data", images, "-w", "x", "--batch", "100000"], "--batch"),
            (["import", "idx", "a", "b", "--split", "train", "-o", "/tmp/never", "--threads", "0"], "--threads"),
            (["train", "-c", "x.yml", "--threads", "100000"], "--threads"),
        ]
        for (args, flag) in cases {
            let (status, _, err) = try runProcess(Paths.binary, args)
            XCTAssertEqual(status, 64, "\(args): \(err)")
            XCTAssertTrue(err.hasPrefix("Error: \(flag) must be in"), "\(args): \(err)")
            XCTAssertEqual(err.split(separator: "\n").count, 1, "one line, without the usage text: \(err)")
        }
        XCTAssertThrowsError(try Limits.check(threads: 100_000)) { XCTAssertTrue("\($0)".contains("--threads"), "\($0)") }
        XCTAssertThrowsError(try DatasetStatistics.checkMemory(size: 4096, threads: 1 << 20)) { XCTAssertTrue("\($0)".contains("GB"), "\($0)") }
    }

    /// `stats -o` is checked before the images are read (it failed after the whole computation
    /// with "AlexNet.SafetensorsError error 1"), in one line naming the path.
    func testStatsChecksItsOutputFirst() throws {
        let dir = try Paths.temporaryDirectory()
        let folder = dir.appendingPathComponent("somedir")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let images = Paths.repository.appendingPathComponent("Tests/Fixtures/images").path
        for (output, cause) in [(folder.path, "is a folder"), ("/nonexistent/x.safetensors", "No such file or directory")] {
            let (status, out, err) = try alexnet("stats", "-s", images, "-o", output)
            XCTAssertEqual(status, 64, err)
            XCTAssertEqual(err.split(separator: "\n").count, 1, err)
            XCTAssertTrue(err.contains(output) && err.contains(cause), err)
            XCTAssertFalse(err.contains("stats:") || out.contains("stats:"), "nothing was computed: \(out)\(err)")
        }
    }

    /// Options the chosen measurement would ignore are refused.
    func testBenchRefusesOptionsThatDoNotApply() throws {
        let images = Paths.repository.appendingPathComponent("Tests/Fixtures/images").path
        for (args, word) in [(["bench", "--val-batch", "4"], "--val-batch"), (["bench", "--stats", "s.safetensors"], "--stats"),
                             (["bench", "--data", images, "--iters", "3"], "--iters"), (["bench", "--data", images, "--layers"], "--layers"),
                             (["bench", "--data", images, "--variant", "seed"], "--variant"), (["bench", "--peak", "--layers"], "--layers")] {
            let (status, _, err) = try runProcess(Paths.binary, args)
            XCTAssertEqual(status, 64, "\(args): \(err)")
            XCTAssertTrue(err.hasPrefix("Error: \(word)"), "\(args): \(err)")
        }
    }

    /// The peak is measured, not assumed: an FMA kernel and a oneDNN matrix multiply, both printed.
    func testBenchMeasuresThePeak() throws {
        let (status, out, err) = try alexnet("bench", "--peak", "--json", "--threads", "1")
        XCTAssertEqual(status, 0, err)
        XCTAssertTrue(out.contains("FMA kernel") && out.contains("matrix multiply"), out)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data((out.split(separator: "\n").last ?? "").utf8)) as? [String: Any])
        let fma = try XCTUnwrap(json["fma_peak_gflops"] as? Double), matmul = try XCTUnwrap(json["matmul_peak_gflops"] as? Double)
        // One core does at least a few GFLOP/s and, with 512-bit FMAs at 5 GHz, at most 320.
        XCTAssertTrue((1...400).contains(fma) && (0.5...400).contains(matmul), "\(json)")
        XCTAssertEqual(json["peak_gflops"] as? Double, max(fma, matmul))
        XCTAssertEqual(json["threads"] as? Int, 1)
        XCTAssertTrue(["AVX-512F", "AVX2+FMA", "portable"].contains(json["fma_kernel"] as? String ?? ""), "\(json)")
    }
}

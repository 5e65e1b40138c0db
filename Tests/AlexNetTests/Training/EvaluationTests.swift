import AlexNetCore
import AlexNetData
import AlexNetInterop
import AlexNetModel
import AlexNetTraining
import Foundation
import XCTest

/// `alexnet evaluate` and `alexnet classify` against PyTorch (scripts/make_eval_fixture.py):
/// the same weights and images give the loss within 1e-4 and the error rates exactly.
final class EvaluationTests: XCTestCase {
    static let fixtures = Paths.repository.appendingPathComponent("Tests/Fixtures/eval")

    struct Expected {
        let json: [String: Any]
        func variant(_ v: String) -> [String: Any] { (json["variants"] as! [String: Any])[v] as! [String: Any] }
        func classify(_ v: String, _ image: String, _ mode: String) -> [String: Any] {
            (((json["classify"] as! [String: Any])[v] as! [String: Any])[image] as! [String: Any])[mode] as! [String: Any]
        }
    }

    static let expected: Expected = {
        let data = try! Data(contentsOf: fixtures.appendingPathComponent("expected.json"))
        return Expected(json: try! JSONSerialization.jsonObject(with: data) as! [String: Any])
    }()

    /// The fixture's dataset (its `dataset_rule`): the six 256×256 Pillow results, each in the
    /// eight pixel permutations of the square, as lossless PNGs in class folders c0…c6.
    static func makeDataset() throws -> URL {
        let root = try Paths.temporaryDirectory("evaluation-dataset")
        let sources = try FileManager.default.contentsOfDirectory(atPath: Paths.photos.path)
            .filter { $0.hasSuffix(".rgb256.png") }.sorted()
        XCTAssertEqual(sources.count, 6)
        let codec = ImageCodec()
        for (s, name) in sources.enumerated() {
            let a = try codec.decode(file: Paths.photos.appendingPathComponent(name).path)
            let n = a.width
            XCTAssertEqual(a.height, n)
            // out[y][x] = a[sy][sx] for each transform t (the fixture's table).
            let maps: [(Int, Int) -> (Int, Int)] = [
                { y, x in (y, x) }, { y, x in (x, n - 1 - y) }, { y, x in (n - 1 - y, n - 1 - x) }, { y, x in (n - 1 - x, y) },
                { y, x in (y, n - 1 - x) }, { y, x in (n - 1 - y, x) }, { y, x in (x, y) }, { y, x in (n - 1 - x, n - 1 - y) },
            ]
            for (t, map) in maps.enumerated() {
                var out = RGBImage(width: n, height: n)
                for y in 0..<n { for x in 0..<n {
                    let (sy, sx) = map(y, x)
                    for c in 0..<3 { out.pixels[(y * n + x) * 3 + c] = a.pixels[(sy * n + sx) * 3 + c] }
                } }
                let j = 8 * s + t
                let folder = root.appendingPathComponent("val/c\((j * 5 + j / 8) % 7)")
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                let stem = String(name.dropLast(".rgb256.png".count))
                try codec.encodePNG(out).write(to: folder.appendingPathComponent("\(stem)_t\(t).png"))
            }
        }
        return root
    }

    func lastJSON(_ out: String) throws -> Any {
        let last = out.split(separator: "\n").last.map(String.init) ?? ""
        return try JSONSerialization.jsonObject(with: Data(last.utf8))
    }

    func testTenCropEvaluationAgreesWithPyTorch() throws {
        let root = try Self.makeDataset()
        for variant in ["paper", "seed"] {
            let weights = Self.fixtures.appendingPathComponent("\(variant).safetensors").path
            let (status, out, err) = try runProcess(Paths.binary, ["evaluate", "--data", root.path, "-w", weights, "--variant", variant,
                                                                   "--batch", "5", "--json"])
            XCTAssertEqual(status, 0, err)
            let got = try lastJSON(out) as! [String: Any]
            let want = Self.expected.variant(variant)
            XCTAssertEqual(got["images"] as? Int, 48)
            XCTAssertEqual(got["loss"] as! Double, want["loss"] as! Double, accuracy: 1e-4, "\(variant) loss")
            XCTAssertEqual(got["top1_error"] as? Double, want["top1_error"] as? Double, "\(variant) top-1 error")
            XCTAssertEqual(got["top5_error"] as? Double, want["top5_error"] as? Double, "\(variant) top-5 error")
        }
    }

    /// Every image's averaged output (softmax mean for the paper, raw mean for the seed), through the library.
    func testAveragedOutputsPerImageAgreeWithPyTorch() throws {
        let root = try Self.makeDataset()
        for variant in ["paper", "seed"] {
            let weights = try LoadedWeights(path: Self.fixtures.appendingPathComponent("\(variant).safetensors").path,
                                            variant: Variant(rawValue: variant)!)
            let job = try EvaluationJob(weights: weights, config: nil, data: root.path)
            let networks = InferenceNetworks(config: weights.network, parameters: weights.parameters, engine: sharedEngine)
            let perImage = Self.expected.variant(variant)["per_image"] as! [[String: Any]]
            let byFile = Dictionary(uniqueKeysWithValues: perImage.map { ($0["file"] as! String, $0) })
            let loader = try BatchLoader(split: job.split, labels: job.labels, kind: .validation(tenCrop: true), augmentation: job.augmentation,
                                         batchSize: 7, seed: 0, epoch: 0, threads: 2)
            var seen = 0
            while let batch = loader.next() {
                let averaged = try networks.averagedOutputs(images: batch.images, count: batch.count, crops: 10)
                for b in 0..<batch.count {
                    let file = job.split.files[batch.samples[b]]
                    let want = byFile[file]!["averaged_output"] as! [Double]
                    let got = Array(averaged[(b * 7)..<((b + 1) * 7)])
                    let e = Tensor.relativeError(got.map(Float.init), want.map(Float.init))
                    XCTAssertLessThan(e, 1e-5, "\(variant) \(file): \(got) vs \(want)")
                    XCTAssertEqual(batch.labels[b], byFile[file]!["label"] as? Int, file)
                    seen += 1
                }
            }
            XCTAssertEqual(seen, 48)
        }
    }

    func testClassifyAgreesWithPyTorch() throws {
        let images = ["chelsea.rgb256.png", "coffee.rgb256.png"]
        let files = images.map { Paths.photos.appendingPathComponent($0).path }
        for variant in ["paper", "seed"] {
            for tenCrop in [false, true] {
                let weights = Self.fixtures.appendingPathComponent("\(variant).safetensors").path
                var args = ["classify", "-w", weights, "--variant", variant, "-k", "5", "--json"] + files.flatMap { ["-i", $0] }
                if tenCrop { args.append("--ten-crop") }
                let (status, out, err) = try runProcess(Paths.binary, args)
                XCTAssertEqual(status, 0, err)
                let lists = try lastJSON(out) as! [[[String: Any]]]
                XCTAssertEqual(lists.count, 2)
                for (image, got) in zip(images, lists) {
                    let want = Self.expected.classify(variant, image, tenCrop ? "ten_crop" : "center_crop")["top5"] as! [[Double]]
                    XCTAssertEqual(got.map { $0["index"] as! Int }, want.map { Int($0[0]) }, "\(variant) \(image) ten-crop \(tenCrop)")
                    for (g, w) in zip(got, want) {
                        XCTAssertEqual(g["probability"] as! Double, w[1], accuracy: 1e-5, "\(variant) \(image)")
                        XCTAssertEqual(g["class"] as? String, "class \(Int(w[0]))", "a plain file has no class names")
                    }
                }
                XCTAssertTrue(out.contains("chelsea.rgb256.png:"), out)
            }
        }
    }

    /// One image gives a flat list; a bad file or weights that do not fit give a clear message.
    func testClassifyOutputAndErrors() throws {
        let weights = Self.fixtures.appendingPathComponent("paper.safetensors").path
        let cat = Paths.photos.appendingPathComponent("chelsea.jpg").path
        var (status, out, err) = try runProcess(Paths.binary, ["classify", "-i", cat, "-w", weights, "-k", "3", "--json"])
        XCTAssertEqual(status, 0, err)
        let list = try lastJSON(out) as! [[String: Any]]
        XCTAssertEqual(list.count, 3)
        XCTAssertEqual(Set(list[0].keys), ["index", "class", "name", "probability"])
        let broken = Paths.photos.appendingPathComponent("not_an_image.jpg").path
        (status, _, err) = try runProcess(Paths.binary, ["classify", "-i", broken, "-w", weights])
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(err.contains("not_an_image.jpg"), err)
        (status, _, err) = try runProcess(Paths.binary, ["classify", "-i", "/nonexistent.jpg", "-w", weights])
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(err.contains("/nonexistent.jpg"), err)
        // Weights whose shapes do not chain (fc6 of another width) name the tensor.
        let source = try SafetensorsFile(path: weights)
        var w = SafetensorsWriter(metadata: source.metadata)
        for name in source.names {
            var t = try source.tensor(name)
            if name == "conv5.weight" { t = Tensor(zeros: [12] + Array(t.shape.dropFirst())) }
            w.add(name, t)
        }
        let bad = try Paths.temporaryDirectory().appendingPathComponent("bad.safetensors").path
        try w.write(to: bad)
        (status, _, err) = try runProcess(Paths.binary, ["classify", "-i", cat, "-w", bad])
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(err.contains("bad.safetensors") && err.contains("conv5"), err)
    }

    /// The top-k rule against torch.topk (Tests/Fixtures/topk_ties.json, scripts/make_topk_fixture.py):
    /// the same membership wherever the label is not tied across the k-th place; there, where
    /// torch.topk keeps or drops the label by its own undocumented tie-breaking, a miss.
    func testTopKAgreesWithTorchAndCountsBoundaryTiesAsMisses() throws {
        let data = try Data(contentsOf: Paths.repository.appendingPathComponent("Tests/Fixtures/topk_ties.json"))
        let rows = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        var tiedHitsInTorch = 0
        for (i, row) in rows.enumerated() {
            let scores = ArraySlice(row["scores"] as! [Double]), label = row["label"] as! Int
            let torch = row["torch"] as! [String: Bool], tied = row["boundary_tie"] as! [String: Bool]
            for k in [1, 5] {
                let ours = TopK.contains(label, in: scores, k: k)
                if tied["\(k)"]! {
                    XCTAssertFalse(ours, "row \(i), k \(k): a tie across the k-th place is a miss")
                    if torch["\(k)"]! { tiedHitsInTorch += 1 }
                } else {
                    XCTAssertEqual(ours, torch["\(k)"]!, "row \(i), k \(k): \(scores), label \(label)")
                }
            }
        }
        XCTAssertGreaterThan(tiedHitsInTorch, 0, "the fixture holds ties torch.topk counts as found")
        // A slice of a larger array (a batch's row), and scores that are not finite.
        let batch: [Double] = [9, 9, 1, 2, 3, 1, 1, 1]
        XCTAssertTrue(TopK.contains(0, in: batch[4...], k: 1))
        XCTAssertFalse(TopK.contains(1, in: batch[4...], k: 3), "3, 1 and 1 score at least as high")
        XCTAssertTrue(TopK.contains(1, in: batch[4...], k: 4))
        XCTAssertEqual(TopK.rivals(of: 0, in: batch[5...]), 2)
        XCTAssertFalse(TopK.contains(0, in: [.nan, 0, 0], k: 3))
        XCTAssertFalse(TopK.contains(0, in: [.infinity, 0, 0], k: 3))
    }

    /// Outputs that are all equal (fc8 zero) find no label: 100 % top-1 and top-5 error with 7
    /// classes, loss ln 7, for both variants; outputs holding a NaN make evaluation and
    /// classification an error that names an image, in the library and through the binary.
    func testEqualOutputsAreErrorsAndNaNOutputsStopEvaluation() throws {
        let root = try Self.makeDataset()
        let dir = try Paths.temporaryDirectory()
        let cat = Paths.photos.appendingPathComponent("chelsea.jpg").path
        for variant in [Variant.paper, .seed] {
            let weights = try LoadedWeights(path: Self.fixtures.appendingPathComponent("\(variant.rawValue).safetensors").path, variant: variant)
            let job = try EvaluationJob(weights: weights, config: nil, data: root.path)
            for name in ["fc8.weight", "fc8.bias"] { try weights.parameters.set(name, Tensor(zeros: try weights.parameters.tensor(name).shape)) }
            let flat = try job.run(engine: sharedEngine, batchSize: 7, threads: 2)
            XCTAssertEqual(flat.images, 48)
            XCTAssertEqual(flat.top1Error, 1, "\(variant): a tie is not a hit")
            XCTAssertEqual(flat.top5Error, 1, "\(variant): six classes tie with the label")
            XCTAssertEqual(flat.loss, log(7), accuracy: 1e-9, "\(variant)")
            guard variant == .paper else { continue }
            // Class 0 at −2000 below the rest: its probability, e^−2000, is below Double's range,
            // and the loss of its images is 2000 + ln 6 (summed in log space), not infinite.
            try weights.parameters.set("fc8.bias", Tensor(shape: [7], data: [-2000, 0, 0, 0, 0, 0, 0]))
            let low = try job.run(engine: sharedEngine, batchSize: 7, threads: 2)
            let zeros = Double(job.labels.filter { $0 == 0 }.count)
            XCTAssertGreaterThan(zeros, 0)
            XCTAssertEqual(low.loss, log(6) + 2000 * zeros / 48, accuracy: 1e-9)
            XCTAssertEqual([low.top1Error, low.top5Error], [1, 1])
        }
        // The paper's logits carry a NaN of fc8 through (the seed's final ReLU turns it into 0,
        // which the rule above counts as a tie).
        let weights = try LoadedWeights(path: Self.fixtures.appendingPathComponent("paper.safetensors").path, variant: .paper)
        let job = try EvaluationJob(weights: weights, config: nil, data: root.path)
        var bias = try weights.parameters.tensor("fc8.bias")
        bias.data[2] = .nan
        try weights.parameters.set("fc8.bias", bias)
        XCTAssertThrowsError(try job.run(engine: sharedEngine, batchSize: 7, threads: 2)) { error in
            XCTAssertTrue(error is NonFiniteOutputError, "\(error)")
            XCTAssertTrue("\(error)".contains("validation: the network's outputs are not finite (NaN or infinite) for 7 images, first ")
                          && "\(error)".contains(".png (batch 1)"), "\(error)")
        }
        XCTAssertThrowsError(try Classifier(weights: weights, engine: sharedEngine).classify(files: [cat], top: 3, tenCrop: false)) { error in
            XCTAssertTrue("\(error)".contains("classify: the network's outputs are not finite (NaN or infinite) for 1 image, first \(cat)"), "\(error)")
        }
        // Through the binary: a file holding a NaN is refused when read, naming the parameter;
        // finite weights whose outputs overflow stop evaluate and classify instead.
        let poisoned = dir.appendingPathComponent("nan.safetensors").path
        try weights.write(to: poisoned)
        let (refused, _, why) = try runProcess(Paths.binary, ["classify", "-i", cat, "-w", poisoned])
        XCTAssertEqual(refused, 64, why)
        XCTAssertTrue(why.contains("fc8.bias holds a NaN or infinite value"), why)
        bias.data[2] = 0
        try weights.parameters.set("fc8.bias", bias)
        let fc8 = try weights.parameters.tensor("fc8.weight")
        try weights.parameters.set("fc8.weight", Tensor(shape: fc8.shape, data: [Float](repeating: 3e38, count: fc8.data.count)))
        let overflowing = dir.appendingPathComponent("overflow.safetensors").path
        try weights.write(to: overflowing)
        for args in [["evaluate", "--data", root.path, "-w", overflowing, "--batch", "7"], ["classify", "-i", cat, "-w", overflowing]] {
            let (status, out, err) = try runProcess(Paths.binary, args)
            XCTAssertEqual(status, 1, "\(args): \(out)")
            XCTAssertEqual(err.split(separator: "\n").last.map { $0.hasPrefix("Error: ") && $0.contains("not finite") }, true, "\(args): \(err)")
            XCTAssertFalse(out.contains("%"), "\(args): no metric or prediction printed: \(out)")
        }
    }
}

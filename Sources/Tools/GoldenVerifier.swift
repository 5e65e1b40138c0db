import AlexNetCore
import AlexNetData
import AlexNetInterop
import AlexNetKernels
import AlexNetModel
import AlexNetTraining
import Foundation

/// Checks this implementation against PyTorch's golden files (docs/NUMERICS.md, Tolerance):
/// every layer case forward and backward, and two SGD steps of a whole network, tensor by tensor,
/// as relative L2 error ‖ours − ref‖ / ‖ref‖. Configurations come from each file's metadata, so
/// any widths, class count or batch size written there work.
///
/// A golden file is input like any other: every metadata value and every tensor's shape is
/// checked against what the case needs before a layer is built or a buffer allocated (a stride
/// of 0, a rank-1 weight or a reference of another size is an error, not a crash). The
/// release build is `-Ounchecked`, so these are explicit guards, never Swift's traps.
public struct GoldenVerifier {
    public struct Row: Sendable {
        public let file: String
        public let caseName: String
        public let tensor: String
        /// ‖ours − ref‖ / ‖ref‖; NaN when either side holds a NaN.
        public let error: Double
        public let tolerance: Double
        /// False for a NaN error too (NaN ≤ tolerance is false).
        public var passed: Bool { error <= tolerance }

        public init(file: String, caseName: String, tensor: String, error: Double, tolerance: Double) {
            (self.file, self.caseName, self.tensor, self.error, self.tolerance) = (file, caseName, tensor, error, tolerance)
        }
    }

    /// The tally `alexnet verify` prints. A NaN row makes the worst error NaN: a NaN is worse
    /// than any number, and `max` would have dropped it.
    public struct Summary: Sendable {
        public private(set) var checked = 0
        public private(set) var failed = 0
        public private(set) var worst = 0.0
        /// "file case tensor" of the worst row.
        public private(set) var worstRow: String?
        public init() {}

        public mutating func add(_ row: Row) {
            checked += 1
            if !row.passed { failed += 1 }
            // Rows shown but not judged (bf16's network gradients) do not make the worst judged error,
            // unless NaN.
            guard !worst.isNaN, row.tolerance.isFinite || row.error.isNaN else { return }
            if row.error.isNaN || row.error > worst || worstRow == nil {
                worst = row.error
                worstRow = "\(row.file) \(row.caseName) \(row.tensor)"
            }
        }
    }

    /// What a golden tensor is, for its tolerance.
    public enum Kind: Sendable, CaseIterable {
        /// One layer's output or gradient (layers.safetensors), or the ten crops.
        case layer
        /// A whole network's logits and loss.
        case networkOutput
        /// A whole network's parameter gradients.
        case networkGradient
        /// A whole network's weights after an SGD step.
        case networkWeights
    }

    /// The largest relative L2 error accepted for each kind of tensor.
    public struct Tolerances: Sendable, Equatable {
        public var layer, networkOutput, networkGradient, networkWeights: Double

        /// The same tolerance for every tensor (`verify --tolerance`).
        public init(_ all: Double) { (layer, networkOutput, networkGradient, networkWeights) = (all, all, all, all) }

        public init(layer: Double, networkOutput: Double, networkGradient: Double, networkWeights: Double) {
            (self.layer, self.networkOutput, self.networkGradient, self.networkWeights) = (layer, networkOutput, networkGradient, networkWeights)
        }

        public subscript(kind: Kind) -> Double {
            switch kind {
            case .layer: return layer
            case .networkOutput: return networkOutput
            case .networkGradient: return networkGradient
            case .networkWeights: return networkWeights
            }
        }

        /// fp32: 1e-4 for every tensor, the bound of docs/NUMERICS.md (Tolerance).
        public static let fp32 = Tolerances(1e-4)

        /// bf16, against the same float32 references. bfloat16 keeps 8 significant bits, so each
        /// input and weight of a convolution or linear layer is off by up to 2⁻⁹ ≈ 2e-3 of itself:
        /// - one layer: about 2.4e-3 for its output and each gradient (docs/NUMERICS.md, bf16, has the errors measured);
        ///   1e-2 fails any real fault of a bf16 kernel, which shows as errors of order 1;
        /// - a network's logits and loss: the errors of eight such layers add up: 1e-1;
        /// - a network's weights after a step: the step moves them by a small fraction, so they
        ///   stay close: 1e-2;
        /// - a network's gradients: not judged (an infinite tolerance; a NaN still fails). In the
        ///   golden files' small random networks, near chance level, the trunk's gradients are
        ///   sums that nearly cancel, and bf16's forward rounding alone (with the gradients left
        ///   unrounded the errors are the same) also changes which max-pool input wins (0.2 % of
        ///   pool1's windows) and which ReLU is on (0.07 % of conv1's outputs): they move by up to
        ///   110 % (Tests/Fixtures/golden-alt's seed network after a step). PyTorch's own bf16
        ///   does the same: rounding its convolutions' and linear layers' inputs and weights to
        ///   bfloat16 moves conv1's gradient by 0.215 (shared paper network; here 0.215) and 0.50
        ///   (golden-alt seed network, first step). No tolerance separates that from a fault. The
        ///   bf16 gradients themselves are judged in the layer cases at 1e-2, and end to end by
        ///   the test that a bf16 training run tracks the fp32 one.
        public static let bf16 = Tolerances(layer: 1e-2, networkOutput: 1e-1, networkGradient: .infinity, networkWeights: 1e-2)

        public static func `default`(_ precision: Precision) -> Tolerances { precision == .fp32 ? .fp32 : .bf16 }

        /// "1e-04", or each kind's where they differ.
        public var description: String {
            let f = { (x: Double) in x.isFinite ? String(format: "%.0e", x) : "not judged" }
            if Set([layer, networkOutput, networkGradient, networkWeights]).count == 1 { return f(layer) }
            return "layers \(f(layer)), network outputs \(f(networkOutput)), gradients \(f(networkGradient)), weights \(f(networkWeights))"
        }
    }

    public let tolerances: Tolerances
    public let engine: Engine
    /// What the convolutions and linear layers compute in; the golden files are PyTorch's
    /// float32 results either way.
    public let precision: Precision

    /// `tolerance` replaces every kind's default (`Tolerances.default(precision)`). Throws
    /// `PrecisionError` for bf16 on a CPU without native bf16 instructions.
    public init(engine: Engine, tolerance: Double? = nil, precision: Precision = .fp32) throws {
        try CPUCapabilities.check(precision)
        self.engine = engine
        self.precision = precision
        tolerances = tolerance.map { Tolerances($0) } ?? .default(precision)
    }

    /// The golden files under `paths` (files, or folders searched one level deep), sorted.
    public static func files(in paths: [String]) throws -> [String] {
        var out: [String] = []
        let fm = FileManager.default
        for p in paths {
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: p, isDirectory: &isDir) else {
                throw GoldenFileError(path: p, reason: "no such file or folder")
            }
            if isDir.boolValue {
                guard access(p, R_OK | X_OK) == 0 else {
                    throw GoldenFileError(path: p, reason: "cannot list the folder (\(String(cString: strerror(errno))))")
                }
                guard let names = try? fm.contentsOfDirectory(atPath: p) else {
                    throw GoldenFileError(path: p, reason: "cannot list the folder")
                }
                out += names.filter { $0.hasSuffix(".safetensors") && !$0.hasPrefix(".") }.sorted()
                    .map { (p as NSString).appendingPathComponent($0) }
            } else {
                out.append(p)
            }
        }
        return out
    }

    /// Verifies one file, calling `report` for each tensor as it is checked.
    public func verify(file path: String, report: (Row) -> Void) throws {
        let file = try SafetensorsFile(path: path)
        let name = (path as NSString).lastPathComponent
        try withoutActuallyEscaping(report) { report in
            let check = Check(file: file, name: name, tolerances: tolerances, report: report)
            if let cases = file.metadata["cases"] {
                try verifyLayers(check, cases: cases)
            } else if let config = file.metadata["config"], file.tensors["init.conv1.weight"] != nil {
                try verifyNetwork(check, config: config)
            } else if file.tensors["crops"] != nil {
                try verifyTenCrop(check)
            } else {
                throw GoldenFileError(path: path, reason: "not a golden file (no 'cases' or network 'config' in its metadata)")
            }
        }
    }

    private func verifyTenCrop(_ check: Check) throws {
        let image = try check.file.tensor("image"), crops = try check.file.tensor("crops")
        let s = crops.shape.count == 5 ? crops.shape[4] : 0
        guard image.shape.count == 4, image.shape.allSatisfy({ $0 > 0 }), crops.shape == [10] + image.shape.prefix(2) + [s, s],
              s > 0, s <= image.shape[2], s <= image.shape[3] else {
            throw check.fail("expected image (N, C, H, W) and crops (10, N, C, s, s) with s ≤ H, W, got \(image.shape) and \(crops.shape)")
        }
        try check.emit("tencrop", "crops", TenCrop.crops(image, size: s), crops)
    }

    /// Compares computed tensors with a file's references, after checking that their shapes agree
    /// (a reference of another size is the file's fault, reported as such).
    struct Check {
        let file: SafetensorsFile
        let name: String
        let tolerances: Tolerances
        let report: (Row) -> Void

        func fail(_ reason: String) -> GoldenFileError { GoldenFileError(path: file.path, reason: reason) }

        func emit(_ c: String, _ t: String, _ ours: Tensor, _ ref: Tensor, _ kind: Kind = .layer) throws {
            // A one-element reference (a loss) may be stored as a scalar or as [1].
            guard ref.shape == ours.shape || (ours.count == 1 && ref.count == 1) else {
                throw fail("case \(c): reference '\(t)' has shape \(ref.shape), the computed one \(ours.shape)")
            }
            report(Row(file: name, caseName: c, tensor: t, error: Tensor.relativeError(ours.data, ref.data),
                       tolerance: tolerances[kind]))
        }

        /// `name` as float, its shape checked first.
        func tensor(_ key: String, shape: [Int]) throws -> Tensor {
            let info = try file.info(key)
            guard info.shape == shape else { throw fail("tensor '\(key)' has shape \(info.shape), expected \(shape)") }
            return try file.tensor(key)
        }

        /// A tensor whose rank the case fixes (its sizes come from the file), every size positive.
        func tensor(_ key: String, rank: Int, what: String) throws -> Tensor {
            let info = try file.info(key)
            guard info.shape.count == rank, info.shape.allSatisfy({ $0 > 0 }) else {
                throw fail("tensor '\(key)' has shape \(info.shape), expected \(what)")
            }
            return try file.tensor(key)
        }

        /// Class labels: `count` of them, each in 0..<classes (the loss would read out of range).
        func labels(_ key: String, count: Int, classes: Int) throws -> [Int] {
            let info = try file.info(key)
            guard info.count == count else { throw fail("tensor '\(key)' has shape \(info.shape), expected \(count) labels") }
            let labels = try file.integers(key)
            if let bad = labels.firstIndex(where: { !(0..<classes).contains($0) }) {
                throw fail("tensor '\(key)': label \(labels[bad]) at index \(bad) is outside 0..<\(classes)")
            }
            return labels
        }
    }

    /// One case's metadata, each value checked for type and range before use.
    struct CaseMetadata {
        let values: [String: Any]
        let caseName: String
        let check: Check

        func int(_ key: String, default d: Int, _ range: ClosedRange<Int>) throws -> Int {
            guard let v = values[key] else { return d }
            guard let i = jsonInteger(v), range.contains(i) else {
                throw check.fail("case \(caseName): metadata '\(key)' is \(v), expected an integer in \(range.lowerBound)…\(range.upperBound)")
            }
            return i
        }

        func float(_ key: String, default d: Float?, _ valid: (Float) -> Bool = { _ in true }, _ what: String = "a finite number") throws -> Float {
            guard let v = values[key] else {
                if let d { return d }
                throw check.fail("case \(caseName) has no '\(key)' in its metadata")
            }
            // objCType "c" is how Foundation parses `true` and `false`.
            guard let n = v as? NSNumber, String(cString: n.objCType) != "c", case let f = n.floatValue, f.isFinite, valid(f) else {
                throw check.fail("case \(caseName): metadata '\(key)' is \(v), expected \(what)")
            }
            return f
        }
    }

    // MARK: layers

    /// Largest stride, padding or window a case may give: beyond any layer of AlexNet, and small
    /// enough that no size computed from it overflows.
    static let geometryLimit = 1 << 16

    private func verifyLayers(_ check: Check, cases: String) throws {
        let file = check.file
        guard let meta = (try? JSONSerialization.jsonObject(with: Data(cases.utf8))) as? [String: Any] else {
            throw check.fail("metadata 'cases' is not a JSON object")
        }
        let prefixes = Set(file.tensors.keys.compactMap { $0.split(separator: ".").first.map(String.init) }).sorted()
        for c in prefixes {
            guard let values = (meta[c] ?? [String: Any]()) as? [String: Any] else {
                throw check.fail("metadata 'cases' entry '\(c)' is not a JSON object")
            }
            let m = CaseMetadata(values: values, caseName: c, check: check)
            let limit = Self.geometryLimit
            func t(_ n: String, _ shape: [Int]) throws -> Tensor { try check.tensor("\(c).\(n)", shape: shape) }
            func nchw(_ n: String) throws -> Tensor { try check.tensor("\(c).\(n)", rank: 4, what: "(N, C, H, W)") }
            if c.hasPrefix("conv") {
                let x = try nchw("x"), w = try check.tensor("\(c).w", rank: 4, what: "(out, in, k, k)")
                let (stride, padding) = (try m.int("stride", default: 1, 1...limit), try m.int("padding", default: 0, 0...limit))
                let k = w.shape[2]
                guard w.shape[3] == k, w.shape[1] == x.shape[1] else {
                    throw check.fail("case \(c): weight \(w.shape) is not (out, \(x.shape[1]), k, k) for input \(x.shape)")
                }
                let g = Conv2d.Geometry(inChannels: w.shape[1], outChannels: w.shape[0], kernel: k, stride: stride, padding: padding)
                guard k <= limit, x.shape[2] + 2 * padding >= k, x.shape[3] + 2 * padding >= k else {
                    throw check.fail("case \(c): a \(k)×\(k) kernel does not fit input \(x.shape) padded by \(padding)")
                }
                let out = [x.shape[0], g.outChannels, g.outputSize(x.shape[2]), g.outputSize(x.shape[3])]
                try verifyConv(check, c, x: x, w: w, b: t("b", [g.outChannels]), y: t("y", out), dy: t("dy", out), dx: t("dx", x.shape),
                               dw: t("dw", w.shape), db: t("db", [g.outChannels]), geometry: g)
            } else if c.hasPrefix("lrn") {
                let x = try nchw("x")
                let k = LocalResponseNorm.Constants(size: try m.int("size", default: 5, 1...limit),
                                                    alpha: try m.float("torch_alpha", default: nil),
                                                    beta: try m.float("beta", default: 0.75),
                                                    k: try m.float("k", default: 2, { $0 > 0 }, "a positive number"))
                try verifySimple(check, c, x: x, y: t("y", x.shape), dy: t("dy", x.shape), dx: t("dx", x.shape)) { desc in
                    try LocalResponseNorm(name: c, constants: k, input: desc, mode: .training, engine: engine)
                }
            } else if c.hasPrefix("maxpool") {
                let x = try nchw("x")
                let (kernel, stride) = (try m.int("kernel", default: 3, 1...limit), try m.int("stride", default: 2, 1...limit))
                guard kernel <= x.shape[2], kernel <= x.shape[3] else {
                    throw check.fail("case \(c): input \(x.shape) is smaller than the \(kernel)×\(kernel) window")
                }
                let out = [x.shape[0], x.shape[1], (x.shape[2] - kernel) / stride + 1, (x.shape[3] - kernel) / stride + 1]
                try verifySimple(check, c, x: x, y: t("y", out), dy: t("dy", out), dx: t("dx", x.shape)) { desc in
                    try MaxPool(name: c, kernel: kernel, stride: stride, input: desc, mode: .training, engine: engine)
                }
            } else if c.hasPrefix("relu") {
                let x = try nchw("x")
                try verifySimple(check, c, x: x, y: t("y", x.shape), dy: t("dy", x.shape), dx: t("dx", x.shape)) { desc in
                    try ReLU(name: c, input: desc, mode: .training, engine: engine)
                }
            } else if c.hasPrefix("linear") || c.hasPrefix("fc") {
                let x = try check.tensor("\(c).x", rank: 2, what: "(N, in)"), w = try check.tensor("\(c).w", rank: 2, what: "(out, in)")
                guard w.shape[1] == x.shape[1] else { throw check.fail("case \(c): weight \(w.shape) does not take input \(x.shape)") }
                let out = [x.shape[0], w.shape[0]]
                try verifyLinear(check, c, x: x, w: w, b: t("b", [w.shape[0]]), y: t("y", out), dy: t("dy", out), dx: t("dx", x.shape),
                                 dw: t("dw", w.shape), db: t("db", [w.shape[0]]))
            } else if c.hasPrefix("xent") {
                let logits = try check.tensor("\(c).logits", rank: 2, what: "(N, classes)")
                let (n, classes) = (logits.shape[0], logits.shape[1])
                let labels = try check.labels("\(c).labels", count: n, classes: classes)
                let loss = try SoftmaxCrossEntropy(batch: n, classes: classes, engine: engine)
                let value = try logits.data.withUnsafeBufferPointer { try loss.forward(logits: $0.baseAddress!, labels: labels) }
                loss.backward()
                try check.emit(c, "loss", Tensor(shape: [1], data: [value]), try file.tensor("\(c).loss"))
                try check.emit(c, "probs", Tensor(shape: logits.shape, data: loss.probabilities.array), try file.tensor("\(c).probs"))
                try check.emit(c, "dlogits", Tensor(shape: logits.shape, data: try loss.dLogits.read().data),
                               try file.tensor("\(c).dlogits"))
            } else {
                throw check.fail("unknown layer case '\(c)'")
            }
        }
    }

    /// A layer without parameters: forward x → y, backward dy → dx (shapes checked by the caller).
    private func verifySimple(_ check: Check, _ c: String, x: Tensor, y: Tensor, dy: Tensor, dx: Tensor,
                              make: (TensorLayout) throws -> Layer) throws {
        let input = try DeviceTensor.plain(x.shape, engine: engine)
        try input.write(x)
        let layer = try make(input.layout)
        try layer.forward(input)
        try check.emit(c, "y", try layer.output.read(), y)
        let dOut = try DeviceTensor(layer.output.layout, engine: engine)
        try dOut.write(dy)
        try layer.backward(input: input, dOutput: dOut)
        guard let dInput = layer.dInput else { throw check.fail("case \(c): the layer computed no input gradient") }
        try check.emit(c, "dx", try dInput.read(), dx)
    }

    private func verifyConv(_ check: Check, _ c: String, x: Tensor, w: Tensor, b: Tensor, y: Tensor, dy: Tensor, dx: Tensor, dw: Tensor,
                            db: Tensor, geometry g: Conv2d.Geometry) throws {
        let params = ParameterStore([("\(c).weight", w.shape), ("\(c).bias", b.shape)], gradientFormat: precision.gradientFormat)
        try params.set("\(c).weight", w)
        try params.set("\(c).bias", b)
        try verifySimple(check, c, x: x, y: y, dy: dy, dx: dx) { desc in
            try Conv2d(name: c, geometry: g, input: desc, fusedReLU: false, mode: .training, precision: precision, parameters: params,
                       engine: engine)
        }
        try check.emit(c, "dw", try params.tensor("\(c).weight", grad: true), dw)
        try check.emit(c, "db", try params.tensor("\(c).bias", grad: true), db)
    }

    private func verifyLinear(_ check: Check, _ c: String, x: Tensor, w: Tensor, b: Tensor, y: Tensor, dy: Tensor, dx: Tensor, dw: Tensor,
                              db: Tensor) throws {
        let params = ParameterStore([("\(c).weight", w.shape), ("\(c).bias", b.shape)], gradientFormat: precision.gradientFormat)
        try params.set("\(c).weight", w)
        try params.set("\(c).bias", b)
        try verifySimple(check, c, x: x, y: y, dy: dy, dx: dx) { desc in
            try Linear(name: c, inFeatures: w.shape[1], outFeatures: w.shape[0], input: desc, fusedReLU: false, mode: .training,
                       precision: precision, parameters: params, engine: engine)
        }
        try check.emit(c, "dw", try params.tensor("\(c).weight", grad: true), dw)
        try check.emit(c, "db", try params.tensor("\(c).bias", grad: true), db)
    }

    // MARK: networks

    /// The network configuration a golden file's metadata describes, every value checked: exact
    /// integers, finite numbers, and a configuration `NetworkConfig.validate` accepts.
    public static func networkConfig(_ json: String, inputSize: Int, path: String) throws -> (NetworkConfig, batch: Int, sgd: [String: Double]) {
        func fail(_ reason: String) -> GoldenFileError { GoldenFileError(path: path, reason: "metadata config: \(reason)") }
        guard let m = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any] else {
            throw fail("not a JSON object")
        }
        func int(_ value: Any?, _ key: String) throws -> Int {
            guard let value else { throw fail("no '\(key)'") }
            guard let i = jsonInteger(value) else { throw fail("'\(key)' is \(value), expected an integer") }
            return i
        }
        func number(_ value: Any, _ key: String) throws -> Double {
            guard let n = value as? NSNumber, String(cString: n.objCType) != "c", n.doubleValue.isFinite else {
                throw fail("'\(key)' is \(value), expected a finite number")
            }
            return n.doubleValue
        }
        func object(_ key: String) throws -> [String: Any]? {
            guard let v = m[key] else { return nil }
            guard let o = v as? [String: Any] else { throw fail("'\(key)' is \(v), expected an object") }
            return o
        }
        guard let name = m["variant"] as? String, let variant = Variant(rawValue: name) else {
            throw fail("unknown variant \(m["variant"] ?? "(none)"), expected one of \(Variant.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard let widthList = m["widths"] as? [Any] else { throw fail("'widths' is \(m["widths"] ?? "missing"), expected a list of 5 integers") }
        var config = NetworkConfig(variant: variant, widths: try widthList.map { try int($0, "widths") },
                                   hidden: try int(m["hidden"], "hidden"), classes: try int(m["classes"], "classes"), inputSize: inputSize)
        if let c1 = try object("conv1") {
            if let v = c1["kernel"] { config.conv1Kernel = try int(v, "conv1.kernel") }
            if let v = c1["stride"] { config.conv1Stride = try int(v, "conv1.stride") }
            if let v = c1["padding"] { config.conv1Padding = try int(v, "conv1.padding") }
        }
        if let lrn = try object("lrn"), let a = lrn["torch_alpha"] { config.lrnAlpha = Float(try number(a, "lrn.torch_alpha")) }
        if let p = m["dropout"] { config.dropout = Float(try number(p, "dropout")) }
        do { try config.validate() } catch { throw fail("\(error)") }
        var sgd: [String: Double] = [:]
        for (k, v) in try object("sgd") ?? [:] where ["lr", "momentum", "weight_decay"].contains(k) { sgd[k] = try number(v, "sgd.\(k)") }
        let batch = try int(m["batch"], "batch")
        guard batch >= 1 else { throw fail("'batch' is \(batch), expected at least 1") }
        return (config, batch, sgd)
    }

    private func verifyNetwork(_ check: Check, config json: String) throws {
        let file = check.file
        let x = try check.tensor("x", rank: 4, what: "(N, 3, S, S)")
        guard x.shape[1] == 3, x.shape[2] == x.shape[3] else { throw check.fail("x has shape \(x.shape), expected (N, 3, S, S)") }
        let (config, batch, sgdConfig) = try Self.networkConfig(json, inputSize: x.shape[2], path: file.path)
        guard batch == x.shape[0] else { throw check.fail("batch \(batch) but x has shape \(x.shape)") }
        let labels = try check.labels("labels", count: batch, classes: config.classes)
        // Every parameter's shape is checked against the file before the store is allocated, so
        // the allocation is bounded by what the file holds.
        for (name, shape) in config.parameterShapes {
            let info = try file.info("init.\(name)")
            guard info.shape == shape else {
                throw check.fail("tensor 'init.\(name)' has shape \(info.shape), the configuration in the metadata needs \(shape)")
            }
        }
        // One mask per dropout layer, shaped as what it drops: fc6's and fc7's outputs (paper) or
        // their inputs (seed: the flattened pool5, then fc6's output).
        let maskShapes = try config.shapes().compactMap { l -> [Int]? in
            if case .dropout = l.spec { return [batch] + l.input }
            return nil
        }
        let masks = try zip(["mask_a", "mask_b"], maskShapes).map { try check.tensor($0, shape: $1) }
        let params = try Network.makeParameters(config, training: precision)
        for e in params.entries { try params.set(e.name, try file.tensor("init.\(e.name)", shape: e.shape)) }
        let c = "net_\(config.variant.rawValue)"
        let logitsShape = [batch, config.classes]

        let eval = try Network(config: config, batch: batch, mode: .inference, precision: precision, parameters: params, engine: engine)
        try eval.setInput(x)
        try eval.forward()
        try check.emit(c, "eval_logits", eval.logitsTensor(), try check.tensor("eval_logits", shape: logitsShape), .networkOutput)

        let net = try Network(config: config, batch: batch, mode: .training, precision: precision, parameters: params, engine: engine)
        try net.setInput(x)
        guard net.dropouts.count == masks.count else { throw check.fail("the network has \(net.dropouts.count) dropout layers, the file 2 masks") }
        for (d, mask) in zip(net.dropouts, masks) { try d.setMask(mask) }
        let sgd = SGD(for: params, learningRate: Float(sgdConfig["lr"] ?? 0.01), momentum: Float(sgdConfig["momentum"] ?? 0.9),
                      weightDecay: Float(sgdConfig["weight_decay"] ?? 5e-4), rule: .pytorch, workers: engine.threads)
        for step in 1...2 {
            let s = "step\(step)"
            try net.forward()
            let loss = try net.loss(labels: labels)
            try check.emit(c, "\(s).logits", net.logitsTensor(), try check.tensor("\(s).logits", shape: logitsShape), .networkOutput)
            try check.emit(c, "\(s).loss", Tensor(shape: [1], data: [loss]), try file.tensor("\(s).loss"), .networkOutput)
            try net.backward()
            for e in params.entries {
                try check.emit(c, "\(s).grad.\(e.name)", try params.tensor(e.name, grad: true), try check.tensor("\(s).grad.\(e.name)", shape: e.shape),
                               .networkGradient)
            }
            sgd.step(params)
            for e in params.entries {
                try check.emit(c, "\(s).after.\(e.name)", try params.tensor(e.name), try check.tensor("\(s).after.\(e.name)", shape: e.shape),
                               .networkWeights)
            }
        }
    }
}

/// A golden file (or folder) that cannot be verified: missing, or with metadata or tensors
/// that do not fit the case they describe. Names the file and what is wrong.
public struct GoldenFileError: DescribedError {
    public let path: String
    public let reason: String
    public var description: String { "\(path): \(reason)" }
}

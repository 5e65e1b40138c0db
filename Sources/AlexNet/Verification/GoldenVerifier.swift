import Foundation

/// Checks this implementation against PyTorch's golden files (SPEC section 8): every layer case
/// forward and backward, and two SGD steps of a whole network, tensor by tensor, as relative L2
/// error ‖ours − ref‖ / ‖ref‖. Configurations come from each file's metadata, so any widths,
/// class count or batch size written there work.
public struct GoldenVerifier {
    public struct Row: Sendable {
        public let file: String
        public let caseName: String
        public let tensor: String
        /// ‖ours − ref‖ / ‖ref‖.
        public let error: Double
        public let tolerance: Double
        public var passed: Bool { error <= tolerance }
    }

    public let tolerance: Double
    public let engine: Engine

    public init(engine: Engine, tolerance: Double = 1e-4) {
        self.engine = engine
        self.tolerance = tolerance
    }

    /// The golden files under `paths` (files, or folders searched one level deep), sorted.
    public static func files(in paths: [String]) throws -> [String] {
        var out: [String] = []
        let fm = FileManager.default
        for p in paths {
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: p, isDirectory: &isDir) else {
                throw FileIO.Failure(path: p, reason: "no such file or folder")
            }
            if isDir.boolValue {
                let names = try fm.contentsOfDirectory(atPath: p).filter { $0.hasSuffix(".safetensors") }.sorted()
                out += names.map { (p as NSString).appendingPathComponent($0) }
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
        func emit(_ c: String, _ t: String, _ ours: [Float], _ ref: Tensor) {
            report(Row(file: name, caseName: c, tensor: t, error: Tensor.relativeError(ours, ref.data), tolerance: tolerance))
        }
        if let cases = file.metadata["cases"] {
            try verifyLayers(file, cases: cases, emit: emit)
        } else if let config = file.metadata["config"], file.tensors["init.conv1.weight"] != nil {
            try verifyNetwork(file, config: config, emit: emit)
        } else if file.tensors["crops"] != nil {
            let image = try file.tensor("image"), crops = try file.tensor("crops")
            guard image.shape.count == 4, crops.shape.count == 5, crops.shape[0] == 10, crops.shape[1] == image.shape[0] else {
                throw ConfigError(message: "\(path): expected image (N, C, H, W) and crops (10, N, C, s, s), got \(image.shape) and \(crops.shape)")
            }
            emit("tencrop", "crops", TenCrop.crops(image, size: crops.shape[4]).data, crops)
        } else {
            throw ConfigError(message: "\(path): not a golden file (no 'cases' or network 'config' in its metadata)")
        }
    }

    // MARK: layers

    private func verifyLayers(_ file: SafetensorsFile, cases: String,
                              emit: (String, String, [Float], Tensor) -> Void) throws {
        let meta = (try? JSONSerialization.jsonObject(with: Data(cases.utf8))) as? [String: [String: Any]] ?? [:]
        let prefixes = Set(file.tensors.keys.compactMap { $0.split(separator: ".").first.map(String.init) }).sorted()
        for c in prefixes {
            let m = meta[c] ?? [:]
            let int = { (k: String, d: Int) in (m[k] as? NSNumber)?.intValue ?? d }
            let t = { (n: String) in try file.tensor("\(c).\(n)") }
            if c.hasPrefix("conv") {
                try verifyConv(c, x: t("x"), w: t("w"), b: t("b"), y: t("y"), dy: t("dy"), dx: t("dx"), dw: t("dw"), db: t("db"),
                               stride: int("stride", 1), padding: int("padding", 0), emit: emit)
            } else if c.hasPrefix("lrn") {
                guard let alpha = (m["torch_alpha"] as? NSNumber)?.floatValue else {
                    throw ConfigError(message: "\(file.path): case \(c) has no torch_alpha in its metadata")
                }
                let k = LocalResponseNorm.Constants(size: int("size", 5), alpha: alpha,
                                                    beta: (m["beta"] as? NSNumber)?.floatValue ?? 0.75,
                                                    k: (m["k"] as? NSNumber)?.floatValue ?? 2)
                try verifySimple(c, x: t("x"), y: t("y"), dy: t("dy"), dx: t("dx"), emit: emit) { desc in
                    try LocalResponseNorm(name: c, constants: k, input: desc, mode: .training, engine: engine)
                }
            } else if c.hasPrefix("maxpool") {
                try verifySimple(c, x: t("x"), y: t("y"), dy: t("dy"), dx: t("dx"), emit: emit) { desc in
                    try MaxPool(name: c, kernel: int("kernel", 3), stride: int("stride", 2), input: desc, mode: .training, engine: engine)
                }
            } else if c.hasPrefix("relu") {
                try verifySimple(c, x: t("x"), y: t("y"), dy: t("dy"), dx: t("dx"), emit: emit) { desc in
                    try ReLU(name: c, input: desc, mode: .training, engine: engine)
                }
            } else if c.hasPrefix("linear") || c.hasPrefix("fc") {
                try verifyLinear(c, x: t("x"), w: t("w"), b: t("b"), y: t("y"), dy: t("dy"), dx: t("dx"), dw: t("dw"), db: t("db"), emit: emit)
            } else if c.hasPrefix("xent") {
                let logits = try t("logits")
                let labels = try file.integers("\(c).labels")
                let loss = try SoftmaxCrossEntropy(batch: logits.shape[0], classes: logits.shape[1], engine: engine)
                let value = try logits.data.withUnsafeBufferPointer { try loss.forward(logits: $0.baseAddress!, labels: labels) }
                loss.backward()
                emit(c, "loss", [value], try t("loss"))
                emit(c, "probs", loss.probabilities.array, try t("probs"))
                emit(c, "dlogits", try loss.dLogits.read().data, try t("dlogits"))
            } else {
                throw ConfigError(message: "\(file.path): unknown layer case '\(c)'")
            }
        }
    }

    /// A layer without parameters: forward x → y, backward dy → dx.
    private func verifySimple(_ c: String, x: Tensor, y: Tensor, dy: Tensor, dx: Tensor,
                              emit: (String, String, [Float], Tensor) -> Void,
                              make: (TensorLayout) throws -> Layer) throws {
        let input = try DeviceTensor.plain(x.shape, engine: engine)
        try input.write(x)
        let layer = try make(input.layout)
        try layer.forward(input)
        emit(c, "y", try layer.output.read().data, y)
        let dOut = try DeviceTensor(layer.output.layout, engine: engine)
        try dOut.write(dy)
        try layer.backward(input: input, dOutput: dOut)
        emit(c, "dx", try layer.dInput!.read().data, dx)
    }

    private func verifyConv(_ c: String, x: Tensor, w: Tensor, b: Tensor, y: Tensor, dy: Tensor, dx: Tensor, dw: Tensor, db: Tensor,
                            stride: Int, padding: Int, emit: (String, String, [Float], Tensor) -> Void) throws {
        let params = ParameterStore([("\(c).weight", w.shape), ("\(c).bias", b.shape)])
        try params.set("\(c).weight", w)
        try params.set("\(c).bias", b)
        let g = Conv2d.Geometry(inChannels: w.shape[1], outChannels: w.shape[0], kernel: w.shape[2], stride: stride, padding: padding)
        try verifySimple(c, x: x, y: y, dy: dy, dx: dx, emit: emit) { desc in
            try Conv2d(name: c, geometry: g, input: desc, fusedReLU: false, mode: .training, parameters: params, engine: engine)
        }
        emit(c, "dw", try params.tensor("\(c).weight", grad: true).data, dw)
        emit(c, "db", try params.tensor("\(c).bias", grad: true).data, db)
    }

    private func verifyLinear(_ c: String, x: Tensor, w: Tensor, b: Tensor, y: Tensor, dy: Tensor, dx: Tensor, dw: Tensor, db: Tensor,
                              emit: (String, String, [Float], Tensor) -> Void) throws {
        let params = ParameterStore([("\(c).weight", w.shape), ("\(c).bias", b.shape)])
        try params.set("\(c).weight", w)
        try params.set("\(c).bias", b)
        try verifySimple(c, x: x, y: y, dy: dy, dx: dx, emit: emit) { desc in
            try Linear(name: c, inFeatures: w.shape[1], outFeatures: w.shape[0], input: desc, fusedReLU: false, mode: .training,
                       parameters: params, engine: engine)
        }
        emit(c, "dw", try params.tensor("\(c).weight", grad: true).data, dw)
        emit(c, "db", try params.tensor("\(c).bias", grad: true).data, db)
    }

    // MARK: networks

    /// The network configuration a golden file's metadata describes.
    public static func networkConfig(_ json: String, inputSize: Int, path: String) throws -> (NetworkConfig, batch: Int, sgd: [String: Double]) {
        guard let m = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any] else {
            throw ConfigError(message: "\(path): metadata 'config' is not a JSON object")
        }
        func need<T>(_ key: String, _ type: T.Type) throws -> T {
            guard let v = m[key] as? T else { throw ConfigError(message: "\(path): metadata config has no valid '\(key)'") }
            return v
        }
        guard let variant = Variant(rawValue: try need("variant", String.self)) else {
            throw ConfigError(message: "\(path): unknown variant \(m["variant"] ?? "")")
        }
        var config = NetworkConfig(variant: variant, widths: try need("widths", [NSNumber].self).map(\.intValue),
                                   hidden: try need("hidden", NSNumber.self).intValue,
                                   classes: try need("classes", NSNumber.self).intValue, inputSize: inputSize)
        if let c1 = m["conv1"] as? [String: NSNumber] {
            config.conv1Kernel = c1["kernel"]?.intValue ?? config.conv1Kernel
            config.conv1Stride = c1["stride"]?.intValue ?? config.conv1Stride
            config.conv1Padding = c1["padding"]?.intValue ?? config.conv1Padding
        }
        if let lrn = m["lrn"] as? [String: NSNumber], let a = lrn["torch_alpha"] { config.lrnAlpha = a.floatValue }
        if let p = m["dropout"] as? NSNumber { config.dropout = p.floatValue }
        let sgd = (m["sgd"] as? [String: Any] ?? [:]).compactMapValues { ($0 as? NSNumber)?.doubleValue }
        return (config, try need("batch", NSNumber.self).intValue, sgd)
    }

    private func verifyNetwork(_ file: SafetensorsFile, config json: String,
                               emit: (String, String, [Float], Tensor) -> Void) throws {
        let x = try file.tensor("x")
        guard x.shape.count == 4 else { throw ConfigError(message: "\(file.path): x has shape \(x.shape), expected (N, 3, S, S)") }
        let (config, batch, sgdConfig) = try Self.networkConfig(json, inputSize: x.shape[2], path: file.path)
        guard batch == x.shape[0] else { throw ConfigError(message: "\(file.path): batch \(batch) but x has shape \(x.shape)") }
        let labels = try file.integers("labels", shape: [batch])
        let params = Network.makeParameters(config)
        for e in params.entries { try params.set(e.name, try file.tensor("init.\(e.name)", shape: e.shape)) }
        let c = "net_\(config.variant.rawValue)"

        let eval = try Network(config: config, batch: batch, mode: .inference, parameters: params, engine: engine)
        try eval.setInput(x)
        try eval.forward()
        emit(c, "eval_logits", eval.logitsTensor().data, try file.tensor("eval_logits"))

        let net = try Network(config: config, batch: batch, mode: .training, parameters: params, engine: engine)
        try net.setInput(x)
        for (d, key) in zip(net.dropouts, ["mask_a", "mask_b"]) { try d.setMask(try file.tensor(key)) }
        let sgd = SGD(for: params, learningRate: Float(sgdConfig["lr"] ?? 0.01), momentum: Float(sgdConfig["momentum"] ?? 0.9),
                      weightDecay: Float(sgdConfig["weight_decay"] ?? 5e-4), rule: .pytorch, workers: engine.threads)
        for step in 1...2 {
            let s = "step\(step)"
            try net.forward()
            let loss = try net.loss(labels: labels)
            emit(c, "\(s).logits", net.logitsTensor().data, try file.tensor("\(s).logits"))
            emit(c, "\(s).loss", [loss], try file.tensor("\(s).loss"))
            try net.backward()
            for e in params.entries {
                emit(c, "\(s).grad.\(e.name)", try params.tensor(e.name, grad: true).data, try file.tensor("\(s).grad.\(e.name)"))
            }
            sgd.step(params)
            for e in params.entries {
                emit(c, "\(s).after.\(e.name)", try params.tensor(e.name).data, try file.tensor("\(s).after.\(e.name)"))
            }
        }
    }
}

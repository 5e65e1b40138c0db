/// One layer of the network as data. `NetworkConfig.layers` lists them in order; everything that
/// needs the architecture reads that one list: `Network` (which builds a kernel-backed layer for
/// each, fusing a ReLU into the convolution or linear layer before it), the parameter shapes and
/// their order, the cost model, the parameter-name tables of the seed and torchvision, and the ONNX
/// exporter.
public enum LayerSpec: Sendable, Equatable {
    case convolution(name: String, geometry: Conv2d.Geometry)
    case relu(name: String)
    /// PyTorch's convention (`LocalResponseNorm.Constants`).
    case lrn(name: String, constants: LocalResponseNorm.Constants)
    case maxPool(name: String, kernel: Int, stride: Int)
    /// PyTorch's `AdaptiveAvgPool2d(size)`: torchvision's 6×6 pool before the classifier (an
    /// identity where the maps are 6×6 already, as at 224 pixels).
    case adaptiveAveragePool(name: String, size: Int)
    /// (C, H, W) → (C·H·W), PyTorch's order.
    case flatten(name: String)
    case dropout(name: String, probability: Float)
    case linear(name: String, inFeatures: Int, outFeatures: Int)

    public var name: String {
        switch self {
        case .convolution(let n, _), .relu(let n), .lrn(let n, _), .maxPool(let n, _, _), .adaptiveAveragePool(let n, _),
             .flatten(let n), .dropout(let n, _), .linear(let n, _, _):
            return n
        }
    }

    public var isReLU: Bool {
        if case .relu = self { return true }
        return false
    }

    /// Whether a ReLU right after this layer runs fused into it (the convolution and linear
    /// kernels take it as a post-op).
    public var takesFusedReLU: Bool {
        switch self {
        case .convolution, .linear: return true
        default: return false
        }
    }

    /// `<name>.weight` and `<name>.bias` with PyTorch's shapes; none for layers without parameters.
    public var parameters: [(name: String, shape: [Int])] {
        switch self {
        case .convolution(let n, let g): return [("\(n).weight", g.weightShape), ("\(n).bias", [g.outChannels])]
        case .linear(let n, let i, let o): return [("\(n).weight", [o, i]), ("\(n).bias", [o])]
        default: return []
        }
    }

    /// One sample's output shape, (C, H, W) or (F), from its input shape; nil where the layer
    /// cannot take that input (a map smaller than a window, features that do not match).
    public func outputShape(_ x: [Int]) -> [Int]? {
        switch self {
        case .convolution(_, let g):
            guard x.count == 3, x[0] == g.inChannels else { return nil }
            let h = g.outputSize(x[1]), w = g.outputSize(x[2])
            return h >= 1 && w >= 1 ? [g.outChannels, h, w] : nil
        case .relu, .lrn, .dropout:
            return x
        case .maxPool(_, let k, let s):
            guard x.count == 3, x[1] >= k, x[2] >= k else { return nil }
            return [x[0], (x[1] - k) / s + 1, (x[2] - k) / s + 1]
        case .adaptiveAveragePool(_, let size):
            return x.count == 3 ? [x[0], size, size] : nil
        case .flatten:
            return x.count == 3 ? [x[0] * x[1] * x[2]] : nil
        case .linear(_, let i, let o):
            return x == [i] ? [o] : nil
        }
    }

    /// Forward multiply-accumulates per sample (the cost model counts the convolutions and the
    /// linear layers only), given the layer's output shape.
    public func multiplyAccumulates(output y: [Int]) -> Double {
        switch self {
        case .convolution(_, let g): return Double(y.reduce(1, *)) * Double(g.inChannels * g.kernel * g.kernel)
        case .linear(_, let i, let o): return Double(i) * Double(o)
        default: return 0
        }
    }
}

extension NetworkConfig {
    /// The layers of this configuration's variant, in order (docs/DESIGN.md, Network):
    ///
    ///   conv1 ReLU [LRN] pool1 · conv2 ReLU [LRN] pool2 · conv3 ReLU · conv4 ReLU · conv5 ReLU pool5
    ///   torchvision: + 6×6 adaptive average pool
    ///   flatten, then
    ///   paper:       fc6 ReLU dropout · fc7 ReLU dropout · fc8
    ///   seed:        dropout fc6 ReLU · dropout fc7 ReLU · fc8 ReLU
    ///   torchvision: dropout fc6 ReLU · dropout fc7 ReLU · fc8
    ///
    /// LRN (paper and seed only) follows the first two convolutions' ReLUs. A dropout is named
    /// after the layer whose output it drops (dropout5 drops flattened pool5).
    public var layers: [LayerSpec] {
        var specs = trunk
        let fc6 = LayerSpec.linear(name: "fc6", inFeatures: flatFeatures, outFeatures: hidden)
        let fc7 = LayerSpec.linear(name: "fc7", inFeatures: hidden, outFeatures: hidden)
        let fc8 = LayerSpec.linear(name: "fc8", inFeatures: hidden, outFeatures: classes)
        let p = dropout
        switch variant {
        case .paper:
            specs += [fc6, .relu(name: "relu6"), .dropout(name: "dropout6", probability: p),
                      fc7, .relu(name: "relu7"), .dropout(name: "dropout7", probability: p), fc8]
        case .seed, .torchvision:
            specs += [.dropout(name: "dropout5", probability: p), fc6, .relu(name: "relu6"),
                      .dropout(name: "dropout6", probability: p), fc7, .relu(name: "relu7"), fc8]
            if variant == .seed { specs.append(.relu(name: "relu8")) }
        }
        return specs
    }

    /// conv1 … flatten.
    private var trunk: [LayerSpec] {
        let c = [3] + widths
        let kernels = [conv1Kernel, 5, 3, 3, 3], strides = [conv1Stride, 1, 1, 1, 1], paddings = [conv1Padding, 2, 1, 1, 1]
        var specs: [LayerSpec] = []
        for i in 0..<5 {
            let g = Conv2d.Geometry(inChannels: c[i], outChannels: c[i + 1], kernel: kernels[i], stride: strides[i], padding: paddings[i])
            specs += [.convolution(name: "conv\(i + 1)", geometry: g), .relu(name: "relu\(i + 1)")]
            if i < 2 && variant != .torchvision { specs.append(.lrn(name: "lrn\(i + 1)", constants: lrn)) }
            if i < 2 || i == 4 { specs.append(.maxPool(name: "pool\(i + 1)", kernel: 3, stride: 2)) }
        }
        if variant == .torchvision { specs.append(.adaptiveAveragePool(name: "avgpool", size: Self.torchvisionPoolSize)) }
        return specs + [.flatten(name: "flatten")]
    }

    /// fc6's input features: what flatten gives for this input size (0 where the input is too
    /// small for the trunk, which `shapes()` reports).
    public var flatFeatures: Int {
        var x: [Int]? = [3, inputSize, inputSize]
        for spec in trunk { x = x.flatMap(spec.outputShape) }
        return x?.first ?? 0
    }

    /// torchvision's adaptive pool output side.
    public static let torchvisionPoolSize = 6

    /// Each layer with one sample's input and output shapes, from (3, S, S); throws where a layer
    /// cannot take what reaches it (an input too small for the three poolings).
    public func shapes() throws -> [(spec: LayerSpec, input: [Int], output: [Int])] {
        var x = [3, inputSize, inputSize]
        var out: [(spec: LayerSpec, input: [Int], output: [Int])] = []
        for spec in layers {
            guard let y = spec.outputShape(x) else {
                throw ConfigError(message: "input size \(inputSize) is too small for AlexNet: \(spec.name) cannot take a \(x.map(String.init).joined(separator: "×")) input")
            }
            out.append((spec, x, y))
            x = y
        }
        return out
    }

    /// Forward multiply-accumulates per image (docs/DESIGN.md, Cost model; from the actual shapes).
    public var forwardMACs: Double {
        ((try? shapes()) ?? []).reduce(0) { $0 + $1.spec.multiplyAccumulates(output: $1.output) }
    }
}

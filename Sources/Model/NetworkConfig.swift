import AlexNetCore
import AlexNetInterop
import AlexNetKernels

/// The AlexNet variants of docs/DESIGN.md, Network (their layers: `NetworkConfig.layers`).
public enum Variant: String, Sendable, Codable, CaseIterable {
    /// The paper: LRN α/n = 1e-4, dropout on fc6's and fc7's outputs, logits straight from fc8.
    case paper
    /// The seed's reading: LRN PyTorch alpha 1e-3, dropout on fc6's and fc7's inputs, ReLU after fc8.
    case seed
    /// torchvision's `alexnet`, for weights trained there: no LRN, a 6×6 adaptive average pool
    /// before fc6, dropout on fc6's and fc7's inputs.
    case torchvision

    /// Whether ten-crop averages the softmax outputs (the paper's) rather than the raw outputs (the
    /// seed's, after its final ReLU). torchvision has no ten-crop rule of its own; its outputs are
    /// logits, so the paper's applies.
    public var averagesProbabilities: Bool { self != .seed }
}

public struct NetworkConfig: Sendable, Equatable, Codable {
    public var variant: Variant
    /// Output channels of conv1…conv5 (paper: 96, 256, 384, 384, 256).
    public var widths: [Int]
    /// Width of fc6 and fc7 (paper: 4096).
    public var hidden: Int
    public var classes: Int
    /// Input height and width (paper: 224).
    public var inputSize: Int
    public var conv1Kernel: Int, conv1Stride: Int, conv1Padding: Int
    /// LRN in PyTorch's convention; nil means the variant's constants.
    public var lrnAlpha: Float?
    public var dropout: Float

    public init(variant: Variant = .paper, widths: [Int] = [96, 256, 384, 384, 256], hidden: Int = 4096,
                classes: Int = 1000, inputSize: Int = 224, conv1Kernel: Int = 11, conv1Stride: Int = 4,
                conv1Padding: Int = 5, lrnAlpha: Float? = nil, dropout: Float = 0.5) {
        (self.variant, self.widths, self.hidden, self.classes, self.inputSize) = (variant, widths, hidden, classes, inputSize)
        (self.conv1Kernel, self.conv1Stride, self.conv1Padding) = (conv1Kernel, conv1Stride, conv1Padding)
        (self.lrnAlpha, self.dropout) = (lrnAlpha, dropout)
    }

    public var lrn: LocalResponseNorm.Constants {
        var c: LocalResponseNorm.Constants = variant == .paper ? .paper : .seed
        if let lrnAlpha { c.alpha = lrnAlpha }
        return c
    }

    /// Parameter names and PyTorch shapes, in the order of the flat buffer (and of checkpoints):
    /// the layers' (`layers`), conv1.weight first.
    public var parameterShapes: [(name: String, shape: [Int])] { layers.flatMap(\.parameters) }

    /// torchvision's `alexnet` for `classes` outputs: 64/192/384/256/256 channels, conv1 11×11
    /// stride 4 padding 2, 4096 hidden, 224 pixels.
    public static func torchvision(classes: Int = 1000) -> NetworkConfig {
        NetworkConfig(variant: .torchvision, widths: [64, 192, 384, 256, 256], classes: classes, conv1Padding: 2)
    }

    /// Largest channel count of a convolution, and width of fc6/fc7 or class count: far beyond
    /// AlexNet's (384, 4096, 1000), small enough that no shape product below can overflow.
    public static let maxWidth = 1 << 16, maxHidden = 1 << 20, maxClasses = 1 << 20
    /// Largest input side, and conv1 kernel, stride or padding.
    public static let maxInputSize = 4096, maxConv1 = 64
    /// Largest parameter count (2³¹, about 34 times AlexNet's 62 M): values, gradients and
    /// momentum of that many floats are already 26 GB.
    public static let maxParameters = 1 << 31

    /// Checks every field before anything is sized from it: widths, classes and sizes within the
    /// limits above, conv1's geometry able to produce an output, and the parameter count summed
    /// with overflow checks (a golden file's metadata or a configuration may say anything, and
    /// the release build wraps instead of trapping), and the parameters' memory for the use
    /// (`training`: the precision of a training run; nil for inference).
    public func validate(training: Precision? = nil) throws {
        func bad(_ s: String) -> ConfigError { ConfigError(message: s) }
        guard widths.count == 5, widths.allSatisfy({ (1...Self.maxWidth).contains($0) }) else {
            throw bad("widths must be 5 channel counts in 1…\(Self.maxWidth), got \(widths)")
        }
        guard (1...Self.maxHidden).contains(hidden) else { throw bad("hidden width must be in 1…\(Self.maxHidden), got \(hidden)") }
        guard (2...Self.maxClasses).contains(classes) else { throw bad("class count must be in 2…\(Self.maxClasses), got \(classes)") }
        guard (0..<1).contains(dropout) else { throw bad("dropout probability must be in [0, 1), got \(dropout)") }
        if let lrnAlpha, !(lrnAlpha.isFinite && lrnAlpha >= 0) { throw bad("LRN alpha must be a finite number ≥ 0, got \(lrnAlpha)") }
        guard (1...Self.maxInputSize).contains(inputSize) else { throw bad("input size must be in 1…\(Self.maxInputSize), got \(inputSize)") }
        guard (1...Self.maxConv1).contains(conv1Kernel), (1...Self.maxConv1).contains(conv1Stride),
              (0...Self.maxConv1).contains(conv1Padding) else {
            throw bad("conv1 kernel and stride must be in 1…\(Self.maxConv1) and padding in 0…\(Self.maxConv1), got kernel \(conv1Kernel), stride \(conv1Stride), padding \(conv1Padding)")
        }
        guard inputSize + 2 * conv1Padding >= conv1Kernel else {
            throw bad("input size \(inputSize) is smaller than conv1's \(conv1Kernel)×\(conv1Kernel) kernel with padding \(conv1Padding)")
        }
        _ = try shapes()
        var total = 0
        for (name, shape) in parameterShapes {
            guard let n = elementCount(shape), case let (sum, false) = total.addingReportingOverflow(n), sum <= Self.maxParameters else {
                throw bad("the network would have more than \(Self.maxParameters) parameters (at \(name), shape \(shape))")
            }
            total = sum
        }
        try Self.checkParameterMemory(count: total, training: training)
    }

    /// The number of weights and biases (of a configuration `validate` accepts).
    public var parameterCount: Int { parameterShapes.reduce(0) { $0 + $1.shape.reduce(1, *) } }

    /// Throws `LimitError`, before anything is allocated, when `count` parameters would take more
    /// than half of this machine's memory: each one's float32 value, and when they are trained in
    /// `training`, its gradient and momentum in that precision's `gradientFormat` (bf16: 2 bytes
    /// each). Refused with the size, not by the out-of-memory killer; a network only evaluated
    /// needs the values alone (a store's gradient pages are never touched).
    public static func checkParameterMemory(count: Int, training: Precision?) throws {
        let extra = training.map { 2 * $0.gradientFormat.bytes } ?? 0
        try Limits.check(memory: count, bytesEach: MemoryLayout<Float>.stride + extra,
                         what: training.map { "the \(count) parameters, their gradients and momentum (\($0.rawValue))" } ?? "the \(count) parameters",
                         flags: "model:", advice: "lower model.input_size, model.widths or model.hidden")
    }
}

public struct ConfigError: DescribedError {
    public let message: String
    public var description: String { message }
}

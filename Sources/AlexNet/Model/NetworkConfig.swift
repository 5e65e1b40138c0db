/// The two AlexNet variants of SPEC section 1 and everything that shapes the network.
public enum Variant: String, Sendable, Codable, CaseIterable {
    /// The paper: LRN α/n = 1e-4, dropout on fc6's and fc7's outputs, logits straight from fc8.
    case paper
    /// The seed's reading: LRN PyTorch alpha 1e-3, dropout on fc6's and fc7's inputs, ReLU after fc8.
    case seed
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

    /// conv1…conv5 as (name, geometry).
    public var convolutions: [(name: String, geometry: Conv2d.Geometry)] {
        [("conv1", .init(inChannels: 3, outChannels: widths[0], kernel: conv1Kernel, stride: conv1Stride, padding: conv1Padding)),
         ("conv2", .init(inChannels: widths[0], outChannels: widths[1], kernel: 5, padding: 2)),
         ("conv3", .init(inChannels: widths[1], outChannels: widths[2], kernel: 3, padding: 1)),
         ("conv4", .init(inChannels: widths[2], outChannels: widths[3], kernel: 3, padding: 1)),
         ("conv5", .init(inChannels: widths[3], outChannels: widths[4], kernel: 3, padding: 1))]
    }

    /// Spatial size after pool5 (6 for a 224 input).
    public var pool5Size: Int {
        let pool = { (s: Int) in (s - 3) / 2 + 1 }
        return pool(pool(pool(convolutions[0].geometry.outputSize(inputSize))))
    }

    public var flatFeatures: Int { widths[4] * pool5Size * pool5Size }

    /// (name, in, out) of fc6…fc8.
    public var linears: [(name: String, inFeatures: Int, outFeatures: Int)] {
        [("fc6", flatFeatures, hidden), ("fc7", hidden, hidden), ("fc8", hidden, classes)]
    }

    /// Parameter names and PyTorch shapes, in the order of the flat buffer (and of checkpoints).
    public var parameterShapes: [(name: String, shape: [Int])] {
        convolutions.flatMap { [("\($0.name).weight", $0.geometry.weightShape), ("\($0.name).bias", [$0.geometry.outChannels])] }
            + linears.flatMap { [("\($0.name).weight", [$0.outFeatures, $0.inFeatures]), ("\($0.name).bias", [$0.outFeatures])] }
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
    /// the release build wraps instead of trapping).
    public func validate() throws {
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
        guard inputSize + 2 * conv1Padding >= conv1Kernel, convolutions[0].geometry.outputSize(inputSize) >= 3, pool5Size >= 1 else {
            throw bad("input size \(inputSize) is too small for AlexNet's three poolings")
        }
        var total = 0
        for (name, shape) in parameterShapes {
            guard let n = elementCount(shape), case let (sum, false) = total.addingReportingOverflow(n), sum <= Self.maxParameters else {
                throw bad("the network would have more than \(Self.maxParameters) parameters (at \(name), shape \(shape))")
            }
            total = sum
        }
    }
}

public struct ConfigError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

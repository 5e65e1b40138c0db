/// What every layer of the network offers: a forward pass from an input it does not own into an
/// output it owns, and a backward pass that fills its input gradient (when it has one) and the
/// gradients of its parameters. Buffers and kernels are created once, at construction, for one
/// batch size; the step loop allocates nothing. Tensors are `DeviceTensor`s in layouts the
/// backend (`Kernels/`) chooses: a layer passes its output's `layout` to the next layer's
/// initialiser and never looks inside.
public protocol Layer: AnyObject {
    var name: String { get }
    /// The forward result, in the layout the layer's kernel chose.
    var output: DeviceTensor { get }
    /// ∂loss/∂input, in the input's layout; nil where no one needs it (the first layer).
    var dInput: DeviceTensor? { get }
    func forward(_ input: DeviceTensor) throws
    /// `dOutput` is in `output`'s layout and may be overwritten (fused ReLU's backward runs in place).
    func backward(input: DeviceTensor, dOutput: DeviceTensor) throws
    /// The backend's implementation of each pass, for layers that run backend primitives.
    var implementations: [(pass: String, implementation: String)] { get }
}

extension Layer {
    public var implementations: [(pass: String, implementation: String)] { [] }
}

/// Training keeps what backward needs (workspaces, masks); inference keeps nothing.
public enum Mode: Sendable { case training, inference }

/// What the convolutions and linear layers compute in (mixed precision as on GPUs):
/// `fp32` everywhere (the default, and what PyTorch's golden files are), or `bf16`: bfloat16
/// copies of their inputs and weights with float32 accumulation and float32 outputs, float32
/// gradients into float32 master weights. Every other layer, the loss and SGD stay float32, so
/// no loss scaling is needed (bfloat16 has float32's exponent range) and checkpoints are the same
/// in either precision.
public enum Precision: String, Sendable, CaseIterable {
    case fp32, bf16
}

/// A layer (or network) asked for what it was not built to do.
public enum LayerError: Error, CustomStringConvertible {
    /// Backward (or the loss) asked of a layer or network built for inference, which keeps
    /// neither gradients nor workspaces.
    case notTraining(String)
    public var description: String {
        switch self {
        case .notTraining(let n): return "\(n): built for inference, it has no backward pass or loss (build it with mode .training)"
        }
    }
}

/// A label the loss cannot use: classes are 0..<K.
public struct LabelError: Error, CustomStringConvertible, Sendable {
    public let label: Int
    /// The label's row in the batch.
    public let index: Int
    public let classes: Int
    public var description: String {
        "label \(label) of batch sample \(index) is outside the \(classes) classes 0..<\(classes)"
    }
}

/// A layer hyperparameter outside the values it can take (a dropout probability of 1, a stride of 0).
public struct HyperparameterError: Error, CustomStringConvertible, Sendable {
    public let layer: String
    public let name: String
    public let value: String
    public let allowed: String
    public var description: String { "\(layer): \(name) \(value) is not \(allowed)" }
}

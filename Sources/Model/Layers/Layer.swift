import AlexNetCore
import AlexNetKernels

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
    /// Whether backward reads this layer's own `output` (a ReLU's mask, fused or not): a
    /// network's memory plan keeps the output until then.
    var readsOutputInBackward: Bool { get }
    /// Whether backward reads the `input` it is given (LRN; a convolution or linear layer that
    /// keeps no copy of its input): the plan keeps the previous layer's output until then.
    var readsInputInBackward: Bool { get }
}

extension Layer {
    public var implementations: [(pass: String, implementation: String)] { [] }
    /// Unless a layer says otherwise, its backward pass may read both.
    public var readsOutputInBackward: Bool { true }
    public var readsInputInBackward: Bool { true }
}

/// Training keeps what backward needs (workspaces, masks); inference keeps nothing.
public enum Mode: Sendable { case training, inference }



/// A label the loss cannot use: classes are 0..<K.
public struct LabelError: DescribedError, Sendable {
    public let label: Int
    /// The label's row in the batch.
    public let index: Int
    public let classes: Int
    public var description: String {
        "label \(label) of batch sample \(index) is outside the \(classes) classes 0..<\(classes)"
    }
}

/// A layer hyperparameter outside the values it can take (a dropout probability of 1, a stride of 0).
public struct HyperparameterError: DescribedError, Sendable {
    public let layer: String
    public let name: String
    public let value: String
    public let allowed: String
    public var description: String { "\(layer): \(name) \(value) is not \(allowed)" }
}

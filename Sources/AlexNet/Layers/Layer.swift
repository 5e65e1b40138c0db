/// What every layer of the network offers: a forward pass from an input it does not own into an
/// output it owns, and a backward pass that fills its input gradient (when it has one) and the
/// gradients of its parameters. Buffers and primitives are created once, at construction, for
/// one batch size; the step loop allocates nothing.
public protocol Layer: AnyObject {
    var name: String { get }
    /// The forward result, in the layout the layer chose.
    var output: Memory { get }
    /// ∂loss/∂input, in the input's layout; nil where no one needs it (the first layer).
    var dInput: Memory? { get }
    func forward(_ input: Memory) throws
    /// `dOutput` is in `output`'s layout and may be overwritten (fused ReLU's backward runs in place).
    func backward(input: Memory, dOutput: Memory) throws
}

/// Training keeps what backward needs (workspaces, masks); inference keeps nothing.
public enum Mode: Sendable { case training, inference }

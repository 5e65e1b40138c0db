import AlexNetCore

/// What the network computes in (mixed precision as on GPUs): `fp32` everywhere (the default,
/// and what PyTorch's golden files are), or `bf16`: the convolutional trunk's activations and
/// their gradients in bfloat16 (convolutions, LRN and pooling read and write bfloat16, with
/// float32 accumulation), the classifier on bfloat16 copies of its inputs and weights with
/// float32 outputs; the weight gradients and SGD's momentum kept in bfloat16 (`gradientFormat`),
/// the master weights and the update's arithmetic in float32. Dropout and the loss stay float32,
/// so no loss scaling is needed (bfloat16 has float32's exponent range), and checkpoints hold
/// float32 in either precision.
public enum Precision: String, Sendable, CaseIterable {
    case fp32, bf16

    /// How a training run in this precision keeps its weight gradients and momentum.
    public var gradientFormat: NumberFormat { self == .bf16 ? .bfloat16 : .float32 }
}

/// A layer (or network) asked for what it was not built to do.
public enum LayerError: DescribedError {
    /// Backward (or the loss) asked of a layer or network built for inference, which keeps
    /// neither gradients nor workspaces.
    case notTraining(String)
    public var description: String {
        switch self {
        case .notTraining(let n): return "\(n): built for inference, it has no backward pass or loss (build it with mode .training)"
        }
    }
}

import AlexNetCore

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

import AlexNetCore
import AlexNetKernels
import Foundation

/// Local response normalisation across channels (paper section 3.3; the convention of
/// docs/DESIGN.md, Network):
///   b_c = a_c / (k + α/n · Σ_{j=c−2…c+2} a_j²)^β, missing channels counting as zero, the sum
/// always divided by n = 5 (PyTorch's `LocalResponseNorm`, whose `alpha` is α here).
/// Shapes: x (N, C, H, W) → y (N, C, H, W), in x's layout.
public final class LocalResponseNorm: Layer {
    public struct Constants: Sendable, Equatable {
        public var size: Int, alpha: Float, beta: Float, k: Float
        /// PyTorch-convention alpha (the paper's α = 1e-4 on the sum, times n = 5).
        public init(size: Int = 5, alpha: Float, beta: Float = 0.75, k: Float = 2) {
            (self.size, self.alpha, self.beta, self.k) = (size, alpha, beta, k)
        }
        /// The paper's constants: α/n = 1e-4.
        public static let paper = Constants(alpha: 5e-4)
        /// The seed's: it wrote PyTorch `alpha` = 10e-4.
        public static let seed = Constants(alpha: 1e-3)
    }

    public let name: String
    let kernel: WorkspaceKernel
    public var output: DeviceTensor { kernel.output }
    public var dInput: DeviceTensor? { kernel.dInput }
    public var implementations: [(pass: String, implementation: String)] { kernel.implementations }
    /// Backward reads the input (and remakes the workspace of scales from it).
    public var readsOutputInBackward: Bool { false }

    public init(name: String, constants c: Constants, input: TensorLayout, mode: Mode, engine: Engine) throws {
        self.name = name
        guard c.size > 0, c.size % 2 == 1 else {
            throw HyperparameterError(layer: name, name: "size", value: "\(c.size)", allowed: "a positive odd channel count")
        }
        guard c.alpha.isFinite, c.alpha >= 0 else {
            throw HyperparameterError(layer: name, name: "alpha", value: "\(c.alpha)", allowed: "finite and ≥ 0")
        }
        guard c.beta.isFinite, c.beta >= 0 else {
            throw HyperparameterError(layer: name, name: "beta", value: "\(c.beta)", allowed: "finite and ≥ 0")
        }
        guard c.k.isFinite, c.k > 0 else {
            throw HyperparameterError(layer: name, name: "k", value: "\(c.k)", allowed: "finite and positive")
        }
        guard input.dims.count == 4 else { throw ShapeError(what: "\(name) input", shape: input.dims, expected: "(N, C, H, W)") }
        kernel = try WorkspaceKernel.localResponseNorm(name: name, input: input, size: c.size, alpha: c.alpha, beta: c.beta, k: c.k,
                               training: mode == .training, engine: engine)
    }

    public func forward(_ input: DeviceTensor) throws { try kernel.forward(input) }

    public func backward(input: DeviceTensor, dOutput: DeviceTensor) throws { try kernel.backward(input: input, dOutput: dOutput) }

    // MARK: plain-Swift reference (tests only)

    /// s_c = k + α/n Σ a_j² for every element, in double precision.
    static func referenceScale(_ x: Tensor, _ c: Constants) -> [Double] {
        let (n, ch, hw) = (x.shape[0], x.shape[1], x.shape[2] * x.shape[3])
        var s = [Double](repeating: 0, count: x.count)
        let half = c.size / 2
        for b in 0..<n { for cc in 0..<ch { for p in 0..<hw {
            var sum = 0.0
            for j in max(0, cc - half)...min(ch - 1, cc + half) {
                let v = Double(x.data[(b * ch + j) * hw + p]); sum += v * v
            }
            s[(b * ch + cc) * hw + p] = Double(c.k) + Double(c.alpha) / Double(c.size) * sum
        } } }
        return s
    }

    public static func referenceForward(_ x: Tensor, _ c: Constants) -> Tensor {
        let s = referenceScale(x, c)
        return Tensor(shape: x.shape, data: (0..<x.count).map { Float(Double(x.data[$0]) * pow(s[$0], -Double(c.beta))) })
    }

    /// ∂x_j = ∂y_j s_j^−β − (2αβ/n) x_j Σ_{c near j} ∂y_c x_c s_c^(−β−1).
    public static func referenceBackward(x: Tensor, dy: Tensor, _ c: Constants) -> Tensor {
        let s = referenceScale(x, c)
        let (n, ch, hw) = (x.shape[0], x.shape[1], x.shape[2] * x.shape[3])
        let beta = Double(c.beta), coef = 2 * Double(c.alpha) * beta / Double(c.size)
        let half = c.size / 2
        var dx = [Float](repeating: 0, count: x.count)
        for b in 0..<n { for j in 0..<ch { for p in 0..<hw {
            let idx = (b * ch + j) * hw + p
            var acc = 0.0
            for cc in max(0, j - half)...min(ch - 1, j + half) {
                let i = (b * ch + cc) * hw + p
                acc += Double(dy.data[i]) * Double(x.data[i]) * pow(s[i], -beta - 1)
            }
            dx[idx] = Float(Double(dy.data[idx]) * pow(s[idx], -beta) - coef * Double(x.data[idx]) * acc)
        } } }
        return Tensor(shape: x.shape, data: dx)
    }
}

import CKernels

/// A 3×3 convolution at stride 1 with padding 1 (conv3, conv4, conv5) by Winograd's minimal
/// filtering F(2×2, 3×3): the transforms in CKernels/winograd.c, the 16 matrix products per pass
/// on oneDNN's GEMM. 2.25× fewer multiplies than the direct convolution; measured on AVX2 at
/// batch 128 the forward pass of conv4 takes 269 ms against 528 for oneDNN's `jit:avx2`, with
/// a relative error of 1e-6 against it. ∂input is the same pipeline run on ∂output with the
/// weights turned by 180° and their channels swapped. The weight gradient follows from the
/// forward pass being bilinear in the transformed weights U and inputs V: ∂U = Σ over tiles of
/// V ⊙ (A ∂y Aᵀ), 16 products (C × tiles) · (tiles × K), then ∂g = Gᵀ ∂U G.
///
/// Tensors are in nChw8c, the layout oneDNN's AVX2 convolutions choose (`ConvolutionKernel`
/// uses this kernel only when they do). The transformed inputs and products live in the
/// engine's scratch memory, shared by every layer: 16 × tiles × (C + K) floats, 308 MB for
/// conv4 at batch 128.
final class WinogradKernel {
    /// The name `bench --layers` reports for the passes this kernel runs, beside oneDNN's.
    static let implementation = "ours:winograd_2x2_3x3"
    /// Below this batch the weights' transform (done every pass: SGD changes them) costs more
    /// than the products save. conv4's forward pass: 8.5 ms against oneDNN's 3.9 at batch 1,
    /// 14.8 against 15.8 at 4, 23 against 30 at 8. From 4, so that the golden files' networks
    /// (batch 4, SPEC section 8) check this kernel against PyTorch too.
    static let smallestBatch = 4
    /// The fewest multiplies saved, as a factor, for the kernel to be used: 2.25 less the tiles'
    /// overhang on odd sizes (1.94 on 13×13 maps; only 1.27 on the demo's 3×3, where the
    /// transforms cost more than that saves).
    static let smallestSaving = 1.5

    let batch: Int, inChannels: Int, outChannels: Int, height: Int, width: Int
    /// N × tiles per image: the rows of each product.
    let tiles: Int
    /// The transformed weights: [16][C][K] forward, [16][K][C] for ∂input.
    let forwardWeights: FloatBuffer
    let backwardWeights: FloatBuffer?
    /// ∂U, [16][C][K], when training.
    let transformedWeightGradient: FloatBuffer?

    /// Whether the kernel computes this convolution: 3×3, stride 1, padding 1, float32, a large
    /// enough batch and maps, and input and output in nChw8c (which also makes C and K multiples
    /// of 8).
    static func applies(weightShape: [Int], stride: Int, padding: Int, precision: Precision,
                        source: TensorLayout, output: TensorLayout) -> Bool {
        guard weightShape.count == 4, weightShape[2] == 3, weightShape[3] == 3, stride == 1, padding == 1,
              precision == .fp32, source.dims[0] >= smallestBatch,
              saving(height: source.dims[2], width: source.dims[3]) >= smallestSaving,
              let blockedSource = try? TensorLayout(source.dims, .channelBlocked8),
              let blockedOutput = try? TensorLayout(output.dims, .channelBlocked8) else { return false }
        return source == blockedSource && output == blockedOutput
    }

    /// Multiplies of the direct convolution over those of F(2×2, 3×3) on maps of this size.
    static func saving(height: Int, width: Int) -> Double {
        2.25 * Double(height * width) / Double(4 * alexnet_winograd_tiles(Int32(height), Int32(width)))
    }

    init(weightShape: [Int], inputDims: [Int], training: Bool, inputGradient: Bool) {
        (batch, outChannels, inChannels, height, width) = (inputDims[0], weightShape[0], weightShape[1], inputDims[2], inputDims[3])
        tiles = batch * Int(alexnet_winograd_tiles(Int32(height), Int32(width)))
        forwardWeights = FloatBuffer(count: 16 * inChannels * outChannels, zeroed: false)
        backwardWeights = training && inputGradient ? FloatBuffer(count: 16 * inChannels * outChannels, zeroed: false) : nil
        transformedWeightGradient = training ? FloatBuffer(count: 16 * inChannels * outChannels, zeroed: false) : nil
    }

    /// y = conv(x, weight) + bias, then ReLU if `relu`: x (N, C, H, W) and y (N, K, H, W) in
    /// nChw8c, weight (K, C, 3, 3) and bias (K) plain.
    func forward(x: DeviceTensor, weight: DeviceTensor, bias: DeviceTensor, relu: Bool, y: DeviceTensor, engine: Engine) throws {
        alexnet_winograd_weights(weight.pointer, Int32(outChannels), Int32(inChannels), 0, forwardWeights.pointer)
        try run(x.pointer, channels: inChannels, into: y.pointer, channels: outChannels, weights: forwardWeights,
                bias: bias.pointer, relu: relu, engine: engine)
    }

    /// ∂x = conv(∂y, weight turned and transposed): ∂y (N, K, H, W) and ∂x (N, C, H, W) in nChw8c.
    func backwardData(dOutput: DeviceTensor, weight: DeviceTensor, dInput: DeviceTensor, engine: Engine) throws {
        guard let backwardWeights else { throw LayerError.notTraining("the Winograd convolution's input gradient") }
        alexnet_winograd_weights(weight.pointer, Int32(outChannels), Int32(inChannels), 1, backwardWeights.pointer)
        try run(dOutput.pointer, channels: outChannels, into: dInput.pointer, channels: inChannels, weights: backwardWeights,
                bias: nil, relu: false, engine: engine)
    }

    /// ∂weight (K, C, 3, 3) and ∂bias (K), plain, from x (N, C, H, W) and ∂y (N, K, H, W) in nChw8c.
    func backwardWeights(x: DeviceTensor, dOutput: DeviceTensor, dWeight: DeviceTensor, dBias: DeviceTensor,
                         engine: Engine) throws {
        guard let transformedWeightGradient else { throw LayerError.notTraining("the Winograd convolution's weight gradient") }
        let scratch = engine.scratch(floats: 16 * tiles * (inChannels + outChannels))
        let transformed = scratch, gradients = scratch + 16 * tiles * inChannels
        alexnet_winograd_input(x.pointer, Int32(batch), Int32(inChannels), Int32(height), Int32(width), transformed)
        alexnet_winograd_output_gradient(dOutput.pointer, Int32(batch), Int32(outChannels), Int32(height), Int32(width), gradients)
        for xi in 0..<16 {
            try MatrixMultiply.multiply(m: inChannels, n: outChannels, k: tiles, a: transformed + xi * tiles * inChannels,
                                        transposingA: true, b: gradients + xi * tiles * outChannels,
                                        c: transformedWeightGradient.pointer + xi * inChannels * outChannels)
        }
        alexnet_winograd_weight_gradient(transformedWeightGradient.pointer, Int32(outChannels), Int32(inChannels), dWeight.pointer)
        alexnet_winograd_bias_gradient(dOutput.pointer, Int32(batch), Int32(outChannels), Int32(height), Int32(width), dBias.pointer)
    }

    /// Input transform, the 16 products (tiles × `inputChannels`) · (`inputChannels` × `outputChannels`),
    /// output transform.
    private func run(_ input: UnsafePointer<Float>, channels inputChannels: Int, into output: UnsafeMutablePointer<Float>,
                     channels outputChannels: Int, weights: FloatBuffer, bias: UnsafePointer<Float>?, relu: Bool,
                     engine: Engine) throws {
        let scratch = engine.scratch(floats: 16 * tiles * (inputChannels + outputChannels))
        let transformed = scratch, products = scratch + 16 * tiles * inputChannels
        alexnet_winograd_input(input, Int32(batch), Int32(inputChannels), Int32(height), Int32(width), transformed)
        for xi in 0..<16 {
            try MatrixMultiply.multiply(m: tiles, n: outputChannels, k: inputChannels, a: transformed + xi * tiles * inputChannels,
                                        b: weights.pointer + xi * inputChannels * outputChannels,
                                        c: products + xi * tiles * outputChannels)
        }
        alexnet_winograd_output(products, bias, relu ? 1 : 0, Int32(batch), Int32(outputChannels), Int32(height), Int32(width), output)
    }
}

import AlexNetCore
import CKernels

/// A convolution at stride 1 whose output has its input's size, 3×3 with padding 1 (conv3–conv5)
/// or 5×5 with padding 2 (conv2), by Winograd's minimal filtering F(m×m, r×r): the transforms
/// in CKernels/winograd.c, the α² matrix products per pass (α = m + r − 1) on oneDNN's GEMM.
/// F(2×2, 3×3) does 2.25× fewer multiplies than the direct convolution, F(3×3, 3×3) 3.24×,
/// F(3×3, 5×5) 4.6×, F(4×4, 5×5) 6.25×; on a map that m does not divide, the last tiles'
/// overhang takes some of that back, and each layer gets the algorithm that does the fewest
/// multiplies on its maps.
///
/// ∂input is the same pipeline run on ∂output with the weights turned by 180° and their
/// channels swapped. The weight gradient follows from the forward pass being bilinear in the
/// transformed weights U and inputs V: ∂U = Σ over tiles of V ⊙ (A ∂y Aᵀ), α² products
/// (C × tiles) · (tiles × K), then ∂g = Gᵀ ∂U G.
///
/// Activations are in nChw8c, nChw16c or nhwc, the layouts oneDNN's AVX2 convolutions and its
/// AVX-512 ones for training and for inference choose (`ConvolutionKernel` uses this kernel
/// only when they choose one of them): each a layout [N][C/b][H][W][b] whose block b is a
/// parameter of the transforms (b = C for nhwc). The transformed inputs and products live in a
/// scratch buffer of the layer's (in a network, part of its arena, shared with whatever is not
/// live during the layer's passes), and a batch goes through a few images at a time so that
/// they fit in `Engine.scratchLimit`: α² × tiles × (C + K) floats per image. The transformed
/// weights are scratch of the pass that makes them: every pass transforms the current weights.
/// docs/PERFORMANCE.md (Winograd algorithms) has the measurements behind each choice here.
final class WinogradKernel {
    /// One of the algorithms in winograd.c: m×m outputs per tile of an r×r kernel.
    struct Algorithm {
        let id: alexnet_winograd_algorithm
        let m: Int, r: Int
        var alpha: Int { m + r - 1 }
        /// The products per pass, one per element of an α×α transformed tile.
        var products: Int { alpha * alpha }
        /// The name `bench --layers` reports for the passes it runs, beside oneDNN's.
        var implementation: String { "ours:winograd_\(m)x\(m)_\(r)x\(r)" }

        /// Every algorithm in winograd.c, the smaller α first for each kernel size.
        static let all = [Algorithm(id: alexnet_winograd_2x2_3x3, m: 2, r: 3), Algorithm(id: alexnet_winograd_3x3_3x3, m: 3, r: 3),
                          Algorithm(id: alexnet_winograd_3x3_5x5, m: 3, r: 5), Algorithm(id: alexnet_winograd_4x4_5x5, m: 4, r: 5)]

        /// The algorithm for an r×r kernel that does the fewest multiplies on maps of this size
        /// (on a tie the smaller α, whose transforms cost less), if there is one: F(3×3, 3×3) on
        /// 13×13, F(2×2, 3×3) on 4×4, where F(3×3, 3×3)'s tiles would overhang by 125 %;
        /// F(4×4, 5×5) on 27×27, F(3×3, 5×5) on 9×9.
        static func fewestMultiplies(kernel r: Int, height: Int, width: Int) -> Algorithm? {
            var best: (algorithm: Algorithm, saving: Double)?
            for candidate in all where candidate.r == r {
                let saving = candidate.saving(height: height, width: width)
                if saving > best?.saving ?? 0 { best = (candidate, saving) }
            }
            return best?.algorithm
        }

        func tiles(height: Int, width: Int) -> Int { Int(alexnet_winograd_tiles(id, Int32(height), Int32(width))) }

        /// Multiplies of the direct convolution over this algorithm's on maps of this size.
        func saving(height: Int, width: Int) -> Double {
            Double(r * r * height * width) / Double(alpha * alpha * tiles(height: height, width: width))
        }
    }

    /// Below this batch the weights' transform (done every pass: SGD changes them) costs more
    /// than the products save. From 4, so that the golden files' networks (batch 4) check this
    /// kernel against PyTorch too.
    static let smallestBatch = 4
    /// The fewest multiplies saved, as a factor, for the kernel to be used: the algorithm's
    /// saving less the tiles' overhang on sizes m does not divide (F(2×2, 3×3): 1.94 on 13×13
    /// maps, only 1.27 on 3×3 ones, where the transforms cost more than that saves).
    static let smallestSaving = 1.5
    /// The fewest multiply-adds the products do per value the transforms read or write,
    /// C·K / (C + K), for the kernel to be used: below it the transforms, which stream the
    /// tiles through memory, cost more than the products save; measured on AVX2 and AVX-512
    /// (docs/PERFORMANCE.md, Width threshold).
    static let smallestWorkPerValue = 32.0

    let algorithm: Algorithm
    /// The channel blocks of the input's and output's layouts: 8 (nChw8c), 16 (nChw16c), or
    /// C and K (nhwc).
    let blocks: (input: Int, output: Int)
    let batch: Int, inChannels: Int, outChannels: Int, height: Int, width: Int
    /// Whether the activations (x, y, ∂y, ∂x) are bfloat16: the transforms read them widened to
    /// float32 and write them rounded, and compute in float32.
    let bf16: Bool
    /// Bytes per activation value.
    private var activationBytes: Int { bf16 ? 2 : 4 }
    /// Tiles per image, and images per pass through the scratch memory.
    let tilesPerImage: Int, imagesPerChunk: Int
    /// The transformed weights: [α²][C][K] forward, [α²][K][C] for ∂input.
    let forwardWeights: DeviceTensor
    let backwardWeights: DeviceTensor?
    /// ∂U, [α²][C][K], when training.
    let transformedWeightGradient: DeviceTensor?
    /// Transformed tiles and products of one chunk of images.
    let scratch: DeviceTensor

    var implementation: String { algorithm.implementation }

    /// The algorithm for this convolution and the channel blocks of its input and output, if the
    /// kernel computes it: an r×r kernel with an algorithm, stride 1, padding (r − 1)/2,
    /// float32, a large enough batch, maps and channels, and input and output each in nChw8c,
    /// nChw16c or nhwc, their blocks multiples of 8 that divide C and K. The kernel computes in
    /// float32 on float32 or bfloat16 activations. A bf16 layer runs it where it measured faster
    /// than oneDNN's bf16 kernel: for 5×5 kernels (conv2), and for 3×3 ones (conv3–conv5) in
    /// training, where its backward passes gain more than its forward pass loses; a bf16
    /// inference network runs oneDNN's kernel for 3×3 ones (docs/PERFORMANCE.md, bf16).
    static func algorithm(weightShape: [Int], stride: Int, padding: Int, precision: Precision, training: Bool, source: TensorLayout,
                          output: TensorLayout) -> (algorithm: Algorithm, blocks: (input: Int, output: Int))? {
        guard weightShape.count == 4, weightShape[2] == weightShape[3],
              let algorithm = Algorithm.fewestMultiplies(kernel: weightShape[2], height: source.dims[2], width: source.dims[3]),
              stride == 1, padding == (algorithm.r - 1) / 2, precision == .fp32 || algorithm.r == 5 || training, source.dims[0] >= smallestBatch,
              algorithm.saving(height: source.dims[2], width: source.dims[3]) >= smallestSaving,
              Double(weightShape[0] * weightShape[1]) / Double(weightShape[0] + weightShape[1]) >= smallestWorkPerValue,
              let inputBlock = source.converted(to: .fp32).channelBlock, let outputBlock = output.converted(to: .fp32).channelBlock,
              inputBlock % 8 == 0, outputBlock % 8 == 0,
              weightShape[1] % inputBlock == 0, weightShape[0] % outputBlock == 0 else { return nil }
        return (algorithm, (inputBlock, outputBlock))
    }

    init(_ algorithm: Algorithm, blocks: (input: Int, output: Int), weightShape: [Int], inputDims: [Int], training: Bool,
         inputGradient: Bool, precision: Precision, engine: Engine) throws {
        self.algorithm = algorithm
        bf16 = precision == .bf16
        self.blocks = blocks
        (batch, outChannels, inChannels, height, width) = (inputDims[0], weightShape[0], weightShape[1], inputDims[2], inputDims[3])
        tilesPerImage = algorithm.tiles(height: height, width: width)
        let bytesPerImage = algorithm.products * tilesPerImage * (inChannels + outChannels) * MemoryLayout<Float>.size
        imagesPerChunk = max(1, min(batch, engine.scratchLimit / bytesPerImage))
        let transformed = algorithm.products * inChannels * outChannels
        func buffer(_ floats: Int, _ lifetime: BufferLifetime) throws -> DeviceTensor {
            try DeviceTensor.plain([floats], engine: engine, lifetime: lifetime)
        }
        forwardWeights = try buffer(transformed, .forwardScratch)
        backwardWeights = training && inputGradient ? try buffer(transformed, .backwardScratch) : nil
        transformedWeightGradient = training ? try buffer(transformed, .backwardScratch) : nil
        scratch = try buffer(algorithm.products * imagesPerChunk * tilesPerImage * (inChannels + outChannels),
                             training ? .scratch : .forwardScratch)
    }

    /// y = conv(x, weight) + bias, then ReLU if `relu`: x (N, C, H, W) and y (N, K, H, W) in
    /// their blocked layouts, weight (K, C, r, r) and bias (K) plain.
    func forward(x: DeviceTensor, weight: DeviceTensor, bias: DeviceTensor, relu: Bool, y: DeviceTensor, engine: Engine) throws {
        alexnet_winograd_weights(algorithm.id, weight.pointer, Int32(outChannels), Int32(inChannels), 0, forwardWeights.pointer)
        try run(x.raw, channels: inChannels, block: blocks.input, into: y.raw, channels: outChannels,
                block: blocks.output, weights: forwardWeights, bias: bias.pointer, relu: relu, engine: engine)
    }

    /// ∂x = conv(∂y, weight turned and transposed): ∂y (N, K, H, W) and ∂x (N, C, H, W) blocked.
    func backwardData(dOutput: DeviceTensor, weight: DeviceTensor, dInput: DeviceTensor, engine: Engine) throws {
        guard let backwardWeights else { throw LayerError.notTraining("the Winograd convolution's input gradient") }
        alexnet_winograd_weights(algorithm.id, weight.pointer, Int32(outChannels), Int32(inChannels), 1, backwardWeights.pointer)
        try run(dOutput.raw, channels: outChannels, block: blocks.output, into: dInput.raw, channels: inChannels,
                block: blocks.input, weights: backwardWeights, bias: nil, relu: false, engine: engine)
    }

    /// ∂weight (K, C, r, r) and ∂bias (K), plain (float32 or bfloat16), from x (N, C, H, W) and ∂y
    /// (N, K, H, W) blocked.
    func backwardWeights(x: DeviceTensor, dOutput: DeviceTensor, dWeight: DeviceTensor, dBias: DeviceTensor,
                         engine: Engine) throws {
        guard let transformedWeightGradient else { throw LayerError.notTraining("the Winograd convolution's weight gradient") }
        try eachChunk(of: x.raw, channels: inChannels, block: blocks.input, otherChannels: outChannels, engine: engine) {
            first, images, tiles, transformed, gradients in
            alexnet_winograd_output_gradient(algorithm.id, dOutput.raw + first * outChannels * height * width * activationBytes,
                                             bf16 ? 1 : 0, Int32(blocks.output), Int32(images), Int32(outChannels), Int32(height),
                                             Int32(width), gradients)
            // ∂U sums over the tiles of every chunk.
            for xi in 0..<algorithm.products {
                try MatrixMultiply.multiply(m: inChannels, n: outChannels, k: tiles, a: transformed + xi * tiles * inChannels,
                                            transposingA: true, b: gradients + xi * tiles * outChannels,
                                            c: transformedWeightGradient.pointer + xi * inChannels * outChannels,
                                            accumulating: first > 0)
            }
        }
        alexnet_winograd_weight_gradient(algorithm.id, transformedWeightGradient.pointer, Int32(outChannels), Int32(inChannels),
                                         dWeight.raw, dWeight.layout.precision == .bf16 ? 1 : 0)
        alexnet_winograd_bias_gradient(dOutput.raw, bf16 ? 1 : 0, Int32(blocks.output), Int32(batch), Int32(outChannels),
                                       Int32(height), Int32(width), dBias.raw, dBias.layout.precision == .bf16 ? 1 : 0)
    }

    /// For each chunk of images: input transform, the α² products (tiles × `inputChannels`) ·
    /// (`inputChannels` × `outputChannels`), output transform; the input and output in blocks of
    /// `inputBlock` and `outputBlock` channels.
    private func run(_ input: UnsafeMutableRawPointer, channels inputChannels: Int, block inputBlock: Int,
                     into output: UnsafeMutableRawPointer, channels outputChannels: Int, block outputBlock: Int,
                     weights: DeviceTensor, bias: UnsafePointer<Float>?, relu: Bool, engine: Engine) throws {
        try eachChunk(of: input, channels: inputChannels, block: inputBlock, otherChannels: outputChannels, engine: engine) {
            first, images, tiles, transformed, multiplied in
            for xi in 0..<algorithm.products {
                try MatrixMultiply.multiply(m: tiles, n: outputChannels, k: inputChannels,
                                            a: transformed + xi * tiles * inputChannels,
                                            b: weights.pointer + xi * inputChannels * outputChannels,
                                            c: multiplied + xi * tiles * outputChannels)
            }
            alexnet_winograd_output(algorithm.id, multiplied, bias, relu ? 1 : 0, Int32(outputBlock), Int32(images),
                                    Int32(outputChannels), Int32(height), Int32(width),
                                    output + first * outputChannels * height * width * activationBytes, bf16 ? 1 : 0)
        }
    }

    /// The batch `imagesPerChunk` images at a time: each chunk's input transform of `input`
    /// (N, `channels`, H, W in blocks of `block` channels) into the scratch memory, then `body`
    /// with the chunk's first image, its images and tiles, the transformed input
    /// [α²][tiles][`channels`], and the scratch after it, [α²][tiles][`otherChannels`], for the
    /// pass's other matrix.
    private func eachChunk(of input: UnsafeMutableRawPointer, channels: Int, block: Int, otherChannels: Int, engine: Engine,
                           _ body: (_ first: Int, _ images: Int, _ tiles: Int, _ transformed: UnsafeMutablePointer<Float>,
                                    _ other: UnsafeMutablePointer<Float>) throws -> Void) throws {
        let scratch = self.scratch.pointer
        for first in stride(from: 0, to: batch, by: imagesPerChunk) {
            let images = min(imagesPerChunk, batch - first), tiles = images * tilesPerImage
            alexnet_winograd_input(algorithm.id, input + first * channels * height * width * activationBytes, bf16 ? 1 : 0,
                                   Int32(block), Int32(images), Int32(channels), Int32(height), Int32(width), scratch)
            try body(first, images, tiles, scratch, scratch + algorithm.products * tiles * channels)
        }
    }
}

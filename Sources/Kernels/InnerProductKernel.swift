import CDNNL

/// y = x · Wᵀ + b with an optional fused ReLU on oneDNN's inner product, forward and backward.
/// Everything stays in PyTorch's plain layouts (`nc`, `oi`), which oneDNN runs on its GEMM as
/// they are, so fc6's 37.7 M weights are never copied in fp32. In bf16 (`Precision`) the input,
/// the weights and ∂output are converted into plain bfloat16 copies each pass; the output and
/// ∂input stay float32; ∂weight and ∂bias are written in the parameter store's gradient type.
package final class InnerProductKernel {
    let name: String
    let engine: Engine
    package let output: DeviceTensor
    package let dInput: DeviceTensor?
    let forwardPrimitive: Primitive
    let backwardData: Primitive?
    /// ∂weight and ∂bias by blocks of output rows (one block of all of them where the store
    /// keeps float32 gradients).
    let gradientBlocks: [GradientBlock]
    let weight: DeviceTensor, bias: DeviceTensor, dWeight: DeviceTensor?, dBias: DeviceTensor?
    let reluBackward: ReLUBackward?
    /// The input, weights and ∂output as the primitives read them: bfloat16 copies in bf16.
    let source: Staged, convertedWeight: Staged, gradient: Staged

    /// - Parameters: `input` is (N, in), `outFeatures` the rows of the (out, in) weight.
    package var implementations: Implementations { passImplementations([("forward", forwardPrimitive), ("backward data", backwardData), ("backward weights", gradientBlocks.first?.primitive)]) }

    /// Whether backward reads the layer's input itself (not a copy of it), or its output (a
    /// fused ReLU's mask): a network's memory plan keeps those alive until then.
    package var readsInputInBackward: Bool { source.buffer == nil }
    package var readsOutputInBackward: Bool { reluBackward != nil }

    package init(name: String, input: TensorLayout, outFeatures: Int, fusedReLU: Bool, training: Bool, precision: Precision = .fp32,
         parameters: ParameterViews, engine: Engine) throws {
        try CPUCapabilities.check(precision)
        self.name = name
        self.engine = engine
        let d = input.dims
        let wLayout = try TensorLayout.plain([outFeatures, d[1]]), bLayout = try TensorLayout.plain([outFeatures])
        let outLayout = try TensorLayout.plain([d[0], outFeatures])
        weight = try DeviceTensor(wLayout, engine: engine, borrowing: parameters.weight)
        bias = try DeviceTensor(bLayout, engine: engine, borrowing: parameters.bias)
        // A plain tensor in `precision` (nothing to do in fp32).
        func converted(_ layout: TensorLayout, _ what: String, _ lifetime: BufferLifetime) throws -> Staged {
            try Staged(reading: layout.converted(to: precision), from: layout, lifetime: lifetime, engine: engine,
                       name: "\(name) \(what) conversion")
        }
        // Backward reads this step's copy of the input again. The weights' copy (fc6's is
        // 75 MB) is made again for backward rather than kept across the steps between.
        source = try converted(input, "input", training ? .saved : .forwardScratch)
        convertedWeight = try converted(wLayout, "weight", training ? .scratch : .forwardScratch)
        var src = input.converted(to: precision).md, w = wLayout.converted(to: precision).md, b = bLayout.md
        var dst = outLayout.md
        var fd = dnnl_inner_product_desc_t()
        try check(dnnl_inner_product_forward_desc_init(&fd, training ? dnnl_forward_training : dnnl_forward_inference,
                                                       &src, &w, &b, &dst),
                  "dnnl_inner_product_forward_desc_init", "describing \(name) on \(input)")
        forwardPrimitive = try Primitive(&fd, name: "\(name) forward", engine: engine, attr: try Attributes(fusedReLU: fusedReLU))
        output = try DeviceTensor(outLayout, engine: engine, lifetime: .output)
        guard training, let dWeightView = parameters.dWeight, let dBiasView = parameters.dBias else {
            (dInput, dWeight, dBias, backwardData, reluBackward, gradient, gradientBlocks) = (nil, nil, nil, nil, nil, .direct, [])
            return
        }
        gradient = try converted(outLayout, "output-gradient", .backwardScratch)
        let dWeight = try DeviceTensor(try parameters.gradientLayout(wLayout.dims), engine: engine, borrowing: dWeightView)
        let dBias = try DeviceTensor(try parameters.gradientLayout(bLayout.dims), engine: engine, borrowing: dBiasView)
        (self.dWeight, self.dBias) = (dWeight, dBias)
        var diffDst = outLayout.converted(to: precision).md, diffSrc = input.md
        reluBackward = fusedReLU ? try ReLUBackward(name: name, layout: outLayout, engine: engine) : nil
        var dd = dnnl_inner_product_desc_t()
        try check(dnnl_inner_product_backward_data_desc_init(&dd, &diffSrc, &w, &diffDst),
                  "dnnl_inner_product_backward_data_desc_init", "describing \(name)'s input gradient")
        backwardData = try Primitive(&dd, name: "\(name) backward data", engine: engine, hint: forwardPrimitive)
        gradientBlocks = try GradientBlock.blocks(name: name, source: input.converted(to: precision), gradient: outLayout.converted(to: precision),
                                                  dWeight: dWeight, dBias: dBias, forward: forwardPrimitive, engine: engine)
        dInput = try DeviceTensor(input, engine: engine, lifetime: .inputGradient)
    }

    package func forward(_ input: DeviceTensor) throws {
        try forwardPrimitive.execute(engine, [(DNNL_ARG_SRC, try source.filled(from: input)),
                                              (DNNL_ARG_WEIGHTS, try convertedWeight.filled(from: weight)),
                                              (DNNL_ARG_BIAS, bias), (DNNL_ARG_DST, output)])
    }

    /// `dOutput` is plain (N, out) and is overwritten (fused ReLU's backward runs in place).
    package func backward(input: DeviceTensor, dOutput: DeviceTensor) throws {
        guard let backwardData, let dInput, !gradientBlocks.isEmpty else { throw LayerError.notTraining(name) }
        try reluBackward?.run(output: output, dOutput: dOutput, dInput: dOutput)
        let dy = try gradient.filled(from: dOutput)
        let w = try convertedWeight.filled(from: weight)
        // The bf16 copy of the input is this step's: forward made it.
        for block in gradientBlocks { try block.run(source: source.tensor(for: input), dOutput: dy, engine: engine) }
        try backwardData.execute(engine, [(DNNL_ARG_DIFF_DST, dy), (DNNL_ARG_WEIGHTS, w), (DNNL_ARG_DIFF_SRC, dInput)])
    }
}

/// Rows start..<start+rows of an inner product's weight gradient (and those entries of its bias
/// gradient): ∂W[rows] = ∂y[:, rows]ᵀ · x. Where the parameter store keeps float32 gradients, one
/// block of all the rows writes them directly. Where it keeps bfloat16, the primitive still
/// writes float32 (a bfloat16 output would accumulate in a float32 scratchpad of the whole
/// matrix, fc6's 151 MB, outside the network's memory plan), into a block buffer of at most
/// 16 MB shared by the blocks, each block then converted into its rows of the store.
struct GradientBlock {
    let primitive: Primitive
    /// The forward primitive of the block's shape it was created with: oneDNN's backward
    /// primitive descriptors keep a pointer to it, so it lives as long as they do.
    let hint: Primitive
    /// ∂output's columns for the block, where it is not all of them: their window in (N, out),
    /// a plain copy of them (in the shared buffer), and the reorder between.
    let columns: (window: TensorLayout, copy: DeviceTensor, reorder: Reorder)?
    /// The block's gradients as the primitive writes them (float32, in the shared buffers) and
    /// the conversions into the store's rows; nil where the primitive writes those directly.
    let written: (weight: DeviceTensor, bias: DeviceTensor, toWeight: Reorder, toBias: Reorder)?
    /// The store's rows of ∂weight and entries of ∂bias.
    let weightRows: DeviceTensor, biasRows: DeviceTensor
    /// The shared buffers the views above are in (they own the memory, or their place in the
    /// network's arena).
    let shared: [DeviceTensor]

    static let blockBytes = 16 << 20

    /// The blocks of a layer on `source` (N, in) with ∂output of `gradient` (N, out).
    static func blocks(name: String, source: TensorLayout, gradient: TensorLayout, dWeight: DeviceTensor, dBias: DeviceTensor,
                       forward: Primitive, engine: Engine) throws -> [GradientBlock] {
        let (batch, inFeatures, outFeatures) = (source.dims[0], source.dims[1], gradient.dims[1])
        let converting = dWeight.layout.precision != .fp32
        let count = converting ? max(1, (outFeatures * inFeatures * 4 + blockBytes - 1) / blockBytes) : 1
        let perBlock = (outFeatures + count - 1) / count
        let sharedWeight = converting ? try DeviceTensor(try .plain([perBlock, inFeatures]), engine: engine, lifetime: .backwardScratch) : nil
        let sharedBias = converting ? try DeviceTensor(try .plain([perBlock]), engine: engine, lifetime: .backwardScratch) : nil
        let sharedColumns = perBlock < outFeatures
            ? try DeviceTensor(try TensorLayout([batch, perBlock], .plain, gradient.precision), engine: engine, lifetime: .backwardScratch) : nil
        let elementBytes = dWeight.layout.precision == .fp32 ? 4 : 2
        var hints: [Int: Primitive] = [outFeatures: forward]
        return try stride(from: 0, to: outFeatures, by: perBlock).map { start in
            let rows = min(perBlock, outFeatures - start)
            let what = rows == outFeatures ? "\(name) backward weights" : "\(name) backward weights, rows \(start)..<\(start + rows)"
            let wLayout = try TensorLayout.plain([rows, inFeatures]), bLayout = try TensorLayout.plain([rows])
            let dyLayout = try TensorLayout([batch, rows], .plain, gradient.precision)
            var src = source.md, dW = wLayout.md, dB = bLayout.md, dy = dyLayout.md
            // oneDNN's backward descriptors take a forward one of the same shape as a hint.
            if hints[rows] == nil {
                var w = try TensorLayout([rows, inFeatures], .plain, source.precision).md, dst = try TensorLayout.plain([batch, rows]).md
                var fd = dnnl_inner_product_desc_t()
                try check(dnnl_inner_product_forward_desc_init(&fd, dnnl_forward_training, &src, &w, &dB, &dst),
                          "dnnl_inner_product_forward_desc_init", "describing the forward pass of \(what)")
                hints[rows] = try Primitive(&fd, name: "\(what) (hint)", engine: engine)
            }
            var wd = dnnl_inner_product_desc_t()
            try check(dnnl_inner_product_backward_weights_desc_init(&wd, &src, &dW, &dB, &dy),
                      "dnnl_inner_product_backward_weights_desc_init", "describing \(what)")
            let hint = hints[rows]!
            let primitive = try Primitive(&wd, name: what, engine: engine, hint: hint)
            let columns = try sharedColumns.map { shared in
                let window = try gradient.window([batch, rows], at: [0, start])
                let copy = try shared.view(dyLayout)
                return (window, copy, try Reorder(from: window, to: dyLayout, engine: engine, name: "\(what): ∂output's columns"))
            }
            let weightRows = try DeviceTensor(try TensorLayout([rows, inFeatures], .plain, dWeight.layout.precision), engine: engine,
                                              borrowing: dWeight.raw + start * inFeatures * elementBytes)
            let biasRows = try DeviceTensor(try TensorLayout([rows], .plain, dBias.layout.precision), engine: engine,
                                            borrowing: dBias.raw + start * elementBytes)
            let written = try sharedWeight.map { shared in
                (try shared.view(wLayout), try sharedBias!.view(bLayout),
                 try Reorder(from: wLayout, to: weightRows.layout, engine: engine, name: "\(what): conversion"),
                 try Reorder(from: bLayout, to: biasRows.layout, engine: engine, name: "\(what): bias conversion"))
            }
            return GradientBlock(primitive: primitive, hint: hint, columns: columns, written: written, weightRows: weightRows, biasRows: biasRows,
                                 shared: [sharedWeight, sharedBias, sharedColumns].compactMap { $0 })
        }
    }

    /// The block's rows from `source` (N, in) and ∂output (N, out), in the primitives' type.
    func run(source: DeviceTensor, dOutput: DeviceTensor, engine: Engine) throws {
        var dy = dOutput
        if let columns {
            try columns.reorder.run(from: try DeviceTensor(columns.window, engine: engine, borrowing: dOutput.raw), to: columns.copy)
            dy = columns.copy
        }
        try primitive.execute(engine, [(DNNL_ARG_SRC, source), (DNNL_ARG_DIFF_DST, dy),
                                       (DNNL_ARG_DIFF_WEIGHTS, written?.weight ?? weightRows), (DNNL_ARG_DIFF_BIAS, written?.bias ?? biasRows)])
        if let written {
            try written.toWeight.run(from: written.weight, to: weightRows)
            try written.toBias.run(from: written.bias, to: biasRows)
        }
    }
}

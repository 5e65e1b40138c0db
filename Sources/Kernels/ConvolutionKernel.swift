import CDNNL

/// A 2-D convolution with bias and an optional fused ReLU on oneDNN, forward and backward.
///
/// oneDNN picks the layouts of the output and of its private weight copies (`format_tag_any`);
/// the parameters stay plain (PyTorch's OIHW, views into the `ParameterStore`) and are reordered
/// into those copies each pass, which costs little beside the convolution.
///
/// Where oneDNN has only a GEMM for the convolution as asked, but a direct JIT kernel for the
/// same convolution on an input zero-padded beforehand, the padding is done here instead: its
/// AVX2 kernels refuse padding for kernels wider than 7 at a stride above 1, which is conv1
/// (11×11, stride 4, pad 5). The input is then copied into the interior of a buffer
/// with a zero border, and the convolution runs unpadded on it: the same sums, by a JIT kernel
/// instead of a GEMM.
///
/// Where oneDNN's convolution is on nChw8c, nChw16c or nhwc (its AVX2 kernels, its AVX-512
/// ones for training and for inference) and the layer is a 3×3 at stride 1 with padding 1
/// (conv3–conv5) or a 5×5 with padding 2 (conv2), `WinogradKernel` computes every pass in its
/// place, with 2.25× to 6.25× fewer multiplies, where the layer is wide enough for that to pay.
///
/// In bf16 (`Precision`) the convolution reads and writes bfloat16 activations: its output and
/// ∂input are bfloat16 (so LRN, pooling and the next convolution run on bfloat16 too, and what
/// backward keeps of them is half the size), the weights become bfloat16 copies, and ∂weight and
/// ∂bias, accumulated in float32, are written in the parameter store's gradient type (bfloat16
/// for a bf16 run, converted from the primitive's float32). A float32 input (the network's
/// images) is converted by the same reorder that changes its layout. Where Winograd's algorithms
/// apply to a bf16 layer (`WinogradKernel`), they read and write its bfloat16 activations and
/// compute in float32.
package final class ConvolutionKernel {
    /// What to compute: the layer's geometry, in plain terms.
    package struct Description {
        package var weightShape: [Int]
        package var outputDims: [Int]
        package var stride: Int, padding: Int
        package var fusedReLU: Bool
        package var training: Bool
        /// Whether backward computes ∂x (not for the network's first layer).
        package var inputGradient: Bool
        package var precision: Precision = .fp32

        package init(weightShape: [Int], outputDims: [Int], stride: Int, padding: Int, fusedReLU: Bool, training: Bool,
                     inputGradient: Bool, precision: Precision = .fp32) {
            self.weightShape = weightShape; self.outputDims = outputDims; self.stride = stride; self.padding = padding
            self.fusedReLU = fusedReLU; self.training = training; self.inputGradient = inputGradient; self.precision = precision
        }
    }

    let name: String
    let engine: Engine
    package let output: DeviceTensor
    package let dInput: DeviceTensor?

    let forwardPrimitive: Primitive
    /// The input in the layout this convolution chose for it, where that is not the layout the
    /// previous layer produces (each layer gets oneDNN's best implementation for the ISA at
    /// hand instead of inheriting conv1's layout) or where it is padded explicitly (the input
    /// in the interior of a buffer with a zero border); ∂input likewise, the other way.
    let source: Staged, chosenDInput: Staged
    /// Where the implementation writes a plain output (a GEMM, where no JIT kernel takes the
    /// convolution even padded beforehand) while the layers after it have JIT kernels only for
    /// a blocked one: the plain result, reordered into the blocked `output`.
    let writtenOutput: Staged
    /// ∂output as the backward primitives read it, where that is not `output`'s layout and
    /// type: the written (plain) layout, or a bf16 copy.
    let gradient: Staged
    let weight: DeviceTensor, bias: DeviceTensor, dWeight: DeviceTensor?, dBias: DeviceTensor?
    /// The weights and their gradients in the layouts (and types) the primitives chose.
    let forwardWeight: Staged, backwardDataWeight: Staged, chosenDWeight: Staged, chosenDBias: Staged

    let backwardData: Primitive?
    let backwardWeights: Primitive?
    let reluBackward: ReLUBackward?
    let fusedReLU: Bool
    /// Whether backward reads the layer's input itself (not a copy of it), or its output (a
    /// fused ReLU's mask): a network's memory plan keeps those alive until then.
    package var readsInputInBackward: Bool { source.buffer == nil }
    package var readsOutputInBackward: Bool { fusedReLU }
    /// Runs every pass instead of the primitives when set (which still choose the layouts).
    let winograd: WinogradKernel?

    package var implementations: Implementations {
        var passes = passImplementations([("forward", forwardPrimitive), ("backward data", backwardData), ("backward weights", backwardWeights)])
        if let winograd { passes = passes.map { ($0.pass, winograd.implementation) } }
        return passes
    }

    /// Throws `PrecisionError` for bf16 on a CPU without native bf16 instructions.
    package init(name: String, _ d: Description, input: TensorLayout, parameters: ParameterViews, engine: Engine) throws {
        try CPUCapabilities.check(d.precision)
        self.name = name
        self.engine = engine
        let outDims = d.outputDims
        let plainWeight = try TensorLayout(d.weightShape, .plain)
        let plainBias = try TensorLayout([d.weightShape[0]], .plain)
        weight = try DeviceTensor(plainWeight, engine: engine, borrowing: parameters.weight)
        bias = try DeviceTensor(plainBias, engine: engine, borrowing: parameters.bias)

        let gradients: (weight: UnsafeMutableRawPointer, bias: UnsafeMutableRawPointer)?
        if d.training, let w = parameters.dWeight, let b = parameters.dBias { gradients = (w, b) } else { gradients = nil }
        let asAsked = try Passes(name: name, d, sourceDims: input.dims, padding: d.padding, backward: gradients != nil, engine: engine)
        var chosen = asAsked
        if asAsked.ranks[0] < Passes.jit, d.padding > 0 {
            // Zeros after the input up to the extent the last output reads (not always `padding`:
            // conv1 reads 2 of its 5), so that the unpadded convolution has the same output size.
            let end = (2...3).map { i in max(0, (outDims[i] - 1) * d.stride + d.weightShape[i] - d.padding - input.dims[i]) }
            let padded = Array(input.dims[0...1]) + (2...3).map { i in d.padding + input.dims[i] + end[i - 2] }
            let candidate = try Passes(name: name, d, sourceDims: padded, padding: 0, backward: gradients != nil, engine: engine)
            // Only where no pass gets worse: with 3 input channels the backward-data pass padded
            // is a reference loop, against a GEMM as asked.
            if candidate.ranks[0] > asAsked.ranks[0] && candidate.ranks.elementsEqual(asAsked.ranks, by: >=) {
                chosen = candidate
                chosen.explicitPadding = (d.padding, end)
            }
        }
        forwardPrimitive = chosen.forward
        let explicitPadding = chosen.explicitPadding
        let chosenSource = forwardPrimitive.desc(dnnl_query_src_md)
        // Where the input (or ∂input) sits in a buffer of `layout`: all of it, or its interior.
        func interior(of layout: TensorLayout) throws -> TensorLayout {
            guard let explicitPadding else { return layout }
            return try layout.window(input.dims, at: [0, 0, explicitPadding.begin, explicitPadding.begin])
        }
        // A zero border is written once, so that copy keeps its own memory; backward's weight
        // gradient reads this step's copy again.
        source = try Staged(reading: chosenSource, window: explicitPadding == nil ? nil : try interior(of: chosenSource), from: input,
                            lifetime: explicitPadding != nil ? .persistent : gradients != nil ? .saved : .forwardScratch,
                            engine: engine, name: explicitPadding == nil ? "\(name) input reorder" : "\(name) input padding")
        let written = forwardPrimitive.desc(dnnl_query_dst_md)
        let preferred = try Self.preferredLayout(outDims, engine: engine)
        output = try DeviceTensor(written.isPlain ? preferred : written, engine: engine, lifetime: .output)
        writtenOutput = try Staged(writing: written, into: output.layout, lifetime: .forwardScratch, engine: engine,
                                   name: "\(name) output reorder")
        fusedReLU = d.fusedReLU
        if explicitPadding == nil, writtenOutput.buffer == nil,
           let choice = WinogradKernel.algorithm(weightShape: d.weightShape, stride: d.stride, padding: d.padding,
                                                 precision: d.precision, training: gradients != nil, source: chosenSource,
                                                 output: output.layout) {
            winograd = try WinogradKernel(choice.algorithm, blocks: choice.blocks, weightShape: d.weightShape, inputDims: input.dims,
                                      training: gradients != nil, inputGradient: d.inputGradient, precision: d.precision,
                                      engine: engine)
        } else {
            winograd = nil
        }
        // Winograd reads the plain weights and writes the plain weight gradient: it needs none
        // of the primitives' copies of them. Backward data may read forward's copy of the
        // weights (when it wants the same layout).
        let primitivesRun = winograd == nil
        forwardWeight = primitivesRun ? try Staged(reading: forwardPrimitive.desc(dnnl_query_weights_md), from: weight.layout,
                                                   lifetime: gradients != nil ? .saved : .forwardScratch, engine: engine,
                                                   name: "\(name) weight reorder") : .direct

        guard let gradients, let bw = chosen.backwardWeights else {
            (dInput, dWeight, dBias, backwardData, backwardWeights, reluBackward) = (nil, nil, nil, nil, nil, nil)
            (backwardDataWeight, chosenDWeight, chosenDBias, chosenDInput, gradient) = (.direct, .direct, .direct, .direct, .direct)
            return
        }
        let dWeight = try DeviceTensor(try parameters.gradientLayout(d.weightShape), engine: engine, borrowing: gradients.weight)
        let dBias = try DeviceTensor(try parameters.gradientLayout([d.weightShape[0]]), engine: engine, borrowing: gradients.bias)
        (self.dWeight, self.dBias) = (dWeight, dBias)
        let gradientLayout = bw.desc(dnnl_query_diff_dst_md)
        reluBackward = d.fusedReLU ? try ReLUBackward(name: name, layout: output.layout, engine: engine) : nil
        gradient = try Staged(reading: gradientLayout, from: output.layout, lifetime: .backwardScratch, engine: engine,
                              name: "\(name) output-gradient reorder")
        backwardWeights = bw
        chosenDWeight = primitivesRun ? try Staged(writing: bw.desc(dnnl_query_diff_weights_md), into: dWeight.layout,
                                                   lifetime: .backwardScratch, engine: engine,
                                                   name: "\(name) weight-gradient reorder") : .direct
        chosenDBias = primitivesRun ? try Staged(writing: bw.desc(dnnl_query_diff_weights_md, 1), into: dBias.layout,
                                                 lifetime: .backwardScratch, engine: engine,
                                                 name: "\(name) bias-gradient conversion") : .direct

        if let bd = chosen.backwardData {
            backwardData = bd
            let dSource = bd.desc(dnnl_query_diff_src_md)
            let dIn = try DeviceTensor(input, engine: engine, lifetime: .inputGradient)
            dInput = dIn
            chosenDInput = try Staged(writing: dSource, window: explicitPadding == nil ? nil : try interior(of: dSource), into: input,
                                      lifetime: .backwardScratch, engine: engine, name: "\(name) input-gradient reorder")
            let wanted = bd.desc(dnnl_query_weights_md)
            backwardDataWeight = !primitivesRun ? .direct
                : wanted == forwardWeight.layout(around: weight.layout) ? forwardWeight.alreadyFilled
                : try Staged(reading: wanted, from: weight.layout, lifetime: .backwardScratch, engine: engine,
                             name: "\(name) backward weight reorder")
        } else {
            (backwardData, dInput, backwardDataWeight, chosenDInput) = (nil, nil, .direct, .direct)
        }
    }

    /// The primitives of one way to run the convolution (on the input as it is, or padded
    /// beforehand), made together so that the two ways can be compared pass by pass.
    private struct Passes {
        let forward: Primitive
        let backwardWeights: Primitive?
        let backwardData: Primitive?
        /// The zeros before and after each spatial dim, when the input is padded beforehand.
        var explicitPadding: (begin: Int, end: [Int])?

        /// A direct JIT kernel, a GEMM, a reference loop: how oneDNN's implementation names rank.
        static let jit = 2
        static func rank(_ p: Primitive) -> Int {
            let name = p.implementation
            return name.contains("ref") ? 0 : name.contains("gemm") ? 1 : jit
        }
        /// Forward's first, then those of the backward passes made.
        var ranks: [Int] { [forward, backwardWeights, backwardData].compactMap { $0.map(Self.rank) } }

        /// The forward primitive on an input of `sourceDims` padded by `padding`, and the
        /// backward ones (`backward`: weight gradient, and ∂input if `d.inputGradient`) on the
        /// layouts it chose: its input, and its output as ∂output in `d.precision` (ReLU's
        /// backward writes ∂output in the output's layout; a reorder converts it if needed).
        init(name: String, _ d: Description, sourceDims: [Int], padding: Int, backward: Bool, engine: Engine) throws {
            // The activations in the engine's layout if it has one, else as oneDNN chooses.
            let activations = engine.activationLayout?.kind ?? .any
            var src = try TensorLayout(sourceDims, activations, d.precision).md
            var anyWeight = try TensorLayout(d.weightShape, .any, d.precision).md
            var biasMD = try TensorLayout([d.weightShape[0]], .plain).md
            var dst = try TensorLayout(d.outputDims, activations, d.precision).md
            let strides = [d.stride, d.stride], pads = [padding, padding]
            var fd = dnnl_convolution_desc_t()
            try withDims(strides) { s in try withDims(pads) { p in
                try check(dnnl_convolution_forward_desc_init(&fd, d.training ? dnnl_forward_training : dnnl_forward_inference,
                                                             dnnl_convolution_direct, &src, &anyWeight, &biasMD, &dst, s, p, p),
                          "dnnl_convolution_forward_desc_init", "describing \(name) on \(sourceDims)")
            } }
            let forward = try Primitive(&fd, name: "\(name) forward", engine: engine, attr: try Attributes(fusedReLU: d.fusedReLU))
            self.forward = forward
            guard backward else { (backwardWeights, backwardData) = (nil, nil); return }
            let chosenSource = forward.desc(dnnl_query_src_md)
            src = chosenSource.md
            dst = forward.desc(dnnl_query_dst_md).converted(to: d.precision).md
            var anyDWeight = try TensorLayout(d.weightShape, .any).md
            var wd = dnnl_convolution_desc_t()
            try withDims(strides) { s in try withDims(pads) { p in
                try check(dnnl_convolution_backward_weights_desc_init(&wd, dnnl_convolution_direct, &src, &anyDWeight, &biasMD,
                                                                      &dst, s, p, p),
                          "dnnl_convolution_backward_weights_desc_init", "describing \(name)'s weight gradient")
            } }
            backwardWeights = try Primitive(&wd, name: "\(name) backward weights", engine: engine, hint: forward)
            guard d.inputGradient else { backwardData = nil; return }
            // ∂input in the chosen source layout and type.
            var diffSrc = chosenSource.md
            var dd = dnnl_convolution_desc_t()
            try withDims(strides) { s in try withDims(pads) { p in
                try check(dnnl_convolution_backward_data_desc_init(&dd, dnnl_convolution_direct, &diffSrc, &anyWeight, &dst, s, p, p),
                          "dnnl_convolution_backward_data_desc_init", "describing \(name)'s input gradient")
            } }
            backwardData = try Primitive(&dd, name: "\(name) backward data", engine: engine, hint: forward)
        }
    }

    /// The layout a JIT convolution reading a tensor of `dims` would choose for it: what the
    /// layers after a convolution run fastest on, whatever the ISA (nChw8c with AVX2, nChw16c
    /// with AVX-512).
    static func preferredLayout(_ dims: [Int], engine: Engine) throws -> TensorLayout {
        var src = try TensorLayout(dims, .any).md
        var w = try TensorLayout([dims[1], dims[1], 3, 3], .any).md
        var dst = try TensorLayout(dims, .any).md
        var fd = dnnl_convolution_desc_t()
        try withDims([1, 1]) { s in try withDims([1, 1]) { p in
            try check(dnnl_convolution_forward_desc_init(&fd, dnnl_forward_inference, dnnl_convolution_direct, &src, &w, nil, &dst, s, p, p),
                      "dnnl_convolution_forward_desc_init", "probing the preferred layout of \(dims)")
        } }
        return try Primitive(&fd, name: "layout probe", engine: engine).desc(dnnl_query_src_md)
    }

    package func forward(_ input: DeviceTensor) throws {
        let x = try source.filled(from: input)
        if let winograd {
            return try winograd.forward(x: x, weight: weight, bias: bias, relu: fusedReLU, y: output, engine: engine)
        }
        try forwardPrimitive.execute(engine, [(DNNL_ARG_SRC, x), (DNNL_ARG_WEIGHTS, try forwardWeight.filled(from: weight)),
                                              (DNNL_ARG_BIAS, bias), (DNNL_ARG_DST, writtenOutput.tensor(for: output))])
        try writtenOutput.flush(into: output)
    }

    /// `dOutput` is in `output`'s layout and is overwritten (fused ReLU's backward runs in place).
    /// The staged input is this step's: forward filled it.
    package func backward(input: DeviceTensor, dOutput: DeviceTensor) throws {
        guard let backwardWeights, let dWeight, let dBias else { throw LayerError.notTraining(name) }
        try reluBackward?.run(output: output, dOutput: dOutput, dInput: dOutput)
        let x = source.tensor(for: input)
        let dy = try gradient.filled(from: dOutput)
        if let winograd {
            try winograd.backwardWeights(x: x, dOutput: dy, dWeight: dWeight, dBias: dBias, engine: engine)
        } else {
            try backwardWeights.execute(engine, [(DNNL_ARG_SRC, x), (DNNL_ARG_DIFF_DST, dy),
                                                 (DNNL_ARG_DIFF_WEIGHTS, chosenDWeight.tensor(for: dWeight)),
                                                 (DNNL_ARG_DIFF_BIAS, chosenDBias.tensor(for: dBias))])
            try chosenDWeight.flush(into: dWeight)
            try chosenDBias.flush(into: dBias)
        }
        guard let dInput else { return }
        let dx = chosenDInput.tensor(for: dInput)
        if let winograd {
            try winograd.backwardData(dOutput: dy, weight: weight, dInput: dx, engine: engine)
        } else if let backwardData {
            try backwardData.execute(engine, [(DNNL_ARG_DIFF_DST, dy), (DNNL_ARG_WEIGHTS, try backwardDataWeight.filled(from: weight)),
                                              (DNNL_ARG_DIFF_SRC, dx)])
        }
        try chosenDInput.flush(into: dInput)
    }
}

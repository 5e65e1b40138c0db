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
/// ∂bias stay float32 for the float32 master weights (oneDNN's bf16 kernels accumulate in
/// float32). A float32 input (the network's images) is converted by the same reorder that
/// changes its layout. Where Winograd's algorithms apply to a bf16 layer (`WinogradKernel`), they
/// compute in float32 on float32 twins of its bfloat16 tensors, converted on the way in and out
/// (`Float32Twin`).
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
    /// The input in the layout this convolution chose for it, when that is not the layout the
    /// previous layer produces (each layer gets oneDNN's best implementation for the ISA at
    /// hand instead of inheriting conv1's layout) or when it is padded explicitly, and the
    /// reorders into it and, for the gradient, back.
    let sourceCopy: DeviceTensor?
    let sourceReorder: Reorder?
    let chosenDInput: DeviceTensor?
    let dInputReorder: Reorder?
    /// With explicit padding, the interiors of `sourceCopy` and `chosenDInput` (views into them,
    /// inside the zero border) that the two reorders write and read.
    let sourceInterior: DeviceTensor?
    let dInputInterior: DeviceTensor?
    /// When the implementation writes a plain output (a GEMM, where no JIT kernel takes the
    /// convolution even padded beforehand) while the layers after it have JIT kernels only for a
    /// blocked one, the plain result and the reorder to the blocked `output`.
    let plainOutput: DeviceTensor?
    let outputReorder: Reorder?
    /// ∂output as the backward primitives read it, when that is not `output`'s layout and type:
    /// the written (plain) layout, or a bf16 copy, and the reorder into it.
    let gradientCopy: DeviceTensor?
    let gradientReorder: Reorder?
    let weight: DeviceTensor, bias: DeviceTensor, dWeight: DeviceTensor?, dBias: DeviceTensor?
    let forwardWeight: DeviceTensor
    let forwardWeightReorder: Reorder?

    let backwardData: Primitive?
    let backwardDataWeight: DeviceTensor?
    let backwardDataWeightReorder: Reorder?
    let backwardWeights: Primitive?
    let chosenDWeight: DeviceTensor?
    let dWeightReorder: Reorder?
    let reluBackward: ReLUBackward?
    let fusedReLU: Bool
    /// Whether backward reads the layer's input itself (not a copy of it), or its output (a
    /// fused ReLU's mask): a network's memory plan keeps those alive until then.
    package var readsInputInBackward: Bool { sourceCopy == nil }
    package var readsOutputInBackward: Bool { fusedReLU }
    /// Runs every pass instead of the primitives when set (which still choose the layouts).
    let winograd: WinogradKernel?
    /// In bf16 with `winograd`: float32 twins of its input, output, ∂output and ∂input.
    let winogradInput: Float32Twin?, winogradOutput: Float32Twin?
    let winogradGradient: Float32Twin?, winogradInputGradient: Float32Twin?

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

        let gradients: (weight: UnsafeMutablePointer<Float>, bias: UnsafeMutablePointer<Float>)?
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
        let sourceWindow = try interior(of: chosenSource)
        if sourceWindow == input {
            (sourceCopy, sourceReorder, sourceInterior) = (nil, nil, nil)
        } else {
            // A zero border is written once, so that copy keeps its own memory; backward's
            // weight gradient reads this step's copy again.
            let lifetime: BufferLifetime = explicitPadding != nil ? .persistent : gradients != nil ? .saved : .forwardScratch
            let copy = try DeviceTensor(chosenSource, engine: engine, lifetime: lifetime)
            sourceCopy = copy
            sourceInterior = explicitPadding == nil ? nil : try copy.view(sourceWindow)
            sourceReorder = try Reorder(from: input, to: sourceWindow, engine: engine,
                                        name: explicitPadding == nil ? "\(name) input reorder" : "\(name) input padding")
        }
        let written = forwardPrimitive.desc(dnnl_query_dst_md)
        let preferred = try Self.preferredLayout(outDims, engine: engine)
        if written.isPlain && preferred != written {
            plainOutput = try DeviceTensor(written, engine: engine, lifetime: .forwardScratch)
            output = try DeviceTensor(preferred, engine: engine, lifetime: .output)
            outputReorder = try Reorder(from: written, to: preferred, engine: engine, name: "\(name) output reorder")
        } else {
            output = try DeviceTensor(written, engine: engine, lifetime: .output)
            (plainOutput, outputReorder) = (nil, nil)
        }
        // Backward data may read forward's copy of the weights (when it wants the same layout).
        (forwardWeight, forwardWeightReorder) = try Self.copy(of: weight, as: forwardPrimitive.desc(dnnl_query_weights_md),
                                                              engine: engine, name: "\(name) weight reorder",
                                                              lifetime: gradients != nil ? .saved : .forwardScratch)
        fusedReLU = d.fusedReLU
        if explicitPadding == nil, plainOutput == nil,
           let choice = WinogradKernel.algorithm(weightShape: d.weightShape, stride: d.stride, padding: d.padding,
                                                 precision: d.precision, source: chosenSource, output: output.layout) {
            winograd = try WinogradKernel(choice.algorithm, blocks: choice.blocks, weightShape: d.weightShape, inputDims: input.dims,
                                      training: gradients != nil, inputGradient: d.inputGradient, engine: engine)
        } else {
            winograd = nil
        }
        // Float32 twins of the bfloat16 tensors Winograd's float32 transforms read and write.
        let twins = winograd != nil && d.precision != .fp32
        func twin(_ layout: TensorLayout, _ lifetime: BufferLifetime, _ what: String) throws -> Float32Twin? {
            twins ? try Float32Twin(of: layout, lifetime: lifetime, engine: engine, name: "\(name) \(what)") : nil
        }
        winogradInput = try twin(chosenSource, gradients != nil ? .scratch : .forwardScratch, "input")
        winogradOutput = try twin(output.layout, .forwardScratch, "output")
        winogradGradient = try twin(output.layout, .backwardScratch, "output gradient")
        winogradInputGradient = gradients != nil && d.inputGradient ? try twin(chosenSource, .backwardScratch, "input gradient") : nil

        guard let gradients, let bw = chosen.backwardWeights else {
            (dInput, dWeight, dBias, backwardData, backwardDataWeight, backwardDataWeightReorder) = (nil, nil, nil, nil, nil, nil)
            (backwardWeights, chosenDWeight, dWeightReorder, reluBackward) = (nil, nil, nil, nil)
            (chosenDInput, dInputReorder, gradientCopy, gradientReorder, dInputInterior) = (nil, nil, nil, nil, nil)
            return
        }
        let dWeight = try DeviceTensor(plainWeight, engine: engine, borrowing: gradients.weight)
        self.dWeight = dWeight
        dBias = try DeviceTensor(plainBias, engine: engine, borrowing: gradients.bias)
        let gradientLayout = bw.desc(dnnl_query_diff_dst_md)
        reluBackward = d.fusedReLU ? try ReLUBackward(name: name, layout: output.layout, engine: engine) : nil
        if gradientLayout == output.layout {
            (gradientCopy, gradientReorder) = (nil, nil)
        } else {
            gradientCopy = try DeviceTensor(gradientLayout, engine: engine, lifetime: .backwardScratch)
            gradientReorder = try Reorder(from: output.layout, to: gradientLayout, engine: engine,
                                          name: "\(name) output-gradient reorder")
        }
        backwardWeights = bw
        let chosenGradient = bw.desc(dnnl_query_diff_weights_md)
        if chosenGradient == plainWeight {
            (chosenDWeight, dWeightReorder) = (dWeight, nil)
        } else {
            chosenDWeight = try DeviceTensor(chosenGradient, engine: engine, lifetime: .backwardScratch)
            dWeightReorder = try Reorder(from: chosenGradient, to: plainWeight, engine: engine, name: "\(name) weight-gradient reorder")
        }

        if let bd = chosen.backwardData {
            backwardData = bd
            let dSource = bd.desc(dnnl_query_diff_src_md)
            let dIn = try DeviceTensor(input, engine: engine, lifetime: .inputGradient)
            dInput = dIn
            let dSourceWindow = try interior(of: dSource)
            if dSourceWindow == input {
                (chosenDInput, dInputReorder, dInputInterior) = (dIn, nil, nil)
            } else {
                let chosen = try DeviceTensor(dSource, engine: engine, lifetime: .backwardScratch)
                chosenDInput = chosen
                dInputInterior = explicitPadding == nil ? nil : try chosen.view(dSourceWindow)
                dInputReorder = try Reorder(from: dSourceWindow, to: input, engine: engine, name: "\(name) input-gradient reorder")
            }
            let wanted = bd.desc(dnnl_query_weights_md)
            if wanted == forwardWeight.layout {
                (backwardDataWeight, backwardDataWeightReorder) = (forwardWeight, nil)
            } else {
                (backwardDataWeight, backwardDataWeightReorder) = try Self.copy(of: weight, as: wanted, engine: engine,
                                                                                name: "\(name) backward weight reorder",
                                                                                lifetime: .backwardScratch)
            }
        } else {
            (backwardData, dInput, backwardDataWeight, backwardDataWeightReorder) = (nil, nil, nil, nil)
            (chosenDInput, dInputReorder, dInputInterior) = (nil, nil, nil)
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

    /// `source` itself when it already has the layout, else a new buffer and the reorder into it.
    static func copy(of source: DeviceTensor, as layout: TensorLayout, engine: Engine, name: String,
                     lifetime: BufferLifetime) throws -> (DeviceTensor, Reorder?) {
        if layout == source.layout { return (source, nil) }
        return (try DeviceTensor(layout, engine: engine, lifetime: lifetime),
                try Reorder(from: source.layout, to: layout, engine: engine, name: name))
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

    /// The input as the primitives read it: reordered by `forward` into `sourceCopy` if needed.
    private func source(_ input: DeviceTensor) -> DeviceTensor { sourceCopy ?? input }

    package func forward(_ input: DeviceTensor) throws {
        if let sourceReorder, let sourceCopy { try sourceReorder.run(from: input, to: sourceInterior ?? sourceCopy) }
        if let winograd {
            let x = try winogradInput?.filled(from: source(input)) ?? source(input)
            try winograd.forward(x: x, weight: weight, bias: bias, relu: fusedReLU, y: winogradOutput?.tensor ?? output, engine: engine)
            try winogradOutput?.store(into: output)
            return
        }
        if let forwardWeightReorder { try forwardWeightReorder.run(from: weight, to: forwardWeight) }
        try forwardPrimitive.execute(engine, [(DNNL_ARG_SRC, source(input)), (DNNL_ARG_WEIGHTS, forwardWeight),
                                              (DNNL_ARG_BIAS, bias), (DNNL_ARG_DST, plainOutput ?? output)])
        if let outputReorder, let plainOutput { try outputReorder.run(from: plainOutput, to: output) }
    }

    /// `dOutput` is in `output`'s layout and is overwritten (fused ReLU's backward runs in place).
    package func backward(input: DeviceTensor, dOutput: DeviceTensor) throws {
        guard let backwardWeights, let chosenDWeight, let dWeight, let dBias else { throw LayerError.notTraining(name) }
        try reluBackward?.run(output: output, dOutput: dOutput, dInput: dOutput)
        var gradient = dOutput
        if let gradientReorder, let gradientCopy {
            try gradientReorder.run(from: dOutput, to: gradientCopy)
            gradient = gradientCopy
        }
        if let winograd {
            let x = try winogradInput?.filled(from: source(input)) ?? source(input)
            gradient = try winogradGradient?.filled(from: gradient) ?? gradient
            try winograd.backwardWeights(x: x, dOutput: gradient, dWeight: dWeight, dBias: dBias, engine: engine)
        } else {
            try backwardWeights.execute(engine, [(DNNL_ARG_SRC, source(input)), (DNNL_ARG_DIFF_DST, gradient),
                                                 (DNNL_ARG_DIFF_WEIGHTS, chosenDWeight), (DNNL_ARG_DIFF_BIAS, dBias)])
            if let dWeightReorder { try dWeightReorder.run(from: chosenDWeight, to: dWeight) }
        }
        if let winograd, let dInput, let chosenDInput {
            try winograd.backwardData(dOutput: gradient, weight: weight, dInput: winogradInputGradient?.tensor ?? chosenDInput,
                                      engine: engine)
            try winogradInputGradient?.store(into: chosenDInput)
            if let dInputReorder { try dInputReorder.run(from: dInputInterior ?? chosenDInput, to: dInput) }
        } else if let backwardData, let dInput, let chosenDInput, let backwardDataWeight {
            if let backwardDataWeightReorder { try backwardDataWeightReorder.run(from: weight, to: backwardDataWeight) }
            try backwardData.execute(engine, [(DNNL_ARG_DIFF_DST, gradient), (DNNL_ARG_WEIGHTS, backwardDataWeight),
                                              (DNNL_ARG_DIFF_SRC, chosenDInput)])
            if let dInputReorder { try dInputReorder.run(from: dInputInterior ?? chosenDInput, to: dInput) }
        }
    }
}

/// A float32 copy of a bfloat16 tensor in the same layout, for kernels that compute in float32
/// (`WinogradKernel`), and the conversions both ways.
final class Float32Twin {
    let tensor: DeviceTensor
    private let toFloat32: Reorder, fromFloat32: Reorder

    init(of layout: TensorLayout, lifetime: BufferLifetime, engine: Engine, name: String) throws {
        let f32 = layout.converted(to: .fp32)
        tensor = try DeviceTensor(f32, engine: engine, lifetime: lifetime)
        toFloat32 = try Reorder(from: layout, to: f32, engine: engine, name: "\(name) to float32")
        fromFloat32 = try Reorder(from: f32, to: layout, engine: engine, name: "\(name) to bfloat16")
    }

    /// The twin, filled from `source`.
    func filled(from source: DeviceTensor) throws -> DeviceTensor {
        try toFloat32.run(from: source, to: tensor)
        return tensor
    }

    /// Converts the twin's values into `destination`.
    func store(into destination: DeviceTensor) throws {
        try fromFloat32.run(from: tensor, to: destination)
    }
}

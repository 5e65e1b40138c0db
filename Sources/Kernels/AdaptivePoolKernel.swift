/// Adaptive average pooling (PyTorch's `AdaptiveAvgPool2d`), forward and backward. oneDNN 2.6 has
/// no adaptive pooling, and an adaptive pool's windows are not all the same size, so this kernel
/// runs plain loops over row-major (N, C, H, W) floats: one reorder brings x from the layout the
/// layer before chose, another takes ∂x back to it (none where that layout is plain). The
/// tensors are small (pool5's output), so the loops cost little.
///
/// Window i of an output side s over an input side h covers ⌊i·h/s⌋ ..< ⌈(i+1)·h/s⌉ (PyTorch's
/// rule: windows may overlap, and an input smaller than the output repeats values).
package final class AdaptivePoolKernel {
    let name: String
    let size: Int
    let inputDims: [Int]
    /// Plain (N, C, size, size).
    package let output: DeviceTensor
    /// In the input's layout.
    package let dInput: DeviceTensor?
    /// x and ∂x as plain floats, where the input is blocked.
    let plainInput: Staged, plainDInput: Staged
    let rows: [Range<Int>], columns: [Range<Int>]

    package init(name: String, input: TensorLayout, size: Int, training: Bool, engine: Engine) throws {
        let d = input.dims
        (self.name, self.size, inputDims) = (name, size, d)
        output = try DeviceTensor.plain([d[0], d[1], size, size], engine: engine, lifetime: .output)
        let plain = try TensorLayout.plain(d)
        // Backward reads neither x nor its copy, so the copy is forward's scratch.
        plainInput = try Staged(reading: plain, from: input, lifetime: .forwardScratch, engine: engine, name: "\(name) reorder")
        dInput = training ? try DeviceTensor(input, engine: engine, lifetime: .inputGradient) : nil
        plainDInput = training ? try Staged(writing: plain, into: input, lifetime: .backwardScratch, engine: engine,
                                            name: "\(name) backward reorder") : .direct
        rows = Self.windows(d[2], size)
        columns = Self.windows(d[3], size)
    }

    /// The input windows of each output position along one side.
    static func windows(_ input: Int, _ output: Int) -> [Range<Int>] {
        (0..<output).map { i in (i * input / output)..<(((i + 1) * input + output - 1) / output) }
    }

    package func forward(_ input: DeviceTensor) throws {
        let x = try plainInput.filled(from: input).pointer, y = output.pointer
        let (h, w, s) = (inputDims[2], inputDims[3], size)
        for plane in 0..<(inputDims[0] * inputDims[1]) {
            let xp = x + plane * h * w, yp = y + plane * s * s
            for (i, r) in rows.enumerated() {
                for (j, c) in columns.enumerated() {
                    var sum: Float = 0
                    for u in r { for v in c { sum += xp[u * w + v] } }
                    yp[i * s + j] = sum / Float(r.count * c.count)
                }
            }
        }
    }

    /// ∂x: each output gradient spread evenly over its window (overlapping windows add up).
    package func backward(dOutput: DeviceTensor) throws {
        guard let dInput else { throw LayerError.notTraining(name) }
        let dx = plainDInput.tensor(for: dInput).pointer, dy = dOutput.pointer
        let (h, w, s) = (inputDims[2], inputDims[3], size)
        dx.update(repeating: 0, count: inputDims.reduce(1, *))
        for plane in 0..<(inputDims[0] * inputDims[1]) {
            let dxp = dx + plane * h * w, dyp = dy + plane * s * s
            for (i, r) in rows.enumerated() {
                for (j, c) in columns.enumerated() {
                    let g = dyp[i * s + j] / Float(r.count * c.count)
                    for u in r { for v in c { dxp[u * w + v] += g } }
                }
            }
        }
        try plainDInput.flush(into: dInput)
    }
}

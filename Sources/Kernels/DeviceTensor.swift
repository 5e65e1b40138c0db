import AlexNetCore
import CDNNL

/// The backend-independent face of a tensor the kernels hold: its logical dims, and a physical
/// layout that only the backend understands (here a oneDNN memory descriptor: row-major, or the
/// channel-blocked layouts its JIT kernels prefer). Layers pass layouts from one to the next and
/// compare them; they never look inside.
public struct TensorLayout: Equatable, CustomStringConvertible {
    var md: dnnl_memory_desc_t
    /// (N, C, H, W), (N, F), (K, C, kh, kw) or (K): what the tensor means, whatever its layout.
    public let dims: [Int]

    init(_ md: dnnl_memory_desc_t) {
        self.md = md
        dims = withUnsafeBytes(of: md.dims) { raw in
            let p = raw.bindMemory(to: Int64.self)
            return (0..<Int(md.ndims)).map { Int(p[$0]) }
        }
    }

    /// Row-major (PyTorch's contiguous order); `any`: "let the primitive choose", which only
    /// primitive descriptors take and no buffer can have; NCHW with channels in blocks of 8 or
    /// 16 (oneDNN's nChw8c and nChw16c: [N][C/b][H][W][b], what its AVX2 and AVX-512
    /// convolutions choose for training); or channels last (nhwc, what its AVX-512 convolutions
    /// choose for inference). `WinogradKernel` computes on the last three.
    enum Kind { case plain, any, channelBlocked(Int), channelsLast }

    /// A descriptor for `dims` with float32 elements, or the elements of `precision`.
    init(_ dims: [Int], _ kind: Kind, _ precision: Precision = .fp32) throws {
        let plainTags = [dnnl_a, dnnl_ab, dnnl_abc, dnnl_abcd, dnnl_abcde, dnnl_abcdef]
        guard (1...plainTags.count).contains(dims.count) else {
            throw ShapeError(what: "a tensor", shape: dims, expected: "rank 1 to \(plainTags.count)")
        }
        guard dims.allSatisfy({ $0 > 0 }) else {
            throw ShapeError(what: "a tensor", shape: dims, expected: "positive dimensions")
        }
        let tag: dnnl_format_tag_t
        switch kind {
        case .plain: tag = plainTags[dims.count - 1]
        case .any: tag = dnnl_format_tag_any
        case .channelBlocked(let block):
            guard dims.count == 4 else { throw ShapeError(what: "a channel-blocked tensor", shape: dims, expected: "(N, C, H, W)") }
            switch block {
            case 8: tag = dnnl_nChw8c
            case 16: tag = dnnl_nChw16c
            default: throw ShapeError(what: "a tensor in channel blocks of \(block)", shape: dims, expected: "blocks of 8 or 16")
            }
        case .channelsLast:
            guard dims.count == 4 else { throw ShapeError(what: "a channels-last tensor", shape: dims, expected: "(N, C, H, W)") }
            tag = dnnl_acdb
        }
        var md = dnnl_memory_desc_t()
        try withDims(dims) { p in
            try check(dnnl_memory_desc_init_by_tag(&md, Int32(dims.count), p, precision.dataType, tag),
                      "dnnl_memory_desc_init_by_tag", "describing a tensor of shape \(dims)")
        }
        self.init(md)
    }

    /// The same layout (order, blocking, padding) with the elements of `precision`: strides count
    /// elements, not bytes, so only the element type changes.
    func converted(to precision: Precision) -> TensorLayout {
        var copy = md
        copy.data_type = precision.dataType
        return TensorLayout(copy)
    }

    /// The element type: bfloat16 for a bf16 network's activations, else float32.
    var precision: Precision { md.data_type == dnnl_bf16 ? .bf16 : .fp32 }

    /// The part of this layout of shape `dims` that starts at `offsets` (a oneDNN submemory): a
    /// view for reorders to write into or read from, when a tensor sits inside a zero border.
    func window(_ dims: [Int], at offsets: [Int]) throws -> TensorLayout {
        var parent = md, sub = dnnl_memory_desc_t()
        try withDims(dims) { d in try withDims(offsets) { o in
            try check(dnnl_memory_desc_init_submemory(&sub, &parent, d, o), "dnnl_memory_desc_init_submemory",
                      "describing the \(dims) window at \(offsets) of a tensor of shape \(self.dims)")
        } }
        return TensorLayout(sub)
    }

    /// Row-major float32: NCHW, NC, OIHW or X.
    public static func plain(_ dims: [Int]) throws -> TensorLayout { try TensorLayout(dims, .plain) }

    /// How many channels of a pixel lie side by side, when the layout is float32 [N][C/b][H][W][b]:
    /// 8 for nChw8c, 16 for nChw16c, C for nhwc; nil for any other layout.
    var channelBlock: Int? {
        guard dims.count == 4 else { return nil }
        let candidates: [(Kind, Int)] = [(.channelBlocked(8), 8), (.channelBlocked(16), 16), (.channelsLast, dims[1])]
        return candidates.first { kind, _ in (try? TensorLayout(dims, kind)) == self }?.1
    }

    /// Whether the floats are in row-major order, so plain Swift can read them in place.
    public var isPlain: Bool {
        guard let plain = try? TensorLayout(dims, .plain) else { return false }
        return plain == self
    }

    /// Bytes the layout needs (blocked layouts pad channels up to the block).
    var bytes: Int { withUnsafePointer(to: md) { dnnl_memory_desc_get_size($0) } }

    public static func == (a: TensorLayout, b: TensorLayout) -> Bool {
        withUnsafePointer(to: a.md) { pa in withUnsafePointer(to: b.md) { pb in dnnl_memory_desc_equal(pa, pb) != 0 } }
    }

    public var description: String {
        "\(dims)" + (isPlain ? "" : md.data_type == dnnl_f32 ? " (blocked)" : md.data_type == dnnl_bf16 ? " (bf16)" : " (other type)")
    }
}

/// A plain-row-major operation asked of a tensor in a blocked layout.
public struct LayoutError: DescribedError {
    public let operation: String
    public let layout: TensorLayout
    public var description: String {
        "\(operation): the tensor of shape \(layout.dims) is in a blocked layout, not plain row-major (read it with `read()`)"
    }
}

/// A tensor in the backend's memory: a oneDNN memory object over a 64-byte aligned buffer this
/// side owns, or over one it borrows (a parameter's view into a `ParameterStore`, a loader's
/// batch). What layers hand each other, and what callers read and fill through plain `Tensor`s.
public final class DeviceTensor {
    public let layout: TensorLayout
    /// Computed once: `plainFloats` and `bind` run every step.
    public let isPlain: Bool
    let engine: Engine
    let handle: dnnl_memory_t
    /// The owned storage, if any; borrowed views and tensors placed in a network's arena keep
    /// `nil` here.
    let storage: FloatBuffer?
    /// Tensors that read this one's memory through another layout (a window inside a zero
    /// border, a flattened view): moved with it when it is placed in an arena.
    private var views: [(tensor: DeviceTensor, offset: Int)] = []

    public var dims: [Int] { layout.dims }

    /// A zeroed tensor in `layout` (one a layer's output reported, or `TensorLayout.plain`).
    /// While a network is being built (`Engine.recorder` set), a tensor of any lifetime but
    /// `persistent` gets no memory here: the network places it in its arena once every layer has
    /// said what it needs, and until then it must not be read or written.
    public convenience init(_ layout: TensorLayout, engine: Engine, lifetime: BufferLifetime = .persistent) throws {
        if lifetime != .persistent, let recorder = engine.recorder {
            try self.init(layout, engine: engine, storage: nil, data: nil)
            recorder.record(self, bytes: layout.bytes, lifetime: lifetime)
            return
        }
        let buffer = try FloatBuffer(count: (layout.bytes + 3) / 4, for: "a \(layout.dims) tensor")
        try self.init(layout, engine: engine, storage: buffer, data: buffer.pointer)
    }

    /// A view of floats that live elsewhere, in `layout`; the caller keeps them alive.
    convenience init(_ layout: TensorLayout, engine: Engine, borrowing pointer: UnsafeMutablePointer<Float>) throws {
        try self.init(layout, engine: engine, storage: nil, data: pointer)
    }

    /// A view of numbers of `layout`'s type (float32 or bfloat16) that live elsewhere.
    convenience init(_ layout: TensorLayout, engine: Engine, borrowing raw: UnsafeMutableRawPointer) throws {
        try self.init(layout, engine: engine, storage: nil, data: raw.assumingMemoryBound(to: Float.self))
    }

    /// This tensor's memory seen through `layout` (which may be a submemory window of it, or
    /// other dims over the same bytes), starting `offset` floats in; it follows this tensor
    /// when the network places it in its arena.
    func view(_ layout: TensorLayout, offset: Int = 0) throws -> DeviceTensor {
        let v = try DeviceTensor(layout, engine: engine, storage: nil, data: data.map { $0 + offset })
        views.append((v, offset))
        return v
    }

    private init(_ layout: TensorLayout, engine: Engine, storage: FloatBuffer?, data: UnsafeMutablePointer<Float>?) throws {
        self.layout = layout
        self.engine = engine
        self.storage = storage
        isPlain = layout.isPlain
        var h: dnnl_memory_t?
        var md = layout.md
        try check(dnnl_memory_create(&h, &md, engine.engine, data), "dnnl_memory_create",
                  storage == nil ? "wrapping a tensor of shape \(layout.dims)" : "allocating a tensor of shape \(layout.dims)")
        handle = h!
    }

    /// A tensor without memory, outside any arena: its owner gives it some (`place`, `bind`)
    /// before it is used.
    package static func awaitingMemory(_ layout: TensorLayout, engine: Engine) throws -> DeviceTensor {
        try DeviceTensor(layout, engine: engine, storage: nil, data: nil)
    }

    /// The memory, or nil while a tensor waits for its place in an arena.
    private var data: UnsafeMutablePointer<Float>? {
        var p: UnsafeMutableRawPointer?
        dnnl_memory_get_data_handle(handle, &p)
        return p?.assumingMemoryBound(to: Float.self)
    }

    /// Whether the tensor has memory (every tensor but one waiting for a place in an arena).
    package var hasMemory: Bool { data != nil }

    /// Gives the tensor its place in an arena, and its views theirs.
    package func place(at pointer: UnsafeMutablePointer<Float>) throws {
        try rebind(pointer)
        for v in views { try v.tensor.place(at: pointer + v.offset) }
    }

    deinit { dnnl_memory_destroy(handle) }

    /// A zeroed row-major tensor (see `init(_:engine:lifetime:)` for `lifetime`).
    public static func plain(_ dims: [Int], engine: Engine, lifetime: BufferLifetime = .persistent) throws -> DeviceTensor {
        try DeviceTensor(TensorLayout.plain(dims), engine: engine, lifetime: lifetime)
    }

    /// The raw storage, in `layout`'s order (the kernels' business).
    var pointer: UnsafeMutablePointer<Float> { raw.assumingMemoryBound(to: Float.self) }

    /// The storage as bytes, whatever the number type (a bfloat16 tensor's values are 2 bytes).
    var raw: UnsafeMutableRawPointer {
        var p: UnsafeMutableRawPointer?
        dnnl_memory_get_data_handle(handle, &p)
        return p!
    }

    /// Points this tensor at another buffer in the same layout.
    func rebind(_ pointer: UnsafeMutablePointer<Float>) throws {
        try check(dnnl_memory_set_data_handle(handle, pointer), "dnnl_memory_set_data_handle",
                  "rebinding a tensor of shape \(layout.dims)")
    }

    /// The values in place, row-major, for the plain-Swift passes (dropout, the loss, reading
    /// logits); only for plain tensors.
    public func plainFloats() throws -> UnsafeMutableBufferPointer<Float> {
        guard isPlain else { throw LayoutError(operation: "plainFloats", layout: layout) }
        return UnsafeMutableBufferPointer(start: pointer, count: dims.reduce(1, *))
    }

    /// Reads the values in place from `pointer` from now on: row-major floats of this shape that
    /// the caller keeps alive (a loader's batch buffer, so batches reach the network uncopied).
    public func bind(to pointer: UnsafeMutablePointer<Float>) throws {
        guard isPlain else { throw LayoutError(operation: "bind", layout: layout) }
        try rebind(pointer)
    }

    /// A plain row-major copy of the contents.
    public func read() throws -> Tensor {
        let count = dims.reduce(1, *)
        if isPlain { return Tensor(shape: dims, data: Array(UnsafeBufferPointer(start: pointer, count: count))) }
        let plain = try DeviceTensor.plain(dims, engine: engine)
        try Reorder(from: layout, to: plain.layout, engine: engine, name: "reorder to plain \(layout)").run(from: self, to: plain)
        return Tensor(shape: dims, data: Array(UnsafeBufferPointer(start: plain.pointer, count: count)))
    }

    /// Fills the tensor from a plain row-major one of the same shape.
    public func write(_ tensor: Tensor) throws {
        guard tensor.shape == dims else {
            throw ShapeError(what: "writing into a tensor of shape \(dims)", shape: tensor.shape, expected: "\(dims)")
        }
        if isPlain {
            tensor.data.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: tensor.count) }
            return
        }
        let plain = try DeviceTensor.plain(dims, engine: engine)
        plain.storage!.copy(from: tensor.data)
        try Reorder(from: plain.layout, to: layout, engine: engine, name: "reorder from plain \(layout)").run(from: plain, to: self)
    }
}

/// A layer's weight and bias and, when it trains, their gradients: views into a `ParameterStore`
/// in PyTorch's layouts, which the kernels read and write (or copy into layouts of their own).
/// The weights are float32; the gradients are in the store's format (bfloat16 for a bf16 run).
package struct ParameterViews {
    let weight: UnsafeMutablePointer<Float>
    let bias: UnsafeMutablePointer<Float>
    let dWeight: UnsafeMutableRawPointer?
    let dBias: UnsafeMutableRawPointer?
    /// The gradients' number type.
    let gradientPrecision: Precision

    /// `<name>.weight` and `<name>.bias`, checked against the shapes the layer expects.
    package init(_ parameters: ParameterStore, _ name: String, weight: [Int], bias: [Int], gradients: Bool) throws {
        self.weight = try parameters.value("\(name).weight", shape: weight)
        self.bias = try parameters.value("\(name).bias", shape: bias)
        dWeight = gradients ? try parameters.grad("\(name).weight", shape: weight) : nil
        dBias = gradients ? try parameters.grad("\(name).bias", shape: bias) : nil
        gradientPrecision = parameters.grads.format == .bfloat16 ? .bf16 : .fp32
    }

    /// A layout of the gradients' type.
    func gradientLayout(_ dims: [Int]) throws -> TensorLayout { try TensorLayout(dims, .plain, gradientPrecision) }
}

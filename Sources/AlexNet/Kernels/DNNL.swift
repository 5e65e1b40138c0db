import CDNNL

/// The thin, checked layer over oneDNN's C API. Everything that knows oneDNN lives in `Kernels/`;
/// layers see `Engine`, `MemoryDesc`, `Memory` and `Primitive` only.

/// A failed oneDNN call, with the call and what it was doing.
public struct DNNLError: Error, CustomStringConvertible {
    public let call: String
    public let context: String
    public let status: String
    public var description: String { "oneDNN \(call) failed (\(status)) while \(context)" }
}

@inline(__always)
func check(_ status: dnnl_status_t, _ call: String, _ context: @autoclosure () -> String) throws {
    if status != dnnl_success {
        throw DNNLError(call: call, context: context(), status: String(cString: dnnl_status2str(status)))
    }
}

/// One CPU engine and its in-order stream, plus the thread count oneDNN (OpenMP) uses.
public final class Engine: @unchecked Sendable {
    let engine: dnnl_engine_t
    let stream: dnnl_stream_t
    /// Worker threads for oneDNN and for the plain-Swift passes.
    public let threads: Int

    /// - Parameter threads: worker threads; nil or 0 means one per core.
    public init(threads: Int? = nil) throws {
        if let threads, threads > 0 { omp_set_num_threads(Int32(threads)) }
        self.threads = Int(omp_get_max_threads())
        var e: dnnl_engine_t?
        try check(dnnl_engine_create(&e, dnnl_cpu, 0), "dnnl_engine_create", "creating the CPU engine")
        engine = e!
        var s: dnnl_stream_t?
        try check(dnnl_stream_create(&s, engine, dnnl_stream_default_flags.rawValue), "dnnl_stream_create",
                  "creating the CPU stream")
        stream = s!
    }

    deinit {
        dnnl_stream_destroy(stream)
        dnnl_engine_destroy(engine)
    }

    /// Waits for queued primitives (the CPU stream is synchronous, but this keeps timings honest).
    public func wait() throws { try check(dnnl_stream_wait(stream), "dnnl_stream_wait", "synchronising") }
}

/// Logical shape plus physical layout of a tensor, as oneDNN describes it.
public struct MemoryDesc: CustomStringConvertible {
    var md: dnnl_memory_desc_t

    init(_ md: dnnl_memory_desc_t) { self.md = md }

    /// A float32 descriptor for `dims` in a layout: `.plain` (row-major NCHW / NC / OIHW / X) or `.any`.
    init(_ dims: [Int], _ layout: Layout) throws {
        var md = dnnl_memory_desc_t()
        let tag: dnnl_format_tag_t
        switch layout {
        case .any: tag = dnnl_format_tag_any
        case .channelBlocks(let n):
            guard dims.count == 4, n == 8 || n == 16 else {
                throw DNNLError(call: "dnnl_memory_desc_init_by_tag", context: "describing \(dims)", status: "no \(n)-channel blocked layout")
            }
            tag = n == 8 ? dnnl_aBcd8b : dnnl_aBcd16b
        case .plain:
            switch dims.count {
            case 1: tag = dnnl_a
            case 2: tag = dnnl_ab
            case 4: tag = dnnl_abcd
            default: throw DNNLError(call: "dnnl_memory_desc_init_by_tag", context: "describing \(dims)",
                                     status: "unsupported rank \(dims.count)")
            }
        }
        try withDims(dims) { p in
            try check(dnnl_memory_desc_init_by_tag(&md, Int32(dims.count), p, dnnl_f32, tag),
                      "dnnl_memory_desc_init_by_tag", "describing a tensor of shape \(dims)")
        }
        self.md = md
    }

    /// Row-major, oneDNN's choice, or channels in blocks of 8 or 16 (nChw8c, nChw16c).
    enum Layout { case plain, any, channelBlocks(Int) }

    /// Row-major float32 (NCHW, NC, OIHW, X).
    public static func plain(_ dims: [Int]) throws -> MemoryDesc { try MemoryDesc(dims, .plain) }

    public var dims: [Int] {
        withUnsafeBytes(of: md.dims) { raw in
            let p = raw.bindMemory(to: Int64.self)
            return (0..<Int(md.ndims)).map { Int(p[$0]) }
        }
    }

    /// Bytes the layout needs (blocked layouts pad channels up to the block).
    public var bytes: Int { withUnsafePointer(to: md) { dnnl_memory_desc_get_size($0) } }

    public func sameLayout(as other: MemoryDesc) -> Bool {
        withUnsafePointer(to: md) { a in withUnsafePointer(to: other.md) { b in dnnl_memory_desc_equal(a, b) != 0 } }
    }

    public var description: String { "\(dims)" }
}

/// A oneDNN memory object over a buffer this side owns (or borrows, for parameter views).
public final class Memory {
    public let desc: MemoryDesc
    let handle: dnnl_memory_t
    /// The owned storage, if any; views into parameter buffers keep `nil` here.
    let storage: FloatBuffer?

    /// Allocates a zeroed buffer for `desc`.
    public init(_ desc: MemoryDesc, engine: Engine) throws {
        let buf = FloatBuffer(count: (desc.bytes + 3) / 4)
        storage = buf
        self.desc = desc
        var h: dnnl_memory_t?
        var md = desc.md
        try check(dnnl_memory_create(&h, &md, engine.engine, buf.pointer), "dnnl_memory_create",
                  "allocating a tensor of shape \(desc)")
        handle = h!
    }

    /// Wraps memory that lives elsewhere (a parameter or gradient view); the caller keeps it alive.
    init(_ desc: MemoryDesc, engine: Engine, borrowing pointer: UnsafeMutablePointer<Float>) throws {
        storage = nil
        self.desc = desc
        var h: dnnl_memory_t?
        var md = desc.md
        try check(dnnl_memory_create(&h, &md, engine.engine, pointer), "dnnl_memory_create",
                  "wrapping a tensor of shape \(desc)")
        handle = h!
    }

    deinit { dnnl_memory_destroy(handle) }

    /// The raw float storage (in `desc`'s layout).
    public var pointer: UnsafeMutablePointer<Float> {
        var p: UnsafeMutableRawPointer?
        dnnl_memory_get_data_handle(handle, &p)
        return p!.assumingMemoryBound(to: Float.self)
    }

    /// Points this memory object at another buffer (used to feed caller-owned inputs).
    func rebind(_ pointer: UnsafeMutablePointer<Float>) throws {
        try check(dnnl_memory_set_data_handle(handle, pointer), "dnnl_memory_set_data_handle",
                  "rebinding a tensor of shape \(desc)")
    }
}

/// A created primitive with a name for errors and profiles.
final class Primitive {
    let handle: dnnl_primitive_t
    let pd: dnnl_primitive_desc_t
    let name: String

    /// Creates the primitive for an operation descriptor (conv, pooling, …) and owns its pd.
    convenience init(_ opDesc: UnsafeRawPointer, name: String, engine: Engine, attr: Attributes? = nil,
         hint: Primitive? = nil) throws {
        var pd: dnnl_primitive_desc_t?
        try check(dnnl_primitive_desc_create(&pd, opDesc,
                                             attr?.handle, engine.engine, hint?.pd),
                  "dnnl_primitive_desc_create", "choosing an implementation for \(name)")
        try self.init(pd: pd!, name: name)
    }

    init(pd: dnnl_primitive_desc_t, name: String) throws {
        self.pd = pd
        self.name = name
        var p: dnnl_primitive_t?
        try check(dnnl_primitive_create(&p, pd), "dnnl_primitive_create", "creating \(name)")
        handle = p!
    }

    deinit {
        dnnl_primitive_destroy(handle)
        dnnl_primitive_desc_destroy(pd)
    }

    /// The implementation oneDNN picked, e.g. "jit:avx2" or "gemm:jit".
    var implementation: String {
        var p: UnsafePointer<CChar>?
        guard dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &p) == dnnl_success, let p else { return "?" }
        return String(cString: p)
    }

    /// The layout the implementation chose for one of its arguments (DNNL_ARG_*).
    func desc(_ query: dnnl_query_t, _ index: Int32 = 0) -> MemoryDesc {
        MemoryDesc(dnnl_primitive_desc_query_md(pd, query, index).pointee)
    }

    func execute(_ engine: Engine, _ args: [(Int32, Memory)]) throws {
        let exec = args.map { dnnl_exec_arg_t(arg: $0.0, memory: $0.1.handle) }
        try check(dnnl_primitive_execute(handle, engine.stream, Int32(exec.count), exec),
                  "dnnl_primitive_execute", "running \(name)")
    }

    /// A buffer for the workspace this training primitive keeps for its backward pass (max-pool's
    /// arg-max, LRN's scales), or nil when it needs none.
    func makeWorkspace(_ engine: Engine) throws -> Memory? {
        let ws = desc(dnnl_query_workspace_md)
        return ws.bytes > 0 ? try Memory(ws, engine: engine) : nil
    }

    /// `execute`, adding the workspace argument when there is one.
    func execute(_ engine: Engine, _ args: [(Int32, Memory)], workspace: Memory?) throws {
        try execute(engine, workspace.map { args + [(DNNL_ARG_WORKSPACE, $0)] } ?? args)
    }
}

/// Primitive attributes: post-ops (fused ReLU).
final class Attributes {
    let handle: dnnl_primitive_attr_t

    init(fusedReLU: Bool) throws {
        var a: dnnl_primitive_attr_t?
        try check(dnnl_primitive_attr_create(&a), "dnnl_primitive_attr_create", "creating attributes")
        handle = a!
        if fusedReLU {
            var po: dnnl_post_ops_t?
            try check(dnnl_post_ops_create(&po), "dnnl_post_ops_create", "creating post-ops")
            defer { dnnl_post_ops_destroy(po) }
            try check(dnnl_post_ops_append_eltwise(po, 1, dnnl_eltwise_relu, 0, 0),
                      "dnnl_post_ops_append_eltwise", "fusing ReLU")
            try check(dnnl_primitive_attr_set_post_ops(handle, po), "dnnl_primitive_attr_set_post_ops",
                      "fusing ReLU")
        }
    }

    deinit { dnnl_primitive_attr_destroy(handle) }
}

/// Copies between layouts; created once per edge and reused. Bound to its two buffers at
/// creation, or given them per call (`run(_:from:to:)`) where one of them changes.
final class Reorder {
    let primitive: Primitive
    let source: Memory?
    let destination: Memory?

    init(from source: Memory, to destination: Memory, engine: Engine, name: String) throws {
        primitive = try Self.make(source.desc, destination.desc, engine: engine, name: name)
        self.source = source
        self.destination = destination
    }

    init(from source: MemoryDesc, to destination: MemoryDesc, engine: Engine, name: String) throws {
        primitive = try Self.make(source, destination, engine: engine, name: name)
        (self.source, self.destination) = (nil, nil)
    }

    private static func make(_ from: MemoryDesc, _ to: MemoryDesc, engine: Engine, name: String) throws -> Primitive {
        var pd: dnnl_primitive_desc_t?
        var s = from.md, d = to.md
        try check(dnnl_reorder_primitive_desc_create(&pd, &s, engine.engine, &d, engine.engine, nil),
                  "dnnl_reorder_primitive_desc_create", "planning \(name)")
        return try Primitive(pd: pd!, name: name)
    }

    func run(_ engine: Engine) throws {
        guard let source, let destination else {
            throw DNNLError(call: "reorder", context: "running \(primitive.name)", status: "no buffers bound")
        }
        try run(engine, from: source, to: destination)
    }

    func run(_ engine: Engine, from source: Memory, to destination: Memory) throws {
        try primitive.execute(engine, [(DNNL_ARG_FROM, source), (DNNL_ARG_TO, destination)])
    }
}

/// Spatial arguments as oneDNN wants them: a dnnl_dims_t with the first `values.count` set.
func dims(_ values: [Int]) -> dnnl_dims_t {
    var d: dnnl_dims_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    withUnsafeMutableBytes(of: &d) { raw in
        let p = raw.bindMemory(to: Int64.self)
        for (i, v) in values.enumerated() { p[i] = Int64(v) }
    }
    return d
}

/// Calls `body` with a pointer to the first element of a dnnl_dims_t.
func withDims<R>(_ values: [Int], _ body: (UnsafePointer<Int64>) throws -> R) rethrows -> R {
    var d = dims(values)
    return try withUnsafePointer(to: &d) { try $0.withMemoryRebound(to: Int64.self, capacity: 12, body) }
}

extension Memory {
    /// A copy of this memory's contents in plain row-major order.
    public func plainTensor(engine: Engine) throws -> Tensor {
        let plain = try Memory(MemoryDesc(desc.dims, .plain), engine: engine)
        try Reorder(from: self, to: plain, engine: engine, name: "reorder to plain \(desc)").run(engine)
        let n = desc.dims.reduce(1, *)
        return Tensor(shape: desc.dims, data: Array(UnsafeBufferPointer(start: plain.pointer, count: n)))
    }

    /// Fills this memory from a plain row-major tensor of the same shape.
    public func load(_ tensor: Tensor, engine: Engine) throws {
        guard tensor.shape == desc.dims else {
            throw DNNLError(call: "load", context: "loading a tensor of shape \(tensor.shape) into \(desc)",
                            status: "shape mismatch")
        }
        let plain = try Memory(MemoryDesc(desc.dims, .plain), engine: engine)
        plain.storage!.copy(from: tensor.data)
        try Reorder(from: plain, to: self, engine: engine, name: "reorder from plain \(desc)").run(engine)
    }
}

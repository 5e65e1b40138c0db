import AlexNetCore
import CDNNL
import Dispatch

/// The thin, checked layer over oneDNN's C API. Everything that knows oneDNN lives in `Kernels/`:
/// this file (engine, primitives, attributes, reorders), `DeviceTensor` (memory) and one kernel
/// per operation. Layers describe what they compute and see `Engine`, `TensorLayout`,
/// `DeviceTensor` and the kernels' Swift interfaces only.

/// A failed oneDNN call, with the call and what it was doing.
public struct DNNLError: DescribedError {
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
    /// Reorders (layout changes: weights into a kernel's layout, a tensor between two layers'
    /// layouts) run since `resetReorderStatistics`, and the seconds they took: what `bench
    /// --layers` reports, so the cost of per-layer layouts stays visible.
    public private(set) var reorderCount = 0
    public private(set) var reorderSeconds = 0.0

    /// The most scratch memory, in bytes, that a kernel uses at once: `WinogradKernel`
    /// transforms a batch that many bytes of tiles at a time.
    public let scratchLimit: Int
    /// 80 MiB: a few dozen images of conv2's or conv4's Winograd tiles at a time, enough for the
    /// products to run as fast as on the whole batch (docs/PERFORMANCE.md, Winograd algorithms),
    /// while a training network's busiest step (conv5's backward pass, where every saved
    /// activation is still live) holds that much scratch beside them.
    public static let defaultScratchLimit = 80 << 20

    /// The layouts convolutions' activations can be asked in instead of oneDNN's choice.
    public enum ActivationLayout: Sendable, CaseIterable {
        /// Channels in blocks of 8 ([N][C/8][H][W][8]), what oneDNN's AVX2 kernels choose.
        case nChw8c
        /// Channels in blocks of 16, what its AVX-512 kernels choose for training.
        case nChw16c
        /// Channels last ([N][H][W][C]), what its AVX-512 kernels choose for inference.
        case nhwc

        var kind: TensorLayout.Kind {
            switch self {
            case .nChw8c: return .channelBlocked(8)
            case .nChw16c: return .channelBlocked(16)
            case .nhwc: return .channelsLast
            }
        }
    }

    /// The layout of the activations convolutions read and write, instead of the one oneDNN
    /// chooses for this CPU and pass (nil): so that tests check `WinogradKernel` on every layout
    /// whatever the CPU. oneDNN makes each layout anywhere, but computes on some only with its
    /// AVX-512 kernels (elsewhere with reference loops).
    public let activationLayout: ActivationLayout?

    /// - Parameters:
    ///   - threads: worker threads; nil or 0 means one per core.
    ///   - scratchLimit: see `scratchLimit`.
    ///   - activationLayout: see `activationLayout`.
    public init(threads: Int? = nil, scratchLimit: Int = Engine.defaultScratchLimit,
                activationLayout: ActivationLayout? = nil) throws {
        self.scratchLimit = scratchLimit
        self.activationLayout = activationLayout
        if let threads, threads > 0 { try Limits.check(threads: threads) }
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

    /// Set while a network is built: the tensors its kernels make wait for a place in the
    /// network's arena instead of allocating (see `BufferLifetime`).
    package var recorder: ArenaRecorder?

    public func resetReorderStatistics() { (reorderCount, reorderSeconds) = (0, 0) }

    func noteReorder(since start: UInt64) {
        reorderCount += 1
        reorderSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    /// Waits for queued primitives (the CPU stream is synchronous, but this keeps timings honest).
    public func wait() throws { try check(dnnl_stream_wait(stream), "dnnl_stream_wait", "synchronising") }
}

/// What this CPU offers the bf16 precision, as oneDNN sees it (`ONEDNN_MAX_CPU_ISA` lowers it).
/// oneDNN 2.6 runs bf16 convolutions natively only with AVX-512 BF16 instructions (Cooper Lake,
/// Zen 4, and AMX CPUs after them); with plain AVX-512 it emulates them, slower than float32, and
/// with AVX2 alone it has no bf16 convolution at all. A bf16 run is therefore refused, with the
/// reason, wherever the native instructions are missing.
public enum CPUCapabilities {
    /// oneDNN's name-like spelling of the instruction set it dispatches to on this machine.
    public static var isa: String {
        switch dnnl_get_effective_cpu_isa() {
        case dnnl_cpu_isa_sse41: return "sse41"
        case dnnl_cpu_isa_avx: return "avx"
        case dnnl_cpu_isa_avx2: return "avx2"
        case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni"
        case dnnl_cpu_isa_avx512_mic, dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic"
        case dnnl_cpu_isa_avx512_core: return "avx512_core"
        case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni"
        case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16"
        case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx"
        case let other: return "isa 0x\(String(other.rawValue, radix: 16))"
        }
    }

    /// Whether oneDNN has native bf16 kernels here: its ISA flags include AVX-512 BF16's (AMX's do).
    public static var hasNativeBF16: Bool {
        let bf16 = dnnl_cpu_isa_avx512_core_bf16.rawValue
        return dnnl_get_effective_cpu_isa().rawValue & bf16 == bf16
    }

    /// Throws unless `precision` runs at full speed on this CPU.
    public static func check(_ precision: Precision) throws {
        if precision == .bf16 && !hasNativeBF16 { throw PrecisionError(precision: precision, isa: isa) }
    }
}

/// A precision this CPU cannot run at speed: bf16 without AVX-512 BF16 or AMX.
public struct PrecisionError: DescribedError {
    public let precision: Precision
    /// The instruction set oneDNN reported.
    public let isa: String
    public var description: String {
        "--precision \(precision.rawValue) needs a CPU with AVX-512 BF16 or AMX instructions; oneDNN reports \(isa) as this " +
            "machine's best instruction set (ONEDNN_MAX_CPU_ISA, if set, lowers it), where bf16 would run in slow emulation " +
            "or not at all. Use --precision fp32 (the default)."
    }
}

extension Precision {
    /// The element type of the tensors the convolutions and linear layers compute on.
    var dataType: dnnl_data_type_t { self == .fp32 ? dnnl_f32 : dnnl_bf16 }
}

/// Which oneDNN implementation runs each pass of a kernel ("jit:avx2", "gemm:jit", …), for
/// `bench --layers` and the test that no layer falls back to a GEMM where a direct kernel exists.
package typealias Implementations = [(pass: String, implementation: String)]

func passImplementations(_ passes: [(String, Primitive?)]) -> Implementations {
    passes.compactMap { pass, p in p.map { (pass, $0.implementation) } }
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
    func desc(_ query: dnnl_query_t, _ index: Int32 = 0) -> TensorLayout {
        TensorLayout(dnnl_primitive_desc_query_md(pd, query, index).pointee)
    }

    func execute(_ engine: Engine, _ args: [(Int32, DeviceTensor)]) throws {
        let exec = args.map { dnnl_exec_arg_t(arg: $0.0, memory: $0.1.handle) }
        try check(dnnl_primitive_execute(handle, engine.stream, Int32(exec.count), exec),
                  "dnnl_primitive_execute", "running \(name)")
    }

    /// A buffer for the workspace this training primitive writes for its backward pass (max-pool's
    /// arg-max, LRN's scales), or nil when it needs none.
    func makeWorkspace(_ engine: Engine, lifetime: BufferLifetime) throws -> DeviceTensor? {
        let ws = desc(dnnl_query_workspace_md)
        return ws.bytes > 0 ? try DeviceTensor(ws, engine: engine, lifetime: lifetime) : nil
    }

    /// `execute`, adding the workspace argument when there is one.
    func execute(_ engine: Engine, _ args: [(Int32, DeviceTensor)], workspace: DeviceTensor?) throws {
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

/// Copies between two layouts of the same dims; created once per edge and reused, given its
/// source and destination per call.
final class Reorder {
    let primitive: Primitive
    let engine: Engine

    init(from source: TensorLayout, to destination: TensorLayout, engine: Engine, name: String) throws {
        var pd: dnnl_primitive_desc_t?
        var s = source.md, d = destination.md
        try check(dnnl_reorder_primitive_desc_create(&pd, &s, engine.engine, &d, engine.engine, nil),
                  "dnnl_reorder_primitive_desc_create", "planning \(name)")
        primitive = try Primitive(pd: pd!, name: name)
        self.engine = engine
    }

    func run(from source: DeviceTensor, to destination: DeviceTensor) throws {
        let t0 = DispatchTime.now().uptimeNanoseconds
        try primitive.execute(engine, [(DNNL_ARG_FROM, source), (DNNL_ARG_TO, destination)])
        engine.noteReorder(since: t0)
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

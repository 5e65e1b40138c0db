import Foundation

/// A 64-byte aligned float buffer that never moves: what oneDNN memory objects point at, and the
/// flat storage behind the parameters (llm.c style named views into one block; their gradients and
/// momentum are `NumberBuffer`s).
public final class FloatBuffer: @unchecked Sendable {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Float>

    /// - Parameter zeroed: false leaves the contents undefined (for buffers always written before
    ///   being read, such as loader batches): large buffers then cost no page faults up front.
    /// For buffers whose size a configuration sets (parameters, momentum); batch-sized buffers use
    /// `init(count:zeroed:for:)`, which fails with an error instead of stopping the process.
    public convenience init(count: Int, zeroed: Bool = true) {
        guard let pointer = Self.allocate(count, zeroed: zeroed) else {
            fatalError("FloatBuffer: cannot allocate \(max(count, 1) * MemoryLayout<Float>.stride) bytes")
        }
        self.init(count: count, pointer: pointer)
    }

    /// Like `init(count:zeroed:)`, but a failed allocation throws a `LimitError` that names the
    /// size and `what` the memory was for (a batch's activations, a loader's slots).
    public convenience init(count: Int, zeroed: Bool = true, for what: String) throws {
        guard count >= 0, count <= Int.max / MemoryLayout<Float>.stride, let pointer = Self.allocate(count, zeroed: zeroed) else {
            throw LimitError(flag: what, message: String(format: "needs %.2f GB, which could not be allocated; lower the batch size",
                                                           Double(count) * Double(MemoryLayout<Float>.stride) / 1e9))
        }
        self.init(count: count, pointer: pointer)
    }

    private init(count: Int, pointer: UnsafeMutablePointer<Float>) {
        (self.count, self.pointer) = (count, pointer)
    }

    /// 64-byte aligned memory for `count` floats (at least one), or nil.
    private static func allocate(_ count: Int, zeroed: Bool) -> UnsafeMutablePointer<Float>? {
        var raw: UnsafeMutableRawPointer?
        guard count >= 0, posix_memalign(&raw, 64, max(count, 1) * MemoryLayout<Float>.stride) == 0, let raw else { return nil }
        let pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        if zeroed { pointer.initialize(repeating: 0, count: max(count, 1)) }
        return pointer
    }

    deinit { free(pointer) }

    public var buffer: UnsafeMutableBufferPointer<Float> { .init(start: pointer, count: count) }

    public func zero() { pointer.update(repeating: 0, count: count) }

    public func copy(from source: [Float]) {
        require(source.count == count, "FloatBuffer: copy of \(source.count) values into \(count)")
        source.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: count) }
    }

    public var array: [Float] { Array(buffer) }
}

/// How a block of numbers is kept: float32, or bfloat16 (float32's upper 16 bits: the same
/// exponent range, 8 significant bits). Gradients and momentum of a bf16 run are kept in bfloat16.
public enum NumberFormat: String, Sendable, Codable {
    case float32, bfloat16
    public var bytes: Int { self == .float32 ? 4 : 2 }
}

/// float32 → bfloat16, rounded to the nearest even (oneDNN's conversion); a NaN stays a NaN.
@inlinable @inline(__always)
public func bfloat16Bits(_ x: Float) -> UInt16 {
    let u = x.bitPattern
    // A select rather than a branch, so that loops over it vectorize.
    let nan = u & 0x7FFF_FFFF > 0x7F80_0000
    return UInt16(truncatingIfNeeded: nan ? (u >> 16) | 0x0040 : (u &+ 0x7FFF &+ ((u >> 16) & 1)) >> 16)
}

/// bfloat16 → float32 (exact).
@inlinable @inline(__always)
public func float(bfloat16 bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

/// A page-aligned, zeroed block of `count` numbers kept in `format`, read and written as floats
/// (writes to a bfloat16 block round to nearest even): gradients and momentum, which a bf16 run
/// keeps at half the size. The memory is fresh anonymous pages, which read as zeros and take no
/// memory until written: the gradients of a store that only inference uses (evaluate, classify,
/// export) cost nothing.
public final class NumberBuffer: @unchecked Sendable {
    public let count: Int
    public let format: NumberFormat
    public let raw: UnsafeMutableRawPointer
    private let mappedBytes: Int

    public init(count: Int, format: NumberFormat) {
        let bytes = max(count, 1) * format.bytes
        guard count >= 0, let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              p != MAP_FAILED else {
            fatalError("NumberBuffer: cannot allocate \(bytes) bytes")
        }
        (self.count, self.format, raw, mappedBytes) = (count, format, p, bytes)
    }

    deinit { munmap(raw, mappedBytes) }

    public var bytes: Int { count * format.bytes }
    /// The numbers as floats, when they are kept as floats.
    public var floats: UnsafeMutablePointer<Float>? { format == .float32 ? raw.assumingMemoryBound(to: Float.self) : nil }
    /// The numbers' bfloat16 bits, when they are kept as bfloat16.
    public var halves: UnsafeMutablePointer<UInt16>? { format == .bfloat16 ? raw.assumingMemoryBound(to: UInt16.self) : nil }
    /// The address of element `offset`.
    public func address(_ offset: Int) -> UnsafeMutableRawPointer { raw + offset * format.bytes }

    public func zero() { memset(raw, 0, bytes) }

    /// Elements offset..<offset+count as floats (widened exactly from bfloat16).
    public func read(_ offset: Int, _ count: Int) -> [Float] {
        precondition(offset >= 0 && count >= 0 && offset + count <= self.count, "NumberBuffer: read past the end")
        if let f = floats { return Array(UnsafeBufferPointer(start: f + offset, count: count)) }
        let h = halves! + offset
        return (0..<count).map { float(bfloat16: h[$0]) }
    }

    /// Writes `values` from element `offset` on (rounded to nearest even into bfloat16).
    public func write(_ values: UnsafeBufferPointer<Float>, at offset: Int) {
        precondition(offset >= 0 && offset + values.count <= count, "NumberBuffer: write past the end")
        guard let base = values.baseAddress, !values.isEmpty else { return }
        if let f = floats { (f + offset).update(from: base, count: values.count); return }
        let h = halves! + offset
        for i in 0..<values.count { h[i] = bfloat16Bits(base[i]) }
    }

    /// The index of the first NaN or infinity among elements offset..<offset+count, if any.
    public func firstNonFinite(_ offset: Int, _ count: Int) -> Int? {
        if let f = floats { return UnsafeBufferPointer(start: f + offset, count: count).firstIndex { !$0.isFinite } }
        return UnsafeBufferPointer(start: halves! + offset, count: count).firstIndex { $0 & 0x7F80 == 0x7F80 }
    }
}

import Foundation

/// A 64-byte aligned float buffer that never moves: what oneDNN memory objects point at, and the
/// flat storage behind parameters, gradients and momentum (llm.c style named views into one block).
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

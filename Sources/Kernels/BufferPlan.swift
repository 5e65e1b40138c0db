import AlexNetCore

/// Where each of a network's step-bound buffers lives inside one arena, computed once per network
/// and batch size from the buffers' lifetimes (llm.c's single allocation, with reuse): two
/// buffers may share bytes only when no step needs both. A step is one layer's forward or
/// backward pass; a buffer's lifetime is the steps from its writer to its last reader, possibly
/// in several ranges (a layer's scratch, needed during its forward and its backward pass but not
/// between them).
public struct BufferPlan: Sendable {
    /// One buffer: its size and the steps during which its contents matter.
    public struct Request: Sendable, Equatable {
        public var name: String
        public var bytes: Int
        /// Closed ranges of steps; two requests conflict when any of their ranges intersect.
        public var steps: [ClosedRange<Int>]
        public init(name: String, bytes: Int, steps: [ClosedRange<Int>]) {
            (self.name, self.bytes, self.steps) = (name, bytes, steps)
        }

        func isLive(together other: Request) -> Bool {
            steps.contains { a in other.steps.contains { b in a.overlaps(b) } }
        }
    }

    /// A plan that puts two buffers live at the same step on shared bytes, or one past the end.
    public struct OverlapError: DescribedError {
        public let first: String, second: String
        public var description: String {
            second.isEmpty ? "buffer plan: \(first) lies outside the arena"
                : "buffer plan: \(first) and \(second) are live at the same step and share bytes"
        }
    }

    /// Every offset is a multiple of this (a cache line, what oneDNN's kernels align to).
    public static let alignment = 64

    public let requests: [Request]
    /// Byte offset of each request in the arena, in `requests`' order.
    public let offsets: [Int]
    /// The arena's size in bytes.
    public let size: Int

    /// Places the requests greedily, largest first, each at the lowest aligned offset where it
    /// overlaps no buffer already placed that is live at one of its steps.
    public init(_ requests: [Request]) {
        let align = Self.alignment
        func rounded(_ n: Int) -> Int { (n + align - 1) / align * align }
        let order = requests.indices.sorted { a, b in
            requests[a].bytes != requests[b].bytes ? requests[a].bytes > requests[b].bytes : a < b
        }
        var offsets = [Int](repeating: 0, count: requests.count)
        var placed: [Int] = []
        var size = 0
        for i in order {
            let need = rounded(requests[i].bytes)
            let conflicts = placed.filter { requests[$0].isLive(together: requests[i]) }
                .map { (start: offsets[$0], end: offsets[$0] + rounded(requests[$0].bytes)) }
                .sorted { $0.start < $1.start }
            var candidate = 0
            for c in conflicts {
                if candidate + need <= c.start { break }
                candidate = max(candidate, c.end)
            }
            offsets[i] = candidate
            placed.append(i)
            size = max(size, candidate + need)
        }
        self.init(requests: requests, offsets: offsets, size: size)
    }

    /// A plan with given offsets (what `validate` checks; tests build wrong ones on purpose).
    public init(requests: [Request], offsets: [Int], size: Int) {
        (self.requests, self.offsets, self.size) = (requests, offsets, size)
    }

    /// Throws `OverlapError` if two buffers live at the same step share a byte, or one does not
    /// fit in the arena or is misaligned.
    public func validate() throws {
        for i in requests.indices {
            guard offsets[i] >= 0, offsets[i] % Self.alignment == 0, offsets[i] + requests[i].bytes <= size else {
                throw OverlapError(first: requests[i].name, second: "")
            }
            for j in requests.indices where j > i && requests[i].isLive(together: requests[j]) {
                let a = offsets[i]..<(offsets[i] + max(requests[i].bytes, 1))
                let b = offsets[j]..<(offsets[j] + max(requests[j].bytes, 1))
                if a.overlaps(b) { throw OverlapError(first: requests[i].name, second: requests[j].name) }
            }
        }
    }

    /// What the buffers would take each in its own allocation.
    public var unplannedBytes: Int { requests.reduce(0) { $0 + $1.bytes } }

    /// The most bytes live at any one step: no plan can be smaller than this.
    public var liveBytesLowerBound: Int { busiestStep?.bytes ?? 0 }

    /// The step with the most bytes live, and those bytes.
    public var busiestStep: (step: Int, bytes: Int)? {
        let steps = Set(requests.flatMap { $0.steps.flatMap { Array($0) } }).sorted()
        return steps.map { s in (s, requests.filter { r in r.steps.contains { $0.contains(s) } }.reduce(0) { $0 + $1.bytes }) }
            .max { $0.1 < $1.1 }
    }
}

import AlexNetCore
import Foundation

/// Background batch loading: worker threads decode and augment whole batches into a small ring of
/// preallocated buffers ahead of the consumer, so memory stays bounded whatever the dataset size.
/// Batch b's content depends only on (seed, epoch, b's samples), never on the number of threads or
/// on timing.
///
/// Every image is brought to the size the crops expect (`Augmentation.prepared`: the mean image's
/// with the pixel mean, else at least the crop's; shorter side resized, central square kept), so
/// images smaller than the crop are enlarged, never read past; an augmentation whose mean image
/// is smaller than the crop is refused when the loader is built.
public final class BatchLoader: @unchecked Sendable {
    public enum Kind: Sendable {
        /// Shuffled order, random crops, mirroring and lighting.
        case training
        /// Dataset order; the central crop, or with `tenCrop` the ten crops (`TenCrop`).
        case validation(tenCrop: Bool)
    }

    /// A ready batch. `images` is valid until the next call to `next()`.
    public struct Batch {
        public let index: Int
        /// Samples in this batch (the last one may be short; it is never dropped).
        public let count: Int
        /// Training and single-crop validation: (count, 3, S, S). Ten-crop: (10, count, 3, S, S),
        /// crop-major, so each crop of the whole batch is one contiguous network input.
        public let images: UnsafeMutablePointer<Float>
        public let labels: [Int]
        /// Positions in the split of the samples.
        public let samples: [Int]
        public let crops: Int
    }

    public let split: DatasetSplit
    public let labels: [Int]
    public let kind: Kind
    public let augmentation: Augmentation
    public let batchSize: Int
    public let seed: UInt64
    public let epoch: Int
    public let order: [Int]
    public let batchCount: Int
    public let crops: Int
    public let sampleFloats: Int
    public let shard: Shard

    /// One rank's part of every batch in a distributed run: batches (and the shuffled order) are
    /// the global ones, and rank r of n takes positions ⌊r·L/n⌋ ..< ⌊(r+1)·L/n⌋ of a batch of L
    /// samples, so the parts are disjoint, cover the batch, and differ in size by at most one (a
    /// part may be empty when L < n).
    public struct Shard: Sendable, Equatable {
        public var rank: Int, ranks: Int
        public init(rank: Int, ranks: Int) { (self.rank, self.ranks) = (rank, ranks) }
        public static let whole = Shard(rank: 0, ranks: 1)

        public func part(of batch: Range<Int>) -> Range<Int> {
            let n = batch.count
            return (batch.lowerBound + rank * n / ranks)..<(batch.lowerBound + (rank + 1) * n / ranks)
        }
    }

    private let slots: [FloatBuffer]
    private let condition = NSCondition()
    private var ready = Set<Int>()
    private var released = -1
    private var nextBatch = 0
    private var stopped = false
    private var failureList: [ImageError] = []
    private var warningList: [ImageError] = []
    private let counter: WorkCounter

    /// - Parameters:
    ///   - labels: one per file of `split` (from a `LabelMap`).
    ///   - prefetch: batches prepared beyond one per thread.
    ///   - startBatch: the first batch to make (a run resumed mid-epoch skips the ones it trained on;
    ///     the order and every batch's content are those of the whole epoch).
    ///   - shard: this rank's part of each batch (`batchSize` is the global batch).
    public init(split: DatasetSplit, labels: [Int], kind: Kind, augmentation: Augmentation, batchSize: Int, seed: UInt64,
                epoch: Int, threads: Int = ProcessInfo.processInfo.activeProcessorCount, prefetch: Int = 1, startBatch: Int = 0,
                shard: Shard = .whole) throws {
        guard batchSize > 0 else { throw DatasetError(message: "batch size must be positive, got \(batchSize)") }
        guard shard.ranks > 0, (0..<shard.ranks).contains(shard.rank) else {
            throw DatasetError(message: "shard \(shard.rank) of \(shard.ranks) does not exist")
        }
        self.shard = shard
        try Limits.check(threads: threads, flag: "loader threads")
        try Limits.check(batch: batchSize, flag: "batch size")
        guard labels.count == split.count else { throw DatasetError(message: "\(labels.count) labels for \(split.count) files") }
        try augmentation.validate()
        (self.split, self.labels, self.kind, self.augmentation, self.batchSize) = (split, labels, kind, augmentation, batchSize)
        (self.seed, self.epoch) = (seed, epoch)
        var order = Array(0..<split.count)
        if case .training = kind {
            var rng = RandomGenerator(seed: seed, stream: 0x5EED, UInt64(epoch))
            order.shuffle(using: &rng)
        }
        self.order = order
        batchCount = (split.count + batchSize - 1) / batchSize
        guard (0...batchCount).contains(startBatch) else {
            throw DatasetError(message: "start batch \(startBatch) outside the epoch's 0…\(batchCount)")
        }
        if case .validation(tenCrop: true) = kind { crops = 10 } else { crops = 1 }
        sampleFloats = 3 * augmentation.outputSize * augmentation.outputSize
        let workers = max(1, threads)
        // A part holds at most ⌈batch / ranks⌉ samples.
        let slotFloats = (batchSize + shard.ranks - 1) / shard.ranks * crops * sampleFloats
        let slotCount = workers + max(0, prefetch), slotName = "a loader batch of \(batchSize)×\(crops) crops"
        try Limits.check(memory: slotFloats * slotCount, bytesEach: MemoryLayout<Float>.stride,
                         what: "\(slotCount) of \(slotName)", flags: "the loader:", advice: "lower the batch size")
        slots = try (0..<slotCount).map { _ in try FloatBuffer(count: slotFloats, zeroed: false, for: slotName) }
        counter = WorkCounter(batchCount, start: startBatch)
        nextBatch = startBatch
        released = startBatch - 1
        startWorkers(workers)
    }

    private func startWorkers(_ n: Int) {
        for _ in 0..<n {
            // The workers hold the loader until the epoch's batches are all made or it is stopped.
            Thread { self.work() }.start()
        }
    }

    deinit { stop() }

    /// Stops the workers (also done when the loader is released).
    public func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }

    /// Files that failed to decode so far (their samples are zeros), with reasons.
    public var failures: [ImageError] {
        condition.lock(); defer { condition.unlock() }
        return failureList
    }

    /// Images decoded so far although above Pillow's MAX_IMAGE_PIXELS (see `ImageLimits`).
    public var warnings: [ImageError] {
        condition.lock(); defer { condition.unlock() }
        return warningList
    }

    /// The next batch in order, waiting for it if needed; nil after the last.
    public func next() -> Batch? {
        condition.lock()
        defer { condition.unlock() }
        released = nextBatch - 1          // the previous batch's buffer may be reused now
        condition.broadcast()
        guard nextBatch < batchCount else { return nil }
        let b = nextBatch
        while !ready.contains(b) && !stopped { condition.wait() }
        guard ready.contains(b) else { return nil }
        ready.remove(b)
        nextBatch += 1
        let range = members(b)
        return Batch(index: b, count: range.count, images: slots[b % slots.count].pointer, labels: range.map { labels[order[$0]] },
                     samples: range.map { order[$0] }, crops: crops)
    }

    /// Positions in `order` of batch b's samples: the global batch's, or this rank's part of it.
    private func members(_ b: Int) -> Range<Int> { shard.part(of: (b * batchSize)..<min(split.count, (b + 1) * batchSize)) }

    private func work() {
        let codec = ImageCodec()
        var scratch: [Float] = []
        while let b = counter.take() {
            condition.lock()
            while b > released + slots.count && !stopped { condition.wait() }
            let stop = stopped
            condition.unlock()
            if stop { return }
            let errors = fill(b, codec: codec, scratch: &scratch)
            let warnings = codec.takeWarnings()
            condition.lock()
            ready.insert(b)
            failureList += errors
            warningList += warnings
            condition.broadcast()
            condition.unlock()
        }
    }

    /// Decodes and augments batch b into its slot.
    private func fill(_ b: Int, codec: ImageCodec, scratch: inout [Float]) -> [ImageError] {
        let range = members(b)
        let base = slots[b % slots.count].pointer
        var errors: [ImageError] = []
        for (i, position) in range.enumerated() {
            let index = order[position]
            do {
                let image = augmentation.prepared(try codec.decode(file: split.path(index)))
                switch kind {
                case .training:
                    var rng = RandomGenerator(seed: seed, stream: UInt64(epoch), UInt64(index))
                    let draw = augmentation.draw(width: image.width, height: image.height, rng: &rng)
                    augmentation.apply(image, draw, into: base + i * sampleFloats, scratch: &scratch)
                case .validation(let tenCrop):
                    augmentation.evaluationCrops(image, tenCrop: tenCrop, into: base + i * sampleFloats, stride: range.count * sampleFloats,
                                                 scratch: &scratch)
                }
            } catch {
                errors.append((error as? ImageError) ?? ImageError(path: split.path(index), reason: "\(error)"))
                for k in 0..<crops {
                    (base + (k * range.count + i) * sampleFloats).update(repeating: 0, count: sampleFloats)
                }
            }
        }
        return errors
    }
}

import AlexNetCore
import AlexNetInterop
import Foundation

/// Training-set statistics (docs/DESIGN.md, Data): the mean image (for `pixel` mean subtraction),
/// the per-channel mean, and the RGB covariance with its eigen-decomposition (for PCA lighting,
/// paper section 4.1) — what the seed could not compute.
public struct DatasetStatistics: Sendable, Equatable {
    public var size: Int
    /// (size, size, 3), row-major, 0–255 scale.
    public var meanImage: [Float]
    public var channelMean: [Double]
    /// 3×3, row-major.
    public var covariance: [Double]
    /// Descending.
    public var eigenvalues: [Double]
    /// Row i is the eigenvector of eigenvalue i (unit length).
    public var eigenvectors: [[Double]]
    public var imageCount: Int

    /// ImageNet's published constants (docs/DESIGN.md, Data), for training without statistics.
    public static let imagenetFallback = DatasetStatistics(
        size: 0, meanImage: [], channelMean: [123.675, 116.28, 103.53], covariance: [],
        eigenvalues: [55.46, 4.794, 1.148].map { $0 * $0 },
        eigenvectors: [[-0.5675, -0.5808, -0.5836], [0.7192, -0.0045, -0.6948], [0.4009, -0.8140, 0.4203]],
        imageCount: 0)

    /// λᵢ of the paper's lighting: square roots of the eigenvalues.
    public var lightingScales: [Double] { eigenvalues.map { max($0, 0).squareRoot() } }

    /// Streams the images of `split` (all, or `sample` of them drawn with `seed`) on `threads`
    /// threads. Sums are kept in 64-bit integers, so the result is exact and does not depend on
    /// the thread count. Images that are not size×size are brought there as preprocessing would.
    public static func compute(_ split: DatasetSplit, size: Int = 256, sample: Int? = nil, seed: UInt64 = 0,
                               threads: Int = ProcessInfo.processInfo.activeProcessorCount,
                               progress: Bool = false) throws -> DatasetStatistics {
        try Limits.check(threads: threads)
        try Limits.check(imageSide: size, flag: "-z/--size")
        try checkMemory(size: size, threads: threads)
        var indices = Array(0..<split.count)
        if let sample, sample < split.count {
            var rng = RandomGenerator(seed: seed, stream: 0x57A7)
            indices.shuffle(using: &rng)
            indices = Array(indices.prefix(sample)).sorted()
        }
        let pixels = size * size
        final class Partial: @unchecked Sendable {
            var image: [UInt64], channel = [UInt64](repeating: 0, count: 3), products = [UInt64](repeating: 0, count: 9)
            var count = 0
            var failure: ImageError?
            init(_ n: Int) { image = [UInt64](repeating: 0, count: n) }
        }
        let partials = (0..<max(1, threads)).map { _ in Partial(pixels * 3) }
        let chosen = indices
        let counter = WorkCounter(chosen.count)
        let reporter = progress ? ProgressReporter(total: chosen.count, label: "stats") : nil
        runWorkers(partials.count) { w in
            let codec = ImageCodec()
            let part = partials[w]
            while let k = counter.take(), part.failure == nil {
                defer { reporter?.advance() }
                let path = split.path(chosen[k])
                do {
                    var image = try codec.decode(file: path)
                    if image.width != size || image.height != size { image = image.resizedShorterSide(to: size, crop: true) }
                    part.count += 1
                    image.pixels.withUnsafeBufferPointer { p in
                        part.image.withUnsafeMutableBufferPointer { acc in
                            for i in 0..<(pixels * 3) { acc[i] &+= UInt64(p[i]) }
                        }
                        // Per-image sums fit in 32 bits (65536 px × 255²), so add them up there first.
                        var s = [UInt32](repeating: 0, count: 3)
                        var rr: UInt64 = 0, rg: UInt64 = 0, rb: UInt64 = 0, gg: UInt64 = 0, gb: UInt64 = 0, bb: UInt64 = 0
                        for i in 0..<pixels {
                            let r = UInt64(p[3 * i]), g = UInt64(p[3 * i + 1]), b = UInt64(p[3 * i + 2])
                            s[0] &+= UInt32(r); s[1] &+= UInt32(g); s[2] &+= UInt32(b)
                            rr &+= r * r; rg &+= r * g; rb &+= r * b; gg &+= g * g; gb &+= g * b; bb &+= b * b
                        }
                        for c in 0..<3 { part.channel[c] &+= UInt64(s[c]) }
                        for (j, q) in [rr, rg, rb, rg, gg, gb, rb, gb, bb].enumerated() { part.products[j] &+= q }
                    }
                } catch {
                    part.failure = (error as? ImageError) ?? ImageError(path: path, reason: "\(error)")
                }
            }
        }
        reporter?.finish()
        if let failure = partials.compactMap(\.failure).first { throw failure }
        let n = partials.reduce(0) { $0 + $1.count }
        guard n > 0 else { throw DatasetError(message: "\(split.root): no images to compute statistics from") }
        var image = [UInt64](repeating: 0, count: pixels * 3), channel = [UInt64](repeating: 0, count: 3), products = [UInt64](repeating: 0, count: 9)
        for p in partials {
            for i in 0..<image.count { image[i] &+= p.image[i] }
            for c in 0..<3 { channel[c] &+= p.channel[c] }
            for j in 0..<9 { products[j] &+= p.products[j] }
        }
        let total = Double(n) * Double(pixels)
        let mean = channel.map { Double($0) / total }
        var covariance = [Double](repeating: 0, count: 9)
        for a in 0..<3 { for b in 0..<3 { covariance[3 * a + b] = Double(products[3 * a + b]) / total - mean[a] * mean[b] } }
        let (values, vectors) = symmetricEigen3(covariance)
        return DatasetStatistics(size: size, meanImage: image.map { Float(Double($0) / Double(n)) }, channelMean: mean,
                                 covariance: covariance, eigenvalues: values, eigenvectors: vectors, imageCount: n)
    }

    /// Each worker keeps a 64-bit sum per pixel and channel (size² × 3 × 8 bytes): refuses a
    /// size and thread count whose sums would not fit in memory.
    public static func checkMemory(size: Int, threads: Int) throws {
        try Limits.check(memory: size * size * 3 * threads, bytesEach: 8,
                         what: "the per-thread sums of \(threads) threads at \(size)×\(size)", flags: "-z/--size with --threads")
    }

    /// Eigenvalues (descending) and unit eigenvectors of a symmetric 3×3 matrix, by cyclic Jacobi
    /// rotations in double precision. Signs are arbitrary for PCA lighting (α is symmetric); they
    /// are fixed so that p₁ sums negative, as the published ImageNet p₁, and the others have a
    /// positive largest component.
    public static func symmetricEigen3(_ m: [Double]) -> ([Double], [[Double]]) {
        var a = [[m[0], m[1], m[2]], [m[3], m[4], m[5]], [m[6], m[7], m[8]]]
        var v = [[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]
        for _ in 0..<100 {
            let off = a[0][1] * a[0][1] + a[0][2] * a[0][2] + a[1][2] * a[1][2]
            if off < 1e-30 * (a[0][0] * a[0][0] + a[1][1] * a[1][1] + a[2][2] * a[2][2]) + 1e-300 { break }
            for (p, q) in [(0, 1), (0, 2), (1, 2)] where a[p][q] != 0 {
                let theta = (a[q][q] - a[p][p]) / (2 * a[p][q])
                let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
                let c = 1 / (t * t + 1).squareRoot(), s = t * c
                for k in 0..<3 {   // A ← A·J
                    let akp = a[k][p], akq = a[k][q]
                    a[k][p] = c * akp - s * akq; a[k][q] = s * akp + c * akq
                }
                for k in 0..<3 {   // A ← Jᵀ·A
                    let apk = a[p][k], aqk = a[q][k]
                    a[p][k] = c * apk - s * aqk; a[q][k] = s * apk + c * aqk
                }
                for k in 0..<3 {   // V ← V·J (columns are eigenvectors)
                    let vkp = v[k][p], vkq = v[k][q]
                    v[k][p] = c * vkp - s * vkq; v[k][q] = s * vkp + c * vkq
                }
            }
        }
        let order = (0..<3).sorted { a[$0][$0] > a[$1][$1] }
        let values = order.map { a[$0][$0] }
        var vectors = order.map { j in (0..<3).map { v[$0][j] } }
        for (i, vec) in vectors.enumerated() {
            let sum = vec.reduce(0, +)
            let flip = i == 0 ? sum > 0 : (vec.max(by: { abs($0) < abs($1) })! < 0)
            if flip { vectors[i] = vec.map { -$0 } }
        }
        return (values, vectors)
    }

    // MARK: file

    public func write(to path: String, source: String) throws {
        var w = SafetensorsWriter(metadata: ["images": "\(imageCount)", "source": source, "size": "\(size)",
                                             "format": "alexnet dataset statistics: mean_image (H, W, RGB) on the 0-255 scale"])
        w.add("mean_image", Tensor(shape: [size, size, 3], data: meanImage))
        w.add("channel_mean", doubles: channelMean, shape: [3])
        w.add("covariance", doubles: covariance, shape: [3, 3])
        w.add("eigenvalues", doubles: eigenvalues, shape: [3])
        w.add("eigenvectors", doubles: eigenvectors.flatMap { $0 }, shape: [3, 3])
        try w.write(to: path)
    }

    public init(size: Int, meanImage: [Float], channelMean: [Double], covariance: [Double], eigenvalues: [Double],
                eigenvectors: [[Double]], imageCount: Int) {
        (self.size, self.meanImage, self.channelMean, self.covariance) = (size, meanImage, channelMean, covariance)
        (self.eigenvalues, self.eigenvectors, self.imageCount) = (eigenvalues, eigenvectors, imageCount)
    }

    public init(file path: String) throws {
        try self.init(reading: try SafetensorsFile(path: path), path: path)
    }

    /// The statistics stored under `prefix` in `f` (a statistics file's own, or a checkpoint's
    /// `statistics.*`), checked before use: a mean image of shape (S, S, 3) and finite values
    /// throughout, since a wrong shape would resize every image to it and a NaN would reach
    /// every input. The covariance is optional (checkpoints keep none).
    package init(reading f: SafetensorsFile, path: String, prefix: String = "") throws {
        let mean = try f.tensor(prefix + "mean_image")
        guard mean.shape.count == 3, mean.shape[0] == mean.shape[1], mean.shape[0] > 0, mean.shape[2] == 3 else {
            throw SafetensorsError(path: path, tensor: prefix + "mean_image", reason: "shape \(mean.shape), expected (S, S, 3)")
        }
        let vectors = try f.doubles(prefix + "eigenvectors", shape: [3, 3])
        let covariance = f.tensors[prefix + "covariance"] == nil ? [] : try f.doubles(prefix + "covariance", shape: [3, 3])
        self.init(size: mean.shape[0], meanImage: mean.data, channelMean: try f.doubles(prefix + "channel_mean", shape: [3]),
                  covariance: covariance, eigenvalues: try f.doubles(prefix + "eigenvalues", shape: [3]),
                  eigenvectors: [Array(vectors[0..<3]), Array(vectors[3..<6]), Array(vectors[6..<9])],
                  imageCount: Int(f.metadata[prefix.isEmpty ? "images" : "statistics_images"] ?? "") ?? 0)
        let named: [(String, [Double])] = [("channel_mean", channelMean), ("covariance", covariance), ("eigenvalues", eigenvalues),
                                           ("eigenvectors", vectors)]
        if let bad = named.first(where: { !$0.1.allSatisfy(\.isFinite) }) {
            throw SafetensorsError(path: path, tensor: prefix + bad.0, reason: "holds NaN or infinite values")
        }
        if let i = meanImage.firstIndex(where: { !$0.isFinite }) {
            throw SafetensorsError(path: path, tensor: prefix + "mean_image", reason: "value \(i) is \(meanImage[i]); statistics must be finite")
        }
    }
}

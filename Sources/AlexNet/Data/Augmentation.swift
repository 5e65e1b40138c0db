import Foundation

/// Training augmentation and evaluation crops (paper section 4.1, SPEC sections 4 and 5).
/// Every random draw for a sample comes from `RandomGenerator(seed:, stream: epoch, index)`, so
/// an epoch's content does not depend on thread count or order of work.
public enum CropMode: String, Sendable, CaseIterable, Codable {
    /// A uniformly random size×size window of the 256×256 image (offsets 0…32 on each axis).
    case paper
    /// The seed's RandomResizedCrop: area U(0.08, 1), log-uniform aspect in [3/4, 4/3], up to 10
    /// tries then the whole (central) image, resized bilinearly.
    case randomResized = "random_resized"
}

public enum MeanMode: String, Sendable, CaseIterable, Codable {
    /// Per-channel mean (the seed's 123.675, 116.28, 103.53 or the computed one).
    case channel
    /// The paper's: the training set's mean image, cropped with the same window.
    case pixel
}

/// What one sample's random draws decided.
public struct AugmentationDraw: Sendable, Equatable {
    /// The source window (in the input image) that becomes the output.
    public var x, y, width, height: Int
    public var mirror: Bool
    /// PCA lighting coefficients αᵢ ~ N(0, σ²).
    public var alphas: [Float]

    public init(x: Int, y: Int, width: Int, height: Int, mirror: Bool, alphas: [Float]) {
        (self.x, self.y, self.width, self.height, self.mirror, self.alphas) = (x, y, width, height, mirror, alphas)
    }
}

public struct Augmentation: Sendable {
    public var crop: CropMode = .paper
    public var outputSize = 224
    public var mirror = true
    /// σ of the lighting coefficients (paper: 0.1); 0 turns lighting off.
    public var lightingStd: Float = 0.1
    public var mean: MeanMode = .pixel
    public var statistics: DatasetStatistics
    /// The mean image rounded to 8 bits, for resampling with `random_resized` windows.
    private let meanImage8: RGBImage?

    public init(statistics: DatasetStatistics = .imagenetFallback, crop: CropMode = .paper, mean: MeanMode? = nil) {
        self.statistics = statistics
        self.crop = crop
        // Pixel mean needs a mean image; the published constants only give channel means.
        self.mean = mean ?? (statistics.meanImage.isEmpty ? .channel : .pixel)
        meanImage8 = statistics.meanImage.isEmpty ? nil
            : RGBImage(width: statistics.size, height: statistics.size, pixels: statistics.meanImage.map { UInt8(clamping: Int($0.rounded())) })
    }

    /// Checks that the configuration can run on images of `size`×`size`.
    public func validate(imageSize size: Int) throws {
        guard size >= outputSize else { throw DatasetError(message: "images of \(size) px cannot give \(outputSize) px crops") }
        if mean == .pixel {
            guard !statistics.meanImage.isEmpty else {
                throw DatasetError(message: "pixel mean subtraction needs a statistics file with a mean image (alexnet stats)")
            }
            guard statistics.size == size else {
                throw DatasetError(message: "the mean image is \(statistics.size) px but the images are \(size) px")
            }
        }
    }

    /// The random decisions for one training sample, in a fixed order: window, mirror, lighting.
    public func draw(width w: Int, height h: Int, rng: inout RandomGenerator) -> AugmentationDraw {
        var d = AugmentationDraw(x: 0, y: 0, width: outputSize, height: outputSize, mirror: false, alphas: [0, 0, 0])
        switch crop {
        case .paper:
            d.x = Int(rng.next() % UInt64(w - outputSize + 1))
            d.y = Int(rng.next() % UInt64(h - outputSize + 1))
        case .randomResized:
            (d.x, d.y, d.width, d.height) = Self.randomResizedWindow(width: w, height: h, rng: &rng)
        }
        d.mirror = mirror && rng.uniform() < 0.5
        if lightingStd > 0 { d.alphas = (0..<3).map { _ in rng.normal() * lightingStd } }
        return d
    }

    /// torchvision's RandomResizedCrop.get_params with scale (0.08, 1) and ratio (3/4, 4/3).
    static func randomResizedWindow(width w: Int, height h: Int, rng: inout RandomGenerator) -> (Int, Int, Int, Int) {
        let area = Double(w * h)
        let logLow = log(3.0 / 4.0), logHigh = log(4.0 / 3.0)
        for _ in 0..<10 {
            let target = area * (0.08 + 0.92 * rng.uniformDouble())
            let ratio = exp(logLow + (logHigh - logLow) * rng.uniformDouble())
            let cw = Int((target * ratio).squareRoot().rounded()), ch = Int((target / ratio).squareRoot().rounded())
            if cw > 0, ch > 0, cw <= w, ch <= h {
                return (Int(rng.next() % UInt64(w - cw + 1)), Int(rng.next() % UInt64(h - ch + 1)), cw, ch)
            }
        }
        // Fallback: the central crop with the aspect clamped to the allowed range.
        let inRatio = Double(w) / Double(h)
        var cw = w, ch = h
        if inRatio < 3.0 / 4.0 { ch = Int((Double(w) / (3.0 / 4.0)).rounded()) } else if inRatio > 4.0 / 3.0 { cw = Int((Double(h) * 4.0 / 3.0).rounded()) }
        return ((w - cw) / 2, (h - ch) / 2, cw, ch)
    }

    /// The colour added to every pixel: Σᵢ αᵢ λᵢ pᵢ (paper section 4.1).
    public func lightingShift(_ alphas: [Float]) -> [Float] {
        let lambda = statistics.lightingScales, p = statistics.eigenvectors
        return (0..<3).map { c in Float((0..<3).reduce(0.0) { $0 + Double(alphas[$1]) * lambda[$1] * p[$1][c] }) }
    }

    /// Writes the sample (3, outputSize, outputSize), planar, into `out`: the window, mirrored if
    /// drawn, plus lighting, minus the mean, on the 0–255 scale.
    public func apply(_ image: RGBImage, _ d: AugmentationDraw, into out: UnsafeMutablePointer<Float>) {
        let n = outputSize
        if crop == .randomResized && (d.width != n || d.height != n || d.x != 0 || d.y != 0) {
            let box = (Double(d.x), Double(d.y), Double(d.x + d.width), Double(d.y + d.height))
            let resized = image.resampled(width: n, height: n, filter: .bilinear, box: box)
            var meanWindow: [Float]? = nil
            if mean == .pixel, let m8 = meanImage8 {
                meanWindow = m8.resampled(width: n, height: n, filter: .bilinear, box: box).pixels.map(Float.init)
            }
            write(resized, x: 0, y: 0, mirror: d.mirror, shift: lightingShift(d.alphas), meanWindow: meanWindow, into: out)
        } else {
            write(image, x: d.x, y: d.y, mirror: d.mirror, shift: lightingShift(d.alphas), meanWindow: nil, into: out)
        }
    }

    /// The crop loop: source window at (x, y) of `image`; the mean comes from `meanWindow`
    /// (n×n×3, already aligned with the output), from the mean image at the same window, or is
    /// the channel mean (a single row read again for every row).
    private func write(_ image: RGBImage, x: Int, y: Int, mirror: Bool, shift: [Float], meanWindow: [Float]?,
                       into out: UnsafeMutablePointer<Float>) {
        let n = outputSize, plane = n * n, w = image.width
        let channelRow = (0..<(n * 3)).map { Float(statistics.channelMean[$0 % 3]) }
        let meanSource: [Float], meanBase: Int, meanRowStride: Int
        if let meanWindow {
            (meanSource, meanBase, meanRowStride) = (meanWindow, 0, n * 3)
        } else if mean == .pixel {
            (meanSource, meanBase, meanRowStride) = (statistics.meanImage, (y * statistics.size + x) * 3, statistics.size * 3)
        } else {
            (meanSource, meanBase, meanRowStride) = (channelRow, 0, 0)
        }
        let (s0, s1, s2) = (shift[0], shift[1], shift[2])
        image.pixels.withUnsafeBufferPointer { px in
            meanSource.withUnsafeBufferPointer { mp in
                let r = out, g = out + plane, b = out + 2 * plane
                for row in 0..<n {
                    let src = px.baseAddress! + ((y + row) * w + x) * 3
                    let m = mp.baseAddress! + meanBase + row * meanRowStride
                    let o = row * n
                    for col in 0..<n {
                        let sc = mirror ? n - 1 - col : col
                        r[o + col] = Float(src[3 * sc]) + s0 - m[3 * sc]
                        g[o + col] = Float(src[3 * sc + 1]) + s1 - m[3 * sc + 1]
                        b[o + col] = Float(src[3 * sc + 2]) + s2 - m[3 * sc + 2]
                    }
                }
            }
        }
    }
}

/// Ten-crop evaluation (paper section 4.1, SPEC section 5): the four corners and the centre, then
/// the same five of the mirrored image, as torchvision's `ten_crop`.
public enum TenCrop {
    /// (x, y, mirrored) in the source image for each of the ten windows; a mirrored window is the
    /// mirror image of the source window at (x, y).
    public static func windows(width w: Int, height h: Int, size s: Int) -> [(x: Int, y: Int, mirrored: Bool)] {
        let (cx, cy) = (centerOffset(w, s), centerOffset(h, s))
        let five = [(0, 0), (w - s, 0), (0, h - s), (w - s, h - s), (cx, cy)]
        // A corner of the mirrored image is the mirror of the opposite corner of the source.
        return five.map { ($0.0, $0.1, false) } + five.map { (w - s - $0.0, $0.1, true) }
    }

    /// torchvision's center_crop offset: int(round((length − size) / 2)), Python rounding half to even.
    public static func centerOffset(_ length: Int, _ size: Int) -> Int {
        Int((Double(length - size) / 2).rounded(.toNearestOrEven))
    }

    /// Crops planar (N, C, H, W) images into (10, N, C, s, s), in `windows` order.
    public static func crops(_ images: Tensor, size s: Int) -> Tensor {
        let (n, c, h, w) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3])
        var out = [Float](repeating: 0, count: 10 * n * c * s * s)
        for (k, win) in windows(width: w, height: h, size: s).enumerated() {
            for b in 0..<n { for ch in 0..<c { for row in 0..<s { for col in 0..<s {
                let sx = win.mirrored ? win.x + s - 1 - col : win.x + col
                out[(((k * n + b) * c + ch) * s + row) * s + col] = images.data[((b * c + ch) * h + win.y + row) * w + sx]
            } } } }
        }
        return Tensor(shape: [10, n, c, s, s], data: out)
    }

    /// The ten crops of one image with the evaluation pipeline (no lighting), each (3, s, s) planar,
    /// written at `out + k · stride` for crop k.
    public static func apply(_ image: RGBImage, augmentation: Augmentation, into out: UnsafeMutablePointer<Float>, stride: Int) {
        var eval = augmentation
        eval.crop = .paper
        for (k, win) in windows(width: image.width, height: image.height, size: augmentation.outputSize).enumerated() {
            eval.apply(image, AugmentationDraw(x: win.x, y: win.y, width: eval.outputSize, height: eval.outputSize,
                                               mirror: win.mirrored, alphas: [0, 0, 0]), into: out + k * stride)
        }
    }
}
